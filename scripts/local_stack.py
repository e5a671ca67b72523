"""The local stack: how to configure, start and health-check each real part on this machine.

One module serves two callers. ``make up``/``make down`` run it as a CLI that writes a
supervisord configuration and lets supervisord keep the parts alive; the pytest fixtures
import it to run their own broker and Redis on free loopback ports. Either way the Kafka
configuration, the commands and the health checks are the same code.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from string import Template
from typing import Any

import monitoring_parts

HOME = Path(os.environ.get("CLICKSTREAM_HOME", Path(__file__).resolve().parent.parent))
STATE = Path(os.environ.get("CLICKSTREAM_STATE", HOME / ".state"))
DEPS = Path(os.environ.get("CLICKSTREAM_DEPS", HOME / ".deps"))
KAFKA_LIBS = Path(os.environ.get("CLICKSTREAM_KAFKA_LIBS", DEPS / "kafka-broker"))
VENV_BIN = Path(os.environ.get("CLICKSTREAM_VENV", HOME / ".venv")) / "bin"


class StackError(RuntimeError):
    """A part of the stack could not be started or did not become healthy; the message says which."""


# --------------------------------------------------------------------------- ports


def free_port() -> int:
    """A loopback port nobody listens on right now (for fixtures)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- Kafka


def kafka_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64, as ``kafka-storage random-uuid`` prints."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class KafkaBroker:
    """A single-node KRaft broker (combined broker and controller) whose files live in ``workdir``."""

    workdir: Path
    port: int
    controller_port: int
    heap: str = "512m"
    jvm_options: tuple[str, ...] = ()

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.workdir / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def java(self, main_class: str, *args: str) -> list[str]:
        if not KAFKA_LIBS.is_dir():
            raise StackError(f"Kafka jars are missing in {KAFKA_LIBS}: run `make setup` first")
        return [
            "java",
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            *self.jvm_options,
            f"-Dlog4j2.configurationFile={HOME / 'include/kafka/log4j2.yaml'}",
            "-cp",
            f"{KAFKA_LIBS}/*",
            main_class,
            *args,
        ]

    def prepare(self) -> None:
        """Write server.properties and format the storage once; a formatted log dir is kept as it is."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        template = Template((HOME / "include/kafka/server.properties").read_text())
        self.config_file.write_text(
            template.substitute(port=self.port, controller_port=self.controller_port, data_dir=str(self.data_dir))
        )
        if (self.data_dir / "meta.properties").exists():
            return
        result = subprocess.run(
            replace(self, jvm_options=()).java(  # no JMX agent in a one-off tool: it would take the metrics port
                "kafka.tools.StorageTool",
                "format",
                "-t",
                kafka_cluster_id(),
                "-c",
                str(self.config_file),
                "--ignore-formatted",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage in {self.data_dir} failed:\n{result.stderr[-2000:]}")

    def command(self) -> list[str]:
        return self.java("kafka.Kafka", str(self.config_file))

    def healthy(self) -> bool:
        """The broker answers metadata requests (a listening socket alone is not enough)."""
        from confluent_kafka.admin import AdminClient

        try:
            # log_level 0: a broker that is still starting is expected here, not worth a log line.
            admin = AdminClient(
                {"bootstrap.servers": self.bootstrap_servers, "socket.timeout.ms": 2000, "log_level": 0}
            )
            metadata = admin.list_topics(timeout=2)
            return len(metadata.brokers) > 0
        except Exception:
            return False


# --------------------------------------------------------------------------- Redis


@dataclass
class RedisServer:
    """A redis-server bound to loopback, persisting into ``workdir`` when ``persistent``."""

    workdir: Path
    port: int
    persistent: bool = True

    def command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server is not installed: run `make setup` (it installs Debian's redis-server)")
        cmd = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            "",
        ]
        if self.persistent:
            cmd += ["--appendonly", "yes", "--save", "60 1"]
        else:
            cmd += ["--appendonly", "no", "--save", ""]
        return cmd

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)

    def healthy(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2).ping())
        except Exception:
            return False


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresServer:
    """Debian's PostgreSQL as Airflow's metadata DB, its cluster in ``workdir``, trusting loopback only.

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user (which the Debian
    package creates), and ``workdir`` must be reachable by that user.
    """

    workdir: Path
    port: int
    database: str = "airflow"
    user: str = "airflow"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def run_as(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @staticmethod
    def binary(name: str) -> str:
        candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
        found = str(candidates[-1]) if candidates else shutil.which(name)
        if not found:
            raise StackError(f"PostgreSQL's {name} is not installed: run `make setup` (Debian package postgresql)")
        return found

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *cmd] if self.run_as else cmd

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "run").mkdir(exist_ok=True)
        if self.run_as:
            shutil.chown(self.workdir, self.run_as, self.run_as)
            shutil.chown(self.workdir / "run", self.run_as, self.run_as)
        if (self.data_dir / "PG_VERSION").exists():
            return
        initdb = [self.binary("initdb"), "-D", str(self.data_dir), "-U", self.user, "--auth=trust", "-E", "UTF8"]
        result = subprocess.run(self._as_owner(initdb), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(
                f"initdb in {self.data_dir} failed (as root, the postgres user must be able to reach that folder; "
                f"set CLICKSTREAM_STATE to one it can):\n{result.stderr[-2000:]}"
            )

    def command(self) -> list[str]:
        return [
            self.binary("postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.workdir / "run"),
            "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=100",
        ]  # fmt: skip

    def healthy(self) -> bool:
        import psycopg2

        try:
            psycopg2.connect(
                host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", connect_timeout=2
            ).close()
            return True
        except psycopg2.Error:
            return False

    def ensure_database(self) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{self.database}"')
        conn.close()


# --------------------------------------------------------------------------- Spark


def spark_submit_command(
    app: Path, *args: str, master: str = "local[2]", conf: dict[str, str] | None = None
) -> list[str]:
    """spark-submit of ``app`` with the Kafka connector from the jars `make setup` resolved."""
    spark_home = os.environ.get("SPARK_HOME")
    if not spark_home:
        raise StackError("SPARK_HOME is not set: source scripts/env.sh (make setup installs pyspark)")
    jars_dir = Path(os.environ.get("CLICKSTREAM_SPARK_JARS_DIR", DEPS / "spark-kafka"))
    jars = sorted(str(p) for p in jars_dir.glob("*.jar"))
    if not jars:
        raise StackError(f"no Spark Kafka connector jars in {jars_dir}: run `make setup` first")
    settings = {"spark.ui.enabled": "false", "spark.driver.memory": "1g", **(conf or {})}
    return [
        str(Path(spark_home) / "bin" / "spark-submit"),
        "--master",
        master,
        "--jars",
        ",".join(jars),
        *(item for key, value in settings.items() for item in ("--conf", f"{key}={value}")),
        str(app),
        *args,
    ]


# --------------------------------------------------------------------------- processes


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


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
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        if not wait_until(lambda: proc.poll() is None and healthy(), timeout):
            tail = log_file.read_text(errors="replace")[-3000:]
            state = f"exited with {proc.returncode}" if proc.poll() is not None else "still not healthy"
            raise StackError(f"{name} {state} after {timeout:.0f}s; log {log_file}:\n{tail}")
        yield proc
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# --------------------------------------------------------------------------- the supervised stack


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass
class Part:
    """One supervised program of the local stack."""

    name: str
    command: list[str]
    port: int | None
    healthy: Callable[[], bool]
    start_timeout: float = 120
    stopwaitsecs: int = 30
    # Airflow's components start only once their metadata DB is migrated (see `up`).
    autostart: bool = True
    user: str | None = None

    @property
    def log_file(self) -> Path:
        return STATE / "logs" / f"{self.name}.log"


def airflow_health() -> dict[str, object] | None:
    port = _port("CLICKSTREAM_AIRFLOW_PORT", 8080)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3) as resp:
            return json.load(resp)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _airflow_component_healthy(component: str, since: float) -> Callable[[], bool]:
    """Healthy means a heartbeat newer than ``since`` (epoch seconds): a stale one from before a restart is not."""
    key = component.replace("-", "_")

    def check() -> bool:
        health = airflow_health()
        if health is None:
            return False
        if component == "api-server":
            return True
        status = health.get(key, {})
        if not isinstance(status, dict) or status.get("status") != "healthy":
            return False
        heartbeat = status.get(f"latest_{key}_heartbeat")
        return isinstance(heartbeat, str) and datetime.fromisoformat(heartbeat).timestamp() >= since

    return check


def stack_kafka() -> KafkaBroker:
    """The stack's broker, serving its JMX metrics to Prometheus through the JMX agent."""
    agent = monitoring_parts.kafka_jmx_agent(KAFKA_LIBS, monitoring_parts.MonitoringPorts.from_env().kafka_metrics)
    return KafkaBroker(
        STATE / "kafka",
        _port("CLICKSTREAM_KAFKA_PORT", 9092),
        _port("CLICKSTREAM_KAFKA_CONTROLLER_PORT", 9097),
        jvm_options=(agent,),
    )


def stack_redis() -> RedisServer:
    return RedisServer(STATE / "redis", _port("CLICKSTREAM_REDIS_PORT", 6379))


def stack_postgres() -> PostgresServer | None:
    """The metadata DB server when ``CLICKSTREAM_AIRFLOW_DB=postgres``; None for the embedded SQLite default."""
    choice = os.environ.get("CLICKSTREAM_AIRFLOW_DB", "sqlite")
    if choice not in ("sqlite", "postgres"):
        raise StackError(f"CLICKSTREAM_AIRFLOW_DB must be sqlite or postgres, not {choice!r}")
    if choice == "sqlite":
        return None
    return PostgresServer(STATE / "postgres", _port("CLICKSTREAM_POSTGRES_PORT", 5432))


def stack_parts(
    kafka: KafkaBroker, redis_server: RedisServer, postgres: PostgresServer | None = None, since: float = 0.0
) -> list[Part]:
    airflow = str(VENV_BIN / "airflow")
    api_port = _port("CLICKSTREAM_AIRFLOW_PORT", 8080)
    parts = [
        Part("kafka", kafka.command(), kafka.port, kafka.healthy),
        Part("redis", redis_server.command(), redis_server.port, redis_server.healthy),
    ]
    for name, part in monitoring(redis_server).items():
        parts.append(Part(name, part.command(), None, part.healthy))
    if postgres is not None:
        parts.append(Part("postgres", postgres.command(), postgres.port, postgres.healthy, user=postgres.run_as))
    for component in AIRFLOW_COMPONENTS:
        port = api_port if component == "api-server" else None
        check = _airflow_component_healthy(component, since)
        parts.append(Part(f"airflow-{component}", [airflow, component], port, check, 180, autostart=False))
    return parts


def monitoring(redis_server: RedisServer) -> dict[str, Any]:
    """The monitoring parts of the stack, by name (see scripts/monitoring_parts.py)."""
    ports = monitoring_parts.MonitoringPorts.from_env()
    return {
        "statsd-exporter": monitoring_parts.StatsdExporter(ports, DEPS),
        "redis-exporter": monitoring_parts.RedisExporter(ports, redis_server.port),
        "prometheus": monitoring_parts.Prometheus(
            STATE / "prometheus",
            ports,
            scrape_interval=os.environ.get("CLICKSTREAM_SCRAPE_INTERVAL") or None,
            rule_for=os.environ.get("CLICKSTREAM_ALERT_FOR") or None,
        ),
        "alertmanager": monitoring_parts.Alertmanager(STATE / "alertmanager", ports),
        "mail": monitoring_parts.MailSink(STATE / "mail", ports, str(VENV_BIN / "python")),
    }


SUPERVISOR_CONF = STATE / "supervisord.conf"
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
SUPERVISOR_PID = STATE / "supervisord.pid"


def supervisord_running() -> bool:
    try:
        pid = int(SUPERVISOR_PID.read_text().strip())
        os.kill(pid, 0)
        return True
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return False


def write_supervisor_conf(parts: list[Part]) -> None:
    sock = STATE / "supervisor.sock"
    lines = [
        "; Written by scripts/local_stack.py on `make up`; edit that file, not this one.",
        "[unix_http_server]",
        f"file={sock}",
        "",
        "[supervisord]",
        f"logfile={STATE / 'logs/supervisord.log'}",
        f"pidfile={SUPERVISOR_PID}",
        f"childlogdir={STATE / 'logs'}",
        f"directory={HOME}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{sock}",
        "",
    ]
    for part in parts:
        lines += [
            f"[program:{part.name}]",
            "command=" + " ".join(_supervisor_quote(arg) for arg in part.command),
            f"autostart={'true' if part.autostart else 'false'}",
            "autorestart=true",
            "startsecs=3",
            "startretries=3",
            "stopsignal=TERM",
            f"stopwaitsecs={part.stopwaitsecs}",
            "stopasgroup=true",
            "killasgroup=true",
            *([f"user={part.user}"] if part.user else []),
            "redirect_stderr=true",
            f"stdout_logfile={part.log_file}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
            "",
        ]
    SUPERVISOR_CONF.write_text("\n".join(lines).replace("\n\n\n", "\n\n"))


def _supervisor_quote(arg: str) -> str:
    arg = arg.replace("%", "%%")
    return f'"{arg}"' if (" " in arg or not arg) else arg


def supervisorctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "supervisorctl"), "-c", str(SUPERVISOR_CONF), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _prepare_airflow() -> None:
    airflow_home = Path(os.environ["AIRFLOW_HOME"])
    (airflow_home / "plugins").mkdir(parents=True, exist_ok=True)
    passwords = airflow_home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({"admin": os.environ.get("CLICKSTREAM_ADMIN_PASSWORD", "admin")}))
    result = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"`airflow db migrate` failed:\n{result.stderr[-3000:]}")


def _stack_secrets() -> None:
    """Keys every Airflow component must share; generated once and kept in the state folder."""
    secrets_file = STATE / "secrets.json"
    if not secrets_file.exists():
        import secrets

        from cryptography.fernet import Fernet

        secrets_file.write_text(
            json.dumps(
                {
                    "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                    "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                    "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                }
            )
        )
        secrets_file.chmod(0o600)
    for key, value in json.loads(secrets_file.read_text()).items():
        os.environ.setdefault(key, value)


def check_ports_free(ports: dict[str, tuple[int, str]]) -> None:
    """Fail at once, naming the port and the variable that moves it, rather than hang on a taken port."""
    taken = [
        f"port {port} ({name}) is already in use: stop what holds it or set {env_var}"
        for name, (port, env_var) in ports.items()
        if port_in_use(port)
    ]
    if taken:
        raise StackError("; ".join(taken))


def up(timeout_scale: float = 1.0) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "logs").mkdir(exist_ok=True)
    _stack_secrets()
    kafka, redis_server, postgres = stack_kafka(), stack_redis(), stack_postgres()
    started = time.monotonic()
    if supervisord_running():
        print("[up] the stack is already running; checking its health")
        parts = stack_parts(kafka, redis_server, postgres)  # running components' heartbeats predate this call
        supervisorctl("start", "all")
        wait_healthy(parts, started, timeout_scale)
        return
    ports = {
        "kafka": (kafka.port, "CLICKSTREAM_KAFKA_PORT"),
        "kafka controller": (kafka.controller_port, "CLICKSTREAM_KAFKA_CONTROLLER_PORT"),
        "redis": (redis_server.port, "CLICKSTREAM_REDIS_PORT"),
        "airflow api-server": (_port("CLICKSTREAM_AIRFLOW_PORT", 8080), "CLICKSTREAM_AIRFLOW_PORT"),
    }
    if postgres is not None:
        ports["postgres"] = (postgres.port, "CLICKSTREAM_POSTGRES_PORT")
    monitoring_ports = monitoring_parts.MonitoringPorts.from_env()
    ports.update(monitoring_ports.env_vars())
    check_ports_free(ports)
    # Streaming jobs started by this stack's Airflow serve Spark's metrics where Prometheus looks for them.
    os.environ.setdefault("AIRFLOW_VAR_CLICKSTREAM_SPARK_METRICS_PORT", str(monitoring_ports.spark_metrics))
    parts = stack_parts(kafka, redis_server, postgres, since=time.time())
    kafka.prepare()
    redis_server.prepare()
    for part in monitoring(redis_server).values():
        if hasattr(part, "prepare"):
            part.prepare()
    if postgres is not None:
        postgres.prepare()
    write_supervisor_conf(parts)
    services_started = time.monotonic()
    result = subprocess.run(
        [str(VENV_BIN / "supervisord"), "-c", str(SUPERVISOR_CONF)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise StackError(f"supervisord did not start: {result.stderr or result.stdout}")
    # Services first (timed from supervisord's start), then the metadata DB migration, then Airflow's
    # components (timed from their own start), so each figure is that part's own start-up time.
    ready: dict[str, float] = {}
    if postgres is not None:
        os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", postgres.url)
    wait_healthy([p for p in parts if p.autostart], services_started, timeout_scale, ready)
    if postgres is not None:
        postgres.ensure_database()
    print("[up] migrating the Airflow metadata DB", flush=True)
    _prepare_airflow()
    airflow_started = time.monotonic()
    start_result = supervisorctl("start", *(p.name for p in parts if not p.autostart))
    if start_result.returncode != 0:
        raise StackError(f"supervisorctl could not start Airflow: {start_result.stdout} {start_result.stderr}")
    wait_healthy([p for p in parts if not p.autostart], airflow_started, timeout_scale, ready)


def wait_healthy(
    parts: list[Part], started_at: float, timeout_scale: float = 1.0, ready: dict[str, float] | None = None
) -> dict[str, float]:
    """Poll every part until all answer their health check; fail naming the first that does not.

    Parts start together under supervisord, so each one's start-up time is measured from the
    same moment: when its health check first passed.
    """
    ready = {} if ready is None else ready
    while any(part.name not in ready for part in parts):
        elapsed = time.monotonic() - started_at
        for part in parts:
            if part.name in ready:
                continue
            if part.healthy():
                ready[part.name] = time.monotonic() - started_at
                where = f" on 127.0.0.1:{part.port}" if part.port else ""
                print(f"[up] {part.name:<22} healthy{where} {ready[part.name]:.1f}s after it started", flush=True)
            elif elapsed > part.start_timeout * timeout_scale:
                status = supervisorctl("status", part.name).stdout.strip() or "not running"
                raise StackError(
                    f"{part.name} did not become healthy within {part.start_timeout * timeout_scale:.0f}s "
                    f"({status}); see its log: {part.log_file}"
                )
        time.sleep(0.5)
    return ready


def stop_spark_jobs() -> int:
    """Stop the Spark applications this checkout's Airflow started detached (supervisord does not own them).

    Each gets SIGTERM, so its running batch commits, while Kafka and Redis are still up.
    """
    from clickstream.spark_job import SparkJobHandle

    jobs = SparkJobHandle.running_from(HOME / "include" / "spark")
    for job in jobs:
        print(f"[down] stopping Spark job {Path(job.application).name} (pid {job.pid})")
        job.stop(grace_s=60)
    return len(jobs)


def down() -> None:
    if not supervisord_running():
        stop_spark_jobs()
        print("[down] the stack is not running")
        return
    # Airflow first: a scheduler or triggerer still running would restart the Spark job stopped next.
    supervisorctl("stop", *(f"airflow-{component}" for component in AIRFLOW_COMPONENTS))
    stop_spark_jobs()
    pid = int(SUPERVISOR_PID.read_text().strip())
    supervisorctl("shutdown")
    if not wait_until(lambda: not _pid_alive(pid), 90, interval=0.5):
        os.kill(pid, signal.SIGKILL)
    print("[down] stopped")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def status() -> int:
    if not supervisord_running():
        print("the stack is not running")
        return 1
    print(supervisorctl("status").stdout, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            up()
        elif args.action == "down":
            down()
        else:
            return status()
    except StackError as exc:
        print(f"[{args.action}] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
