"""Restarting one program of a running supervisord, as the serving benchmark does with the api-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack import supervisor

pytestmark = pytest.mark.integration

CONF = """\
[unix_http_server]
file={dir}/supervisor.sock

[supervisord]
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:sleeper]
command={python} -c "import time; time.sleep(600)"
startsecs=1
"""


@pytest.fixture
def supervisord(tmp_path: Path):
    conf = tmp_path / "supervisord.conf"
    conf.write_text(CONF.format(dir=tmp_path, python=sys.executable))
    subprocess.run([str(Path(sys.executable).parent / "supervisord"), "-c", str(conf)], check=True)
    pidfile = tmp_path / "supervisord.pid"
    try:
        yield tmp_path / "supervisor.sock"
    finally:  # SIGTERM: supervisord stops its programs, then itself
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
        deadline = time.monotonic() + 30
        while pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pidfile.exists(), "supervisord did not stop"


def _info(socket: Path) -> dict:
    deadline = time.monotonic() + 30
    while True:
        info = supervisor.process_info("sleeper", socket)
        if info["statename"] == "RUNNING" or time.monotonic() > deadline:
            return info
        time.sleep(0.2)


def test_restart_gives_the_program_a_new_process_and_waits_until_it_runs(supervisord: Path) -> None:
    before = _info(supervisord)
    assert before["statename"] == "RUNNING"
    supervisor.restart("sleeper", socket=supervisord)
    after = supervisor.process_info("sleeper", supervisord)
    assert after["statename"] == "RUNNING"
    assert after["pid"] != before["pid"]


def test_restart_starts_a_stopped_program(supervisord: Path) -> None:
    _info(supervisord)
    assert supervisor.stop_together(["sleeper"], socket=supervisord) == []
    supervisor.restart("sleeper", socket=supervisord)
    assert supervisor.process_info("sleeper", supervisord)["statename"] == "RUNNING"
