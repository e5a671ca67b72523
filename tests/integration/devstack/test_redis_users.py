"""Redis's ACL users against a real Redis: each may do what its part of the pipeline needs and nothing else."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from clickstream.hooks.redis import ClickstreamRedisHook
from devstack.ports import free_port
from devstack.processes import running
from devstack.redis_server import RedisServer
from devstack.stack import log_tail

pytestmark = pytest.mark.integration

SCRIPT = "return redis.call('HINCRBY', KEYS[1], 'w', 1)"
# What each user tries, as (name, call on a client).
ACTIONS = {
    "read counts": lambda c: c.hgetall("click_count:/home"),
    "add to counts": lambda c: c.hincrby("click_count:/home", "2026-12-01T00:00:00", 1),
    "write the batch fence": lambda c: c.hset("clickstream:commit:q", "batch_id", 1),
    "write a stop request": lambda c: c.hset("clickstream:control:streaming", "command", "stop"),
    "run a script on counts": lambda c: c.eval(SCRIPT, 1, "click_count:/script"),
    "reset progress (MULTI/EXEC)": lambda c: (
        c.pipeline().delete("clickstream:progress:q").hset("clickstream:progress:q", "state", "running").execute()
    ),
    "write another key": lambda c: c.set("elsewhere", 1),
    "read another key": lambda c: c.get("elsewhere"),
    "INFO": lambda c: c.info("server"),
    "CONFIG SET": lambda c: c.config_set("maxmemory-policy", "noeviction"),
    "FLUSHALL": lambda c: c.flushall(),
}
ALLOWED = {
    "writer": {
        "read counts",
        "add to counts",
        "write the batch fence",
        "write a stop request",
        "run a script on counts",
        "reset progress (MULTI/EXEC)",
    },
    "reconciler": {"read counts", "add to counts", "run a script on counts"},
    "reader": {"read counts"},
    "monitor": {"INFO"},
    "admin": set(ACTIONS),
}


def test_each_user_may_do_exactly_what_its_role_needs(redis_server, redis_client):
    table: dict[str, dict[str, str]] = {}
    wrong: list[str] = []
    for user, allowed in ALLOWED.items():
        client = redis_server.client(user)
        table[user] = {}
        for action, call in ACTIONS.items():
            try:
                call(client)
                outcome = "allowed"
            except redis.exceptions.NoPermissionError:
                outcome = "denied"
            table[user][action] = outcome
            if (outcome == "allowed") != (action in allowed):
                wrong.append(f"{user}: {action} {outcome}")
        client.close()
    width = max(map(len, ACTIONS))
    print(f"\n{'':<{width}}  " + "  ".join(f"{user:<10}" for user in table))
    for action in ACTIONS:
        print(f"{action:<{width}}  " + "  ".join(f"{table[user][action]:<10}" for user in table))
    assert not wrong, wrong


def test_the_default_user_cannot_log_in_or_run_anything(redis_server):
    anonymous = redis.Redis(host="127.0.0.1", port=redis_server.port)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=redis_server.port, username="default", password="").ping()


def test_a_wrong_password_fails_the_hook_at_once_naming_the_connection_and_the_user(redis_server, monkeypatch):
    from airflow.exceptions import AirflowException

    monkeypatch.setenv("AIRFLOW_CONN_REDIS_WRONG", f"redis://reader:not-the-password@127.0.0.1:{redis_server.port}/0")
    started = time.monotonic()
    with pytest.raises(AirflowException) as sync_error:
        ClickstreamRedisHook(redis_conn_id="redis_wrong").get_conn()
    with pytest.raises(AirflowException) as async_error:
        asyncio.run(ClickstreamRedisHook.async_client("redis_wrong"))
    assert time.monotonic() - started < 10
    for error in (sync_error.value, async_error.value):
        message = str(error)
        assert "refused connection 'redis_wrong' as user 'reader'" in message
        assert "Set the connection's login and password" in message
        assert "not-the-password" not in message


def test_what_the_writers_scripts_and_transactions_wrote_survives_a_crash_of_the_stack_redis(tmp_path):
    """The stack's Redis replays its append-only file as the default user, which is off. Redis 7.0 re-checks
    each replayed MULTI/EXEC against that user's rules (redis/redis#14541): with none, every transaction and
    script effect was dropped on restart, the counts and the batch fence with them."""
    server = RedisServer(tmp_path / "redis", free_port(), persistent=True)
    server.prepare()
    log = tmp_path / "redis.log"
    with running("redis", server.command(), server.healthy, log, timeout=30) as first:
        writer = server.client("writer")
        writer.eval(SCRIPT, 1, "click_count:/script")  # its effects go to the file as MULTI/EXEC
        writer.pipeline().hincrby("click_count:/home", "2026-12-01T00:00", 3).hset(
            "clickstream:commit:q", "batch_id", 7
        ).execute()  # a transaction, as the progress hash is reset
        time.sleep(1.5)  # appendfsync everysec
        admin = server.client("admin")
        before = {key: admin.hgetall(key) for key in admin.keys("*")}
        first.kill()  # SIGKILL, as a crash
        first.wait()
    with running("redis", server.command(), server.healthy, log, timeout=30):
        admin = server.client("admin")
        after = {key: admin.hgetall(key) for key in admin.keys("*")}
    assert before == after and len(after) == 3, (before, after, log_tail(log))
