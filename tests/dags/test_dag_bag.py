"""Every file in dags/ loads as the dag-processor loads it, and clickstream_streaming is what its docs say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.dags

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def bag(airflow_env):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_loads_without_import_errors(bag):
    assert bag.import_errors == {}
    assert {Path(dag.fileloc).name for dag in bag.dags.values()} == {p.name for p in DAGS.glob("*.py")}
    assert set(bag.dag_ids) == {"clickstream_pipeline", "clickstream_smoke", "clickstream_streaming"}


def test_parsing_the_dag_files_imports_no_redis_client(airflow_env):
    """The DAG processor parses each file every 30 s in a fresh process: redis-py (0.45 s to import) loads
    where a task or trigger runs, not there."""
    parse = (
        "import sys; from airflow.dag_processing.dagbag import DagBag; "
        f"bag = DagBag(dag_folder={str(DAGS)!r}); "
        "print(len(bag.dags), len(bag.import_errors), 'redis' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", parse], capture_output=True, text=True, env=airflow_env, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["3", "0", "False"], result.stdout[-2000:]


def test_the_streaming_dag_creates_the_topics_then_streams_with_its_params(bag):
    dag = bag.get_dag("clickstream_streaming")
    assert [t.task_id for t in dag.topological_sort()] == ["create_kafka_topic", "stream_clicks"]
    assert dag.schedule is None  # triggered by hand: it runs until asked to stop
    assert {name: param.value for name, param in dag.params.items()} == {
        "watermark": "2 minutes",
        "trigger_interval": "1 second",
        "stall_timeout_s": 180,
        "max_restarts": 10,
    }
    stream = dag.get_task("stream_clicks")
    assert stream.mode == "long_running"
    assert Path(stream.application).is_file()
    for name in ("watermark", "trigger_interval", "stall_timeout_s", "max_restarts"):
        assert getattr(stream, name) == f"{{{{ params.{name} }}}}", name
    assert stream.retries == 2
