"""Debian's PostgreSQL as Airflow's metadata DB (``CLICKSTREAM_AIRFLOW_DB=postgres``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devstack.errors import StackError


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
        # Into a scratch folder renamed when complete: an interrupted initdb leaves no half cluster behind.
        scratch = self.workdir / "data.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        initdb = [self.binary("initdb"), "-D", str(scratch), "-U", self.user, "--auth=trust", "-E", "UTF8"]
        result = subprocess.run(self._as_owner(initdb), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(
                f"initdb in {scratch} failed (as root, the postgres user must be able to reach that folder; "
                f"set CLICKSTREAM_STATE to one it can):\n{result.stderr[-2000:]}"
            )
        shutil.rmtree(self.data_dir, ignore_errors=True)  # no PG_VERSION: not a cluster
        scratch.rename(self.data_dir)

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
