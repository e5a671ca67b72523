"""Redis comes back from an older copy while a micro-batch is being computed, after the sink read its commit.

The gap check at the start of a batch cannot see this: the batch was computed against the commit it read, and
Redis lost the batches before it only afterwards. The write itself must notice (its script checks that the
commit is still the one read) and the sink must recount what Redis lost before applying the batch. The
restore is the test's own: its ``prepare`` step restores Redis's keys from a snapshot while one batch is
being prepared, in a real streaming query with real Kafka and Redis.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from spark_jobs import foreach_batch_query, produce, redis_counts

from clickstream import redis_layout
from clickstream.kafka_security import SECURITY_ENV, security_settings
from clickstream.redis_layout import COUNTS_QUERY
from clickstream.spark.parse import parse_events
from clickstream.spark.sinks import PageViewsSink
from clickstream.traffic import TrafficConfig, ground_truth

pytestmark = pytest.mark.integration


def test_a_restore_between_the_commit_read_and_the_write_is_recounted_not_lost(
    spark, kafka_broker, topic_factory, redis_client, redis_server, monkeypatch, tmp_path, caplog
):
    topic = topic_factory("restore-race", partitions=1)
    dlq = topic_factory("restore-race-dlq", partitions=1, dead_letters_of=topic)
    config = TrafficConfig(seed=31, start_ms=int(time.time() * 1000) - 300_000, events_per_second=20)
    produce(kafka_broker.client_config("producer"), topic, config, 2500)
    truth = ground_truth(config, 2500)

    prepared = [0]
    snapshot: dict[bytes, bytes] = {}

    def prepare(raw):  # the product's parse; around it, the test's own Redis snapshot and restore
        prepared[0] += 1
        if prepared[0] == 2:  # batch 1 is being prepared: Redis holds batch 0
            snapshot.update({key: redis_client.dump(key) for key in redis_client.keys("*")})
        elif prepared[0] == 4:  # batch 3 read commit 2; Redis now comes back holding batch 0 only
            redis_client.flushdb()
            for key, value in snapshot.items():
                redis_client.restore(key, 0, value)
        return parse_events(raw)

    checkpoint = tmp_path / "checkpoint"
    # The sink runs in this process's Spark session and reads its Kafka login from the environment.
    monkeypatch.setenv(SECURITY_ENV, json.dumps(security_settings(kafka_broker.client_config("streaming"))))
    sink = PageViewsSink(
        redis_server.url("writer"),
        kafka_broker.bootstrap_servers,
        dlq,
        watermark_delay_ms=3_600_000,
        retention_ms=None,
        prepare=prepare,
        query_checkpoint=str(checkpoint),
    )
    query = foreach_batch_query(
        spark, kafka_broker.client_config("streaming"), topic, sink, checkpoint, max_offsets=500, name=COUNTS_QUERY
    )
    with caplog.at_level(logging.INFO, logger="clickstream.spark.sinks"):
        query.awaitTermination(300)
    assert query.exception() is None, query.exception()
    assert snapshot, "the test's restore never ran"

    moved = [r.getMessage() for r in caplog.records if "looking again before applying it" in r.getMessage()]
    recounted = [r.getMessage() for r in caplog.records if "recounting batches" in r.getMessage()]
    print("\n" + "\n".join(moved + recounted))
    assert len(moved) == 1 and "batch 3:" in moved[0] and "holds batch 0, not the 2 read" in moved[0]
    assert len(recounted) == 1 and "recounting batches 1-2 from Kafka" in recounted[0]
    # Nothing lost, nothing counted twice.
    assert redis_counts(redis_client) == dict(truth.window_counts)
    commit = redis_layout.read_commit(redis_client, redis_layout.commit_key(query.id))
    assert commit.batch_id == query.lastProgress["batchId"] == 4
