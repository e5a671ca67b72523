"""Stopping a fixture's process stops everything it started: a launcher that exits leaves no child behind."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from devstack.processes import group_members, stop_process

pytestmark = pytest.mark.integration

# A child that ignores SIGTERM, started by a parent that exits at once (as spark-submit can leave its driver).
STUBBORN_CHILD = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"


def test_a_child_left_behind_by_its_launcher_is_stopped_too():
    launcher = subprocess.Popen(
        ["bash", "-c", f"{sys.executable} -c '{STUBBORN_CHILD}' & sleep 0.5"], start_new_session=True
    )
    time.sleep(0.2)
    assert len(group_members(launcher.pid)) >= 2  # the launcher, its child (and its sleep)
    launcher.wait(10)
    assert len(group_members(launcher.pid)) == 1  # the child outlived its launcher
    started = time.monotonic()
    stop_process(launcher, grace=2)
    assert group_members(launcher.pid) == []
    assert time.monotonic() - started < 10


def test_a_child_left_behind_gets_sigterm_first_so_it_can_finish_cleanly(tmp_path):
    marker = tmp_path / "terminated"
    graceful = (
        "import pathlib, signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (pathlib.Path({str(marker)!r}).touch(), sys.exit(0)))\n"
        "time.sleep(120)"
    )
    script = tmp_path / "graceful.py"
    script.write_text(graceful)
    launcher = subprocess.Popen(["bash", "-c", f"{sys.executable} {script} & sleep 0.5"], start_new_session=True)
    launcher.wait(10)
    started = time.monotonic()
    stop_process(launcher, grace=20)
    assert marker.exists(), "the child was killed without its SIGTERM"
    assert group_members(launcher.pid) == [] and time.monotonic() - started < 10


def test_a_process_without_a_group_of_its_own_is_stopped_alone():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    stop_process(proc, grace=5)
    assert proc.returncode is not None
