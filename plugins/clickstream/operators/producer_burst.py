"""Fire a burst of synthetic page views into Kafka and record what a correct pipeline must count."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.observability.stats import Stats

from clickstream.hooks.producer import ClickstreamProducerHook
from clickstream.operators._templated import optional
from clickstream.producing import ProducerError
from clickstream.schema import TOPIC
from clickstream.traffic import GroundTruth, TrafficConfig, TrafficGenerator

# Event-time density of a full-speed burst: its events are spread as if sent at this rate, ending now.
DEFAULT_BURST_EVENTS_PER_SECOND = 1000.0


def plan_burst(
    events: int | None, duration_s: float | None, rate: float | None, now_ms: int, burst_events_per_second: float
) -> tuple[int, float | None, float, int]:
    """Resolve the arguments into (count, pacing rate or None, event-time density, first event time).

    A paced burst starts now, in real time. A full-speed burst is back-dated so that its newest
    event is now: replaying the last few minutes of traffic at once, never events from the future.
    """
    if (events is None) == (duration_s is None):
        raise ValueError("give exactly one of events (a count) or duration_s (with rate)")
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive events/s, got {rate}")
    if duration_s is not None:
        if rate is None:
            raise ValueError("duration_s needs rate: a burst of D seconds at R events/s sends D*R events")
        if duration_s <= 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        count = int(duration_s * rate)
    else:
        assert events is not None
        if events <= 0:
            raise ValueError(f"events must be positive, got {events}")
        count = events
    if rate is not None:
        return count, rate, rate, now_ms
    span_ms = int(count * 1000 / burst_events_per_second)
    return count, None, burst_events_per_second, now_ms - span_ms


class ProduceClickstreamBurstOperator(BaseOperator):
    """Send ``events`` records at full speed, or ``duration_s`` seconds at ``rate`` events/s.

    The traffic is :mod:`clickstream.traffic`'s, reproducible from ``seed``. Returns (and so pushes to
    XCom) ``{"topic", "delivery", "ground_truth", "kafka_time_range_ms"}``: delivery counts and latencies;
    a digest of exactly what was sent, including the traffic config that regenerates it; and the Kafka
    record-time range that holds the burst, for the reconciler. Counts are also
    emitted as Airflow StatsD metrics ``clickstream.producer.*``. Any undelivered record fails the task.

    :param topic: The topic to send to. (templated) Default: ``"clickstream-events"``.
    :param events: How many records to send; give exactly one of ``events`` and ``duration_s``. ``None``,
        ``""`` or ``"None"`` leave it unset. (templated) Default: ``None``.
    :param duration_s: How many seconds of traffic to send at ``rate`` (``duration_s * rate`` records); give
        exactly one of ``events`` and ``duration_s``. (templated) Default: ``None``.
    :param rate: Events per second to pace the burst at, starting now; ``None`` sends at full speed, back-dated
        so that the newest event is now. Required with ``duration_s``. (templated) Default: ``None``.
    :param seed: The seed the traffic is generated from: the same seed and arguments send the same records.
        (templated) Default: ``42``.
    :param bot_share: The share of records, from 0 to 1, that come from bots crawling the site uniformly.
        (templated) Default: ``0.02``.
    :param late_share: The share of records, from 0 to 1, whose event time lags their send time. (templated)
        Default: ``0.0``.
    :param malformed_share: The share of records, from 0 to 1, that are malformed, cycling through every
        reject reason. (templated) Default: ``0.0``.
    :param late_mean_delay_s: The mean lag, in seconds, of a late record's event time (exponentially
        distributed). Default: ``20.0``.
    :param late_max_delay_s: The largest lag, in seconds, of a late record's event time. Default: ``300.0``.
    :param burst_events_per_second: The event-time density of a full-speed burst: its records are spread as
        if sent at this rate, ending now. Default: ``1000.0``.
    :param kafka_config_id: The Airflow Kafka connection to produce through. (templated)
        Default: ``"kafka_default"``.
    """

    template_fields: Sequence[str] = (
        "topic",
        "events",
        "duration_s",
        "rate",
        "seed",
        "late_share",
        "malformed_share",
        "bot_share",
        "kafka_config_id",
    )
    ui_color = "#fff3e0"

    def __init__(
        self,
        *,
        topic: str = TOPIC,
        events: int | str | None = None,
        duration_s: float | str | None = None,
        rate: float | str | None = None,
        seed: int | str = 42,
        bot_share: float | str = 0.02,
        late_share: float | str = 0.0,
        malformed_share: float | str = 0.0,
        late_mean_delay_s: float = 20.0,
        late_max_delay_s: float = 300.0,
        burst_events_per_second: float = DEFAULT_BURST_EVENTS_PER_SECOND,
        kafka_config_id: str = "kafka_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.topic = topic
        self.events = events
        self.duration_s = duration_s
        self.rate = rate
        self.seed = seed
        self.bot_share = bot_share
        self.late_share = late_share
        self.malformed_share = malformed_share
        self.late_mean_delay_s = late_mean_delay_s
        self.late_max_delay_s = late_max_delay_s
        self.burst_events_per_second = burst_events_per_second
        self.kafka_config_id = kafka_config_id

    def traffic(self, now_ms: int) -> tuple[TrafficConfig, int, float | None]:
        try:
            count, pace, density, start_ms = plan_burst(
                optional(self.events, int),
                optional(self.duration_s, float),
                optional(self.rate, float),
                now_ms,
                float(self.burst_events_per_second),
            )
            config = TrafficConfig(
                seed=int(self.seed),
                start_ms=start_ms,
                events_per_second=density,
                bot_share=float(self.bot_share),
                late_share=float(self.late_share),
                malformed_share=float(self.malformed_share),
                late_mean_delay_s=float(self.late_mean_delay_s),
                late_max_delay_s=float(self.late_max_delay_s),
            )
        except ValueError as exc:
            raise AirflowFailException(f"invalid burst for task {self.task_id}: {exc}") from None
        return config, count, pace

    def execute(self, context: Any) -> dict[str, Any]:
        config, count, pace = self.traffic(int(time.time() * 1000))
        how = f"at {pace:g} events/s" if pace else "at full speed"
        self.log.info("Sending %d events to %s %s (seed %d)", count, self.topic, how, config.seed)
        truth = GroundTruth(config, count)
        try:
            producer = ClickstreamProducerHook(kafka_config_id=self.kafka_config_id).get_producer()
            sent_from_ms = int(time.time() * 1000)
            stats = producer.send(self.topic, TrafficGenerator(config).records(count), rate=pace, truth=truth)
        except ProducerError as exc:
            raise AirflowException(str(exc)) from None
        delivery = stats.to_dict()
        summary = truth.summary()
        tags = {"topic": self.topic}
        Stats.incr("clickstream.producer.events_sent", count=stats.sent, tags=tags)
        Stats.incr("clickstream.producer.events_delivered", count=stats.delivered, tags=tags)
        Stats.incr("clickstream.producer.events_failed", count=stats.failed, tags=tags)
        Stats.incr("clickstream.producer.events_malformed", count=sum(truth.malformed.values()), tags=tags)
        Stats.gauge("clickstream.producer.events_per_s", stats.rate, tags=tags)
        if delivery["latency_p99_ms"] is not None:
            Stats.timing("clickstream.producer.delivery_latency_p99", delivery["latency_p99_ms"], tags=tags)
        self.log.info("Delivery: %s", delivery)
        # Kafka stamps each record when it is produced: this range selects the burst for the reconciler.
        sent_range_ms = [sent_from_ms, int(time.time() * 1000) + 1]
        result = {
            "topic": self.topic,
            "delivery": delivery,
            "ground_truth": summary,
            "kafka_time_range_ms": sent_range_ms,
        }
        if stats.failed or stats.delivered != count:
            context["ti"].xcom_push(key="failed_burst", value=result)
            raise AirflowException(
                f"{stats.failed} of {count} events were not delivered to {self.topic}: {delivery['errors']}. "
                "The ground truth no longer matches the topic; check the broker and rerun the burst"
            )
        return result
