"""Session-wide test environment and the real services the tests talk to.

Airflow reads its configuration when first imported, so the environment is fixed here, at
import time: every test run gets its own AIRFLOW_HOME and SQLite metadata DB, never the local
stack's. Kafka and Redis run as real processes on free loopback ports, not the `make up` ones.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="clickstream-tests-"))
os.environ.setdefault("CLICKSTREAM_HOME", str(REPO))
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW_CONFIG"] = str(REPO / "airflow_home" / "airflow.cfg")
os.environ.setdefault("CLICKSTREAM_AIRFLOW_PORT", "8080")
(_SESSION_DIR / "airflow" / "plugins").mkdir(parents=True)
# Connections come from the fixtures below, never from the caller's environment.
for _name in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
    del os.environ[_name]

# devstack reads its paths when imported: after the environment above.
from devstack.kafka_broker import KafkaBroker  # noqa: E402
from devstack.paths import SPARK_JARS_DIR  # noqa: E402
from devstack.ports import free_port  # noqa: E402
from devstack.processes import running  # noqa: E402
from devstack.redis_server import RedisServer  # noqa: E402
from devstack.spark_class_archive import TEST_JVM_OPTIONS, archive_options  # noqa: E402

# Tests start dozens of short-lived Spark JVMs (the session's, every spark-submit, the stacks' jobs), which
# spend much of their CPU compiling code they run for seconds, and loading and verifying classes: the client
# compiler alone, the serial collector and the class-data archive `make setup` wrote for the tests save
# about half of it on two cores. What the jobs compute is the same; bench/ measures Spark with its defaults.
# The same two options go to every other JVM a test starts, through each one's own variable: the brokers
# (Kafka's KAFKA_JVM_PERFORMANCE_OPTS), the standalone master and workers (SPARK_DAEMON_JAVA_OPTS) and their
# executors (two spark.executor.* properties the drivers read from their system properties).
_EXECUTOR_OPTIONS = [f"-Dspark.executor.{key}JavaOptions={option}" for key, option in
                     zip(("default", "extra"), TEST_JVM_OPTIONS.split(), strict=True)]  # fmt: skip
os.environ.setdefault("SPARK_SUBMIT_OPTS", " ".join([TEST_JVM_OPTIONS, *archive_options(), *_EXECUTOR_OPTIONS]))
os.environ.setdefault("SPARK_LAUNCHER_OPTS", TEST_JVM_OPTIONS)
os.environ.setdefault("SPARK_DAEMON_JAVA_OPTS", TEST_JVM_OPTIONS)
os.environ.setdefault("KAFKA_JVM_PERFORMANCE_OPTS", TEST_JVM_OPTIONS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first (scripts/test.sh turns off xdist's own order, by test count): each of the
    two workers takes the next module as it frees up, so started longest first no worker idles at the end
    while the other runs a long module alone. Modules not listed are short; they keep their order, last."""
    items.sort(key=lambda item: -MODULE_SECONDS.get(item.nodeid.split("::")[0], 0))


# Seconds each long module took in a full CI run (pytest --durations), to order them; only the order matters.
MODULE_SECONDS = {
    "tests/integration/test_cluster_stack.py": 940,
    "tests/integration/test_running_stack.py": 900,
    "tests/integration/clickstream/operators/test_streaming.py": 580,
    "tests/integration/clickstream/spark/test_streaming_job.py": 510,
    "tests/integration/clickstream/operators/test_streaming_state.py": 330,
    "tests/dags/test_clickstream_pipeline.py": 270,
    "tests/integration/clickstream/spark/test_hostile_records.py": 215,
    "tests/integration/test_local_stack.py": 205,
    "tests/integration/clickstream/spark/test_batch_reconciler.py": 160,
    "tests/integration/clickstream/spark/test_redis_loss.py": 125,
    "tests/integration/clickstream/spark/test_poison_isolation.py": 55,
    "tests/dags/test_smoke_dag.py": 50,
    "tests/integration/clickstream/spark/test_transforms.py": 35,
}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def kafka_broker(session_dir: Path) -> Iterator[KafkaBroker]:
    """A real single-node KRaft broker for the whole session, secured as the stack's: SASL/SCRAM and ACLs."""
    broker = KafkaBroker(session_dir / "kafka", free_port(), free_port(), free_port())
    broker.prepare()
    with running("kafka", broker.command(), broker.healthy, session_dir / "logs/kafka.log", timeout=90):
        broker.ensure_principals()
        yield broker


@pytest.fixture(scope="session")
def redis_server(session_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(session_dir / "redis", free_port(), persistent=False)
    server.prepare()
    with running("redis", server.command(), server.healthy, session_dir / "logs/redis.log", timeout=30):
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer):
    """An admin client on an emptied database: each test starts from nothing."""
    client = redis_server.client("admin")
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def topic_factory(kafka_broker: KafkaBroker):
    """Creates uniquely named topics (as the super user ``ops``) and deletes them afterwards.

    Each topic gets the pipeline's ACLs as if it were the events topic, and its dead-letter topic is
    ``<name>-dlq``: ``create("x-dlq", dead_letters_of=topic)`` names one so.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(kafka_broker.client_config("ops"))
    created: list[str] = []

    def create(prefix: str = "test", partitions: int = 3, dead_letters_of: str | None = None) -> str:
        name = f"{dead_letters_of}-dlq" if dead_letters_of else f"clickstream-test-{prefix}-{uuid.uuid4().hex[:8]}"
        if not dead_letters_of:
            kafka_broker.grant(events=name, dead_letters=f"{name}-dlq")
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
        created.append(name)

        def ready() -> bool:  # created is not yet served: wait until the broker's metadata has every leader
            topic = admin.list_topics(name, timeout=5).topics.get(name)
            return bool(topic and not topic.error and len(topic.partitions) == partitions
                        and all(p.leader >= 0 for p in topic.partitions.values()))  # fmt: skip

        deadline = time.monotonic() + 30
        while not ready():
            assert time.monotonic() < deadline, f"topic {name} was created but not served within 30 s"
            time.sleep(0.1)
        return name

    yield create
    if created:
        for future in admin.delete_topics(created).values():
            future.result(30)


@pytest.fixture(scope="session")
def spark(session_dir: Path):
    """A local Spark session with the Kafka connector from the jars `make setup` resolved."""
    from pyspark.sql import SparkSession

    jars_dir = SPARK_JARS_DIR
    jars = sorted(str(p) for p in jars_dir.glob("*.jar"))
    if not jars:
        pytest.fail(f"no Spark Kafka connector jars in {jars_dir}: run `make setup`")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("clickstream-tests")
        .config("spark.jars", ",".join(jars))
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")  # as the applications run: naive ISO times are UTC
        .config("spark.ui.enabled", "false")
        .config("spark.sql.streaming.forceDeleteTempCheckpointLocation", "true")
        .config("spark.local.dir", str(session_dir / "spark-local"))
        .config("spark.sql.warehouse.dir", str(session_dir / "spark-warehouse"))
        .getOrCreate()
    )
    yield session
    session.stop()
    # py4j logs from __del__ at interpreter exit, after pytest has closed the captured streams.
    logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def airflow_env(kafka_broker: KafkaBroker, redis_server: RedisServer) -> dict[str, str]:
    """The tests' own metadata DB, migrated once, and connections pointing at the fixtures' services."""
    # One connection per Kafka principal and per Redis ACL user, as `make up` sets them.
    os.environ.update(kafka_broker.airflow_connections())
    os.environ.update(redis_server.airflow_connections())
    os.environ["AIRFLOW_CONN_SPARK_DEFAULT"] = '{"conn_type": "spark", "host": "local[2]"}'
    jars_dir = SPARK_JARS_DIR
    os.environ["AIRFLOW_VAR_CLICKSTREAM_SPARK_JARS"] = ",".join(sorted(str(p) for p in jars_dir.glob("*.jar")))
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, f"airflow db migrate failed:\n{result.stderr[-3000:]}"
    return os.environ.copy()


@pytest.fixture
def read_topic(kafka_broker: KafkaBroker):
    """Reads a whole topic, every partition up to its current end: [(partition, key, value), ...] in offset order;
    with ``headers=True``, [(partition, key, value, {header: text}), ...]."""
    from confluent_kafka import Consumer, TopicPartition

    def read(topic: str, timeout_s: float = 60, headers: bool = False) -> list[tuple]:
        consumer = Consumer(
            kafka_broker.client_config("ops", **{"group.id": f"read-{uuid.uuid4().hex}", "enable.auto.commit": False})
        )
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
            consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
            out: dict[int, list[tuple]] = {p: [] for p in partitions}
            remaining = sum(ends.values())
            deadline = time.monotonic() + timeout_s
            while remaining > 0 and time.monotonic() < deadline:
                for msg in consumer.consume(10_000, timeout=1):
                    if msg.error() is None and msg.offset() < ends[msg.partition()]:
                        record = (msg.partition(), msg.key(), msg.value())
                        if headers:
                            record += ({k: (v or b"").decode() for k, v in msg.headers() or []},)
                        out[msg.partition()].append(record)
                        remaining -= 1
            assert remaining == 0, f"{remaining} records of {topic} not read within {timeout_s}s"
            return [record for p in sorted(out) for record in out[p]]
        finally:
            consumer.close()

    return read
