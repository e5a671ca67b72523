"""Debian's redis-server on loopback, with ACL users only: persistent for the stack, ephemeral for fixtures."""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from string import Template

from devstack.errors import StackError
from devstack.paths import HOME
from devstack.secret_files import generated_passwords, write_private

# Redis's ACL users and their rules, shared with docker-compose.yml.
ACL_TEMPLATE = HOME / "include" / "redis" / "users.acl.template"
USERS = tuple(re.findall(r"^user (\w+) on #\$\{\1\}", ACL_TEMPLATE.read_text(), re.MULTILINE))


@dataclass
class RedisServer:
    """A redis-server bound to loopback, persisting into ``workdir`` when ``persistent``.

    Its users' passwords are generated once and kept in ``workdir``/passwords.json (0600); the server gets
    only their SHA-256 digests, in an ACL file of the same mode.
    """

    workdir: Path
    port: int
    persistent: bool = True

    @property
    def acl_file(self) -> Path:
        return self.workdir / "users.acl"

    @property
    def passwords_file(self) -> Path:
        return self.workdir / "passwords.json"

    @cached_property
    def _passwords(self) -> dict[str, str]:
        return generated_passwords(self.passwords_file, USERS)

    def passwords(self) -> dict[str, str]:
        """Each user's password: generated and kept on first use, read from the file once per instance."""
        return self._passwords

    def url(self, user: str, db: int = 0) -> str:
        """A client URL for ``user``, password included: for environments and connections, never a command line."""
        return f"redis://{user}:{self.passwords()[user]}@127.0.0.1:{self.port}/{db}"

    def airflow_connections(self) -> dict[str, str]:
        """The Airflow connections of the pipeline's Redis users, as environment variables.

        ``redis_default`` is the streaming job's writer (the operators' default); the reconciler, the SLA
        sensor and operations name their own.
        """
        return {
            "AIRFLOW_CONN_REDIS_DEFAULT": self.url("writer"),
            "AIRFLOW_CONN_REDIS_RECONCILER": self.url("reconciler"),
            "AIRFLOW_CONN_REDIS_READER": self.url("reader"),
            "AIRFLOW_CONN_REDIS_ADMIN": self.url("admin"),
        }

    def client(self, user: str = "admin", **kwargs: object):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, username=user, password=self.passwords()[user], **kwargs)

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
            "--aclfile",
            str(self.acl_file),
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
        """The working folder, and the ACL file from the kept passwords (rewritten each time: rules may change)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        digests = {user: hashlib.sha256(password.encode()).hexdigest() for user, password in self.passwords().items()}
        rules = "".join(line for line in ACL_TEMPLATE.read_text().splitlines(True) if not line.startswith("#"))
        write_private(self.acl_file, Template(rules).substitute(digests))

    def healthy(self) -> bool:
        try:
            return bool(self.client("monitor", socket_timeout=2).ping())
        except Exception:
            return False
