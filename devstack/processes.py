"""A process for the length of a ``with`` block, and waiting on a condition instead of sleeping."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from devstack.errors import StackError


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


@dataclass(frozen=True)
class Program:
    """A process for :func:`running_together`: its command, its health check, its log and its environment."""

    name: str
    command: list[str]
    healthy: Callable[[], bool]
    log_file: Path
    env: dict[str, str] | None = None


@contextlib.contextmanager
def running(
    name: str,
    command: list[str],
    healthy: Callable[[], bool],
    log_file: Path,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the block exits; fail with its log tail if it never becomes healthy.

    For the test fixtures: the process gets its own process group so that stopping it also stops
    whatever it started, and it is stopped even when the block raises.
    """
    with running_together([Program(name, command, healthy, log_file, env)], timeout) as (proc,):
        yield proc


@contextlib.contextmanager
def running_together(programs: Sequence[Program], timeout: float = 60) -> Iterator[list[subprocess.Popen[bytes]]]:
    """:func:`running` for processes that become healthy only together: every one is started, then all are
    waited for (a Kafka node is a registered broker once a quorum of its cluster's voters runs). They are
    stopped together, each as :func:`stop_process` does, even when the block raises."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for program in programs:
            program.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(program.log_file, "wb") as log:
                procs.append(
                    subprocess.Popen(
                        program.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=program.env
                    )
                )
        pairs = list(zip(programs, procs, strict=True))
        if not wait_until(lambda: all(proc.poll() is None and program.healthy() for program, proc in pairs), timeout):
            failures = []
            for program, proc in pairs:
                if proc.poll() is None and program.healthy():
                    continue
                tail = program.log_file.read_text(errors="replace")[-3000:]
                state = f"exited with {proc.returncode}" if proc.poll() is not None else "still not healthy"
                failures.append(f"{program.name} {state} after {timeout:.0f}s; log {program.log_file}:\n{tail}")
            raise StackError("\n".join(failures))
        yield procs
    finally:
        with ThreadPoolExecutor(max(len(procs), 1)) as pool:
            for stopped in [pool.submit(stop_process, proc) for proc in procs]:
                stopped.result()


def stop_process(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGTERM to the process group, SIGKILL after ``grace`` seconds.

    The whole group, not only ``proc``: spark-submit can exit and leave its Python driver behind, and that
    driver gets its SIGTERM too (it commits its running batch on it). A ``proc`` that leads no group of its
    own gets the signals alone.
    """
    deadline = time.monotonic() + grace
    leads_group = _leads_group(proc)
    if not leads_group:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        return
    if proc.poll() is None or group_members(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(max(0.0, deadline - time.monotonic()))
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if proc.poll() is None or group_members(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        killed_by = time.monotonic() + 5  # SIGKILL is not instant: return once the group is gone
        while group_members(proc.pid) and time.monotonic() < killed_by:
            time.sleep(0.05)


def _leads_group(proc: subprocess.Popen[bytes]) -> bool:
    """Whether ``proc`` was started in a process group of its own (``start_new_session``), alive or not."""
    try:
        return os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:  # gone (and reaped): its group may still have members
        return bool(group_members(proc.pid))


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    import psutil

    members = []
    for candidate in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if candidate.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(candidate.pid) == pgid:
                members.append(candidate.pid)
    return members


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
