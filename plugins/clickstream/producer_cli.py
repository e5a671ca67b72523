"""``clickstream-produce``: synthetic page views into Kafka, with a ground truth to check counts against.

    clickstream-produce                      # 50 events/s until Ctrl-C, to clickstream-events
    clickstream-produce --count 100000 --rps 0   # 100,000 events as fast as the broker takes them
    clickstream-produce --duration 60 --rps 500 --late-share 0.05 --malformed-share 0.01

Brokers and the login come from an Airflow connection (``--conn-id``), or from ``--bootstrap-servers``
with the environment: ``KAFKA_SASL_USERNAME`` and ``KAFKA_SASL_PASSWORD`` (SCRAM-SHA-512 over
SASL_PLAINTEXT unless ``KAFKA_SASL_MECHANISM``/``KAFKA_SECURITY_PROTOCOL`` say otherwise; a password is
never an argument, where the process list would show it). Delivery is
acks=all with idempotence; every delivery report is checked. Ctrl-C stops sending, flushes what was
sent and prints the summary. An unreachable broker or a missing topic is an error within
``--connect-timeout`` seconds, never a hang.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import TextIO

from clickstream.producing import BurstProducer, DeliveryStats, ProducerError
from clickstream.schema import TOPIC
from clickstream.traffic import GroundTruth, TrafficConfig, TrafficGenerator

EXIT_OK, EXIT_FAILED_DELIVERIES, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clickstream-produce",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    how_long = parser.add_mutually_exclusive_group()
    how_long.add_argument("--count", type=int, help="send this many events, then stop")
    how_long.add_argument("--duration", type=float, help="send for this many seconds, then stop")
    parser.add_argument("--rps", type=float, default=50.0, help="events per second; 0 = as fast as possible")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--bootstrap-servers", help="host:port[,host:port]; default $KAFKA_BOOTSTRAP_SERVERS")
    where.add_argument("--conn-id", help="an Airflow Kafka connection to take the brokers from, e.g. kafka_default")
    parser.add_argument("--topic", default=TOPIC)
    parser.add_argument("--seed", type=int, default=42, help="traffic is reproducible from this seed")
    parser.add_argument("--bot-share", type=float, default=0.02)
    parser.add_argument("--late-share", type=float, default=0.0, help="share of events whose event time lags")
    parser.add_argument("--late-mean-delay", type=float, default=20.0, help="mean lag of late events, seconds")
    parser.add_argument("--malformed-share", type=float, default=0.0, help="share of deliberately invalid records")
    parser.add_argument("--connect-timeout", type=float, default=15.0, help="seconds to wait for the broker")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="live progress line (default: when stderr is a terminal)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument("--verbose", action="store_true", help="show the Kafka client's own log lines")
    return parser


class ProgressLine:
    """A one-line progress bar with the current rate, redrawn in place on a terminal."""

    def __init__(self, total: int | None, stream: TextIO, in_place: bool) -> None:
        self.total, self.stream, self.in_place = total, stream, in_place
        self._last_sent, self._last_time = 0, time.monotonic()

    def __call__(self, stats: DeliveryStats) -> None:
        now = time.monotonic()
        current_rate = (stats.sent - self._last_sent) / max(now - self._last_time, 1e-6)
        self._last_sent, self._last_time = stats.sent, now
        if self.total:
            done = min(1.0, stats.sent / self.total)
            bar = "#" * int(done * 30) + "-" * (30 - int(done * 30))
            head = f"[{bar}] {stats.sent:,}/{self.total:,} {done:4.0%}"
        else:
            head = f"sent {stats.sent:,}"
        line = f"{head}  {current_rate:,.0f} ev/s  delivered {stats.delivered:,}  failed {stats.failed:,}"
        self.stream.write(("\r" + line + "\033[K") if self.in_place else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.in_place:
            self.stream.write("\n")


def summary_text(stats: DeliveryStats, truth: GroundTruth) -> str:
    d = stats.to_dict()
    lat = (
        "n/a" if d["latency_p50_ms"] is None else f"p50 {d['latency_p50_ms']:.1f} ms, p99 {d['latency_p99_ms']:.1f} ms"
    )
    lines = [
        f"sent       {d['sent']:>12,}",
        f"delivered  {d['delivered']:>12,}",
        f"failed     {d['failed']:>12,}" + (f"  {d['errors']}" if d["errors"] else ""),
        f"rate       {d['events_per_s']:>12,.0f} events/s over {d['elapsed_s']:.2f} s",
        f"latency    {lat}",
        f"malformed  {sum(truth.malformed.values()):>12,}   late {truth.late:,}   bots {truth.bots:,}",
    ]
    if stats.interrupted:
        lines.append("interrupted: stopped early, everything sent was flushed")
    return "\n".join(lines)


def make_producer(args: argparse.Namespace) -> BurstProducer:
    if args.conn_id:
        from clickstream.hooks.producer import ClickstreamProducerHook

        producer = ClickstreamProducerHook(kafka_config_id=args.conn_id).get_producer()
        producer.connect_timeout_s = args.connect_timeout
        return producer
    servers = args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    return BurstProducer({"bootstrap.servers": servers, **login_from_env()}, connect_timeout_s=args.connect_timeout)


def login_from_env() -> dict[str, str]:
    """librdkafka login settings from ``KAFKA_SASL_USERNAME``/``KAFKA_SASL_PASSWORD`` (none when unset)."""
    username = os.environ.get("KAFKA_SASL_USERNAME")
    if not username:
        return {}
    return {
        "security.protocol": os.environ.get("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        "sasl.mechanism": os.environ.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        "sasl.username": username,
        "sasl.password": os.environ.get("KAFKA_SASL_PASSWORD", ""),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.CRITICAL, format="%(levelname)s %(message)s")
    if args.rps < 0:
        print("error: --rps must be 0 (full speed) or positive", file=sys.stderr)
        return EXIT_ERROR
    pace = args.rps or None
    if args.duration is not None and pace is None:
        print("error: --duration needs a positive --rps (or use --count for a full-speed burst)", file=sys.stderr)
        return EXIT_ERROR
    count = args.count if args.count is not None else int(args.duration * pace) if args.duration else sys.maxsize
    now_ms = int(time.time() * 1000)
    # Paced traffic happens now; a full-speed burst replays the last moments of traffic at 1,000 events/s.
    density = pace or 1000.0
    start_ms = now_ms if pace else now_ms - int(count * 1000 / density)
    try:
        config = TrafficConfig(
            seed=args.seed,
            start_ms=start_ms,
            events_per_second=density,
            bot_share=args.bot_share,
            late_share=args.late_share,
            late_mean_delay_s=args.late_mean_delay,
            malformed_share=args.malformed_share,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR

    try:
        producer = make_producer(args)
        show = sys.stderr.isatty() if args.progress is None else args.progress
        progress = (
            ProgressLine(None if count == sys.maxsize else count, sys.stderr, sys.stderr.isatty()) if show else None
        )
        truth = GroundTruth(config, count)
        stats = producer.send(
            args.topic,
            TrafficGenerator(config).records(count),
            rate=pace,
            truth=truth,
            progress=progress,
            progress_every_s=0.25 if progress and progress.in_place else 5.0,
        )
    except ProducerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if progress is not None:
        progress.close()
    truth.count = stats.sent
    if args.json:
        print(json.dumps({"delivery": stats.to_dict(), "ground_truth": truth.summary()}))
    else:
        print(summary_text(stats, truth))
    if stats.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED_DELIVERIES if stats.failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
