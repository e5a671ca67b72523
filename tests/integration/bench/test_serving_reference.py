"""The serving benchmark's reference answers the plugin's read with the plugin's answer, under uvicorn as the
benchmark starts it, so that the api-server's figures over its figures are Airflow's request path alone."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from bench.serving_http import page_path, wait_until_answering
from bench.serving_reference import reference_server
from clickstream import redis_layout
from clickstream.schema import WINDOW_MS
from clickstream.serving.feature_store import FeatureStore
from devstack.ports import free_port

pytestmark = pytest.mark.integration


def test_the_reference_serves_the_plugins_answer_for_the_same_read(redis_client, redis_server):
    newest = int(time.time() * 1000) // WINDOW_MS * WINDOW_MS
    cells = [("/reference/a", newest - n * WINDOW_MS, n + 1) for n in range(0, 60, 3)]
    redis_layout.apply_window_counts(redis_client, [*cells, ("/reference/b", newest, 4)])
    store = FeatureStore(redis_server.client("reader"))
    port = free_port()
    with reference_server(port, redis_server.url("reader"), workers=1):
        wait_until_answering(port, "unused", "/reference/a", timeout_s=60)
        for page in ("/reference/a", "/reference/b"):
            for _ in range(3):  # a new minute between the two reads moves both windows: read both again
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", page_path(page))
                response = conn.getresponse()
                served, status, kind = json.loads(response.read()), response.status, response.getheader("content-type")
                conn.close()
                expected = store.page_windows(page, 60)
                if served.get("to") == expected["to"]:
                    break
            assert (status, kind) == (200, "application/json")
            assert served == expected
    # /reference/b's one cell, whether it is the newest window still or a new minute began since it was written.
    assert expected["total"] == 4 and sorted(expected["counts"])[-2:] == [0, 4]
