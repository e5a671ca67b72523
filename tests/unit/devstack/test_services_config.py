"""Pure logic of the local stack: configuration rendering and identifiers, no processes."""

from __future__ import annotations

import base64
import hashlib
import re
import stat

import pytest

from devstack.errors import StackError
from devstack.kafka_broker import KafkaBroker, acl_rules, kafka_cluster_id
from devstack.redis_server import RedisServer
from devstack.supervisor import quote, render
from devstack.topology import Topology


def test_cluster_id_is_16_bytes_of_url_safe_base64():
    cluster_id = kafka_cluster_id()
    assert len(cluster_id) == 22 and "=" not in cluster_id
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert kafka_cluster_id() != cluster_id
    # One in 64 would start with "-", which kafka-storage reads as an option: a format failing at random.
    assert not any(kafka_cluster_id().startswith("-") for _ in range(2000))


def test_server_properties_carry_the_ports_data_dir_and_security(tmp_path):
    broker = KafkaBroker(tmp_path, port=19092, controller_port=19097, internal_port=19094)
    # Render only: formatting storage is the integration tests' business.
    (broker.data_dir).mkdir(parents=True)
    (broker.data_dir / "meta.properties").write_text("formatted")
    broker.prepare()
    text = broker.config_file.read_text()
    props = dict(line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    assert props["listeners"] == ("CLIENT://127.0.0.1:19092,INTERNAL://127.0.0.1:19094,CONTROLLER://127.0.0.1:19097")
    assert props["advertised.listeners"] == "CLIENT://127.0.0.1:19092,INTERNAL://127.0.0.1:19094"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19097"
    assert props["log.dirs"] == str(broker.data_dir)
    assert props["auto.create.topics.enable"] == "false"
    # Every listener authenticates, clients with SCRAM only, and nothing is allowed that is not granted.
    assert set(props["listener.security.protocol.map"].split(",")) == {
        "CLIENT:SASL_PLAINTEXT", "INTERNAL:SASL_PLAINTEXT", "CONTROLLER:SASL_PLAINTEXT"
    }  # fmt: skip
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:broker;User:controller;User:ops"
    # The listeners' own passwords are in it, so only its owner may read it; and they are the generated ones.
    assert stat.S_IMODE(broker.config_file.stat().st_mode) == 0o600
    assert f'password="{broker.passwords()["broker"]}"' in text
    assert stat.S_IMODE(broker.passwords_file.stat().st_mode) == 0o600
    assert "$" not in text


def test_a_plaintext_listener_exists_only_when_asked_and_its_clients_are_super_users(tmp_path):
    secured = KafkaBroker(tmp_path / "a", 1, 2, 3).render_config()
    assert "BENCH" not in secured and "ANONYMOUS" not in secured
    bench = KafkaBroker(tmp_path / "b", 1, 2, 3, plaintext_port=4).render_config()
    assert ",BENCH://127.0.0.1:4" in bench and "BENCH:PLAINTEXT" in bench and "User:ANONYMOUS" in bench


def test_acl_rules_give_each_principal_its_topics(tmp_path):
    rules = {(r.principal, r.resource, r.name): r.operations for r in acl_rules(events="e", dead_letters="e-dlq")}
    assert rules[("producer", "topic", "e")] == ("WRITE", "DESCRIBE")
    assert rules[("streaming", "topic", "e-dlq")] == ("WRITE", "DESCRIBE")
    assert ("producer", "topic", "e-dlq") not in rules
    assert all("DELETE" not in ops for ops in rules.values())


def test_supervisor_quoting_keeps_arguments_whole():
    assert quote("plain") == "plain"
    assert quote("60 1") == '"60 1"'
    assert quote("") == '""'
    assert quote("100%") == "100%%"


def test_redis_command_persists_only_when_asked(tmp_path):
    persistent = RedisServer(tmp_path, 6390).command()
    ephemeral = RedisServer(tmp_path, 6390, persistent=False).command()
    assert persistent[persistent.index("--appendonly") + 1] == "yes"
    assert ephemeral[ephemeral.index("--appendonly") + 1] == "no"
    assert ephemeral[ephemeral.index("--bind") + 1] == "127.0.0.1"


def test_the_supervisor_config_starts_services_itself_and_leaves_airflow_to_up(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICKSTREAM_KAFKA_PORT", "19092")
    monkeypatch.setenv("CLICKSTREAM_REDIS_PORT", "16379")
    monkeypatch.setenv("CLICKSTREAM_AIRFLOW_DB", "postgres")
    monkeypatch.setenv("CLICKSTREAM_POSTGRES_PORT", "15432")
    topology = Topology.from_env()
    services = topology.service_parts()
    airflow = topology.airflow_parts()
    conf = render(services + airflow)
    sections = dict(re.findall(r"\[program:([\w-]+)\]\n(.*?)(?=\n\n|\Z)", conf, flags=re.S))
    assert set(sections) == {p.name for p in services + airflow}
    assert {p.name for p in services} >= {"kafka", "redis", "postgres", "prometheus", "alertmanager", "mail"}
    for part in services:
        assert "autostart=true" in sections[part.name], part.name
    for part in airflow:
        assert "autostart=false" in sections[part.name], part.name  # only after the migration
    assert {p.name: p.port for p in services if p.port} == {"kafka": 19092, "redis": 16379, "postgres": 15432}
    assert "--port 16379" in sections["redis"]
    taken = topology.taken_ports()
    assert taken["kafka"] == (19092, "CLICKSTREAM_KAFKA_PORT")
    assert taken["postgres"] == (15432, "CLICKSTREAM_POSTGRES_PORT")


def test_an_unknown_metadata_db_is_refused_naming_the_choices(monkeypatch):
    monkeypatch.setenv("CLICKSTREAM_AIRFLOW_DB", "mysql")
    with pytest.raises(StackError, match="must be sqlite or postgres, not 'mysql'"):
        Topology.from_env()


def test_redis_gets_acl_users_by_digest_in_a_private_file_with_the_default_user_off(tmp_path):
    server = RedisServer(tmp_path, 6390)
    server.prepare()
    command = server.command()
    assert command[command.index("--aclfile") + 1] == str(server.acl_file)
    passwords = server.passwords()
    assert set(passwords) == {"writer", "reconciler", "reader", "monitor", "admin"}
    acl = server.acl_file.read_text()
    assert acl.splitlines()[0].startswith("user default off ")
    for user, password in passwords.items():
        assert f"user {user} on #{hashlib.sha256(password.encode()).hexdigest()} " in acl
        assert password not in acl
    for path in (server.acl_file, server.passwords_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    server.prepare()
    assert server.passwords() == passwords  # kept across starts
    assert server.url("reader") == f"redis://reader:{passwords['reader']}@127.0.0.1:6390/0"


def test_the_cluster_topology_has_three_nodes_a_master_and_two_workers_on_their_own_ports(monkeypatch):
    monkeypatch.setenv("CLICKSTREAM_TOPOLOGY", "cluster")
    monkeypatch.setenv("CLICKSTREAM_KAFKA_PORT", "19092")
    monkeypatch.setenv("CLICKSTREAM_KAFKA_NODE3_PORT", "29092")  # one node moved on its own
    monkeypatch.setenv("CLICKSTREAM_KAFKA_METRICS_PORT", "19308")
    monkeypatch.setenv("CLICKSTREAM_SPARK_MASTER_PORT", "17077")
    monkeypatch.setenv("CLICKSTREAM_SPARK_WORKER2_UI_PORT", "18099")
    topology = Topology.from_env()
    services = {p.name: p for p in topology.service_parts()}
    assert {"kafka-1", "kafka-2", "kafka-3", "spark-master", "spark-worker-1", "spark-worker-2"} <= set(services)
    assert "kafka" not in services
    assert [services[f"kafka-{i}"].port for i in (1, 2, 3)] == [19092, 19192, 29092]
    assert topology.kafka.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:29092"
    taken = topology.taken_ports()
    assert taken["kafka-3"] == (29092, "CLICKSTREAM_KAFKA_NODE3_PORT")
    assert taken["kafka-2 metrics"] == (19309, "CLICKSTREAM_KAFKA_NODE2_METRICS_PORT")
    assert taken["spark master"] == (17077, "CLICKSTREAM_SPARK_MASTER_PORT")
    assert taken["spark worker 2 UI"] == (18099, "CLICKSTREAM_SPARK_WORKER2_UI_PORT")
    assert len({port for port, _ in taken.values()}) == len(taken), "two parts on one port"
    # Every broker is scraped; the workers get one core each and register with the master.
    assert topology.monitoring["prometheus"].targets()["kafka"] == [f"127.0.0.1:{p}" for p in (19308, 19309, 19310)]
    worker = services["spark-worker-1"].command
    assert worker[worker.index("--cores") + 1] == "1" and worker[-1] == "spark://127.0.0.1:17077"
    conf = render(list(services.values()))
    section = conf.split("[program:spark-worker-1]")[1].split("\n\n")[0]
    assert 'environment=SPARK_DAEMON_MEMORY="512m",SPARK_LOCAL_IP="127.0.0.1"' in section


def test_cluster_nodes_share_a_quorum_a_cluster_id_and_passwords_and_replicate_three_times(tmp_path):
    from devstack.kafka_cluster import KafkaCluster, NodePorts

    cluster = KafkaCluster.build(tmp_path, [NodePorts(10 + i, 20 + i, 30 + i) for i in (1, 2, 3)])
    configs = []
    for node in cluster.nodes:
        text = node.render_config()
        configs.append(dict(line.split("=", 1) for line in text.splitlines() if line and line[0] != "#"))
    assert [c["node.id"] for c in configs] == ["1", "2", "3"]
    assert {c["controller.quorum.voters"] for c in configs} == {"1@127.0.0.1:21,2@127.0.0.1:22,3@127.0.0.1:23"}
    assert {(c["default.replication.factor"], c["min.insync.replicas"]) for c in configs} == {("3", "2")}
    assert {c["offsets.topic.replication.factor"] for c in configs} == {"3"}
    assert len({c["log.dirs"] for c in configs}) == 3
    assert {node.passwords_file for node in cluster.nodes} == {tmp_path / "passwords.json"}
    assert cluster.cluster_id() == cluster.cluster_id()  # generated once, then kept
    assert cluster.client_config("producer")["bootstrap.servers"] == "127.0.0.1:11,127.0.0.1:12,127.0.0.1:13"


def test_an_unknown_topology_is_refused_naming_the_choices(monkeypatch):
    monkeypatch.setenv("CLICKSTREAM_TOPOLOGY", "mesh")
    with pytest.raises(StackError, match="CLICKSTREAM_TOPOLOGY must be one of single, cluster, not 'mesh'"):
        Topology.from_env()


def test_the_spark_cluster_shares_one_generated_secret_through_private_files_never_a_command_line(tmp_path):
    from devstack.spark_cluster import SparkAuth, SparkMaster, SparkWorker

    auth = SparkAuth(tmp_path / "conf")
    master = SparkMaster(tmp_path / "master", 7077, 8081, auth)
    worker = SparkWorker(tmp_path / "worker", 7078, 8082, master)
    for part in (auth, master, worker):
        part.prepare()
    secret = auth.secret()
    assert len(secret) >= 20 and auth.secret() == secret  # generated once, then kept
    for path in (auth.defaults_file, master.properties_file, worker.properties_file):
        settings = dict(line.split(" ", 1) for line in path.read_text().splitlines())
        assert (settings["spark.authenticate"], settings["spark.authenticate.secret"]) == ("true", secret), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for command in (master.command(), worker.command()):
        assert secret not in " ".join(command)
        assert "--properties-file" in command


def test_a_failed_parts_log_tail_keeps_what_went_wrong_and_drops_java_stack_frames(tmp_path):
    from devstack.stack import log_tail

    log = tmp_path / "kafka-1.log"
    frames = "".join(f"\tat com.example.Frame{i}.call(Frame.java:{i})\n" for i in range(200))
    log.write_text(f"starting\njava.io.IOException: Broken pipe\n{frames}\t... 12 more\nERROR quorum lost: no leader\n")
    tail = log_tail(log)
    assert tail.endswith("ERROR quorum lost: no leader")
    assert "java.io.IOException: Broken pipe" in tail and "starting" in tail
    assert "Frame" not in tail and "more" not in tail
    assert log_tail(tmp_path / "missing.log").startswith("(unreadable:")


def test_supervisorctls_listing_gives_each_programs_state():
    from devstack.stack import program_states

    listing = (
        "kafka                            RUNNING   pid 15215, uptime 0:01:49\n"
        "airflow-api-server               FATAL     Exited too quickly (process log may have details)\n"
        "spark-worker-1                   BACKOFF   Exited too quickly (process log may have details)\n"
        "airflow-triggerer                STOPPED   Not started\n"
    )
    assert program_states(listing) == {
        "kafka": "RUNNING",
        "airflow-api-server": "FATAL",
        "spark-worker-1": "BACKOFF",
        "airflow-triggerer": "STOPPED",
    }
    assert program_states("") == {}


def test_broker_jvm_options_are_g1_unless_kafkas_own_variable_says_otherwise(tmp_path, monkeypatch):
    broker = KafkaBroker(tmp_path, 9092, 9093, 9094)
    monkeypatch.delenv("KAFKA_JVM_PERFORMANCE_OPTS", raising=False)
    assert "-XX:+UseG1GC" in broker.java("kafka.Kafka")
    monkeypatch.setenv("KAFKA_JVM_PERFORMANCE_OPTS", "-XX:TieredStopAtLevel=1  -XX:+UseSerialGC")
    command = broker.java("kafka.Kafka")
    assert "-XX:+UseG1GC" not in command
    assert command[command.index("-XX:TieredStopAtLevel=1") + 1] == "-XX:+UseSerialGC"
