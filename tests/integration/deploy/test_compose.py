"""docker-compose.yml, checked without a Docker engine: Docker Compose itself (built from its Go module by
`make setup`) must accept it, and what it mounts, exposes and scrapes must match the repository."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from string import Template

import pytest

from devstack.paths import DEPS
from devstack.topology import CLUSTER_NODES, SPARK_WORKERS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
COMPOSE = DEPS / "bin/docker-compose"
TARGETS = REPO / "include/monitoring/compose/prometheus-targets"
ENV_EXAMPLE = REPO / ".env.example"
# The local stack's cluster topology, one service per node: kafka-<node id>, spark-worker-<i>.
KAFKA_NODES = [f"kafka-{i}" for i in range(1, CLUSTER_NODES + 1)]
SPARK_WORKER_SERVICES = [f"spark-worker-{i}" for i in range(1, SPARK_WORKERS + 1)]


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
        *KAFKA_NODES, "kafka-init", "redis", "postgres", "airflow-init", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer", "spark-master", *SPARK_WORKER_SERVICES, "prometheus",
        "statsd-exporter", "alertmanager", "grafana", "redis-exporter", "mailpit",
    } <= services  # fmt: skip
    # As many nodes and workers as the local cluster, none more.
    assert {s for s in services if re.fullmatch(r"kafka(-\d+)?", s)} == set(KAFKA_NODES)
    assert {s for s in services if s.startswith("spark-worker")} == set(SPARK_WORKER_SERVICES)


def test_every_long_running_service_has_a_health_check_and_waits_on_conditions(project):
    one_shot = {"airflow-init", "jmx-agent", "alertmanager-config", "kafka-init"}
    for name, service in project["services"].items():
        if name not in one_shot and name != "redis-exporter":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, how in (service.get("depends_on") or {}).items():
            assert how["condition"] in {"service_healthy", "service_completed_successfully"}, (name, dependency)
    scheduler = project["services"]["airflow-scheduler"]["depends_on"]
    assert scheduler["airflow-init"]["condition"] == "service_completed_successfully"
    assert scheduler["kafka-init"]["condition"] == "service_completed_successfully"
    # Airflow and kafka-init wait for every node; the scheduler (the Spark driver's host) for both workers too.
    for node in KAFKA_NODES:
        assert scheduler[node]["condition"] == "service_healthy"
        assert project["services"]["kafka-init"]["depends_on"][node]["condition"] == "service_healthy"
    for worker in ("spark-master", *SPARK_WORKER_SERVICES):
        assert scheduler[worker]["condition"] == "service_healthy"
    # The nodes wait for none of each other: each needs two voters up to become healthy.
    for node in KAFKA_NODES:
        assert not set(project["services"][node]["depends_on"]) & set(KAFKA_NODES)


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
    """The service's ports on the host."""
    return {int(p["published"]) for p in project["services"][service].get("ports", []) if p.get("published")}


def container_ports(project: dict, service: str) -> set[int]:
    """The ports the service's container offers the compose network (published or only exposed)."""
    service_config = project["services"][service]
    return {int(p["target"]) for p in service_config.get("ports", [])} | {
        int(p) for p in service_config.get("expose", [])
    }


def test_ports_are_the_seeds_and_the_readmes(project):
    expected = {
        "kafka-1": 9092, "prometheus": 9090, "grafana": 3000, "alertmanager": 9093, "redis-exporter": 9121,
        "statsd-exporter": 9102, "airflow-apiserver": 8080, "redis": 6379, "mailpit": 8025,
        # Each node's metrics at the local cluster's ports: 9308 plus one per node.
        **{node: 9308 + i for i, node in enumerate(KAFKA_NODES)},
    }  # fmt: skip
    readme = (REPO / "README.md").read_text()
    docker_section = readme.split("## Docker", 1)[1].split("\n## ", 1)[0]
    # The services table: a row names one or more services in its first cell.
    rows = {
        name: line
        for line in docker_section.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([\w-]+)`", line.split("|")[1])
    }
    for service in project["services"]:
        if "healthcheck" in project["services"][service]:  # every long-running service
            assert service in rows, f"README's Docker table lacks {service}"
    for service, port in expected.items():
        assert port in published(project, service), f"{service} does not publish {port}"
        assert str(port) in rows[service], f"README's row for {service} does not give {port}"


def test_prometheus_targets_name_compose_services_and_their_ports(project):
    for target_file in sorted(TARGETS.glob("*.json")):
        for group in json.loads(target_file.read_text()):
            for target in group["targets"]:
                host, port = target.split(":")
                assert host in project["services"], f"{target_file.name}: {host} is not a compose service"
                assert int(port) in container_ports(project, host), f"{target_file.name}: {host} does not offer {port}"
    # Every Kafka node's JMX agent, as the local cluster's Prometheus scrapes each node's.
    (kafka,) = json.loads((TARGETS / "kafka.json").read_text())
    assert kafka["targets"] == [f"{node}:9308" for node in KAFKA_NODES]
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
# call: its arguments, KAFKA_OPTS, KAFKA_HEAP_OPTS and the files it names (content and mode), one JSON line each.
# kafka-broker-api-versions prints what API_VERSIONS says (the health check's input).
TOOL_STANDIN = """
import json, os, stat, sys

tool, args = sys.argv[1], sys.argv[2:]
files = {a: [open(a).read(), stat.S_IMODE(os.stat(a).st_mode)] for a in args if os.path.isfile(a)}
with open(os.environ["TOOL_LOG"], "a") as log:
    log.write(json.dumps({"tool": tool, "args": args, "files": files, "KAFKA_OPTS": os.environ.get("KAFKA_OPTS"),
                          "KAFKA_HEAP_OPTS": os.environ.get("KAFKA_HEAP_OPTS")}))
    log.write("\\n")
if args == ["random-uuid"]:
    print("MkU3OEVBNTcwNTJENDM2Qk")
if tool == "kafka-broker-api-versions.sh":
    print(os.environ.get("API_VERSIONS", ""), end="")
"""
KAFKA_TOOLS = "/opt/kafka/bin/"
STANDIN_TOOLS = ("kafka-storage.sh", "kafka-server-start.sh", "kafka-configs.sh", "kafka-acls.sh",
                 "kafka-broker-api-versions.sh")  # fmt: skip


def kafka_tools(tmp_path: Path) -> Path:
    tools = tmp_path / "kafka-bin"
    tools.mkdir(parents=True)
    (tools / "standin.py").write_text(TOOL_STANDIN)
    for name in STANDIN_TOOLS:
        (tools / name).write_text(f'#!/bin/sh\nexec {sys.executable} {tools / "standin.py"} {name} "$@"\n')
        (tools / name).chmod(0o755)
    return tools


def run_with_kafka_tools(
    script: str, env: dict[str, str], tmp_path: Path, ok: bool = True
) -> tuple[list[dict], subprocess.CompletedProcess]:
    tools = kafka_tools(tmp_path)
    log = tmp_path / "tools.jsonl"
    assert KAFKA_TOOLS in script
    result = subprocess.run(
        ["sh", "-ec", script.replace(KAFKA_TOOLS, f"{tools}/")],
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path / "tmp"), "TOOL_LOG": str(log), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode == 0) == ok, result.stderr
    return ([json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []), result


def kafka_script(project: dict, service: str) -> str:
    """The script compose hands to the service's sh (``$$`` unescaped)."""
    assert project["services"][service]["entrypoint"] == ["/bin/sh", "-ec"]
    (script,) = project["services"][service]["command"]
    return script.replace("$$", "$")


def mount_target(project: dict, service: str, source: str) -> str:
    (volume,) = (v for v in project["services"][service]["volumes"] if v.get("source") == str(REPO / source))
    assert volume.get("read_only"), f"{service} mounts {source} writable"
    return volume["target"]


def local_cluster(workdir: Path, env: dict[str, str]):
    """devstack's cluster (KafkaCluster.build, as `make up` builds it) with each node on the ports compose gives
    every node in its own container, and the passwords compose was given."""
    from devstack.kafka_broker import SUPER_USERS, USERS
    from devstack.kafka_cluster import KafkaCluster, NodePorts

    cluster = KafkaCluster.build(workdir, [NodePorts(port=9092, controller=9097, internal=9094)] * CLUSTER_NODES)
    workdir.mkdir()
    principals = {*SUPER_USERS, *USERS}
    (workdir / "passwords.json").write_text(
        json.dumps({user: env[f"KAFKA_{user.upper()}_PASSWORD"] for user in principals})
    )
    assert [node.node_id for node in cluster.nodes] == list(range(1, CLUSTER_NODES + 1))
    return cluster


def on_compose_network(config: str, node_id: int, controller_port: int) -> str:
    """A node's server.properties as devstack renders it, with the addresses compose's node has instead: every
    listener on 0.0.0.0, advertised (the controller's too) by the node's service name, voters by theirs."""
    host = f"kafka-{node_id}"
    lines = []
    for line in config.splitlines(keepends=True):
        if line.startswith("listeners="):
            line = line.replace("//127.0.0.1:", "//0.0.0.0:")
        elif line.startswith("advertised.listeners="):
            line = line.rstrip("\n").replace("//127.0.0.1:", f"//{host}:") + f",CONTROLLER://{host}:{controller_port}\n"
        elif line.startswith("controller.quorum.voters="):
            line = re.sub(r"\b(\d+)@127\.0\.0\.1:", r"\1@kafka-\1:", line)
        lines.append(line)
    return "".join(lines)


def plain_login(password: str) -> str:
    return (
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security"
        f'.plain.PlainLoginModule required username="broker" password="{password}";\n'
    )


def test_the_kafka_entrypoint_fills_in_every_placeholder_of_the_broker_template(project):
    placeholders = set(Template((REPO / "include/kafka/server.properties").read_text()).get_identifiers())
    for node in KAFKA_NODES:
        filled = set(re.findall(r"s(.)\[\$\]\{(\w+)\}\1", kafka_script(project, node)))
        assert placeholders and {name for _, name in filled} == placeholders, node


def test_the_kafka_nodes_are_one_cluster(project):
    """One script for every node (the x-kafka-node template), whose environments differ only in the node id;
    one cluster id from .env for all; the static voter set of every node; a data volume per node."""
    services = [project["services"][node] for node in KAFKA_NODES]
    assert all(service["command"] == services[0]["command"] for service in services)
    assert all(service["healthcheck"] == services[0]["healthcheck"] for service in services)
    envs = [service["environment"] for service in services]
    assert [env["KAFKA_NODE_ID"] for env in envs] == [str(i) for i in range(1, CLUSTER_NODES + 1)]
    shared = [{key: value for key, value in env.items() if key != "KAFKA_NODE_ID"} for env in envs]
    assert all(env == shared[0] for env in shared)

    # The cluster id: required from .env, and .env.example's is one kafka-storage accepts.
    cluster_id = env_example()["KAFKA_CLUSTER_ID"]
    assert shared[0]["KAFKA_CLUSTER_ID"] == cluster_id
    assert "${KAFKA_CLUSTER_ID:?" in (REPO / "docker-compose.yml").read_text()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id) and not cluster_id.startswith("-")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16

    (voters,) = re.findall(r"^voters=(\S+)$", kafka_script(project, KAFKA_NODES[0]), re.M)
    assert voters == ",".join(f"{i}@{node}:9097" for i, node in enumerate(KAFKA_NODES, start=1))
    data = [next(v for v in s["volumes"] if v["target"] == "/var/lib/kafka/data") for s in services]
    assert [v["type"] for v in data] == ["volume"] * CLUSTER_NODES
    assert [v["source"] for v in data] == [f"{node}-data" for node in KAFKA_NODES]
    assert {v["source"] for v in data} <= set(project["volumes"])
    # No host or connection still names the single broker (apache/kafka:<version> is the image).
    assert not re.search(r"(?<![\w/-])kafka:\d", (REPO / "docker-compose.yml").read_text())


def test_a_kafka_node_refuses_an_id_outside_the_voters_or_a_bad_cluster_id(project, tmp_path):
    env = {k: v for k, v in project["services"][KAFKA_NODES[0]]["environment"].items() if k.startswith("KAFKA_")}
    script = kafka_script(project, KAFKA_NODES[0]).replace("/opt/kafka/config/clickstream", str(tmp_path / "conf"))
    bad = [
        ("KAFKA_NODE_ID", str(CLUSTER_NODES + 1)), ("KAFKA_NODE_ID", "0"), ("KAFKA_NODE_ID", ""),
        ("KAFKA_CLUSTER_ID", ""), ("KAFKA_CLUSTER_ID", "-" + env["KAFKA_CLUSTER_ID"][1:]),
        ("KAFKA_CLUSTER_ID", env["KAFKA_CLUSTER_ID"][:-1]), ("KAFKA_CLUSTER_ID", env["KAFKA_CLUSTER_ID"][:-1] + "/"),
    ]  # fmt: skip
    for i, (name, value) in enumerate(bad):
        calls, result = run_with_kafka_tools(script, {**env, name: value}, tmp_path / str(i), ok=False)
        assert name in result.stderr and not calls, (name, value, result.stderr)


@pytest.mark.parametrize("node_id", range(1, CLUSTER_NODES + 1))
def test_compose_renders_each_kafka_node_as_the_local_cluster_does(project, tmp_path, node_id):
    """Each node's start script, run here by sh on the same template, writes the file devstack renders for the
    same node of its cluster (node id, voters, replication factor 3, min.insync.replicas 2), but for the addresses
    other containers reach (0.0.0.0, advertised as kafka-<id>); then formats the storage once with the cluster's
    id and starts the node with the JMX agent and devstack's heap, no password on a command line."""
    node = f"kafka-{node_id}"
    service = project["services"][node]
    env = {key: value for key, value in service["environment"].items() if key.startswith("KAFKA_")}
    # The listeners' passwords, the cluster id and the node id: nothing else named KAFKA_* (the image's start
    # script, which would merge such variables, is bypassed anyway).
    assert set(env) == {"KAFKA_BROKER_PASSWORD", "KAFKA_CONTROLLER_PASSWORD", "KAFKA_CLUSTER_ID", "KAFKA_NODE_ID"}
    local = local_cluster(tmp_path / "local", env_example()).nodes[node_id - 1]
    template = mount_target(project, node, "include/kafka/server.properties")
    (data_volume,) = (v for v in service["volumes"] if v["source"] == f"{node}-data")
    conf = "/opt/kafka/config/clickstream"
    script = kafka_script(project, node)
    for path in (template, data_volume["target"], conf):
        assert path in script
    script = script.replace(template, str(REPO / "include/kafka/server.properties"))
    script = script.replace(data_volume["target"], str(local.data_dir)).replace(conf, str(tmp_path / "conf"))
    calls, _ = run_with_kafka_tools(script, env, tmp_path)

    rendered = tmp_path / "conf/server.properties"
    expected = on_compose_network(local.render_config(), node_id, local.controller_port)
    assert rendered.read_text() == expected
    lines = expected.splitlines()
    voters = ",".join(f"{i}@kafka-{i}:9097" for i in range(1, CLUSTER_NODES + 1))
    for line in (
        f"node.id={node_id}", f"controller.quorum.voters={voters}",
        "default.replication.factor=3", "min.insync.replicas=2", "offsets.topic.replication.factor=3",
        "listeners=CLIENT://0.0.0.0:9092,INTERNAL://0.0.0.0:9094,CONTROLLER://0.0.0.0:9097",
        f"advertised.listeners=CLIENT://{node}:9092,INTERNAL://{node}:9094,CONTROLLER://{node}:9097",
    ):  # fmt: skip
        assert line in lines, line
    assert "${" not in rendered.read_text()
    assert stat.S_IMODE(rendered.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path / "conf")) == ["internal-client.properties", "server.properties"]

    # The health check logs in as the broker on INTERNAL, from the file the script wrote.
    client = tmp_path / "conf/internal-client.properties"
    assert client.read_text() == plain_login(env["KAFKA_BROKER_PASSWORD"])
    assert stat.S_IMODE(client.stat().st_mode) == 0o600
    health = " ".join(service["healthcheck"]["test"])
    assert f"--bootstrap-server localhost:9094 --command-config {conf}/internal-client.properties" in health

    # Formatted with the one cluster id of .env (no random one), as every node is.
    format_, start = calls
    assert format_["tool"] == "kafka-storage.sh" and format_["KAFKA_OPTS"] is None
    cluster_id = env_example()["KAFKA_CLUSTER_ID"]
    assert format_["args"] == ["format", "--ignore-formatted", "-t", cluster_id, "-c", str(rendered)]
    assert (start["tool"], start["args"]) == ("kafka-server-start.sh", [str(rendered)])
    assert start["KAFKA_HEAP_OPTS"] == f"-Xms{local.heap} -Xmx{local.heap}"
    agent, metrics_port, exporter_config = re.fullmatch(r"-javaagent:(\S+)=(\d+):(\S+)", start["KAFKA_OPTS"]).groups()
    assert int(metrics_port) in container_ports(project, node)
    assert f"{node}:{metrics_port}" in json.loads((TARGETS / "kafka.json").read_text())[0]["targets"]
    assert exporter_config == mount_target(project, node, "include/monitoring/kafka/jmx-exporter.yml")
    assert any(agent.startswith(v["target"] + "/") for v in service["volumes"] if v["source"] == "jmx-agent")
    passwords = [value for key, value in env.items() if key.endswith("_PASSWORD")]
    assert passwords and not [call for call in calls for p in passwords if p in " ".join(call["args"])]

    # Formatted once: a data directory that has its meta.properties is left alone.
    (tmp_path / "tools.jsonl").unlink()
    local.data_dir.mkdir(parents=True)
    (local.data_dir / "meta.properties").write_text("")
    calls, _ = run_with_kafka_tools(script, env, tmp_path / "again")
    assert [call["tool"] for call in calls] == ["kafka-server-start.sh"]


def test_a_kafka_node_is_healthy_once_the_metadata_it_serves_lists_it(project, tmp_path):
    """The health check, run here by sh on what kafka-broker-api-versions prints: healthy when the node's own
    entry has its API versions, whatever the other nodes' state (each node checks itself)."""

    def entry(node_id: int, ok: bool) -> str:
        versions = "(\n\tProduce(0): 3 to 12 [usable: 12],\n\tFetch(1): 4 to 17 [usable: 17]\n)" if ok else "ERROR: x"
        return f"kafka-{node_id}:9094 (id: {node_id} rack: null isFenced: false) -> {versions}\n"

    tools = kafka_tools(tmp_path)
    for node_id, node in enumerate(KAFKA_NODES, start=1):
        service = project["services"][node]
        kind, command = service["healthcheck"]["test"]
        assert kind == "CMD-SHELL" and KAFKA_TOOLS in command
        command = command.replace("$$", "$").replace(KAFKA_TOOLS, f"{tools}/")
        others = [i for i in range(1, CLUSTER_NODES + 1) if i != node_id]
        cases = {
            "".join(entry(i, True) for i in range(1, CLUSTER_NODES + 1)): True,
            entry(node_id, True) + "".join(entry(i, False) for i in others): True,  # the others are down
            "".join(entry(i, i != node_id) for i in range(1, CLUSTER_NODES + 1)): False,  # it did not answer
            "".join(entry(i, True) for i in others): False,  # not (yet) registered
            entry(node_id * 10 + 1, True): False,  # another id that starts with its own
            "": False,
        }
        for output, healthy in cases.items():
            env = {"PATH": "/usr/bin:/bin", "TOOL_LOG": str(tmp_path / "health.jsonl"), "API_VERSIONS": output,
                   "KAFKA_NODE_ID": service["environment"]["KAFKA_NODE_ID"]}  # fmt: skip
            result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, check=False)
            assert (result.returncode == 0) == healthy, (node, output, result.stderr)


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
    calls, _ = run_with_kafka_tools(script.replace(template, str(REPO / "include/kafka/acls.template")), env, tmp_path)
    assert not os.listdir(tmp_path / "tmp"), "kafka-init left its private files behind"

    scram, acls = {}, set()
    bootstrap = ",".join(f"{node}:9094" for node in KAFKA_NODES)  # INTERNAL of every node
    for call in calls:
        args = call["args"]
        assert args[:3] == ["--bootstrap-server", bootstrap, "--command-config"]
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
    """Each Kafka connection logs in as its principal with SCRAM-SHA-512, as devstack's cluster connections do,
    bootstrapping from every node."""
    cluster = local_cluster(tmp_path / "local", env_example())
    assert len(cluster.bootstrap_servers.split(",")) == CLUSTER_NODES
    airflow = project["services"]["airflow-scheduler"]["environment"]
    assert {name for name in airflow if name.startswith("AIRFLOW_CONN_KAFKA_")} == set(cluster.airflow_connections())
    for name, connection in cluster.airflow_connections().items():
        expected = json.loads(connection)
        expected["extra"]["bootstrap.servers"] = ",".join(f"{node}:9092" for node in KAFKA_NODES)
        assert json.loads(airflow[name]) == expected, name
    users = {name: json.loads(airflow[name])["extra"]["sasl.username"] for name in cluster.airflow_connections()}
    assert users == {
        "AIRFLOW_CONN_KAFKA_DEFAULT": "producer", "AIRFLOW_CONN_KAFKA_ADMIN": "admin",
        "AIRFLOW_CONN_KAFKA_STREAMING": "streaming", "AIRFLOW_CONN_KAFKA_RECONCILER": "reconciler",
    }  # fmt: skip


SPARK_AUTH_SCRIPT = "/opt/airflow/include/spark/spark-auth-conf.sh"


def test_every_spark_client_and_daemon_gets_the_clusters_secret_from_env_into_a_private_file(project, tmp_path):
    """spark.authenticate in compose as on the local stack: the secret from .env, written by the committed
    script into spark-defaults.conf (0600) before the service starts, never on a command line."""
    from devstack.spark_cluster import SparkAuth

    for service in ("airflow-scheduler", "airflow-triggerer", "spark-master", *SPARK_WORKER_SERVICES):
        config = project["services"][service]
        assert config["environment"]["SPARK_CONF_DIR"] == "/home/airflow/spark-conf", service
        assert config["environment"]["SPARK_AUTH_SECRET"] == "change-me-spark", service  # from .env.example
        assert f"sh {SPARK_AUTH_SCRIPT} && exec " in " ".join(config["entrypoint"]), service
    # The script, run for real: the same file devstack writes for the same secret, readable by its owner only.
    script = REPO / SPARK_AUTH_SCRIPT.removeprefix("/opt/airflow/")
    env = {"PATH": os.environ["PATH"], "SPARK_CONF_DIR": str(tmp_path / "conf"), "SPARK_AUTH_SECRET": "s3cret-x"}
    subprocess.run(["sh", str(script)], env=env, check=True)
    written = tmp_path / "conf" / "spark-defaults.conf"
    auth = SparkAuth(tmp_path / "local")
    auth.secret = lambda: "s3cret-x"  # type: ignore[method-assign]
    assert written.read_text() == auth.properties()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    refused = subprocess.run(["sh", str(script)], env={**env, "SPARK_AUTH_SECRET": "two words"}, capture_output=True)
    assert refused.returncode != 0 and b"set SPARK_AUTH_SECRET in .env" in refused.stderr


def spark_command(project: dict, service: str, main_class: str) -> tuple[dict[str, str], list[str]]:
    """The options and positional arguments the service gives ``spark-class main_class``."""
    shell, flag, script = project["services"][service]["entrypoint"]
    assert (shell, flag) == ("/bin/bash", "-c")
    words = shlex.split(script)
    assert words[:6] == ["sh", SPARK_AUTH_SCRIPT, "&&", "exec", "spark-class", main_class], script
    options, positional, rest = {}, [], words[6:]
    while rest:
        word = rest.pop(0)
        if word.startswith("--"):
            options[word] = rest.pop(0)
        else:
            positional.append(word)
    return options, positional


def test_spark_is_a_master_and_one_core_workers_as_the_local_cluster(project, tmp_path):
    """A standalone master (FILESYSTEM recovery in a volume, as devstack's) and SPARK_WORKERS workers of one core
    each, registered to the master's URL; spark_default submits to that URL in client mode."""
    from devstack.spark_cluster import SparkAuth, SparkMaster, SparkWorker

    master_options, positional = spark_command(project, "spark-master", "org.apache.spark.deploy.master.Master")
    assert not positional and master_options["--host"] == "spark-master"
    master_url = f"spark://{master_options['--host']}:{master_options['--port']}"
    assert int(master_options["--webui-port"]) in published(project, "spark-master")

    local_master = SparkMaster(tmp_path / "master", 7077, 8081, SparkAuth(tmp_path / "conf"))
    local_worker = SparkWorker(tmp_path / "worker", 7078, 8082, local_master)
    for worker in SPARK_WORKER_SERVICES:
        options, positional = spark_command(project, worker, "org.apache.spark.deploy.worker.Worker")
        assert positional == [master_url], worker
        assert options["--host"] == worker
        assert options["--cores"] == str(local_worker.cores) == "1"
        assert options["--memory"] == os.environ.get("CLICKSTREAM_SPARK_WORKER_MEMORY", local_worker.memory)
        service = project["services"][worker]
        assert service["depends_on"]["spark-master"]["condition"] == "service_healthy"
        assert "masterurl" in " ".join(service["healthcheck"]["test"])  # healthy once registered

    # FILESYSTEM recovery, as devstack's master, into a named volume the image makes airflow's.
    local_master.prepare()
    local = dict(line.split(" ", 1) for line in local_master.properties_file.read_text().splitlines())
    service = project["services"]["spark-master"]
    opts = dict(o.removeprefix("-D").split("=", 1) for o in service["environment"]["SPARK_MASTER_OPTS"].split())
    assert opts["spark.deploy.recoveryMode"] == local["spark.deploy.recoveryMode"] == "FILESYSTEM"
    (volume,) = (v for v in service["volumes"] if v["target"] == opts["spark.deploy.recoveryDirectory"])
    assert volume["type"] == "volume" and volume["source"] in project["volumes"]
    assert f"mkdir -p {volume['target']}" in (REPO / "Dockerfile").read_text()

    spark_default = json.loads(project["services"]["airflow-scheduler"]["environment"]["AIRFLOW_CONN_SPARK_DEFAULT"])
    assert f"{spark_default['host']}:{spark_default['port']}" == master_url
    assert spark_default["extra"]["deploy-mode"] == "client"
