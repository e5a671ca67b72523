from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import pytest

from clickstream.schema import InvalidEvent, RejectReason, validate, window_start_ms
from clickstream.traffic import MALFORMED_KINDS, TrafficConfig, generate, ground_truth

START = 1_750_000_000_000


def config(**kw) -> TrafficConfig:
    return TrafficConfig(start_ms=START, events_per_second=200, **kw)


def test_same_seed_same_bytes_other_seed_other_stream():
    first = [r.value for r in generate(config(seed=1), 2000)]
    assert first == [r.value for r in generate(config(seed=1), 2000)]
    assert first != [r.value for r in generate(config(seed=2), 2000)]


def test_valid_records_validate_and_carry_their_send_time():
    records = list(generate(config(), 5000))
    now = START + 10**9
    for r in records:
        view = validate(r.value, now_ms=now)
        assert (view.page, view.ts, view.user_id.encode()) == (r.page, r.ts, r.key)
    assert [r.send_ms for r in records] == sorted(r.send_ms for r in records)
    assert records[-1].send_ms == START + 4999 * 5  # 200 events/s


def test_each_malformed_record_is_rejected_for_the_reason_it_was_made_with():
    records = [r for r in generate(config(malformed_share=0.2), 5000) if r.malformed]
    assert {r.malformed for r in records} == set(MALFORMED_KINDS)
    for r in records:
        with pytest.raises(InvalidEvent) as info:
            validate(r.value, now_ms=r.send_ms)
        assert info.value.reason is r.malformed


def test_late_events_lag_their_send_time_within_the_bound():
    cfg = config(late_share=0.3, late_mean_delay_s=5, late_max_delay_s=30)
    late = [r for r in generate(cfg, 5000) if r.page and r.ts < r.send_ms]
    assert 0.25 < len(late) / 5000 < 0.35
    assert all(0 < r.send_ms - r.ts <= 30_001 for r in late)
    # Out of order: a late event's time is behind the event sent just before it.
    assert sum(1 for r in late if r.ts < r.send_ms - 5) > len(late) // 2


def test_page_popularity_is_zipf_like_and_bots_crawl_uniformly():
    records = list(generate(config(bot_share=0.1), 20_000))
    human = Counter(r.page for r in records if not r.bot)
    ranked = [page for page, _ in human.most_common()]
    assert ranked[:3] == ["/home", "/search", "/products"]
    assert human["/home"] > 5 * human["/products/20"]
    bots = [r for r in records if r.bot]
    assert 0.08 < len(bots) / len(records) < 0.12
    assert all(b"bot" in r.value for r in bots)


def test_sessions_walk_from_page_to_page():
    by_session: dict[str, list] = defaultdict(list)
    for r in generate(config(bot_share=0), 5000):
        view = validate(r.value, now_ms=START + 10**9)
        by_session[view.session_id].append(view)
    walked = [views for views in by_session.values() if len(views) > 1]
    assert len(walked) > 100
    for views in walked:
        assert views[0].referrer is None or views[0].referrer.startswith("https://")
        for previous, current in itertools.pairwise(views):
            assert current.referrer == previous.page
            assert current.user_id == previous.user_id


def test_ground_truth_equals_counting_the_stream():
    cfg = config(late_share=0.1, malformed_share=0.05)
    truth = ground_truth(cfg, 10_000)
    counts: Counter = Counter()
    malformed: Counter = Counter()
    for r in generate(cfg, 10_000):
        if r.malformed:
            malformed[r.malformed.value] += 1
        else:
            counts[(validate(r.value, now_ms=r.send_ms + 1).page, window_start_ms(r.ts))] += 1
    assert truth.window_counts == counts
    assert truth.malformed == malformed
    assert truth.valid == sum(counts.values()) == 10_000 - sum(malformed.values())
    summary = truth.summary()
    assert TrafficConfig.from_dict(summary["config"]) == cfg
    assert sum(summary["page_totals"].values()) == truth.valid


def test_records_are_about_200_bytes():
    sizes = [len(r.value) for r in generate(config(), 2000)]
    assert 180 <= sum(sizes) / len(sizes) <= 280


@pytest.mark.parametrize("bad", [{"late_share": 1.5}, {"events_per_second": 0}, {"site_map": ()}])
def test_invalid_configs_are_refused(bad):
    with pytest.raises(ValueError):
        TrafficConfig(**bad)


def test_malformed_kinds_cover_every_validator_reason():
    # processing_error is no validator's verdict: the sink gives it to a record that broke a job.
    assert set(MALFORMED_KINDS) == set(RejectReason) - {RejectReason.PROCESSING_ERROR}
