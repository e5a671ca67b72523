"""Node failures on the cluster topology, for tests/integration/test_cluster_stack.py.

Each function injects one fault into a :class:`~stack_faults.FaultedStack` whose stack is a
:class:`~stack_helpers.ClusterStack`, checks what the cluster itself must do about it (leaders move, the
in-sync replicas come back, tasks move to the other worker, the master takes its applications back), and
returns what it saw for the test's table.
"""

from __future__ import annotations

import time
from typing import Any

from stack_faults import FaultedStack
from stack_helpers import ClusterStack

from clickstream.schema import DEAD_LETTER_TOPIC, TOPIC
from devstack.processes import wait_until


def partitions(stack: ClusterStack) -> dict[str, dict[int, dict[str, Any]]]:
    cluster = stack.kafka()
    return {topic: cluster.partitions(topic) for topic in (TOPIC, DEAD_LETTER_TOPIC)}


def leaders(view: dict[str, dict[int, dict[str, Any]]]) -> dict[str, int]:
    return {
        f"{topic.removeprefix('clickstream-')}/{p}": info["leader"]
        for topic, parts in view.items()
        for p, info in parts.items()
    }


def isr_sizes(view: dict[str, dict[int, dict[str, Any]]]) -> list[int]:
    return sorted({len(info["isr"]) for parts in view.values() for info in parts.values()})


def kill_a_broker_for_30s(run: FaultedStack) -> dict[str, Any]:
    """SIGKILL the node leading the events topic's partition 0; start it again 30 s later."""
    stack: ClusterStack = run.stack  # type: ignore[assignment]
    before = partitions(stack)
    assert isr_sizes(before) == [3], f"not every replica was in sync before the fault: {before}"
    victim = before[TOPIC][0]["leader"]
    run.kill_part(f"kafka-{victim}")
    killed_at = time.monotonic()

    def moved() -> bool:
        view = partitions(stack)
        return all(info["leader"] not in (victim, -1) for parts in view.values() for info in parts.values())

    assert wait_until(moved, 60, interval=1), f"leadership did not move off node {victim}: {partitions(stack)}"
    during = partitions(stack)
    assert all(victim not in info["isr"] for parts in during.values() for info in parts.values()), during
    time.sleep(max(0.0, 30 - (time.monotonic() - killed_at)))
    run.supervisorctl("start", f"kafka-{victim}")
    assert wait_until(lambda: isr_sizes(partitions(stack)) == [3], 120, interval=1), (
        f"the in-sync replicas did not return to 3: {partitions(stack)}"
    )
    after = partitions(stack)
    return {
        "node": f"kafka-{victim}",
        "leaders_before": leaders(before),
        "leaders_during": leaders(during),
        "isr_during": isr_sizes(during),
        "isr_after": isr_sizes(after),
    }


def app_executors(stack: ClusterStack) -> dict[str, Any]:
    """The streaming application's cores as the master grants them, and each worker's state and cores used."""
    state = stack.master_state()
    apps = [a for a in state.get("activeapps", []) if a.get("name") == "clickstream-streaming"]
    # A worker that died stays listed as DEAD; when it rejoins, it is listed again, ALIVE, under a new id.
    alive = {f"{w['host']}:{w['port']}": w["coresused"] for w in state.get("workers", []) if w["state"] == "ALIVE"}
    return {"app_cores": apps[0]["cores"] if apps else None, "alive_workers": alive, "app_ids": [a["id"] for a in apps]}


def kill_a_spark_worker_for_20s(run: FaultedStack) -> dict[str, Any]:
    """SIGKILL a worker (its executor goes with it): its tasks rerun on the other; restarted, it rejoins."""
    stack: ClusterStack = run.stack  # type: ignore[assignment]
    # After the fault before this one, the job may still be getting its second executor back.
    assert wait_until(lambda: app_executors(stack)["app_cores"] == 2, 120, interval=1), (
        f"the streaming job does not run an executor on each worker: {app_executors(stack)}"
    )
    before = app_executors(stack)
    address = f"127.0.0.1:{stack.ports['worker1']}"
    run.kill_part("spark-worker-1")  # the worker's JVM; the executor it launched notices and exits

    def lost() -> bool:
        now = app_executors(stack)
        return address not in now["alive_workers"] and now["app_cores"] == 1

    assert wait_until(lost, 90, interval=1), f"the master still counts the killed worker: {app_executors(stack)}"
    during = app_executors(stack)
    time.sleep(20)
    run.supervisorctl("start", "spark-worker-1")

    def rejoined() -> bool:
        now = app_executors(stack)
        return now["alive_workers"].get(address) == 1 and now["app_cores"] == 2

    assert wait_until(rejoined, 120, interval=1), f"the worker did not rejoin with an executor: {app_executors(stack)}"
    return {"node": "spark-worker-1", "executors_before": before, "executors_during": during,
            "executors_after": app_executors(stack)}  # fmt: skip


def restart_the_spark_master(run: FaultedStack) -> dict[str, Any]:
    """Restart the master: with FILESYSTEM recovery it takes back the running application and its workers;
    the driver is never restarted (the same process runs on)."""
    stack: ClusterStack = run.stack  # type: ignore[assignment]
    before = app_executors(stack)
    drivers_before = sorted(d.pid for d in run.drivers())
    run.supervisorctl("restart", "spark-master")

    def recovered() -> bool:
        state = stack.master_state()
        now = app_executors(stack)
        return state.get("status") == "ALIVE" and now["app_ids"] == before["app_ids"] and now["app_cores"] == 2

    assert wait_until(recovered, 150, interval=1), f"the master lost the application: {stack.master_state()}"
    drivers_after = sorted(d.pid for d in run.drivers())
    assert drivers_after == drivers_before, f"the streaming driver was restarted: {drivers_before} -> {drivers_after}"
    return {"node": "spark-master", "executors_before": before, "executors_after": app_executors(stack),
            "driver_pids": drivers_after}  # fmt: skip
