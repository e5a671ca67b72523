"""The whole local stack, started once (`make up`) and shared by these tests, run in this order:

- the pipeline on the real scheduler and triggerer: one SLA-miss email (a Deadline Alert) for a slow run and
  none for a fast one; every scrape target up and every Grafana panel's query answered by the real Prometheus;
- no generated secret in any process's command line, the stack's logs, task logs or XComs; every part
  listening on loopback only;
- the Airflow UI users: generated passwords kept private, a viewer who can only read;
- the feature-serving API behind Airflow's auth, and the UI's Clickstream view and run report in Chromium
  (numbers checked against Redis and the run's XComs; screenshots in build/screenshots/);
- faults (marker ``faults``), one after another while the producer CLI sends 1,000 events/s: the streaming
  driver SIGKILLed three times, the triggerer SIGKILLed and the scheduler restarted, the Kafka broker down
  for 20 s, Redis down for 30 s and back with less than it acknowledged. After each, Redis equals what it
  held before plus the ground truth of every delivered event, and no second driver ever runs on the checkpoint.

Each test leaves the stack running and healthy for the next. One module, so that pytest-xdist's
``--dist loadscope`` runs them on one worker; tests/conftest.py starts this module first.
"""

from __future__ import annotations

import email
import email.policy
import ipaddress
import json
import os
import shutil
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from stack_faults import (
    FaultedStack,
    bring_redis_back_with_less,
    kill_driver_three_times,
    kill_kafka_for_20s,
    kill_redis_for_30s,
    kill_triggerer_and_restart_scheduler,
)
from stack_helpers import REPO, LocalStack, local_stack_on_free_ports, prometheus_query, run_demo, up_and_check

from devstack.airflow_api import AirflowApiError
from devstack.airflow_parts import passwords, passwords_file
from devstack.redis_server import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local_stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """`make up` once for this module. On a failure, or with CLICKSTREAM_KEEP_STACK_LOGS set, the stack's logs
    are kept under ``.state/stack-test-logs``."""
    running = local_stack_on_free_ports()
    try:
        running.up_output = up_and_check(running.env)
        yield running
    finally:
        if request.session.testsfailed or os.environ.get("CLICKSTREAM_KEEP_STACK_LOGS"):
            kept = REPO / ".state" / "stack-test-logs"
            running.keep_logs(kept)
            print(f"the stack's logs are kept in {kept}")
        try:
            running.down_and_check()
        finally:  # the state folder holds the stack's passwords: never left behind
            shutil.rmtree(running.root, ignore_errors=True)


DASHBOARD = REPO / "include/monitoring/grafana/dashboards/clickstream.json"
SLA_VARIABLE = "clickstream_pipeline_sla_seconds"
DEMO_EVENTS = 5000  # clickstream_pipeline's default burst, which `make demo` sends
PIPELINE = "clickstream_pipeline"


def set_sla(stack: LocalStack, seconds: int, timeout: float = 150) -> None:
    """Set the SLA Variable and wait until the DAG's newest version has its Deadline Alert at ``seconds``.

    The dag-processor's regular parse picks the Variable up (within its 30 s interval). Neither
    `airflow dags reserialize` (a second writer of the serialized DAG runs into apache/airflow#68732: later
    runs get no deadline at all) nor a parse request (`PUT /parseDagFile`, seen parsing with the old value)
    is a shortcut in Airflow 3.3.
    """
    stack.api.set_variable(SLA_VARIABLE, str(seconds))
    deadline = time.monotonic() + timeout
    while True:
        alerts = stack.api.get("/ui/dags/clickstream_pipeline/deadlineAlerts")["deadline_alerts"]
        if [alert["interval"] for alert in alerts] == [seconds]:
            return
        assert time.monotonic() < deadline, f"clickstream_pipeline's deadline is still {alerts} after {timeout}s"
        time.sleep(2)


def sla_emails(maildir: Path) -> list[email.message.EmailMessage]:
    messages = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted((maildir / "new").glob("*"))
    ]
    return [m for m in messages if str(m["Subject"]).startswith("[Airflow] SLA missed")]  # type: ignore[misc]


def producer_totals(port: int) -> dict[str, float]:
    """The producer's sent and delivered totals as Prometheus has them (0 before the first burst)."""
    return {
        name: sum(float(s["value"][1]) for s in prometheus_query(port, f"{name}_total"))
        for name in ("clickstream_producer_events_sent", "clickstream_producer_events_delivered")
    }


def test_pipeline_sla_emails_and_dashboard_queries_on_the_local_stack(local_stack: LocalStack):
    ports, env = local_stack.ports, local_stack.env
    maildir = local_stack.state / "mail"
    before = producer_totals(ports["prometheus"])
    emailed_before = len(sla_emails(maildir))

    # A fast run: the pipeline with its default SLA (10 minutes: the Variable is not set yet).
    fast = run_demo(env, "clickstream_pipeline")
    fast_run = fast.split("triggered clickstream_pipeline run ", 1)[1].split()[0]

    # A slow run: the SLA is 20 s, the pipeline takes longer (the DAG reads the Variable when parsed). A wrong
    # email for the fast run would arrive meanwhile: the scheduler checks deadlines on every loop.
    set_sla(local_stack, 20)
    slow = run_demo(env, "clickstream_pipeline")
    slow_run = slow.split("triggered clickstream_pipeline run ", 1)[1].split()[0]
    assert "clickstream_pipeline finished: success" in slow
    deadline = time.monotonic() + 60
    while len(sla_emails(maildir)) == emailed_before and time.monotonic() < deadline:
        time.sleep(1)
    local_stack.api.set_variable(SLA_VARIABLE, "900")  # the next parse gives later runs 15 minutes again

    emails = sla_emails(maildir)[emailed_before:]
    for message in emails:
        body = message.get_body(preferencelist=("html", "plain")).get_content()
        print("\n".join(f"{k}: {v}" for k, v in message.items() if k in ("From", "To", "Subject", "Date")))
        print(body[:600])
    assert len(emails) == 1, [m["Subject"] for m in emails]
    assert emails[0]["Subject"] == f"[Airflow] SLA missed: clickstream_pipeline run {slow_run}"
    assert fast_run not in str(emails[0]["Subject"])
    body = emails[0].get_body(preferencelist=("html", "plain")).get_content()
    assert f"http://127.0.0.1:{ports['airflow']}/dags/clickstream_pipeline/runs/" in body

    # Every scrape target is up, and Prometheus has the producer's figures for both runs: every event
    # sent was delivered.
    expected = {name: total + 2 * DEMO_EVENTS for name, total in before.items()}
    figures: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        figures = producer_totals(ports["prometheus"])
        if figures == expected:
            break
        time.sleep(1)
    assert figures == expected, (figures, before)
    # The Spark driver serves metrics only while a streaming job runs (the runs' jobs have ended): it must
    # have been up while they ran. Every other target must be up now.
    query = 'up{job!="spark"} or max_over_time(up{job="spark"}[15m])'
    targets = {s["metric"]["job"] + "/" + s["metric"]["instance"]: s["value"][1]
               for s in prometheus_query(ports["prometheus"], query)}  # fmt: skip
    print("scrape targets:", targets)
    jobs = {name.split("/")[0] for name in targets}
    assert jobs == {"prometheus", "statsd-exporter", "redis", "kafka", "spark", "alertmanager"}, targets
    assert all(value == "1" for value in targets.values()), targets

    # Every panel's query returns data from the real Prometheus.
    empty = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            result = prometheus_query(ports["prometheus"], target["expr"])
            print(f"{panel['title']:<62} {len(result):>3} series  {target['expr']}")
            if not result:
                empty.append(f"{panel['title']}: {target['expr']}")
    assert not empty, empty
    # The documented success-rate query answers.
    seed = "rate(airflow_dag_run_total[1h]) - rate(airflow_dag_run_failed_total[1h])"
    assert prometheus_query(ports["prometheus"], seed)


def stack_secrets(stack: LocalStack) -> dict[str, str]:
    """Every secret the stack generated: the UI users', Redis users' and Kafka principals' passwords, and the
    keys Airflow's components share."""
    found = {f"password of {user}": password for user, password in passwords(stack.state / "airflow").items()}
    redis_users = RedisServer(stack.state / "redis", stack.ports["redis"]).passwords()
    found.update({f"password of Redis user {user}": password for user, password in redis_users.items()})
    kafka_users = stack.kafka().passwords()
    assert set(kafka_users) >= {"admin", "producer", "streaming", "reconciler", "ops", "broker", "controller"}
    found.update({f"password of Kafka user {user}": password for user, password in kafka_users.items()})
    shared = stack.state / "secrets.json"
    assert shared.stat().st_mode & 0o077 == 0, f"{shared} is readable by others"
    found.update(json.loads(shared.read_text()))
    assert found and all(len(value) >= 16 for value in found.values()), found.keys()
    return found


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


def test_no_secret_is_in_a_command_line_a_log_a_task_log_or_an_xcom(local_stack: LocalStack):
    api = local_stack.api
    if not api.runs(PIPELINE):
        assert f"{PIPELINE} finished: success" in run_demo(local_stack.env, PIPELINE)
    secrets = stack_secrets(local_stack)
    found: list[str] = []

    # Every process on the machine: the stack's parts, Airflow's components and task processes, Spark jobs.
    processes = 0
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        processes += 1
        found += [f"{name} in the command line of pid {proc.info['pid']}" for name in leaks(cmdline, secrets)]

    # Every log the stack wrote: its parts' (supervisord's files), Airflow's components' and tasks', Spark's.
    logs = [*(local_stack.state / "logs").rglob("*"), *(local_stack.state / "airflow" / "logs").rglob("*")]
    logs = [path for path in logs if path.is_file()]
    for path in logs:
        found += [f"{name} in {path}" for name in leaks(path.read_text(errors="replace"), secrets)]

    # Every XCom of every pipeline run.
    xcoms = 0
    for run in api.runs(PIPELINE):
        run_id = run["dag_run_id"]
        for task_id in api.task_states(PIPELINE, run_id):
            entries = api.get(f"/api/v2/dags/{PIPELINE}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries")
            for entry in entries["xcom_entries"]:
                value = json.dumps(api.xcom(PIPELINE, run_id, task_id, entry["key"]))
                xcoms += 1
                found += [f"{name} in XCom {task_id}.{entry['key']} of {run_id}" for name in leaks(value, secrets)]

    print(f"scanned {processes} command lines, {len(logs)} log files, {xcoms} XComs for {len(secrets)} secrets")
    assert processes > 20 and len(logs) > 10 and xcoms >= 3
    assert not found, found


def loopback(ip: str) -> bool:
    """127.0.0.1, ::1, or 127.0.0.1 as an IPv6 socket holds it (::ffff:127.0.0.1, as Java binds)."""
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def test_every_part_of_the_stack_listens_on_loopback_only(local_stack: LocalStack):
    supervisord = psutil.Process(int((local_stack.state / "supervisord.pid").read_text()))
    stack_pids = {supervisord.pid} | {child.pid for child in supervisord.children(recursive=True)}
    # TCP listeners (statsd_exporter's UDP port is configured on loopback, like every other part's port)
    listening = [conn for conn in psutil.net_connections("tcp") if conn.status == psutil.CONN_LISTEN]
    ours = [conn for conn in listening if conn.pid in stack_pids]
    exposed = [
        f"{psutil.Process(conn.pid).name()} (pid {conn.pid}) on {conn.laddr.ip}:{conn.laddr.port}"
        for conn in ours
        if not loopback(conn.laddr.ip)
    ]
    print(f"{len(ours)} sockets of {len(stack_pids)} stack processes")
    assert len(ours) >= 8 and not exposed, exposed


def test_ui_passwords_are_generated_kept_private_and_printed_with_where_they_are(local_stack: LocalStack):
    path = passwords_file(local_stack.state / "airflow")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    known = json.loads(path.read_text())
    assert set(known) == {"admin", "viewer"}
    for user, password in known.items():
        assert len(password) >= 20 and password not in ("admin", "viewer", user)
    assert known["admin"] != known["viewer"]
    # `make up` says what they are and where they are kept.
    assert f"kept in {path}" in local_stack.up_output
    assert all(password in local_stack.up_output for password in known.values())


def test_the_viewer_reads_but_cannot_trigger_and_a_wrong_password_gets_no_token(local_stack: LocalStack):
    local_stack.api.wait_for_dag("clickstream_pipeline", 120)
    viewer = local_stack.api_as("viewer")
    assert viewer.get("/api/v2/dags/clickstream_pipeline")["dag_id"] == "clickstream_pipeline"
    with pytest.raises(AirflowApiError) as denied:
        viewer.trigger("clickstream_pipeline")
    assert denied.value.status == 403

    with pytest.raises(AirflowApiError) as refused:
        local_stack.api_as("admin", password="admin").token()
    assert refused.value.status == 401
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{local_stack.api.base}/api/v2/dags", timeout=30)
    assert anonymous.value.code == 401


def call(url: str, token: str | None = None, method: str = "GET") -> tuple[int, object]:
    """An HTTP status and JSON body, for a request with ``token`` as its bearer (none: anonymous)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_the_serving_api_answers_from_redis_for_readers_and_stops_only_for_editors(local_stack: LocalStack):
    """Every route of the plugin's API behind Airflow's own auth: no token 401, the viewer reads but may not
    stop the streaming job (403), the admin does both; reads equal Redis; bad parameters get a 4xx."""
    from clickstream import redis_layout
    from clickstream.schema import WINDOW_MS, window_label
    from clickstream.serving.feature_store import check_label

    base = f"{local_stack.api.base}/clickstream/api/v1"
    admin_redis = local_stack.redis("admin")
    newest = admin_redis.zrevrange(redis_layout.WINDOWS_KEY, 0, 0)[0].decode()  # the pipeline runs above wrote it
    reads = {
        "page windows": "/pages/windows?" + urllib.parse.urlencode({"page": "/home", "last": 60}),
        "window": f"/windows/{newest}",
        "top pages": "/top-pages?" + urllib.parse.urlencode({"from": newest, "to": newest, "limit": 5}),
        "streaming": "/streaming",
        "dashboard": "/dashboard?windows=30",
        "dead letters": "/dead-letters?last=60",
        "runs": "/runs?limit=5",
        "openapi": "/openapi.json",
    }
    tokens = {"anonymous": None, "viewer": local_stack.api_as("viewer").token(), "admin": local_stack.api.token()}
    matrix = {}
    for role, token in tokens.items():
        for name, path in reads.items():
            matrix[(role, f"GET {name}")] = call(base + path, token)[0]
        matrix[(role, "POST streaming/stop")] = call(f"{base}/streaming/stop", token, "POST")[0]
        admin_redis.delete(redis_layout.CONTROL_KEY)  # the fault test below runs the streaming job: no stale stop
    print("\n" + "\n".join(f"{role:9} {route:22} {code}" for (role, route), code in matrix.items()))
    reads_ok = 200 if admin_redis.exists(redis_layout.progress_key(redis_layout.COUNTS_QUERY)) else 404
    for (role, route), code in matrix.items():
        expected = {"anonymous": 401, "viewer": 403, "admin": 202} if "stop" in route else {"anonymous": 401}
        wanted = expected.get(role, reads_ok if route == "GET streaming" else 200)
        assert code == wanted, (role, route, code, wanted)

    # What the API reads is what Redis holds, window by window.
    _, answer = call(base + reads["page windows"], tokens["viewer"])
    cells = {k.decode(): int(v) for k, v in admin_redis.hgetall(redis_layout.count_key("/home")).items()}
    first_ms = check_label(answer["from"])
    labels = [window_label(first_ms + i * WINDOW_MS) for i in range(len(answer["counts"]))]
    assert len(labels) == 60 and labels[-1] == answer["to"], answer
    assert answer["counts"] == [cells.get(label, 0) for label in labels], answer
    assert answer["total"] > 0
    _, window = call(base + reads["window"], tokens["viewer"])
    assert window["total"] == int(admin_redis.hget(redis_layout.window_key(newest), "total"))
    # A run's report is its burst's ground truth beside Redis, and the reconciler's report, as the XComs hold them.
    _, runs = call(base + reads["runs"], tokens["viewer"])
    done = [run for run in runs["runs"] if run["state"] == "success"]
    assert done, runs
    run_id = done[0]["run_id"]
    _, report = call(f"{base}/runs/{urllib.parse.quote(run_id, safe='')}/report", tokens["viewer"])
    burst = local_stack.api.xcom("clickstream_pipeline", run_id, "start_producer")
    assert {p["page"]: p["sent"] for p in report["pages"]} == burst["ground_truth"]["page_totals"]
    assert report["reconciler"] == local_stack.api.xcom("clickstream_pipeline", run_id, "run_spark_batch")
    assert report["in_redis_total"] > 0
    _, board = call(base + reads["dashboard"], tokens["viewer"])
    shown = [w["window"] for w in board["windows"]]
    ranked = admin_redis.zunion([redis_layout.window_pages_key(w) for w in shown], withscores=True)
    assert {p["page"]: p["count"] for p in board["top_pages"]} == {
        page.decode(): int(n) for page, n in sorted(ranked, key=lambda it: (-it[1], it[0]))[: len(board["top_pages"])]
    }
    # Bad parameters are the caller's to fix, never a 500.
    for path in (
        "/pages/windows?page=/home&last=0",
        "/pages/windows?page=/home&last=x",
        "/pages/windows?" + urllib.parse.urlencode({"page": "/" + "x" * 600}),
        "/pages/windows?page=/never-seen",
        "/windows/yesterday",
        "/top-pages?from=2025-06-10T05:04:00&to=2025-06-10T05:00:00",
        "/dashboard?windows=0",
        "/runs?limit=1000",
        "/runs/no-such-run/report",
    ):
        code, body = call(base + path, tokens["viewer"])
        assert 400 <= code < 500 and body["detail"], (path, code, body)


SCREENSHOTS = REPO / "build" / "screenshots"


def test_the_clickstream_view_and_a_run_report_in_a_real_browser_show_what_redis_and_the_run_hold(
    local_stack: LocalStack,
):
    """The UI's "Clickstream" view and a run's "Clickstream report" tab, in Chromium after a real login: the
    top pages the view shows are Redis's over the windows it shows; the report's pages are what the run's
    burst sent (start_producer's ground truth) beside what Redis holds, and its reconciler figures are
    run_spark_batch's. Screenshots of both go to build/screenshots/."""
    from ui_browser import browser_page, log_in, rows, screenshot_whole

    from clickstream import redis_layout

    api = local_stack.api

    def reported() -> list[str]:  # runs whose burst and reconciler are done: what the report shows
        runs = [run["dag_run_id"] for run in api.runs(PIPELINE)]
        return [run for run in runs if api.task_states(PIPELINE, run).get("run_spark_batch") == "success"]

    if not reported():
        assert f"{PIPELINE} finished: success" in run_demo(local_stack.env, PIPELINE)
    run_id = reported()[0]
    redis_client = local_stack.redis("admin")

    with browser_page() as (page, script_errors):
        log_in(page, api.base, "admin", api.password)

        # The view, from the navigation: the page's top pages and the windows they were ranked over.
        page.goto(f"{api.base}/plugin/clickstream")
        page.locator("[data-testid=clickstream-dashboard][data-loaded=true]").wait_for()
        page.locator("[data-testid=top-page-row]").first.wait_for()
        page.locator("[data-testid=run-row]").first.wait_for()
        shown = [(row["page"], int(row["count"])) for row in rows(page, "top-page-row", "page", "count")]
        windows = page.locator("[data-testid=top-pages-windows]").get_attribute("data-windows").split(",")
        screenshot_whole(page, "[data-testid=clickstream-dashboard]", SCREENSHOTS / "clickstream-view.png")
        assert not page.locator("[data-testid=api-error]").count(), page.locator("[data-testid=api-error]").inner_text()
        union = redis_client.zunion([redis_layout.window_pages_key(label) for label in windows], withscores=True)
        ranked = sorted(((name.decode(), int(n)) for name, n in union), key=lambda item: (-item[1], item[0]))
        print(f"view: {len(windows)} windows, top pages {shown}")
        assert windows and shown and shown == ranked[: len(shown)] and len(shown) == min(10, len(ranked))
        # Each top page's line in the chart adds up to its count in the table.
        lines = {row["page"]: row["values"] for row in rows(page, "series-line", "page", "values")}
        assert {p: sum(map(int, lines[p].split(","))) for p, _ in shown} == dict(shown)

        # Its link to the run's report opens the run's "Clickstream report" tab.
        page.locator(f'[data-testid=run-row][data-run-id="{run_id}"] [data-testid=run-report-link]').click()
        page.wait_for_url(f"**/dags/{PIPELINE}/runs/**/plugin/clickstream_report")
        page.locator("[data-testid=clickstream-report][data-loaded=true]").wait_for()
        page.locator("[data-testid=report-page-row]").first.wait_for()
        report_rows = rows(page, "report-page-row", "page", "sent", "in-redis")
        totals = rows(page, "report-totals", "sent", "in-redis")[0]
        reconciler = {r["field"]: r["value"] for r in rows(page, "reconciler-field", "field", "value")}
        invalid = {r["reason"]: int(r["count"]) for r in rows(page, "reconciler-invalid", "reason", "count")}
        screenshot_whole(page, "[data-testid=clickstream-report]", SCREENSHOTS / "clickstream-report.png")
        assert not script_errors, script_errors

    burst = api.xcom(PIPELINE, run_id, "start_producer")["ground_truth"]
    sent = {row["page"]: int(row["sent"]) for row in report_rows}
    assert sent == {page: int(n) for page, n in burst["page_totals"].items()}
    assert [int(row["sent"]) for row in report_rows] == sorted(sent.values(), reverse=True)
    # What Redis holds for those pages over the burst's windows.
    from clickstream.schema import WINDOW_MS, window_label

    labels = [window_label(ms) for ms in range(burst["first_window_ms"], burst["last_window_ms"] + 1, WINDOW_MS)]
    held = redis_layout.read_counts(redis_client, sent)
    in_redis = {page: sum(held.get((page, label), 0) for label in labels) for page in sent}
    assert {row["page"]: int(row["in-redis"]) for row in report_rows} == in_redis
    assert (int(totals["sent"]), int(totals["in-redis"])) == (sum(sent.values()), sum(in_redis.values()))
    # The reconciler's figures as run_spark_batch returned them.
    report = api.xcom(PIPELINE, run_id, "run_spark_batch")
    scalars = {k: v for k, v in report.items() if v is None or isinstance(v, int | float | str | bool)}
    assert set(reconciler) == set(scalars), (reconciler, scalars)
    for key, value in scalars.items():  # as the page wrote them: JavaScript's String() of each
        if isinstance(value, bool) or value is None:
            assert reconciler[key] == json.dumps(value), (key, reconciler[key], value)
        elif isinstance(value, int | float):
            assert float(reconciler[key]) == value, (key, reconciler[key], value)
        else:
            assert reconciler[key] == value, (key, reconciler[key], value)
    assert {"events_read", "cells_compared", "cells_matching"} <= set(reconciler)
    assert invalid == {reason: int(n) for reason, n in (report.get("invalid_events") or {}).items()}
    print(f"report of {run_id}: {len(sent)} pages, sent {sum(sent.values())}, in Redis {sum(in_redis.values())}")


@pytest.mark.faults
def test_faults_on_the_running_stack_lose_and_double_count_nothing(local_stack: LocalStack):
    run = FaultedStack(local_stack)
    run.start_streaming_job()
    run.inject("driver SIGKILLed 3 times", kill_driver_three_times, seed=101)
    watched = [d.pid for d in run.drivers()]
    # The streaming job is the stack's too (Airflow starts it detached, outside supervisord): loopback only.
    job = [proc for driver in run.drivers() for proc in (driver, *driver.children(recursive=True))]
    job_sockets = [
        c for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.pid in {p.pid for p in job}
    ]
    assert job_sockets, "the streaming job listens on nothing: is it running?"
    assert all(loopback(c.laddr.ip) for c in job_sockets), [f"{c.laddr.ip}:{c.laddr.port}" for c in job_sockets]
    run.inject("triggerer SIGKILLed, scheduler restarted", kill_triggerer_and_restart_scheduler, seed=102)
    # The same job ran on throughout: the new triggerer took over watching it; nothing relaunched it.
    assert [d.pid for d in run.drivers()] == watched
    run.inject("Kafka broker SIGKILLed, back after 20 s", kill_kafka_for_20s, seed=103)
    run.inject("Redis SIGKILLed, back after 30 s", kill_redis_for_30s, seed=104)
    # Events still arrive after the restore (stack_faults.AFTER_FAULT_S): the job finds the gap at its next batch.
    run.inject("Redis back with less than it acknowledged", bring_redis_back_with_less, seed=105)
    recounts = run.spark_log_lines("recounting batches")
    print("recounts:", recounts)
    assert recounts, "the job did not notice the batches Redis lost"
    run.check_counts_and_drivers()
    subjects = run.email_subjects()
    print("emails:", subjects)
    assert any("RedisDown" in s for s in subjects), subjects
    run.stop_streaming_job()
