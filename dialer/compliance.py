"""Regulatory profiles for outbound calling (US, UK, Italy), as data the dialer enforces.

A summary for building the product, not legal advice: the defaults must be checked by
the user's counsel (see COMPLIANCE in the README).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta


class AbandonWindow(enum.StrEnum):
    DAY = "24h"
    THIRTY_DAYS = "30d"
    CAMPAIGN = "campaign"


class AbandonDenominator(enum.StrEnum):
    """What a profile divides abandoned calls by. The value is the name every view shows
    next to the rate ("2.10% of 1,000 calls answered"), so the label cannot say one thing
    while the figure is computed over another; `dialer.stats` computes it."""

    # US: live answers (answering machines are not counted).
    LIVE_PERSON = "calls answered by a live person"
    # UK: live answers plus the people the machine detector took for machines (the
    # profile's evidenced estimate), who are also counted as abandoned.
    LIVE_CALLS = "live calls"
    # Italy: every answered call, answering machines included.
    ANSWERED = "calls answered"


@dataclass(frozen=True)
class ComplianceProfile:
    code: str
    # Which window the abandon cap is measured over, and the cap itself (a fraction).
    abandon_window: AbandonWindow
    abandon_cap: float
    # What the abandon rate divides by.
    abandon_denominator: AbandonDenominator
    # Seconds a live answer may wait for an agent before it counts as abandoned.
    connect_limit: float
    # An unanswered call must ring at least this long before the dialer gives up.
    min_ring_seconds: int
    # No redial of a number after an abandoned call within this time.
    abandon_redial_embargo: timedelta
    # Regulation F: at most this many attempts per debtor in 7 days (None: no limit).
    max_attempts_per_debtor_7d: int | None
    # What a live answer with no free agent hears.
    no_agent_treatment: str


PROFILES: dict[str, ComplianceProfile] = {
    "US": ComplianceProfile(
        code="US",
        abandon_window=AbandonWindow.THIRTY_DAYS,
        abandon_cap=0.03,
        abandon_denominator=AbandonDenominator.LIVE_PERSON,
        connect_limit=2.0,
        min_ring_seconds=15,
        abandon_redial_embargo=timedelta(0),
        max_attempts_per_debtor_7d=7,
        no_agent_treatment="message",
    ),
    "UK": ComplianceProfile(
        code="UK",
        abandon_window=AbandonWindow.DAY,
        abandon_cap=0.03,
        abandon_denominator=AbandonDenominator.LIVE_CALLS,
        connect_limit=2.0,
        min_ring_seconds=15,
        abandon_redial_embargo=timedelta(hours=72),
        max_attempts_per_debtor_7d=None,
        no_agent_treatment="message",
    ),
    "IT": ComplianceProfile(
        code="IT",
        abandon_window=AbandonWindow.CAMPAIGN,
        abandon_cap=0.03,
        abandon_denominator=AbandonDenominator.ANSWERED,
        connect_limit=2.0,
        min_ring_seconds=0,
        abandon_redial_embargo=timedelta(days=5),
        max_attempts_per_debtor_7d=None,
        no_agent_treatment="comfort_noise",
    ),
}


def profile(code: str) -> ComplianceProfile:
    try:
        return PROFILES[code]
    except KeyError:
        raise ValueError(
            f"unknown compliance profile {code!r}; known: {', '.join(PROFILES)}"
        ) from None
