"""Pure logic of the local stack: configuration rendering and identifiers, no processes."""

from __future__ import annotations

import base64

import local_stack


def test_cluster_id_is_16_bytes_of_url_safe_base64():
    cluster_id = local_stack.kafka_cluster_id()
    assert len(cluster_id) == 22 and "=" not in cluster_id
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert local_stack.kafka_cluster_id() != cluster_id


def test_server_properties_carry_the_ports_and_data_dir(tmp_path, monkeypatch):
    broker = local_stack.KafkaBroker(tmp_path, port=19092, controller_port=19097)
    # Render only: formatting storage is the integration tests' business.
    (broker.data_dir).mkdir(parents=True)
    (broker.data_dir / "meta.properties").write_text("formatted")
    broker.prepare()
    props = dict(line.split("=", 1) for line in broker.config_file.read_text().splitlines() if line and line[0] != "#")
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19097"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19097"
    assert props["log.dirs"] == str(broker.data_dir)
    assert props["auto.create.topics.enable"] == "false"
    assert "$" not in broker.config_file.read_text()


def test_supervisor_quoting_keeps_arguments_whole():
    assert local_stack._supervisor_quote("plain") == "plain"
    assert local_stack._supervisor_quote("60 1") == '"60 1"'
    assert local_stack._supervisor_quote("") == '""'
    assert local_stack._supervisor_quote("100%") == "100%%"


def test_redis_command_persists_only_when_asked(tmp_path):
    persistent = local_stack.RedisServer(tmp_path, 6390).command()
    ephemeral = local_stack.RedisServer(tmp_path, 6390, persistent=False).command()
    assert persistent[persistent.index("--appendonly") + 1] == "yes"
    assert ephemeral[ephemeral.index("--appendonly") + 1] == "no"
    assert ephemeral[ephemeral.index("--bind") + 1] == "127.0.0.1"
