"""Redis clients for the pipeline's state, built from the Airflow connection ``redis_default``.

The official provider's :class:`RedisHook` gives the blocking client operators use. Triggers need an
asyncio client, and the Spark applications need a URL; both come from the same connection here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.providers.redis.hooks.redis import RedisHook
from airflow.sdk import BaseHook


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


class ClickstreamRedisHook(RedisHook):
    """The provider's hook plus the pipeline's two other ways in: a URL and an asyncio client."""

    def url(self) -> str:
        return redis_url(self.get_connection(self.redis_conn_id))

    @staticmethod
    async def async_client(redis_conn_id: str) -> Any:
        """An asyncio client for triggers: the connection is fetched without blocking the event loop."""
        import redis.asyncio

        conn = await BaseHook.aget_connection(redis_conn_id)
        return redis.asyncio.Redis.from_url(redis_url(conn))
