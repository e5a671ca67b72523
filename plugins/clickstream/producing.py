"""Sending synthetic traffic to Kafka quickly and safely, with every delivery accounted for.

No Airflow here: the producer hook, the producer CLI and the benchmark all drive this class, so
the numbers the benchmark prints are the numbers users get.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from clickstream.kafka_security import DENIED_ERRORS as _DENIED
from clickstream.kafka_security import LoginRefused, LoginWatch, login_problem
from clickstream.traffic import GroundTruth, Record

log = logging.getLogger(__name__)

# Safe by default (acks=all, idempotence), tuned for throughput (batches of many small records).
DEFAULT_PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 10,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 262_144,
    # A record that cannot be delivered fails within this bound instead of being retried forever. Five
    # minutes (librdkafka's own default) rides out a broker restart, which idempotence keeps exact: a
    # restart after a crash recovers the broker's logs first, and on a loaded host it still refused
    # connections over a minute after its start.
    "message.timeout.ms": 300_000,
    "socket.connection.setup.timeout.ms": 10_000,
}


class ProducerError(RuntimeError):
    """The burst cannot start or finish; the message says what to fix."""


@dataclass
class DeliveryStats:
    """What happened to every record handed to the producer."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    bytes_sent: int = 0
    interrupted: bool = False
    _latencies: array = field(default_factory=lambda: array("d"), repr=False)

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def latency_ms(self, quantile: float) -> float | None:
        """Delivery latency (produce() to broker acknowledgement) at ``quantile``, in ms."""
        if not self._latencies:
            return None
        ordered = sorted(self._latencies)
        index = min(len(ordered) - 1, max(0, round(quantile * (len(ordered) - 1))))
        return ordered[index] * 1000.0

    def to_dict(self) -> dict[str, Any]:
        p50, p99 = self.latency_ms(0.5), self.latency_ms(0.99)
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "failed": self.failed,
            "errors": dict(self.errors.most_common(10)),
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(self.rate, 1),
            "bytes_sent": self.bytes_sent,
            "latency_p50_ms": None if p50 is None else round(p50, 2),
            "latency_p99_ms": None if p99 is None else round(p99, 2),
            "interrupted": self.interrupted,
        }


ProgressCallback = Callable[[DeliveryStats], None]


class BurstProducer:
    """Sends records to one topic, at a steady rate or as fast as the broker takes them."""

    def __init__(self, config: dict[str, Any], connect_timeout_s: float = 15.0) -> None:
        self.config = {**DEFAULT_PRODUCER_CONFIG, **config}
        if not self.config.get("bootstrap.servers"):
            raise ProducerError("no bootstrap.servers: pass --bootstrap-servers or a Kafka connection that has them")
        self.connect_timeout_s = connect_timeout_s
        # librdkafka's own log lines go through Python logging (the task log under Airflow), not raw stderr.
        self.config.setdefault("logger", logging.getLogger("clickstream.kafka"))
        self.login = LoginWatch(self.config.get("error_cb"))
        self.config["error_cb"] = self.login
        self.producer = Producer(self.config)

    def check_topic(self, topic: str) -> int:
        """Fail fast, with the fix, when the broker is unreachable or the topic is missing; return its partitions."""
        servers = self.config["bootstrap.servers"]
        try:
            metadata = self.login.list_topics(self.producer, self.connect_timeout_s, topic)
        except LoginRefused as refused:
            raise ProducerError(str(login_problem(self.config, refused.args[0]))) from None
        except KafkaException as exc:
            if login := login_problem(self.config, exc.args[0]):
                raise ProducerError(login) from None
            hint = "" if self.config.get("sasl.username") else " (and, if the broker requires a login, set one)"
            raise ProducerError(
                f"cannot reach Kafka at {servers} within {self.connect_timeout_s:.0f}s ({exc.args[0]}): "
                f"check that the broker is running (`make up`) and that the bootstrap servers are right{hint}"
            ) from None
        topic_meta = metadata.topics.get(topic)
        if topic_meta is not None and topic_meta.error is not None and topic_meta.error.name() in _DENIED:
            user = self.config.get("sasl.username", "ANONYMOUS")
            raise ProducerError(
                f"Kafka user {user!r} may not write to topic {topic!r} ({topic_meta.error.str()}): produce as a "
                "principal whose ACLs allow it (kafka_default is the producer), or grant WRITE on the topic"
            )
        if topic_meta is None or topic_meta.error is not None:
            reason = topic_meta.error.str() if topic_meta is not None and topic_meta.error else "not found"
            raise ProducerError(
                f"topic {topic!r} is not available on {servers} ({reason}): create it first, for example with "
                "CreateClickstreamTopicsOperator or the clickstream_pipeline DAG's create_kafka_topic task"
            )
        return len(topic_meta.partitions)

    def delivery_timeout_s(self) -> float:
        """librdkafka's delivery timeout in seconds, by either of its names (0: no limit)."""
        # librdkafka has checked the value already (the Producer refuses one that is not a number of ms).
        seconds = float(self.config.get("delivery.timeout.ms", self.config["message.timeout.ms"])) / 1000
        return max(seconds, 0.0)

    def send(
        self,
        topic: str,
        records: Iterable[Record],
        rate: float | None = None,
        truth: GroundTruth | None = None,
        progress: ProgressCallback | None = None,
        progress_every_s: float = 0.5,
        flush_timeout_s: float | None = None,
    ) -> DeliveryStats:
        """Send ``records``; ``rate`` events/s paces them, ``None`` means full speed.

        Every record is accounted for: delivered, failed with a reason, or (after Ctrl-C) flushed before
        returning. ``truth`` accumulates the ground truth of exactly what was sent. The final flush waits
        ``flush_timeout_s``, by default the delivery timeout and 10 s more: by then librdkafka has given
        every record its verdict, so none is counted failed while a restarted broker could still take it.
        A delivery timeout of 0 (librdkafka's "no limit") flushes until every record has its verdict.
        """
        if flush_timeout_s is None:
            delivery_s = self.delivery_timeout_s()
            flush_timeout_s = delivery_s + 10 if delivery_s else -1.0  # -1: confluent-kafka's "no limit"
        self.check_topic(topic)
        stats = DeliveryStats()
        latencies = stats._latencies
        errors = stats.errors

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                stats.delivered += 1
                latency = msg.latency()
                if latency is not None:
                    latencies.append(latency)
            else:
                stats.failed += 1
                errors[err.str()] += 1

        produce, poll = self.producer.produce, self.producer.poll
        started = time.monotonic()
        next_progress = started + progress_every_s
        interval = 1.0 / rate if rate else 0.0
        sent = 0
        nbytes = 0
        # Ctrl-C sets a flag that the loop reads between records. A KeyboardInterrupt raised between a
        # record's produce() and its counting would leave one delivered record outside `sent` and the truth.
        interrupt = threading.Event()
        previous_handler = None
        if threading.current_thread() is threading.main_thread():
            previous_handler = signal.signal(signal.SIGINT, lambda *_: interrupt.set())
        try:
            for record in records:
                if interrupt.is_set():
                    raise KeyboardInterrupt
                while True:
                    try:
                        produce(topic, record.value, record.key, on_delivery=on_delivery)
                        break
                    except BufferError:
                        poll(0.01)  # the local queue is full: let deliveries drain it
                sent += 1
                nbytes += len(record.value)
                if truth is not None:
                    truth.add(record)
                if sent & 0x3FF == 0 or interval:
                    poll(0)
                    now = time.monotonic()
                    if interval:
                        ahead = started + sent * interval - now
                        if ahead > 0.002:
                            time.sleep(ahead)
                    if progress is not None and now >= next_progress:
                        stats.sent, stats.bytes_sent, stats.elapsed_s = sent, nbytes, now - started
                        progress(stats)
                        next_progress = now + progress_every_s
        except KeyboardInterrupt:
            stats.interrupted = True
            log.warning("interrupted after %d records: flushing what was sent", sent)
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            stats.sent, stats.bytes_sent = sent, nbytes
            remaining = self.producer.flush(flush_timeout_s)
            stats.elapsed_s = time.monotonic() - started
            if remaining:
                stats.failed += remaining
                errors[f"not delivered within {flush_timeout_s:.0f}s of flushing"] += remaining
            if progress is not None:
                progress(stats)
        return stats
