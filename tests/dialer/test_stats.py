from datetime import UTC, datetime, timedelta

from dialer.compliance import PROFILES, AbandonWindow
from dialer.stats import CampaignStats, Tally, abandon_rate_text, rebuild, tallies_for_attempt

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def feed(stats: CampaignStats, at: datetime, live: int, abandons: int, machines: int = 0) -> None:
    for _ in range(live):
        stats.add(Tally.DIAL, at)
        stats.add(Tally.LIVE, at)
    for _ in range(abandons):
        stats.add(Tally.ABANDON, at)
    for _ in range(machines):
        stats.add(Tally.DIAL, at)
        stats.add(Tally.MACHINE, at)


def test_rolling_windows_forget_old_events():
    stats = CampaignStats(1, PROFILES["UK"])
    feed(stats, T0, live=100, abandons=5)
    feed(stats, T0 + timedelta(hours=25), live=100, abandons=1)
    now = T0 + timedelta(hours=25)
    assert stats.abandon_rate(stats.window(AbandonWindow.DAY, now)) == 0.01
    assert stats.abandon_rate(stats.window(AbandonWindow.THIRTY_DAYS, now)) == 0.03
    assert stats.abandon_rate(stats.window(AbandonWindow.CAMPAIGN, now)) == 0.03
    later = T0 + timedelta(days=32)
    stats.add(Tally.DIAL, later)
    assert stats.window(AbandonWindow.THIRTY_DAYS, later)[Tally.LIVE] == 0
    assert stats.totals[Tally.LIVE] == 200


def test_profiles_measure_differently():
    uk = CampaignStats(1, PROFILES["UK"], amd_false_positive_rate=0.1)
    it = CampaignStats(2, PROFILES["IT"])
    for stats in (uk, it):
        feed(stats, T0, live=100, abandons=2, machines=50)
    counts_uk = uk.window(AbandonWindow.DAY, T0)
    # UK: the people AMD took for machines (an estimate: 5 of 50) were live calls the
    # dialer ended: abandoned calls, and live calls in the denominator too.
    assert uk.abandon_rate(counts_uk) == 7 / 105
    # Italy divides by every answered call, machines included.
    assert round(it.abandon_rate(it.window(AbandonWindow.CAMPAIGN, T0)), 4) == round(2 / 150, 4)


def test_every_profile_names_its_denominator_and_the_rate_is_computed_over_it():
    us = CampaignStats(1, PROFILES["US"], amd_false_positive_rate=0.1)
    uk = CampaignStats(2, PROFILES["UK"], amd_false_positive_rate=0.1)
    it = CampaignStats(3, PROFILES["IT"], amd_false_positive_rate=0.1)
    for stats in (us, uk, it):
        feed(stats, T0, live=100, abandons=2, machines=50)
    shown = {}
    for stats in (us, uk, it):
        snap = stats.snapshot(T0)
        window = snap["windows"][snap["regulatory_window"]]
        assert snap["abandon_rate"] == round(window["abandons_counted"] / window["abandon_base"], 5)
        shown[stats.profile.code] = abandon_rate_text(snap)
    assert shown == {
        "US": "2.00% of 100 calls answered by a live person",
        "UK": "6.67% of 105 live calls",
        "IT": "1.33% of 150 calls answered",
    }
    # The current hour, as the supervisor's view shows it too.
    assert abandon_rate_text(it.snapshot(T0), "hour") == "1.33% of 150 calls answered"


def test_snapshot_and_contacts_by_hour():
    stats = CampaignStats(1, PROFILES["US"])
    feed(stats, T0, live=10, abandons=0)
    feed(stats, T0 + timedelta(hours=1), live=0, abandons=0, machines=4)
    snap = stats.snapshot(T0 + timedelta(hours=1))
    assert snap["regulatory_window"] == "30d" and snap["abandon_rate"] == 0.0
    assert snap["windows"]["hour"]["machines"] == 4
    assert [(r["hour"], r["contact_rate"]) for r in snap["contacts_by_hour"]] == [
        (10, 1.0),
        (11, 0.0),
    ]


def test_rebuild_from_the_ledger_matches_live_counting():
    rows = [
        (T0, "connected", "HUMAN", True, 1, 1),
        (T0, "abandoned", "HUMAN", True, 1, 0),
        (T0, "machine", "MACHINE", True, 1, 0),
        (T0, "busy", None, False, 1, 0),
        (T0, "no_answer", None, False, 1, 0),
    ]
    stats = rebuild(CampaignStats(1, PROFILES["US"]), rows, T0)
    counts = stats.window(AbandonWindow.THIRTY_DAYS, T0)
    assert counts[Tally.DIAL] == 5 and counts[Tally.LIVE] == 2 and counts[Tally.ABANDON] == 1
    assert stats.abandon_rate(counts) == 0.5
    assert counts[Tally.PROMISE] == 1
    assert tallies_for_attempt("failed", None, False) == [Tally.DIAL, Tally.FAILED]
