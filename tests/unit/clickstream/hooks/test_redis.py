"""Redis URLs from Airflow connections: what the Spark jobs and the triggers connect with."""

from __future__ import annotations

import json

import pytest
from airflow.models.connection import Connection

from clickstream.hooks.redis import redis_url


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://cache:6380/3", "redis://cache:6380/3"),
        ("redis://:s%2Fecret@cache:6379", "redis://:s%2Fecret@cache:6379/0"),
        ("redis://user:pw@cache", "redis://user:pw@cache:6379/0"),
    ],
)
def test_urls_from_connection_uris(uri, url):
    assert redis_url(Connection(conn_id="r", uri=uri)) == url


def test_db_and_ssl_from_extra_as_the_provider_reads_them():
    conn = Connection(conn_id="r", conn_type="redis", host="h", port=1, extra=json.dumps({"db": 2, "ssl": True}))
    assert redis_url(conn) == "rediss://h:1/2"


def test_a_connection_without_host_says_what_to_set():
    with pytest.raises(ValueError, match="Redis connection 'r' has no host"):
        redis_url(Connection(conn_id="r", conn_type="redis"))
