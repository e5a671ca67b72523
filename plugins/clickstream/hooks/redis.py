"""Redis clients for the pipeline's state, built from an Airflow connection (``redis_default`` by default).

The official provider's :class:`RedisHook` gives the blocking client operators use. Triggers need an
asyncio client, and the Spark applications need a URL; both come from the same connection here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.exceptions import AirflowException
from airflow.providers.redis.hooks.redis import RedisHook
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret


def redis_url(conn: Any) -> str:
    """A ``redis://`` (or ``rediss://``) URL for an Airflow Redis connection, credentials included.

    The database comes from the extra ``db`` (the provider's rule) or a numeric URI path (``.../0``).
    """
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    db = extra.get("db")
    if db is None and str(conn.schema or "").isdigit():
        db = conn.schema
    scheme = "rediss" if str(extra.get("ssl", "")).lower() in {"true", "1"} else "redis"
    password = None if str(conn.password).lower() in {"none", "false", ""} else conn.password
    auth = ""
    if conn.login or password:
        auth = f"{quote(conn.login or '', safe='')}:{quote(password or '', safe='')}@"
    if not conn.host:
        raise ValueError(f"Redis connection {conn.conn_id!r} has no host: set it, e.g. redis://host:6379/0")
    return f"{scheme}://{auth}{conn.host}:{conn.port or 6379}/{int(db or 0)}"


DEFAULT_TIMEOUT_S = 5.0  # redis-py 8's own default; before 8 it had none, and `redis>=5` is what we require


def client_timeouts(conn: Any, default_s: float = DEFAULT_TIMEOUT_S) -> dict[str, float]:
    """The clients' ``socket_timeout`` and ``socket_connect_timeout``: the connection extras of those names,
    ``default_s`` (5 s) when unset. A Redis that hangs (stopped, or behind a network that drops packets) then fails a
    command, which the callers treat as an outage, instead of blocking them for good. Each attempt gets the
    timeout; redis-py 8 retries a blocking client's command (up to 10 times), the asyncio clients' not."""
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    timeouts = {}
    for name in ("socket_timeout", "socket_connect_timeout"):
        value = extra.get(name, default_s)
        try:
            timeouts[name] = float(value)
        except (TypeError, ValueError):
            timeouts[name] = float("nan")
        if not timeouts[name] > 0:  # also NaN
            raise ValueError(
                f"Redis connection {conn.conn_id!r} has extra {name}={value!r}: set it to a number of seconds > 0"
            )
    return timeouts


def refused(conn: Any, error: Exception) -> AirflowException:
    """What to fix when Redis refuses a connection's user: which connection, which user, and why."""
    return AirflowException(
        f"Redis at {conn.host}:{conn.port or 6379} refused connection {conn.conn_id!r} as user "
        f"{conn.login or 'default'!r}: {error} Set the connection's login and password to one of the Redis "
        "ACL users (the local stack generates them; see the README's Redis users)."
    )


class ClickstreamRedisHook(RedisHook):
    """The provider's hook plus the pipeline's two other ways in: a URL and an asyncio client.

    Each checks its credentials first (one PING), so a wrong user or password fails at once with what to fix.
    A Redis that does not answer is not judged here: the callers ride out restarts in their own ways. Every
    client's commands time out (:func:`client_timeouts`), so a hung Redis is an outage to them, not a hang.
    """

    def get_conn(self) -> Any:
        import redis

        if self.redis is not None:  # checked when it was made
            return self.redis
        timeouts = client_timeouts(self.get_connection(self.redis_conn_id))  # a bad extra fails before any client
        client = super().get_conn()
        # The provider passes no timeouts. Its pool makes every connection from these settings, lazily, so
        # they hold from the first command on (redis-py 8 keeps the originals beside them as orig_*). A
        # cluster client has a pool per node, made as it is built: it keeps redis-py's defaults.
        pool = getattr(client, "connection_pool", None)
        settings = pool.connection_kwargs if pool is not None else {}
        for name, seconds in timeouts.items():
            settings[name] = seconds
            if f"orig_{name}" in settings:
                settings[f"orig_{name}"] = seconds
        try:
            client.ping()
        except (redis.exceptions.AuthenticationError, redis.exceptions.NoPermissionError) as exc:
            raise refused(self.get_connection(self.redis_conn_id), exc) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            pass
        return client

    def url(self) -> str:
        """The connection as a URL with its credentials, once Redis has accepted them."""
        self.get_conn()
        url = redis_url(self.get_connection(self.redis_conn_id))
        mask_secret(url)  # the password is masked already; the URL that carries it is a secret too
        return url

    @staticmethod
    async def async_client(redis_conn_id: str) -> Any:
        """An asyncio client for triggers: the connection is fetched without blocking the event loop."""
        import redis.asyncio

        conn = await BaseHook.aget_connection(redis_conn_id)
        client = redis.asyncio.Redis.from_url(redis_url(conn), **client_timeouts(conn))
        try:
            await client.ping()
        except (redis.exceptions.AuthenticationError, redis.exceptions.NoPermissionError) as exc:
            raise refused(conn, exc) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            pass
        return client
