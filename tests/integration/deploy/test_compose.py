"""docker-compose.yml, checked without a Docker engine: Docker Compose itself (built from its Go module by
`make setup`) must accept it, and what it mounts, exposes and scrapes must match the repository."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from string import Template

import pytest

from devstack.paths import DEPS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
COMPOSE = DEPS / "bin/docker-compose"
TARGETS = REPO / "include/monitoring/compose/prometheus-targets"
ENV_EXAMPLE = REPO / ".env.example"


@pytest.fixture(scope="module")
def project() -> dict:
    assert COMPOSE.is_file(), f"{COMPOSE} is missing: run `scripts/setup.sh --test-tools` (make test does)"
    result = subprocess.run(
        [str(COMPOSE), "--env-file", ".env.example", "-f", "docker-compose.yml", "config", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    print(f"docker compose config: exit 0, {len(json.loads(result.stdout)['services'])} services")
    return json.loads(result.stdout)


def test_the_services_the_issue_names_are_all_there(project):
    services = set(project["services"])
    assert {
        "kafka", "redis", "postgres", "airflow-init", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer", "spark-master", "spark-worker", "prometheus",
        "statsd-exporter", "alertmanager", "grafana", "redis-exporter", "mailpit",
    } <= services  # fmt: skip


def test_every_long_running_service_has_a_health_check_and_waits_on_conditions(project):
    one_shot = {"airflow-init", "jmx-agent", "alertmanager-config", "kafka-init"}
    for name, service in project["services"].items():
        if name not in one_shot and name != "redis-exporter":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, how in (service.get("depends_on") or {}).items():
            assert how["condition"] in {"service_healthy", "service_completed_successfully"}, (name, dependency)
    scheduler = project["services"]["airflow-scheduler"]["depends_on"]
    assert scheduler["airflow-init"]["condition"] == "service_completed_successfully"
    assert scheduler["kafka"]["condition"] == "service_healthy"
    assert scheduler["kafka-init"]["condition"] == "service_completed_successfully"
    assert project["services"]["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_every_mounted_file_is_the_repository_file_itself(project):
    mounted = []
    for name, service in project["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                source = Path(volume["source"])
                assert source.exists(), f"{name} mounts {source}, which does not exist"
                assert source.is_relative_to(REPO)
                mounted.append(source.relative_to(REPO).as_posix())
    for shared in (
        "include/monitoring/prometheus/prometheus.yml",
        "include/monitoring/prometheus/rules",
        "include/monitoring/statsd/mapping.yml",
        "include/monitoring/grafana/dashboards",
        "include/monitoring/grafana/provisioning",
        "include/monitoring/kafka/jmx-exporter.yml",
        "include/kafka/server.properties",
        "include/kafka/acls.template",
        "airflow_home/airflow.cfg",
        "dags",
        "include",
    ):
        assert shared in mounted, f"{shared} is not mounted"


def published(project: dict, service: str) -> set[int]:
    return {int(p["published"]) for p in project["services"][service].get("ports", []) if p.get("published")}


def test_ports_are_the_seeds_and_the_readmes(project):
    expected = {
        "kafka": 9092, "prometheus": 9090, "grafana": 3000, "alertmanager": 9093, "redis-exporter": 9121,
        "statsd-exporter": 9102, "airflow-apiserver": 8080, "redis": 6379, "mailpit": 8025,
    }  # fmt: skip
    readme = (REPO / "README.md").read_text()
    docker_section = readme.split("## Docker", 1)[1].split("\n## ", 1)[0]
    for service, port in expected.items():
        assert port in published(project, service), f"{service} does not publish {port}"
        assert f"| `{service}` |" in docker_section and f"{port}" in docker_section, f"README lacks {service}"


def test_prometheus_targets_name_compose_services_and_their_ports(project):
    for target_file in sorted(TARGETS.glob("*.json")):
        for group in json.loads(target_file.read_text()):
            for target in group["targets"]:
                host, port = target.split(":")
                assert host in project["services"], f"{target_file.name}: {host} is not a compose service"
                service = project["services"][host]
                exposed = published(project, host) | {int(p) for p in service.get("expose", [])}
                assert int(port) in exposed, f"{target_file.name}: {host} does not expose {port}"
    scraped = set(
        re.findall(r"targets/([\w-]+)\.json", (REPO / "include/monitoring/prometheus/prometheus.yml").read_text())
    )
    assert scraped == {p.stem for p in TARGETS.glob("*.json")}


def env_example() -> dict[str, str]:
    return dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and line[0] != "#")


def kafka_password_variables() -> set[str]:
    """One per principal devstack's broker knows (its listeners' own users and the SCRAM users)."""
    from devstack.kafka_broker import SUPER_USERS, USERS

    return {f"KAFKA_{user.upper()}_PASSWORD" for user in {*SUPER_USERS, *USERS}}


def test_no_secret_has_a_value_in_the_compose_file():
    text = (REPO / "docker-compose.yml").read_text()
    example = env_example()
    kafka = {name for name in example if re.fullmatch(r"KAFKA_\w+_PASSWORD", name)}
    assert kafka == kafka_password_variables()
    secrets = ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_VIEWER_PASSWORD",
               "GRAFANA_ADMIN_PASSWORD", *(f"REDIS_{user}_PASSWORD" for user in
                                           ("WRITER", "RECONCILER", "READER", "MONITOR", "ADMIN")),
               *sorted(kafka))  # fmt: skip
    for secret in secrets:
        assert f"${{{secret}:?" in text
    # Kafka's passwords only ever come from .env, and compose refuses to start without one.
    assert not re.search(r"\$\{KAFKA_\w+_PASSWORD(?!:\?)", text)
    for name in kafka:
        assert example[name] not in text, f"{name}'s example value is written in docker-compose.yml"
    sasl_passwords = re.findall(r'"sasl\.password": "([^"]*)"', text)
    assert len(sasl_passwords) == 4
    assert all(re.fullmatch(r"\$\{KAFKA_\w+_PASSWORD:\?[^}]*\}", value) for value in sasl_passwords), sasl_passwords
    assert not (REPO / ".env").exists() or ".env" in (REPO / ".gitignore").read_text().split()


def test_the_ui_users_passwords_come_from_env_into_a_private_file(project):
    init, api = project["services"]["airflow-init"], project["services"]["airflow-apiserver"]
    path = api["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert api["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin,viewer:viewer"
    script = " ".join(init["command"])
    assert script.startswith("umask 077 ") and f"> {path} " in script and script.endswith("airflow db migrate")
    assert init["environment"]["AIRFLOW_ADMIN_PASSWORD"] == "change-me"  # from .env.example
    # Only the init container sees the passwords; the long-running components read the file.
    assert not {"AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_VIEWER_PASSWORD"} & set(api["environment"])


def test_compose_renders_redis_acl_users_as_the_local_stack_does(project, tmp_path):
    """The redis service's start script, run here by sh on the same template, writes the ACL file devstack
    writes for the same passwords (paths moved into a temporary folder, the final exec left out)."""
    from devstack.redis_server import USERS, RedisServer

    service = project["services"]["redis"]
    script = service["command"][2].replace("$$", "$")  # what compose hands to sh
    script = script.replace("/etc/clickstream/users.acl.template", str(REPO / "include/redis/users.acl.template"))
    script = script.replace("/data", str(tmp_path / "data")).split("\nchown ")[0]
    (tmp_path / "data").mkdir()
    env = {key: service["environment"][key] for key in service["environment"] if key.startswith("REDIS_")}
    result = subprocess.run(["sh", "-ec", script], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {f"REDIS_{user.upper()}_PASSWORD" for user in USERS} == set(env)

    local = RedisServer(tmp_path / "local", 6379)
    local.workdir.mkdir()
    local.passwords_file.write_text(json.dumps({user: env[f"REDIS_{user.upper()}_PASSWORD"] for user in USERS}))
    local.prepare()
    assert (tmp_path / "data" / "users.acl").read_text() == local.acl_file.read_text()
    assert stat.S_IMODE((tmp_path / "data" / "users.acl").stat().st_mode) == 0o600
    # Each Airflow connection and the exporter use the user of that name.
    airflow = project["services"]["airflow-scheduler"]["environment"]
    for conn, user in (("DEFAULT", "writer"), ("RECONCILER", "reconciler"), ("READER", "reader"), ("ADMIN", "admin")):
        assert airflow[f"AIRFLOW_CONN_REDIS_{conn}"].startswith(
            f"redis://{user}:{env[f'REDIS_{user.upper()}_PASSWORD']}@"
        )
    assert project["services"]["redis-exporter"]["environment"]["REDIS_USER"] == "monitor"


# The Kafka services' scripts run here by sh, the image's Kafka tools replaced by a stand-in that records each
# call: its arguments, KAFKA_OPTS and the files it names (content and mode), one JSON line each.
TOOL_STANDIN = """
import json, os, stat, sys

tool, args = sys.argv[1], sys.argv[2:]
files = {a: [open(a).read(), stat.S_IMODE(os.stat(a).st_mode)] for a in args if os.path.isfile(a)}
with open(os.environ["TOOL_LOG"], "a") as log:
    log.write(json.dumps({"tool": tool, "args": args, "files": files, "KAFKA_OPTS": os.environ.get("KAFKA_OPTS")}))
    log.write("\\n")
if args == ["random-uuid"]:
    print("MkU3OEVBNTcwNTJENDM2Qk")
"""
KAFKA_TOOLS = "/opt/kafka/bin/"


def run_with_kafka_tools(script: str, env: dict[str, str], tmp_path: Path) -> list[dict]:
    tools = tmp_path / "kafka-bin"
    tools.mkdir(parents=True)
    (tools / "standin.py").write_text(TOOL_STANDIN)
    for name in ("kafka-storage.sh", "kafka-server-start.sh", "kafka-configs.sh", "kafka-acls.sh"):
        (tools / name).write_text(f'#!/bin/sh\nexec {sys.executable} {tools / "standin.py"} {name} "$@"\n')
        (tools / name).chmod(0o755)
    log = tmp_path / "tools.jsonl"
    assert KAFKA_TOOLS in script
    result = subprocess.run(
        ["sh", "-ec", script.replace(KAFKA_TOOLS, f"{tools}/")],
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path / "tmp"), "TOOL_LOG": str(log), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def kafka_script(project: dict, service: str) -> str:
    """The script compose hands to the service's sh (``$$`` unescaped)."""
    assert project["services"][service]["entrypoint"] == ["/bin/sh", "-ec"]
    (script,) = project["services"][service]["command"]
    return script.replace("$$", "$")


def mount_target(project: dict, service: str, source: str) -> str:
    (volume,) = (v for v in project["services"][service]["volumes"] if v.get("source") == str(REPO / source))
    assert volume.get("read_only"), f"{service} mounts {source} writable"
    return volume["target"]


def local_kafka(workdir: Path, env: dict[str, str]):
    """devstack's broker on the ports compose gives the broker, with the passwords compose was given."""
    from devstack.kafka_broker import SUPER_USERS, USERS, KafkaBroker

    broker = KafkaBroker(workdir, port=9092, controller_port=9097, internal_port=9094)
    workdir.mkdir()
    principals = {*SUPER_USERS, *USERS}
    broker.passwords_file.write_text(json.dumps({user: env[f"KAFKA_{user.upper()}_PASSWORD"] for user in principals}))
    return broker


def plain_login(password: str) -> str:
    return (
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security"
        f'.plain.PlainLoginModule required username="broker" password="{password}";\n'
    )


def test_the_kafka_entrypoint_fills_in_every_placeholder_of_the_broker_template(project):
    placeholders = set(Template((REPO / "include/kafka/server.properties").read_text()).get_identifiers())
    filled = set(re.findall(r"s(.)\[\$\]\{(\w+)\}\1", kafka_script(project, "kafka")))
    assert placeholders and {name for _, name in filled} == placeholders


def test_compose_renders_the_kafka_broker_config_as_the_local_stack_does(project, tmp_path):
    """The kafka service's start script, run here by sh on the same template, writes the file devstack renders
    for the same ports and passwords, but for the listeners that other containers reach (0.0.0.0, advertised
    as kafka); then formats the storage once and starts the broker with the JMX agent, no password on a
    command line."""
    service = project["services"]["kafka"]
    env = {key: value for key, value in service["environment"].items() if key.startswith("KAFKA_")}
    assert set(env) == {"KAFKA_BROKER_PASSWORD", "KAFKA_CONTROLLER_PASSWORD"}  # nothing for the image to merge
    local = local_kafka(tmp_path / "local", env_example())
    template = mount_target(project, "kafka", "include/kafka/server.properties")
    (data_volume,) = (v for v in service["volumes"] if v["source"] == "kafka-data")
    conf = "/opt/kafka/config/clickstream"
    script = kafka_script(project, "kafka")
    for path in (template, data_volume["target"], conf):
        assert path in script
    script = script.replace(template, str(REPO / "include/kafka/server.properties"))
    script = script.replace(data_volume["target"], str(local.data_dir)).replace(conf, str(tmp_path / "conf"))
    calls = run_with_kafka_tools(script, env, tmp_path)

    rendered = tmp_path / "conf/server.properties"
    expected = []
    for line in local.render_config().splitlines(keepends=True):
        if line.startswith("listeners="):
            line = line.replace("CLIENT://127.0.0.1:", "CLIENT://0.0.0.0:").replace(
                "INTERNAL://127.0.0.1:", "INTERNAL://0.0.0.0:"
            )
        elif line.startswith("advertised.listeners="):
            line = line.replace("//127.0.0.1:", "//kafka:")
        expected.append(line)
    assert rendered.read_text() == "".join(expected)
    assert "listeners=CLIENT://0.0.0.0:9092,INTERNAL://0.0.0.0:9094,CONTROLLER://127.0.0.1:9097\n" in expected
    assert "advertised.listeners=CLIENT://kafka:9092,INTERNAL://kafka:9094\n" in expected
    assert "${" not in rendered.read_text()
    assert stat.S_IMODE(rendered.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path / "conf")) == ["internal-client.properties", "server.properties"]

    # The health check logs in as the broker on INTERNAL, from the file the script wrote.
    client = tmp_path / "conf/internal-client.properties"
    assert client.read_text() == plain_login(env["KAFKA_BROKER_PASSWORD"])
    assert stat.S_IMODE(client.stat().st_mode) == 0o600
    health = " ".join(service["healthcheck"]["test"])
    assert f"--bootstrap-server localhost:9094 --command-config {conf}/internal-client.properties" in health

    uuid, format_, start = calls
    assert (uuid["tool"], uuid["args"]) == ("kafka-storage.sh", ["random-uuid"])
    assert format_["tool"] == "kafka-storage.sh" and format_["KAFKA_OPTS"] is None
    assert format_["args"] == ["format", "--ignore-formatted", "-t", "MkU3OEVBNTcwNTJENDM2Qk", "-c", str(rendered)]
    assert (start["tool"], start["args"]) == ("kafka-server-start.sh", [str(rendered)])
    agent, metrics_port, exporter_config = re.fullmatch(r"-javaagent:(\S+)=(\d+):(\S+)", start["KAFKA_OPTS"]).groups()
    assert int(metrics_port) in published(project, "kafka")
    assert exporter_config == mount_target(project, "kafka", "include/monitoring/kafka/jmx-exporter.yml")
    assert any(agent.startswith(v["target"] + "/") for v in service["volumes"] if v["source"] == "jmx-agent")
    assert not [call for call in calls for password in env.values() if password in " ".join(call["args"])]

    # Formatted once: a data directory that has its meta.properties is left alone.
    (tmp_path / "tools.jsonl").unlink()
    local.data_dir.mkdir()
    (local.data_dir / "meta.properties").write_text("")
    assert [call["tool"] for call in run_with_kafka_tools(script, env, tmp_path / "again")] == ["kafka-server-start.sh"]


def test_kafka_init_makes_the_local_stacks_scram_users_and_acls(project, tmp_path):
    """kafka-init, run here by sh, upserts every SCRAM user devstack makes with its .env password, and grants
    exactly the ACLs devstack grants from include/kafka/acls.template; logged in as the broker on INTERNAL,
    each password only in a private file."""
    from devstack.kafka_broker import USERS, acl_rules

    service = project["services"]["kafka-init"]
    env = {key: value for key, value in service["environment"].items() if key.startswith("KAFKA_")}
    template = mount_target(project, "kafka-init", "include/kafka/acls.template")
    script = kafka_script(project, "kafka-init")
    assert template in script
    (tmp_path / "tmp").mkdir()
    calls = run_with_kafka_tools(script.replace(template, str(REPO / "include/kafka/acls.template")), env, tmp_path)
    assert not os.listdir(tmp_path / "tmp"), "kafka-init left its private files behind"

    scram, acls = {}, set()
    for call in calls:
        args = call["args"]
        assert args[:3] == ["--bootstrap-server", "kafka:9094", "--command-config"]
        assert call["files"][args[3]] == [plain_login(env["KAFKA_BROKER_PASSWORD"]), 0o600]
        assert not [p for p in env.values() if p in " ".join(args)], f"a password on {call['tool']}'s command line"
        if call["tool"] == "kafka-configs.sh":
            user, config_file = args[8], args[-1]
            assert args[4:] == [
                "--alter",
                "--entity-type",
                "users",
                "--entity-name",
                user,
                "--add-config-file",
                config_file,
            ]
            content, mode = call["files"][config_file]
            assert mode == 0o600
            scram[user] = content
        else:
            assert call["tool"] == "kafka-acls.sh" and args[4] == "--add"
            rest = args[5:]
            if "--cluster" in rest:  # a flag: the cluster resource has one name
                rest.remove("--cluster")
                rest += ["--cluster", "kafka-cluster", "--resource-pattern-type", "literal"]
            options = dict(zip(rest[::2], rest[1::2], strict=False))
            (resource,) = {"topic", "group", "cluster"} & {option.lstrip("-") for option in options}
            pairs = zip(rest[::2], rest[1::2], strict=False)
            operations = [value for option, value in pairs if option == "--operation"]
            for operation in operations:
                acls.add((options["--allow-principal"], resource, options["--resource-pattern-type"],
                          options[f"--{resource}"], operation))  # fmt: skip
    assert scram == {
        user: f"SCRAM-SHA-512=iterations=8192,password={env[f'KAFKA_{user.upper()}_PASSWORD']}\n" for user in USERS
    }
    # kafka-acls reads operation names without their underscores (AlterConfigs, ALTERCONFIGS).
    assert acls == {
        (f"User:{rule.principal}", rule.resource, rule.pattern, rule.name, operation.replace("_", ""))
        for rule in acl_rules()
        for operation in rule.operations
    }


def test_airflow_kafka_connections_are_the_local_stacks_on_the_compose_network(project, tmp_path):
    """Each Kafka connection logs in as its principal with SCRAM-SHA-512, as devstack's connections do."""
    local = local_kafka(tmp_path / "local", env_example())
    airflow = project["services"]["airflow-scheduler"]["environment"]
    assert {name for name in airflow if name.startswith("AIRFLOW_CONN_KAFKA_")} == set(local.airflow_connections())
    for name, connection in local.airflow_connections().items():
        expected = json.loads(connection)
        expected["extra"]["bootstrap.servers"] = "kafka:9092"
        assert json.loads(airflow[name]) == expected, name
    users = {name: json.loads(airflow[name])["extra"]["sasl.username"] for name in local.airflow_connections()}
    assert users == {
        "AIRFLOW_CONN_KAFKA_DEFAULT": "producer", "AIRFLOW_CONN_KAFKA_ADMIN": "admin",
        "AIRFLOW_CONN_KAFKA_STREAMING": "streaming", "AIRFLOW_CONN_KAFKA_RECONCILER": "reconciler",
    }  # fmt: skip
