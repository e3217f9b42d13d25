"""Campaigns: which cases to call, how (dialing mode, pacing), when (call window in the
debtor's local time) and under which compliance profile."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Any

import asyncpg

from core import audit
from core.identity import Actor, Role
from dialer.call_window import CallWindow
from dialer.compliance import ComplianceProfile, profile
from dialer.retry import AttemptOutcome, RetryRules


class DialMode(enum.StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    POWER = "power"
    PREDICTIVE = "predictive"


class PriorityRule(enum.StrEnum):
    BALANCE = "balance"  # largest balance first
    PROMISE_DUE = "promise_due"  # earliest pending promise first (overdue first of all)
    OLDEST = "oldest"  # oldest case first


class CampaignError(ValueError):
    """A campaign definition is invalid; the message says which field and why."""


@dataclass(frozen=True)
class Campaign:
    id: int
    name: str
    portfolio_ids: tuple[int, ...] = ()
    creditor_id: int | None = None
    statuses: tuple[str, ...] = ()
    mode: DialMode = DialMode.PROGRESSIVE
    pacing: Mapping[str, Any] = field(default_factory=dict)
    compliance_profile: str = "IT"
    window: CallWindow = field(default_factory=CallWindow)
    caller_id: str | None = None
    amd: bool = True
    max_attempts_per_day: int = 3
    max_attempts_total: int = 10
    retry_delays: Mapping[str, int] = field(default_factory=dict)
    priority_rule: PriorityRule = PriorityRule.BALANCE
    no_answer_timeout: int = 25
    active: bool = False
    saved_filter_id: int | None = None  # cases also matching this saved filter

    @property
    def compliance(self) -> ComplianceProfile:
        return profile(self.compliance_profile)

    @property
    def retry_rules(self) -> RetryRules:
        delays = {AttemptOutcome(k): timedelta(seconds=v) for k, v in self.retry_delays.items()}
        rules = RetryRules(
            max_per_day=self.max_attempts_per_day,
            max_total=self.max_attempts_total,
            abandon_embargo=self.compliance.abandon_redial_embargo,
        )
        if delays:
            rules = RetryRules(
                rules.max_per_day,
                rules.max_total,
                {**rules.delays, **delays},
                rules.abandon_embargo,
            )
        return rules


_COLUMNS = (
    "id, name, portfolio_ids, creditor_id, statuses, mode, pacing, compliance_profile, "
    "window_start, window_end, days_of_week, holidays, caller_id, amd, max_attempts_per_day, "
    "max_attempts_total, retry_delays, priority_rule, no_answer_timeout, active, saved_filter_id"
)


_INSERT = (
    "INSERT INTO campaigns (name, portfolio_ids, creditor_id, statuses, mode, pacing, "  # noqa: S608 - constant columns
    "compliance_profile, window_start, window_end, days_of_week, holidays, caller_id, amd, "
    "max_attempts_per_day, max_attempts_total, retry_delays, priority_rule, no_answer_timeout, "
    "active, saved_filter_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
    "$14, $15, $16, $17, $18, $19, $20) RETURNING " + _COLUMNS
)


def _from_row(row: asyncpg.Record) -> Campaign:
    return Campaign(
        id=row["id"],
        name=row["name"],
        portfolio_ids=tuple(row["portfolio_ids"]),
        creditor_id=row["creditor_id"],
        statuses=tuple(row["statuses"]),
        mode=DialMode(row["mode"]),
        pacing=row["pacing"],
        compliance_profile=row["compliance_profile"],
        window=CallWindow(
            row["window_start"],
            row["window_end"],
            frozenset(row["days_of_week"]),
            frozenset(row["holidays"]),
        ),
        caller_id=row["caller_id"],
        amd=row["amd"],
        max_attempts_per_day=row["max_attempts_per_day"],
        max_attempts_total=row["max_attempts_total"],
        retry_delays=row["retry_delays"],
        priority_rule=PriorityRule(row["priority_rule"]),
        no_answer_timeout=row["no_answer_timeout"],
        active=row["active"],
        saved_filter_id=row["saved_filter_id"],
    )


def validate(values: Mapping[str, Any]) -> None:
    code = values.get("compliance_profile", "IT")
    prof = profile(code)
    timeout = values.get("no_answer_timeout", 25)
    if timeout < prof.min_ring_seconds:
        raise CampaignError(
            f"no_answer_timeout: {timeout} s is below the {code} minimum ring of "
            f"{prof.min_ring_seconds} s"
        )
    for key in values.get("retry_delays", {}):
        try:
            AttemptOutcome(key)
        except ValueError:
            raise CampaignError(f"retry_delays: unknown outcome {key!r}") from None


async def create_campaign(
    conn: asyncpg.Connection,
    actor: Actor,
    name: str,
    *,
    portfolio_ids: tuple[int, ...] = (),
    creditor_id: int | None = None,
    statuses: tuple[str, ...] = (),
    mode: DialMode = DialMode.PROGRESSIVE,
    pacing: Mapping[str, Any] | None = None,
    compliance_profile: str = "IT",
    window_start: time = time(9, 0),
    window_end: time = time(20, 0),
    days_of_week: tuple[int, ...] = (1, 2, 3, 4, 5, 6),
    holidays: tuple[date, ...] = (),
    caller_id: str | None = None,
    amd: bool = True,
    max_attempts_per_day: int = 3,
    max_attempts_total: int = 10,
    retry_delays: Mapping[str, int] | None = None,
    priority_rule: PriorityRule = PriorityRule.BALANCE,
    no_answer_timeout: int = 25,
    active: bool = False,
    saved_filter_id: int | None = None,
) -> Campaign:
    actor.require(Role.MANAGER, "creating campaigns")
    values: dict[str, Any] = {
        "compliance_profile": compliance_profile,
        "no_answer_timeout": no_answer_timeout,
        "retry_delays": dict(retry_delays or {}),
    }
    validate(values)
    CallWindow(window_start, window_end, frozenset(days_of_week), frozenset(holidays))
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                _INSERT,
                name,
                list(portfolio_ids),
                creditor_id,
                list(statuses),
                mode.value,
                dict(pacing or {}),
                compliance_profile,
                window_start,
                window_end,
                list(days_of_week),
                list(holidays),
                caller_id,
                amd,
                max_attempts_per_day,
                max_attempts_total,
                values["retry_delays"],
                priority_rule.value,
                no_answer_timeout,
                active,
                saved_filter_id,
            )
        except asyncpg.ForeignKeyViolationError:
            raise CampaignError(
                f"saved_filter_id: no saved filter {saved_filter_id} (or creditor)"
            ) from None
        except asyncpg.UniqueViolationError:
            raise CampaignError(f"a campaign named {name!r} exists already") from None
        except asyncpg.CheckViolationError as exc:
            raise CampaignError(f"invalid campaign: {exc.constraint_name}") from None
        campaign = _from_row(row)
        await audit.record(
            conn,
            actor,
            "campaign.create",
            "campaign",
            campaign.id,
            after={"name": name, "mode": mode.value},
        )
    return campaign


async def get_campaign(conn: asyncpg.Connection, campaign_id: int) -> Campaign | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM campaigns WHERE id = $1",  # noqa: S608 - constant columns
        campaign_id,
    )
    return None if row is None else _from_row(row)
