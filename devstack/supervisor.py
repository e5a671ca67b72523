"""supervisord keeps the stack's parts alive: its configuration, whether it runs, and supervisorctl."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.errors import StackError
from devstack.paths import HOME, LOGS, STATE, VENV_BIN

CONF = STATE / "supervisord.conf"
PID_FILE = STATE / "supervisord.pid"
SOCKET = STATE / "supervisor.sock"


@dataclass
class Part:
    """One supervised program of the local stack."""

    name: str
    command: list[str]
    port: int | None
    healthy: Callable[[], bool]
    # Generous: a cluster's JVMs took two minutes beside a second stack starting on 2 cores. A part that
    # keeps exiting fails at once (`stack.wait_healthy`), so only a slow or hung one waits this long.
    start_timeout: float = 240
    stopwaitsecs: int = 30
    # Airflow's components start only once their metadata DB is migrated (see `stack.up`).
    autostart: bool = True
    user: str | None = None
    environment: dict[str, str] | None = None  # on top of the environment supervisord started with

    @property
    def log_file(self) -> Path:
        return LOGS / f"{self.name}.log"


def running_pid() -> int | None:
    """supervisord's pid when it runs, else None (a pid file left by a killed one is not a running one)."""
    try:
        pid = int(PID_FILE.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def quote(arg: str) -> str:
    arg = arg.replace("%", "%%")
    return f'"{arg}"' if (" " in arg or not arg) else arg


def render(parts: list[Part]) -> str:
    lines = [
        "; Written by `python -m devstack up` (devstack/supervisor.py); edit that, not this file.",
        "[unix_http_server]",
        f"file={SOCKET}",
        "",
        "[supervisord]",
        f"logfile={LOGS / 'supervisord.log'}",
        f"pidfile={PID_FILE}",
        f"childlogdir={LOGS}",
        f"directory={HOME}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{SOCKET}",
        "",
    ]
    for part in parts:
        lines += [
            f"[program:{part.name}]",
            "command=" + " ".join(quote(arg) for arg in part.command),
            f"autostart={'true' if part.autostart else 'false'}",
            "autorestart=true",
            "startsecs=3",
            "startretries=3",
            "stopsignal=TERM",
            f"stopwaitsecs={part.stopwaitsecs}",
            "stopasgroup=true",
            "killasgroup=true",
            *([f"user={part.user}"] if part.user else []),
            *(
                ["environment=" + ",".join(f'{key}="{value}"' for key, value in part.environment.items())]
                if part.environment
                else []
            ),
            "redirect_stderr=true",
            f"stdout_logfile={part.log_file}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
            "",
        ]
    return "\n".join(lines).replace("\n\n\n", "\n\n")


def start(parts: list[Part]) -> None:
    """Write the configuration and start supervisord (it daemonizes: it outlives this process)."""
    CONF.write_text(render(parts))
    result = subprocess.run([str(VENV_BIN / "supervisord"), "-c", str(CONF)], capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"supervisord did not start: {result.stderr or result.stdout}")


def supervisorctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "supervisorctl"), "-c", str(CONF), *args], capture_output=True, text=True)


_NOT_DOWN = ("RUNNING", "STARTING", "STOPPING", "BACKOFF")


def _rpc(socket: Path) -> Any:
    """supervisord's XML-RPC interface (``supervisor.*``) over its unix socket."""
    import xmlrpc.client

    from supervisor.xmlrpc import SupervisorTransport

    return xmlrpc.client.ServerProxy(
        "http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{socket}")
    ).supervisor


def program_names(socket: Path = SOCKET) -> list[str]:
    """Every program supervisord at ``socket`` knows, whatever its state."""
    return [info["name"] for info in _rpc(socket).getAllProcessInfo()]


def process_info(name: str, socket: Path = SOCKET) -> dict[str, Any]:
    """supervisord's view of program ``name``: ``statename``, ``pid``, ``start``, ..."""
    return dict(_rpc(socket).getProcessInfo(name))


def restart(name: str, socket: Path = SOCKET) -> None:
    """Stop ``name`` and start it again through supervisord at ``socket``, waiting for each step."""
    import xmlrpc.client

    rpc = _rpc(socket)
    with contextlib.suppress(xmlrpc.client.Fault):  # not running: nothing to stop
        rpc.stopProcess(name, True)
    rpc.startProcess(name, True)


def stop_together(names: Iterable[str] | None = None, timeout_s: float = 90, socket: Path = SOCKET) -> list[str]:
    """Stop ``names`` (every program when None) at once and wait until none runs; returns those still
    running after ``timeout_s`` (all of those known when supervisord stops answering: the caller's shutdown,
    and its SIGKILL, still follow).

    supervisorctl's multi-name stop and supervisord's shutdown stop one program after another. Beside the
    time that adds up, a cluster's last Kafka node then stops without a quorum to shut down through, and
    waits out its whole stopwaitsecs.
    """
    import http.client
    import xmlrpc.client

    rpc = _rpc(socket)

    def stop(name: str) -> None:
        # A program that is not running (stopped, exited, fatal) answers with a Fault: nothing to stop.
        with contextlib.suppress(xmlrpc.client.Fault):
            rpc.stopProcess(name, False)  # False: signal it and return, do not wait for it to exit

    wanted = [] if names is None else list(names)
    try:
        if names is None:
            wanted = program_names(socket)
        for name in wanted:
            stop(name)
        deadline = time.monotonic() + timeout_s
        while True:
            states = {info["name"]: info["statename"] for info in rpc.getAllProcessInfo() if info["name"] in wanted}
            running = [name for name, state in states.items() if state in _NOT_DOWN]
            if not running or time.monotonic() > deadline:
                return running
            for name in running:  # one that had exited when asked may have been restarted since
                if states[name] != "STOPPING":
                    stop(name)
            time.sleep(0.2)
    except (OSError, xmlrpc.client.Error, http.client.HTTPException):  # gone, or shutting down, under us
        return wanted
