"""Feature serving latency: the plugin's API through the real api-server, beside the bare Redis read under it.

A whole local stack (``python -m devstack up``: Kafka, Redis, the monitoring parts and Airflow's four
components) is started here on free loopback ports with a state folder of its own, never the `make up` stack,
and taken down and deleted at the end, as the stack tests do. Redis is filled directly, as its ``admin`` user,
with :func:`clickstream.redis_layout.apply_window_counts` (the reconciler's write): the ground truth of 70
minutes of synthetic traffic (:mod:`clickstream.traffic`, 50 events/s, up to now), so every page the site map
has holds a count in (nearly) each of the last 60 windows. Running the pipeline would write the same cells,
minutes later and with Spark beside the measurement.

1. The floor, Redis alone, as the ``reader`` user the API reads as: the exact read
   :meth:`FeatureStore.page_windows <clickstream.serving.feature_store.FeatureStore.page_windows>` sends
   (SISMEMBER and HMGET of 60 window labels, pipelined in one round trip) in a loop of sequential requests
   from redis-py; then the whole ``page_windows`` call in process (labels, the round trip, the answer's
   dict); then ``redis-benchmark`` sending the HMGET alone from one connection (it cannot pipeline two
   different commands). redis-benchmark reads no password from its environment: the reader's goes on its
   command line for those seconds (this run's own Redis, whose passwords go with its folder), never printed.
2. One client, sequential: ``GET /clickstream/api/v1/pages/windows?page=<page>&last=60`` with the admin's JWT
   (``POST /auth/token``) over one keep-alive connection: the api-server's own time per request, no queueing.
3. vegeta (``scripts/setup.sh --bench-tools`` builds it with ``go install``, pinned) sends the same request,
   authenticated (``Authorization: Bearer`` in its targets file, written 0600), at each ``--rates`` for
   ``--duration-s`` after a warm-up, once the api-server has worked off what the previous load left queued
   (:func:`bench.serving_http.wait_until_drained`), rotating over every page; p50, p99 and max come from
   ``vegeta report -type=json``, errors are the non-2xx answers (and transport errors), with a sample.
4. The same loads again with every other program of the stack stopped (scheduler, triggerer, DAG processor,
   Kafka, the monitoring parts) and the api-server restarted, so that the first load does not also measure
   the workers' recovery from the overload before it: the api-server and Redis alone, as a deployment that
   serves features gives its api-server cores of its own. Both are judged against the target. Before those
   loads, one client alone again, back to back and then with 5 ms between its requests (200 requests/s'
   spacing, nothing queued): their ratio is what a worker's waking from idle costs each request.
5. The reference, in the api-server's place (stopped): :mod:`bench.serving_reference`, the same read in a bare
   FastAPI app under uvicorn with as many workers and nothing of Airflow's in front of it, measured the same
   way (one client back to back and paced, then vegeta at each rate). The api-server's figures over its
   figures are what serving through Airflow costs; its own p99 against the target is what this machine
   allows a Python server at all. It is reported, not judged.

Target: p99 <= 5 ms at 200 requests/s with no errors (Feast's tuned Python feature server reports a p99 of
4.6 ms). The other rate is reported beside it, with no target. Everything shares this machine's cores:
vegeta, the api-server, Redis and the rest of the stack.

``make bench`` runs it with the others; ``python -m bench.run serving`` alone (about 6 minutes), or
``python -m bench.serving`` with options.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import exit_if_missed, vegeta
from bench.serving_http import LAST, timed_get, wait_until_answering, wait_until_drained, write_targets
from bench.serving_reference import reference_server
from bench.serving_report import BESIDE, PACED_GAP_S, percentiles_ms, report
from clickstream import redis_layout
from clickstream.serving.feature_store import FeatureStore, page_window_labels
from clickstream.traffic import TrafficConfig, ground_truth
from devstack import supervisor
from devstack.airflow_api import AirflowApi
from devstack.ports import MONITORING_PORT_VARIABLES, free_port
from devstack.redis_server import RedisServer

REPO = Path(__file__).resolve().parent.parent
# The api-server's processes here: one per core (the stack's airflow.cfg runs one, which starts faster).
SERVING_WORKERS = 2
RATES = (200, 1000)
DURATION_S = 30
HISTORY_MIN = 70  # minutes of traffic written to Redis, ending now
EVENTS_PER_S = 50.0
# The stack's ports, each moved to a free one (the variables scripts/env.sh and devstack read).
PORT_VARIABLES = {
    "kafka": "CLICKSTREAM_KAFKA_PORT",
    "controller": "CLICKSTREAM_KAFKA_CONTROLLER_PORT",
    "kafka_internal": "CLICKSTREAM_KAFKA_INTERNAL_PORT",
    "redis": "CLICKSTREAM_REDIS_PORT",
    "airflow": "CLICKSTREAM_AIRFLOW_PORT",
    "postgres": "CLICKSTREAM_POSTGRES_PORT",  # used with --airflow-db postgres only
    **MONITORING_PORT_VARIABLES,
}


def stack_env(
    state: Path, ports: dict[str, int], api_workers: int | None, airflow_db: str = "sqlite"
) -> dict[str, str]:
    """The environment of a stack in ``state`` on ``ports``: none of the caller's connections or Airflow settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update({variable: str(ports[name]) for name, variable in PORT_VARIABLES.items()})
    env.update(
        CLICKSTREAM_STATE=str(state),
        AIRFLOW_HOME=str(state / "airflow"),
        CLICKSTREAM_TOPOLOGY="single",
        CLICKSTREAM_AIRFLOW_DB=airflow_db,
        AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[*]", "extra": {"deploy-mode": "client"}}',
    )
    smtp_extra = {"disable_tls": True, "disable_ssl": True, "from_email": "airflow@clickstream.local"}
    env["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": ports["smtp"], "extra": smtp_extra}
    )
    if airflow_db == "postgres":
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
            f"postgresql+psycopg2://airflow@127.0.0.1:{ports['postgres']}/airflow"
        )
    if api_workers is not None:  # airflow.cfg's [api] workers otherwise
        env["AIRFLOW__API__WORKERS"] = str(api_workers)
    return env


def devstack(action: str, env: dict[str, str], timeout: float = 400) -> str:
    result = subprocess.run([sys.executable, "-m", "devstack", action], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"`python -m devstack {action}` failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def fill_redis(client: Any, now_ms: int) -> list[str]:
    """The ground truth of ``HISTORY_MIN`` minutes of traffic ending now, written as absolute counts; its pages,
    busiest first."""
    events = int(HISTORY_MIN * 60 * EVENTS_PER_S)
    config = TrafficConfig(seed=15, start_ms=now_ms - HISTORY_MIN * 60_000, events_per_second=EVENTS_PER_S)
    truth = ground_truth(config, events)
    rows = [(page, window, n) for (page, window), n in sorted(truth.window_counts.items())]
    redis_layout.apply_window_counts(client, rows)
    totals = truth.page_totals()
    return sorted(totals, key=lambda page: (-totals[page], page))


def redis_floor(reader: Any, pages: list[str], requests: int) -> dict[str, dict[str, float]]:
    """The read ``page_windows`` sends, alone and inside the whole call, as sequential requests (after a warm-up)."""
    store = FeatureStore(reader)

    def round_trip(page: str) -> None:
        _, fields = page_window_labels(page, LAST, None)
        pipe = reader.pipeline(transaction=False)
        pipe.sismember(redis_layout.PAGES_KEY, page)
        pipe.hmget(redis_layout.count_key(page), fields)
        started = time.perf_counter()
        pipe.execute()
        timings.append(time.perf_counter() - started)

    figures = {}
    for name, call in (("round_trip", round_trip), ("page_windows", None)):
        timings: list[float] = []
        for i in range(requests // 10 + requests):  # the first tenth warms up, unmeasured
            page = pages[i % len(pages)]
            if call is not None:
                call(page)
            else:
                started = time.perf_counter()
                store.page_windows(page, LAST)
                timings.append(time.perf_counter() - started)
        figures[name] = percentiles_ms(timings[requests // 10 :])
    return figures


def redis_benchmark(redis_server: RedisServer, page: str, requests: int) -> dict[str, float] | None:
    """redis-benchmark's HMGET of the 60 labels from one connection: p50, p99 and max from its CSV."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    labels, _ = page_window_labels(page, LAST, None)
    password = redis_server.passwords()["reader"]
    cmd = [binary, "-h", "127.0.0.1", "-p", str(redis_server.port), "--user", "reader", "-a", password,
           "-c", "1", "-n", str(requests), "--csv", "HMGET", redis_layout.count_key(page), *labels]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith('"')]
    if result.returncode != 0 or len(lines) < 2:
        detail = (result.stdout + result.stderr).replace(password, "***")[-1000:]
        raise RuntimeError(f"redis-benchmark failed ({result.returncode}): {detail}")
    header = [h.strip('"') for h in lines[0].split(",")]
    row = dict(zip(header, (v.strip('"') for v in lines[-1].split(",")), strict=True))
    return {"p50_ms": float(row["p50_latency_ms"]), "p99_ms": float(row["p99_latency_ms"]),
            "max_ms": float(row["max_latency_ms"]), "requests": requests, "rps": float(row["rps"])}  # fmt: skip


def sequential_http(port: int, token: str, pages: list[str], requests: int, gap_s: float = 0.0) -> dict[str, Any]:
    """One client, one keep-alive connection, one request at a time, ``gap_s`` apart: the api-server's own time
    per request, without queueing; with a gap, as it is when the worker has been idle since the last one."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    timings, codes = [], {}
    try:
        for i in range(requests // 10 + requests):
            seconds, status = timed_get(conn, token, pages[i % len(pages)])
            if i >= requests // 10:
                timings.append(seconds)
                codes[status] = codes.get(status, 0) + 1
            if gap_s:
                time.sleep(gap_s)
    finally:
        conn.close()
    return {**percentiles_ms(timings), "status_codes": codes}


def run(
    rates: tuple[int, ...] = RATES,
    duration_s: float = DURATION_S,
    floor_requests: int = 20_000,
    sequential_requests: int = 2_000,
    api_workers: int | None = SERVING_WORKERS,
    airflow_db: str = "sqlite",
) -> dict[str, Any]:
    vegeta.require()
    root = Path(tempfile.mkdtemp(prefix="clickstream-bench-serving-"))
    if airflow_db == "postgres":
        root.chmod(0o755)  # as root, PostgreSQL runs as its own user, which must reach its cluster's folder
    try:
        return measure(root, rates, duration_s, floor_requests, sequential_requests, api_workers, airflow_db)
    finally:
        shutil.rmtree(root, ignore_errors=True)  # the stack's state: its passwords, the token


def measure(
    root: Path,
    rates: tuple[int, ...],
    duration_s: float,
    floor_requests: int,
    sequential_requests: int,
    api_workers: int | None,
    airflow_db: str,
) -> dict[str, Any]:
    ports = {name: free_port() for name in PORT_VARIABLES}
    state = root / "state"
    env = stack_env(state, ports, api_workers, airflow_db)
    print(f"[bench] serving: starting a local stack on free ports (Airflow api-server on {ports['airflow']})",
          flush=True)  # fmt: skip
    started = time.monotonic()
    try:
        devstack("up", env)
        print(f"[bench] serving: the stack is up after {time.monotonic() - started:.0f}s", flush=True)
        return measure_stack(
            root, state, ports, rates, duration_s, floor_requests, sequential_requests, api_workers or 1
        )
    finally:
        try:
            devstack("down", env)
        except Exception as error:  # the results (or the first error) matter more; say it and go on
            print(f"[bench] serving: stopping the stack failed: {error}", flush=True)


def measure_stack(
    root: Path,
    state: Path,
    ports: dict[str, int],
    rates: tuple[int, ...],
    duration_s: float,
    floor_requests: int,
    sequential_requests: int,
    workers: int,
) -> dict[str, Any]:
    redis_server = RedisServer(state / "redis", ports["redis"])
    pages = fill_redis(redis_server.client("admin"), int(time.time() * 1000))
    print(f"[bench] serving: Redis holds {HISTORY_MIN} minutes of counts for {len(pages)} pages", flush=True)
    # The API's own client: the reader's URL, with the serving app's timeouts.
    import redis

    reader = redis.Redis.from_url(redis_server.url("reader"), socket_timeout=2.0, socket_connect_timeout=2.0)
    print(f"[bench] serving: the Redis floor, {floor_requests:,} sequential reads each", flush=True)
    floor = redis_floor(reader, pages, floor_requests)
    floor["redis_benchmark"] = redis_benchmark(redis_server, pages[0], floor_requests)
    reader.close()

    api = AirflowApi(ports["airflow"], "admin", airflow_home=state / "airflow")
    token = api.token()
    print(f"[bench] serving: {sequential_requests:,} sequential requests through the api-server", flush=True)
    sequential = sequential_http(ports["airflow"], token, pages, sequential_requests)
    targets = write_targets(root / "targets.txt", ports["airflow"], token, pages)
    print("[bench] serving: vegeta warm-up, 5 s at 50 requests/s", flush=True)
    vegeta.attack(targets, 50, 5, root / "warmup.bin")
    loads = []

    def attack(rate: int, beside: str) -> None:
        drained_s = wait_until_drained(ports["airflow"], token, pages, sequential["p50_ms"])
        print(f"[bench] serving: vegeta at {rate:,} requests/s for {duration_s:.0f}s, {BESIDE[beside]} "
              f"(the api-server idle after {drained_s:.1f}s)", flush=True)  # fmt: skip
        loads.append({**vegeta.attack(targets, rate, duration_s, root / f"{beside}-{rate}.bin"), "beside": beside})

    for rate in rates:
        attack(rate, "stack")
    # Then as a serving deployment runs: the api-server on cores it does not share with a scheduler, a
    # triggerer, a DAG processor, Kafka and the monitoring parts.
    stopped = stop_all_but(state, keep=("redis", "postgres", "airflow-api-server"))
    # A fresh api-server too: its workers come out of the 1,000 requests/s overload with a grown heap, a full
    # Redis pool and garbage to collect (gen-2 collections of up to half a second were seen during it), which
    # the 200 requests/s load alone would otherwise measure as well.
    supervisor.restart("airflow-api-server", socket=state / supervisor.SOCKET.name)
    wait_until_answering(ports["airflow"], token, pages[0])
    print(f"[bench] serving: stopped {', '.join(stopped)} and restarted the api-server: the api-server and "
          "Redis alone", flush=True)  # fmt: skip
    vegeta.attack(targets, 50, 5, root / "warmup-alone.bin")
    paced = {"alone": paced_pair(ports["airflow"], token, pages, sequential_requests // 2)}
    for rate in rates:
        attack(rate, "alone")
    # The reference, in the api-server's place: the same read in a bare app with as many workers, alone too.
    supervisor.stop_together(["airflow-api-server"], socket=state / supervisor.SOCKET.name)
    reference_port = free_port()
    with reference_server(reference_port, redis_server.url("reader"), workers):
        wait_until_answering(reference_port, token, pages[0])
        print(f"[bench] serving: stopped the api-server, the reference answers on {reference_port} "
              f"({workers} workers)", flush=True)  # fmt: skip
        reference_targets = write_targets(root / "reference-targets.txt", reference_port, token, pages)
        vegeta.attack(reference_targets, 50, 5, root / "warmup-reference.bin")
        paced["reference"] = paced_pair(reference_port, token, pages, sequential_requests // 2)
        for rate in rates:
            drained_s = wait_until_drained(reference_port, token, pages, paced["reference"]["back to back"]["p50_ms"])
            print(f"[bench] serving: vegeta at {rate:,} requests/s for {duration_s:.0f}s, {BESIDE['reference']} "
                  f"(idle after {drained_s:.1f}s)", flush=True)  # fmt: skip
            figures = vegeta.attack(reference_targets, rate, duration_s, root / f"reference-{rate}.bin")
            loads.append({**figures, "beside": "reference"})
    return report(floor, sequential, loads, len(pages), paced)


def paced_pair(port: int, token: str, pages: list[str], requests: int) -> dict[str, dict[str, Any]]:
    """One client, back to back, then with 200 requests/s' spacing between its requests, so that the worker
    sleeps in between as under vegeta's 200/s, without any queueing: their ratio is the cost of waking."""
    print(f"[bench] serving: {requests:,} sequential requests on {port}, back to back, then "
          f"{PACED_GAP_S * 1000:g} ms apart", flush=True)  # fmt: skip
    return {
        "back to back": sequential_http(port, token, pages, requests),
        f"{PACED_GAP_S * 1000:g} ms apart": sequential_http(port, token, pages, requests, gap_s=PACED_GAP_S),
    }


def stop_all_but(state: Path, keep: tuple[str, ...]) -> list[str]:
    """Stop every program of the stack in ``state`` but ``keep`` (its supervisord keeps running); their names."""
    socket = state / supervisor.SOCKET.name
    names = [name for name in supervisor.program_names(socket) if name not in keep]
    still_running = supervisor.stop_together(names, socket=socket)
    if still_running:
        raise SystemExit(f"could not stop {', '.join(still_running)} for the api-server-alone loads")
    return names


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=list(RATES), help="requests/s, one vegeta run each")
    parser.add_argument("--duration-s", type=float, default=DURATION_S, help="of each vegeta run")
    parser.add_argument("--floor-requests", type=int, default=20_000, help="sequential Redis reads per floor row")
    parser.add_argument("--sequential-requests", type=int, default=2_000, help="sequential HTTP requests")
    parser.add_argument("--api-workers", type=int, default=SERVING_WORKERS, help="the api-server's worker processes")
    parser.add_argument(
        "--airflow-db",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the api-server's metadata DB, which Airflow's token check reads on every request",
    )
    args = parser.parse_args()
    exit_if_missed(
        run(
            tuple(args.rates),
            args.duration_s,
            args.floor_requests,
            args.sequential_requests,
            args.api_workers,
            args.airflow_db,
        )
    )
