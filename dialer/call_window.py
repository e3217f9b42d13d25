"""Call windows evaluated in the debtor's local time.

A campaign may call between `start` and `end` local time on allowed weekdays, except
holidays. A number that may be in several zones is callable only when the window holds in
all of them. Pure: the current time is passed in.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True)
class CallWindow:
    start: time = time(9, 0)
    end: time = time(20, 0)
    # ISO weekdays (1 = Monday .. 7 = Sunday).
    days: frozenset[int] = frozenset({1, 2, 3, 4, 5, 6})
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError("call window: start must be before end")
        if not self.days or not self.days <= set(range(1, 8)):
            raise ValueError("call window: days must be ISO weekdays 1..7")

    def open_in_zone(self, zone: str, now: datetime) -> bool:
        local = now.astimezone(_zone(zone))
        return (
            local.isoweekday() in self.days
            and local.date() not in self.holidays
            and self.start <= local.time() < self.end
        )

    def open_in(self, zones: Sequence[str], now: datetime) -> bool:
        """True when the window holds in every zone; a number with no zone is never open."""
        return bool(zones) and all(self.open_in_zone(z, now) for z in zones)

    def next_open(
        self, zones: Sequence[str], after: datetime, horizon_days: int = 14
    ) -> datetime | None:
        """The first moment at or after `after` when the window holds in all `zones`.

        Searched on a minute grid over the next `horizon_days`; None when it never opens
        (e.g. zones so far apart that the windows never overlap)."""
        if not zones:
            return None
        if self.open_in(zones, after):
            return after
        # Candidate instants: each zone's local window opening on each day, which is where
        # the intersection of windows can begin.
        candidates: list[datetime] = []
        for zone in zones:
            tz = _zone(zone)
            local_day = after.astimezone(tz).date()
            for offset in range(horizon_days + 1):
                day = local_day + timedelta(days=offset)
                candidates.append(datetime.combine(day, self.start, tz))
        for candidate in sorted(c for c in candidates if c > after):
            if self.open_in(zones, candidate):
                return candidate.astimezone(after.tzinfo)
        return None


def open_zone_sets(
    window: CallWindow, zone_sets: Iterable[tuple[int, Sequence[str]]], now: datetime
) -> list[int]:
    """Ids of the zone sets in which the window is open now (used by the lead claim)."""
    return [set_id for set_id, zones in zone_sets if window.open_in(zones, now)]
