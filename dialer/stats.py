"""Live campaign statistics: the supervisor's numbers, measured the way regulators measure.

Counters are kept in minute buckets for the last 24 hours and hour buckets for 30 days,
plus totals since the campaign started, so the abandon rate is available over a rolling
24 hours (UK), 30 days (US) or the whole campaign (Italy), and for the current hour. They
are fed with attempt events and can be rebuilt from the attempt ledger after a restart.
"""

from __future__ import annotations

import enum
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dialer.compliance import AbandonDenominator, AbandonWindow, ComplianceProfile


class Tally(enum.StrEnum):
    DIAL = "dials"
    LIVE = "live_answers"
    MACHINE = "machines"
    CONNECT = "connects"
    ABANDON = "abandons"
    NO_ANSWER = "no_answers"
    BUSY = "busy"
    FAILED = "failed"
    PROMISE = "promises"


def _minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def _hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class CampaignStats:
    campaign_id: int
    profile: ComplianceProfile
    # Evidenced estimate of answering-machine-detection false positives (a fraction of
    # machine results that were people); UK counts them as abandoned.
    amd_false_positive_rate: float = 0.0
    totals: Counter[Tally] = field(default_factory=Counter)
    minutes: OrderedDict[datetime, Counter[Tally]] = field(default_factory=OrderedDict)
    hours: OrderedDict[datetime, Counter[Tally]] = field(default_factory=OrderedDict)

    def add(self, tally: Tally, at: datetime, count: int = 1) -> None:
        self.totals[tally] += count
        self.minutes.setdefault(_minute(at), Counter())[tally] += count
        self.hours.setdefault(_hour(at), Counter())[tally] += count
        self._trim(at)

    def _trim(self, now: datetime) -> None:
        minute_floor = _minute(now) - timedelta(hours=24)
        while self.minutes and next(iter(self.minutes)) <= minute_floor:
            self.minutes.popitem(last=False)
        hour_floor = _hour(now) - timedelta(days=30)
        while self.hours and next(iter(self.hours)) <= hour_floor:
            self.hours.popitem(last=False)

    def window(self, which: AbandonWindow | str, now: datetime) -> Counter[Tally]:
        """Counts over the last 24 hours, 30 days, the campaign, or the current 'hour'."""
        out: Counter[Tally] = Counter()
        if which == AbandonWindow.CAMPAIGN:
            out.update(self.totals)
        elif which == AbandonWindow.DAY:
            floor = _minute(now) - timedelta(hours=24)
            for at, counts in self.minutes.items():
                if at > floor:
                    out.update(counts)
        elif which == AbandonWindow.THIRTY_DAYS:
            floor = _hour(now) - timedelta(days=30)
            for at, counts in self.hours.items():
                if at > floor:
                    out.update(counts)
        elif which == "hour":
            out.update(self.hours.get(_hour(now), Counter()))
        else:
            raise ValueError(f"unknown window {which!r}")
        return out

    def abandon_counts(self, counts: Mapping[Tally, int]) -> tuple[float, float]:
        """(abandoned calls, the profile's denominator) as the profile counts them."""
        abandons: float = counts.get(Tally.ABANDON, 0)
        live: float = counts.get(Tally.LIVE, 0)
        machines = counts.get(Tally.MACHINE, 0)
        denominator = self.profile.abandon_denominator
        if denominator is AbandonDenominator.LIVE_CALLS:
            # People hung up on as machines: abandoned, and live calls all the same.
            people = machines * self.amd_false_positive_rate
            return abandons + people, live + people
        if denominator is AbandonDenominator.ANSWERED:
            return abandons, live + machines
        return abandons, live

    def abandon_rate(self, counts: Mapping[Tally, int]) -> float:
        """Abandoned / the profile's denominator (`ComplianceProfile.abandon_denominator`)."""
        abandons, base = self.abandon_counts(counts)
        return abandons / base if base else 0.0

    def snapshot(self, now: datetime) -> dict[str, Any]:
        windows: dict[str, Any] = {}
        for name in (AbandonWindow.DAY, AbandonWindow.THIRTY_DAYS, AbandonWindow.CAMPAIGN, "hour"):
            counts = self.window(name, now)
            abandons, base = self.abandon_counts(counts)
            windows[str(name)] = {
                **{t.value: counts.get(t, 0) for t in Tally},
                "abandons_counted": round(abandons, 1),
                "abandon_base": round(base, 1),
                "abandon_rate": round(self.abandon_rate(counts), 5),
            }
        regulatory = windows[str(self.profile.abandon_window)]
        return {
            "campaign_id": self.campaign_id,
            "profile": self.profile.code,
            "regulatory_window": str(self.profile.abandon_window),
            "abandon_rate": regulatory["abandon_rate"],
            "abandon_cap": self.profile.abandon_cap,
            # What abandon_base counts in every window, named for people.
            "abandon_denominator": str(self.profile.abandon_denominator),
            "windows": windows,
            "contacts_by_hour": self.contacts_by_hour(),
        }

    def contacts_by_hour(self) -> list[dict[str, Any]]:
        """Dials, live answers and connects per hour of day (UTC) over 30 days: the
        'contact % by hour' report, telling managers when debtors answer."""
        per_hour: dict[int, Counter[Tally]] = {}
        for at, counts in self.hours.items():
            per_hour.setdefault(at.hour, Counter()).update(counts)
        rows = []
        for hour in sorted(per_hour):
            c = per_hour[hour]
            dials = c.get(Tally.DIAL, 0)
            rows.append(
                {
                    "hour": hour,
                    "dials": dials,
                    "live_answers": c.get(Tally.LIVE, 0),
                    "connects": c.get(Tally.CONNECT, 0),
                    "contact_rate": round(c.get(Tally.LIVE, 0) / dials, 4) if dials else 0.0,
                }
            )
        return rows


def abandon_rate_text(snapshot: Mapping[str, Any], window: str | None = None) -> str:
    """The rate with what it is a share of, as every view shows it: "2.10% of 1000 calls
    answered" (the profile's regulatory window unless `window` is given)."""
    counts = snapshot["windows"][window or snapshot["regulatory_window"]]
    return (
        f"{counts['abandon_rate'] * 100:.2f}% of {counts['abandon_base']:.0f} "
        f"{snapshot['abandon_denominator']}"
    )


def tallies_for_attempt(outcome: str, amd_result: str | None, answered: bool) -> list[Tally]:
    """How a finished attempt counts. `completed` (or `connected`) reached an agent,
    `abandoned` did not in time, `live_answer` hung up before the connect limit."""
    out = [Tally.DIAL]
    if outcome == "machine" or amd_result == "MACHINE":
        out.append(Tally.MACHINE)
    elif outcome in {"connected", "completed"}:
        out += [Tally.LIVE, Tally.CONNECT]
    elif outcome == "abandoned":
        out += [Tally.LIVE, Tally.ABANDON]
    elif outcome == "live_answer":
        out.append(Tally.LIVE)
    elif outcome == "busy":
        out.append(Tally.BUSY)
    elif outcome == "no_answer":
        out.append(Tally.NO_ANSWER)
    else:
        out.append(Tally.FAILED)
    return out


def rebuild(
    stats: CampaignStats,
    rows: Iterable[tuple[datetime, str, str | None, bool, int, int]],
    now: datetime,
) -> CampaignStats:
    """Feed ledger rows, oldest first: (started_at, outcome, amd_result, answered, how many
    attempts, how many of them recorded a promise). Rows may be aggregated by minute."""
    for started_at, outcome, amd_result, answered, count, promises in rows:
        for tally in tallies_for_attempt(outcome, amd_result, answered):
            stats.add(tally, started_at, count)
        if promises:
            stats.add(Tally.PROMISE, started_at, promises)
    stats._trim(now)
    return stats
