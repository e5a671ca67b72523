"""Synthetic page-view traffic that looks like a site's, reproducible from a seed.

Users browse in sessions: each view follows the previous one after a think time, pages are chosen
with Zipf-like popularity over a site map, the first view of a session comes from an external
referrer and later ones from the previous page. A share of the traffic is bots crawling the site
uniformly, a share arrives late (its event time lags its send time), and a share is malformed in
one of the ways :class:`~clickstream.schema.RejectReason` names.

Everything is a function of :class:`TrafficConfig`: :func:`ground_truth` replays the same stream
without Kafka, so tests and the SLA checks know what the counts must be.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from clickstream.schema import MAX_EVENT_BYTES, MAX_TS_MS, SCHEMA_VERSION, RejectReason, window_start_ms

DEFAULT_SITE_MAP: tuple[str, ...] = (
    "/home",
    "/search",
    "/products",
    *(f"/products/{i}" for i in range(1, 41)),
    "/cart",
    "/checkout",
    "/checkout/confirm",
    "/account",
    "/account/orders",
    "/help",
    "/about",
    "/contact",
    *(f"/blog/post-{i}" for i in range(1, 11)),
)

EXTERNAL_REFERRERS: tuple[str | None, ...] = (
    None,  # typed in or bookmarked
    None,
    "https://www.google.com/",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://news.ycombinator.com/",
    "https://t.co/",
    "https://www.facebook.com/",
    "https://newsletter.example.com/weekly",
)

# Short forms of common agents keep a record near 200 bytes, the size the benchmarks assume.
BROWSER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0",
    "Mozilla/5.0 (Macintosh) Safari/605.1",
    "Mozilla/5.0 (X11; Linux) Firefox/133.0",
    "Mozilla/5.0 (iPhone; iOS 18_1) Mobile/15E148",
    "Mozilla/5.0 (Android 15; Pixel 9) Chrome/131.0",
)

BOT_AGENTS: tuple[str, ...] = (
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
    "bingbot/2.0 (+http://www.bing.com/bingbot.htm)",
    "AhrefsBot/7.0 (+http://ahrefs.com/robot/)",
)

# Malformed records cycle through every way a record can be rejected.
MALFORMED_KINDS: tuple[RejectReason, ...] = (
    RejectReason.NOT_JSON,
    RejectReason.NOT_AN_OBJECT,
    RejectReason.MISSING_FIELD,
    RejectReason.WRONG_TYPE,
    RejectReason.BAD_TIMESTAMP,
    RejectReason.FUTURE_TIMESTAMP,
    RejectReason.BAD_PAGE,
    RejectReason.TOO_LARGE,
    RejectReason.UNKNOWN_VERSION,
)


@dataclass(frozen=True)
class TrafficConfig:
    """What the traffic looks like. Two configs that compare equal produce identical streams."""

    seed: int = 42
    # Event time of the first record, epoch ms; the producer sets it (now, or back-dated for bursts).
    start_ms: int = 1_750_000_000_000
    # Event-time density: record i is sent at start_ms + i * 1000 / events_per_second.
    events_per_second: float = 50.0
    site_map: tuple[str, ...] = DEFAULT_SITE_MAP
    zipf_exponent: float = 1.1
    users: int = 5_000
    mean_views_per_session: float = 6.0
    mean_think_time_s: float = 10.0
    bot_share: float = 0.02
    late_share: float = 0.0
    late_mean_delay_s: float = 20.0
    late_max_delay_s: float = 300.0
    malformed_share: float = 0.0

    def __post_init__(self) -> None:
        for name in ("bot_share", "late_share", "malformed_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.events_per_second <= 0:
            raise ValueError(f"events_per_second must be positive, got {self.events_per_second}")
        if not self.site_map:
            raise ValueError("site_map must name at least one page")
        if self.late_mean_delay_s <= 0 or self.late_max_delay_s <= 0:
            raise ValueError("late delays must be positive")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["site_map"] = list(self.site_map)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrafficConfig:
        data = dict(data)
        if "site_map" in data:
            data["site_map"] = tuple(data["site_map"])
        return cls(**data)


class Record(NamedTuple):
    """One generated record: what goes to Kafka, and what the ground truth needs to know of it."""

    key: bytes
    value: bytes
    page: str | None  # None for malformed records
    ts: int  # event time, epoch ms (send time for malformed records)
    send_ms: int  # nominal send time, epoch ms
    malformed: RejectReason | None
    bot: bool


@dataclass(slots=True)
class _Session:
    user_id: str
    session_id: str
    user_agent: str
    views_left: int
    page: str | None = None
    key: bytes = b""
    # The JSON of the fields that stay the same for the whole session, encoded once.
    head: str = ""

    def __post_init__(self) -> None:
        # Ids are generated ASCII ([a-z0-9-]): nothing to escape. Agents are encoded once per module.
        self.key = self.user_id.encode()
        self.head = (
            f'"schema_version":{SCHEMA_VERSION},"user_id":"{self.user_id}","session_id":"{self.session_id}",'
            f'"user_agent":{_AGENT_JSON[self.user_agent]},'
        )


def _json_str(value: str | None) -> str:
    return json.dumps(value, ensure_ascii=False)


_AGENT_JSON = {agent: _json_str(agent) for agent in (*BROWSER_AGENTS, *BOT_AGENTS)}


class TrafficGenerator:
    """Iterates the records of a :class:`TrafficConfig`, fast enough to feed a producer at full speed."""

    def __init__(self, config: TrafficConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        pages = config.site_map
        weights = [1.0 / (rank**config.zipf_exponent) for rank in range(1, len(pages) + 1)]
        self._page_cum = list(itertools.accumulate(weights))
        self._pages = pages
        self._page_json = {p: _json_str(p) for p in pages}
        self._ref_json = {r: _json_str(r) for r in (*EXTERNAL_REFERRERS, *pages)}
        # Concurrent sessions so that, at the configured rate, a session's views are a think time apart.
        self._slots: list[_Session | None] = [None] * max(
            1, min(20_000, round(config.events_per_second * config.mean_think_time_s))
        )
        self._session_counter = 0
        self._bots = [
            _Session(f"bot-{i}", f"bot-{i}-crawl", BOT_AGENTS[i % len(BOT_AGENTS)], 1 << 62) for i in range(3)
        ]
        self._malformed_counter = 0
        # Event ids: a seed-derived random UUID-4 prefix and a counter, unique within the stream and far
        # cheaper than 122 fresh random bits per record, which matters at hundreds of thousands a second.
        p = f"{self._rng.getrandbits(64):016x}"
        self._id_prefix = f"{p[:8]}-{p[8:12]}-4{p[13:16]}-{'89ab'[int(p[0], 16) % 4]}{p[1:4]}-"
        self._id_counter = 0

    # ---------------------------------------------------------------- pieces

    def _new_session(self) -> _Session:
        rng = self._rng
        self._session_counter += 1
        user = int(rng.random() * self.config.users)
        # Geometric number of views with the configured mean (at least one), drawn by inversion.
        p = 1.0 / max(1.0, self.config.mean_views_per_session)
        views = 1 if p >= 1.0 else min(200, 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - p)))
        return _Session(
            user_id=f"u{user:06d}",
            session_id=f"s{self.config.seed:x}-{self._session_counter:08d}",
            user_agent=BROWSER_AGENTS[user % len(BROWSER_AGENTS)],
            views_left=views,
        )

    def _encode(self, session: _Session, page: str, referrer: str | None, ts: int) -> bytes:
        self._id_counter += 1
        return (
            f'{{"event_id":"{self._id_prefix}{self._id_counter:012x}",{session.head}'
            f'"page":{self._page_json[page]},"referrer":{self._ref_json[referrer]},"ts":{ts}}}'
        ).encode()

    def _malformed(self, kind: RejectReason, session: _Session, page: str, ts: int) -> bytes:
        good = json.loads(self._encode(session, page, None, ts))
        if kind is RejectReason.NOT_JSON:
            return json.dumps(good).encode()[:57]  # cut mid-record, as a crashed writer leaves it
        if kind is RejectReason.NOT_AN_OBJECT:
            return json.dumps([good["page"], good["ts"]]).encode()
        if kind is RejectReason.MISSING_FIELD:
            del good["page"]
        elif kind is RejectReason.WRONG_TYPE:
            good["user_id"] = 12345
        elif kind is RejectReason.BAD_TIMESTAMP:
            good["ts"] = "the 3rd of never"
        elif kind is RejectReason.FUTURE_TIMESTAMP:
            # The last day before MAX_TS_MS: in the future whenever the traffic is replayed, even with an old
            # start_ms (a day ahead of a year-old burst would be valid, and would push the watermark past
            # everything), yet a plausible epoch-ms value (beyond MAX_TS_MS is a bad_timestamp).
            good["ts"] = MAX_TS_MS - 1 - ts % 86_400_000
        elif kind is RejectReason.BAD_PAGE:
            good["page"] = page + "\u0007\n"
        elif kind is RejectReason.TOO_LARGE:
            good["properties"] = {"padding": "x" * (MAX_EVENT_BYTES + 100)}
        elif kind is RejectReason.UNKNOWN_VERSION:
            good["schema_version"] = 99
        return json.dumps(good).encode()

    # ---------------------------------------------------------------- the stream

    def records(self, count: int) -> Iterator[Record]:
        """The first ``count`` records of this config's stream (a fresh generator starts from the first).

        The loop is written for speed (locals, inlined draws): it feeds a producer at full speed.
        """
        cfg = self.config
        random_ = self._rng.random
        expovariate = self._rng.expovariate
        step_ms = 1000.0 / cfg.events_per_second
        slots, n_slots = self._slots, len(self._slots)
        bots, pages, n_pages = self._bots, self._pages, len(self._pages)
        page_cum, page_total = self._page_cum, self._page_cum[-1]
        encode = self._encode
        referrers, n_referrers = EXTERNAL_REFERRERS, len(EXTERNAL_REFERRERS)
        bisect_left = bisect.bisect_left
        bot_share, late_share, malformed_share = cfg.bot_share, cfg.late_share, cfg.malformed_share
        late_rate, late_max_ms = 1.0 / cfg.late_mean_delay_s, cfg.late_max_delay_s * 1000.0
        start_ms = cfg.start_ms
        for i in range(count):
            send_ms = start_ms + int(i * step_ms)
            if bot_share and random_() < bot_share:
                session = bots[int(random_() * len(bots))]
                page = pages[int(random_() * n_pages)]
                referrer = None
                bot = True
            else:
                slot = int(random_() * n_slots)
                session = slots[slot]
                if session is None or session.views_left <= 0:
                    session = slots[slot] = self._new_session()
                    referrer = referrers[int(random_() * n_referrers)]
                else:
                    referrer = session.page
                page = pages[bisect_left(page_cum, random_() * page_total)]
                session.page = page
                session.views_left -= 1
                bot = False
            if malformed_share and random_() < malformed_share:
                kind = MALFORMED_KINDS[self._malformed_counter % len(MALFORMED_KINDS)]
                self._malformed_counter += 1
                value = self._malformed(kind, session, page, send_ms)
                yield Record(session.user_id.encode(), value, None, send_ms, send_ms, kind, bot)
                continue
            ts = send_ms
            if late_share and random_() < late_share:
                ts = send_ms - int(min(expovariate(late_rate) * 1000.0, late_max_ms)) - 1
            yield Record(session.key, encode(session, page, referrer, ts), page, ts, send_ms, None, bot)


def generate(config: TrafficConfig, count: int) -> Iterator[Record]:
    return TrafficGenerator(config).records(count)


@dataclass
class GroundTruth:
    """What a correct pipeline must end up with for a stream: counts per page and 1-minute window."""

    config: TrafficConfig
    count: int
    window_counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    late: int = 0
    bots: int = 0
    # (page, window_start_ms, lag_ms) of every late event, for judging them against a watermark.
    late_events: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return self.count - sum(self.malformed.values())

    def add(self, record: Record) -> None:
        if record.malformed is not None:
            self.malformed[record.malformed.value] += 1
            return
        window = window_start_ms(record.ts)
        self.window_counts[(record.page or "", window)] += 1
        if record.bot:
            self.bots += 1
        if record.ts < record.send_ms:
            self.late += 1
            self.late_events.append((record.page or "", window, record.send_ms - record.ts))

    def page_totals(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for (page, _), n in self.window_counts.items():
            totals[page] += n
        return totals

    def summary(self) -> dict[str, Any]:
        """A JSON-able digest for XCom: enough to check Redis against without regenerating."""
        windows = sorted({w for _, w in self.window_counts})
        return {
            "config": self.config.to_dict(),
            "count": self.count,
            "valid": self.valid,
            "malformed": dict(sorted(self.malformed.items())),
            "late": self.late,
            "bots": self.bots,
            "first_window_ms": windows[0] if windows else None,
            "last_window_ms": windows[-1] if windows else None,
            "windows": len(windows),
            "page_totals": dict(sorted(self.page_totals().items())),
            "page_newest_window_ms": dict(sorted(self.page_newest_windows().items())),
        }

    def page_newest_windows(self) -> dict[str, int]:
        """Each page's newest window: where a fresh Redis must have reached for that page."""
        newest: dict[str, int] = {}
        for page, window in self.window_counts:
            if window > newest.get(page, -1):
                newest[page] = window
        return newest


def ground_truth(config: TrafficConfig, count: int) -> GroundTruth:
    """Replay the stream of ``config`` without Kafka and count what a correct pipeline must count."""
    truth = GroundTruth(config, count)
    for record in generate(config, count):
        truth.add(record)
    return truth
