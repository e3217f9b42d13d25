"""What happens to a lead after an attempt: retry later, try its next phone, or stop.

Pure rules; `dialer.leads` applies them to the database.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta


class AttemptOutcome(enum.StrEnum):
    """How an attempt ended, as far as the lead is concerned."""

    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"  # congestion, channel unavailable, network errors
    INVALID_NUMBER = "invalid_number"
    MACHINE = "machine"
    ABANDONED = "abandoned"  # live answer that found no agent in time
    CONNECTED = "connected"  # reached an agent; the disposition decides what follows
    WRONG_NUMBER = "wrong_number"  # disposition: the person is not the debtor


DEFAULT_DELAYS: dict[AttemptOutcome, timedelta] = {
    AttemptOutcome.NO_ANSWER: timedelta(hours=2),
    AttemptOutcome.BUSY: timedelta(minutes=10),
    AttemptOutcome.FAILED: timedelta(minutes=30),
    AttemptOutcome.MACHINE: timedelta(hours=4),
    AttemptOutcome.ABANDONED: timedelta(hours=1),
}
_PHONE_IS_WRONG = {AttemptOutcome.INVALID_NUMBER, AttemptOutcome.WRONG_NUMBER}


class LeadState(enum.StrEnum):
    SCHEDULED = "scheduled"
    READY = "ready"
    DIALING = "dialing"
    DONE = "done"
    EXHAUSTED = "exhausted"
    CANCELLED = "cancelled"  # its case may no longer be contacted (dialer.leads)


@dataclass(frozen=True)
class RetryRules:
    max_per_day: int = 3
    max_total: int = 10
    delays: Mapping[AttemptOutcome, timedelta] = field(default_factory=lambda: dict(DEFAULT_DELAYS))
    # From the compliance profile: no redial of a number after an abandoned call for this long.
    abandon_embargo: timedelta = timedelta(0)

    def delay(self, outcome: AttemptOutcome) -> timedelta:
        base = self.delays.get(outcome, DEFAULT_DELAYS.get(outcome, timedelta(hours=1)))
        if outcome is AttemptOutcome.ABANDONED:
            return max(base, self.abandon_embargo)
        return base


@dataclass(frozen=True)
class NextStep:
    state: LeadState
    next_attempt_at: datetime | None = None
    # The number just dialed is wrong: deactivate it and move the lead to the next phone.
    deactivate_phone: bool = False


def next_step(
    outcome: AttemptOutcome,
    attempts_total: int,
    attempts_today: int,
    rules: RetryRules,
    now: datetime,
    next_day_start: datetime,
) -> NextStep:
    """The lead's next step after an attempt; counters include the attempt just made.

    `next_day_start` is when the next calling day begins for this lead (its local window
    opening tomorrow), used when today's attempts are used up.
    """
    if outcome is AttemptOutcome.CONNECTED:
        return NextStep(LeadState.DONE)
    if outcome in _PHONE_IS_WRONG:
        # Another phone may be right: retry soon on it (the caller checks one exists).
        return NextStep(LeadState.SCHEDULED, now + timedelta(minutes=1), deactivate_phone=True)
    if attempts_total >= rules.max_total:
        return NextStep(LeadState.EXHAUSTED)
    at = now + rules.delay(outcome)
    if attempts_today >= rules.max_per_day:
        at = max(at, next_day_start)
    return NextStep(LeadState.SCHEDULED, at)
