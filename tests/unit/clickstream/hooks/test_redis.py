"""Redis URLs from Airflow connections: what the Spark jobs and the triggers connect with."""

from __future__ import annotations

import json

import pytest
from airflow.models.connection import Connection

from clickstream.hooks.redis import client_timeouts, redis_url


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


def test_client_timeouts_come_from_the_extra_and_default_to_five_seconds():
    plain = Connection(conn_id="r", uri="redis://h:1/0")
    assert client_timeouts(plain) == {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
    tuned = Connection(conn_id="r", uri="redis://h:1/0?socket_timeout=1.5&socket_connect_timeout=30")
    assert client_timeouts(tuned) == {"socket_timeout": 1.5, "socket_connect_timeout": 30.0}
    # A caller's own default (the serving API's 2 s) applies only where the extra is unset.
    assert client_timeouts(plain, default_s=2.0) == {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
    assert client_timeouts(tuned, default_s=2.0) == {"socket_timeout": 1.5, "socket_connect_timeout": 30.0}


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan"])
def test_a_timeout_that_is_not_a_positive_number_says_what_to_set(value):
    conn = Connection(conn_id="r", uri=f"redis://h:1/0?socket_timeout={value}")
    # (a URI's "0" reaches the extra as the number 0, "soon" as a string)
    expected = rf"Redis connection 'r' has extra socket_timeout='?{value}'?: set it to a number of seconds > 0"
    with pytest.raises(ValueError, match=expected):
        client_timeouts(conn)
