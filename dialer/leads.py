"""Leads: the cases a campaign works, and the claim that hands them to a dialer.

Leads wait in state `scheduled` until their next attempt is due, then `promote_due` makes
them `ready`. The claim is one statement with `FOR UPDATE SKIP LOCKED` over a partial index, so several
dialer processes can share a campaign and no lead is ever dialed twice; whether the case
may be contacted at all (`cases.contactable`: not paid, closed, withdrawn...), do-not-call,
consent, a wrong (inactive) number, the call window (through the lead's zone set), daily
attempt limits, the redial embargo after an abandoned call and the per-debtor weekly limit
are checked in that same statement.

A case that stops being contactable has its queued leads cancelled in the same
transaction (the trigger of migration 0004); a lead being dialed then keeps its call, and
its end does not queue it again. A number that may no longer be called moves the leads
waiting on it to the debtor's next number (`move_leads_off_phone`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import asyncpg

from core import audit
from core.identity import Actor
from dialer.call_window import open_zone_sets
from dialer.campaigns import Campaign, PriorityRule
from dialer.retry import AttemptOutcome, LeadState, NextStep, next_step


class NotContactable(LookupError):
    """The case, or every number of its debtor, must not be called."""


# Why a lead stops when its debtor has no number left that may be called.
NO_PHONE = "no phone that may be called"


@dataclass(frozen=True)
class ClaimedLead:
    id: int
    campaign_id: int
    case_id: int
    debtor_id: int
    phone_id: int
    e164: str
    attempt_number: int
    callback_agent_id: int | None


_PRIORITY = {
    PriorityRule.BALANCE: "c.balance",
    # Days until the earliest pending promise, negated so overdue promises come first.
    PriorityRule.PROMISE_DUE: (
        "COALESCE(-(SELECT min(pr.due_date) FROM promises pr WHERE pr.case_id = c.id "
        "AND pr.status = 'pending') + $8::date, -100000)"
    ),
    PriorityRule.OLDEST: "extract(epoch FROM $5::timestamptz - c.opened_at) / 86400",
}

# The dialable phone of a debtor: active, callable, first in the debtor's order.
_FIRST_PHONE = """
    SELECT p.id, sorted_zones(COALESCE(NULLIF(p.time_zones, '{}'), $4::text[])) AS zones
    FROM phones p
    WHERE p.debtor_id = c.debtor_id AND p.active AND NOT p.do_not_call AND p.consent <> 'revoked'
    ORDER BY p.position, p.id
    LIMIT 1
"""


def _selection(case_ids: str) -> str:
    """The campaign's cases: portfolios $1, creditor $2, statuses $3, and the ids matched by
    its saved filter (`case_ids`, the placeholder of that parameter; NULL: no filter)."""
    return f"""
        c.contactable
        AND (cardinality($1::bigint[]) = 0 OR c.portfolio_id = ANY($1::bigint[]))
        AND ($2::bigint IS NULL OR c.creditor_id = $2)
        AND CASE WHEN cardinality($3::text[]) = 0 THEN c.status NOT IN ('paid', 'closed')
                 ELSE c.status = ANY($3::text[]) END
        AND ({case_ids}::bigint[] IS NULL OR c.id = ANY({case_ids}::bigint[]))
    """


async def load_leads(
    conn: asyncpg.Connection,
    campaign: Campaign,
    now: datetime,
    default_zones: Sequence[str],
    case_ids: Sequence[int] | None = None,
) -> int:
    """Add a lead for every matching case not yet in the campaign; returns how many.
    `case_ids`: the cases the campaign's saved filter matches (the caller evaluates it).

    Only contactable cases are loaded. A lead cancelled earlier (its case was paid, then
    reopened; or it had no number left) comes back here, and only here, if its case
    matches again: a load is a manager's decision to work the cases, a reopening is not.
    It keeps its attempt counters."""
    priority = _PRIORITY[campaign.priority_rule]
    args = (
        list(campaign.portfolio_ids),
        campaign.creditor_id,
        list(campaign.statuses),
        list(default_zones),
    )
    selected = None if case_ids is None else list(case_ids)
    async with conn.transaction():
        await conn.execute(
            f"""
            INSERT INTO zone_sets (zones)
            SELECT DISTINCT ph.zones FROM cases c JOIN LATERAL ({_FIRST_PHONE}) ph ON true
            WHERE {_selection("$5")}
            ON CONFLICT (zones) DO NOTHING
            """,  # noqa: S608 - constant fragments, values are parameters
            *args,
            selected,
        )
        status = await conn.execute(
            f"""
            INSERT INTO leads (campaign_id, case_id, debtor_id, phone_id, zone_set_id, priority,
                               base_priority, next_attempt_at)
            SELECT $6, c.id, c.debtor_id, ph.id, z.id, {priority}, {priority}, $5
            FROM cases c
            JOIN LATERAL ({_FIRST_PHONE}) ph ON true
            JOIN zone_sets z ON z.zones = ph.zones
            WHERE {_selection("$7")}
            ON CONFLICT (campaign_id, case_id) DO UPDATE
            SET state = 'ready', phone_id = EXCLUDED.phone_id, zone_set_id = EXCLUDED.zone_set_id,
                priority = EXCLUDED.priority, base_priority = EXCLUDED.base_priority,
                next_attempt_at = EXCLUDED.next_attempt_at, callback_agent_id = NULL,
                claimed_by = NULL, claimed_at = NULL, cancel_reason = NULL, cancelled_at = NULL
            WHERE leads.state = 'cancelled'
            """,  # noqa: S608 - constant fragments, values are parameters
            *args,
            now,
            campaign.id,
            selected,
            *([now.date()] if campaign.priority_rule is PriorityRule.PROMISE_DUE else []),
        )
    return int(status.split()[-1])


async def promote_due(conn: asyncpg.Connection, campaign_id: int, now: datetime) -> int:
    """Move leads whose retry time has come from scheduled to ready; returns how many.

    The engine runs this every few seconds; it keeps the claim's index to due leads."""
    status = await conn.execute(
        "UPDATE leads SET state = 'ready' "
        "WHERE campaign_id = $1 AND state = 'scheduled' AND next_attempt_at <= $2",
        campaign_id,
        now,
    )
    return int(status.split()[-1])


async def zone_sets(conn: asyncpg.Connection) -> list[tuple[int, list[str]]]:
    rows = await conn.fetch("SELECT id, zones FROM zone_sets")
    return [(r["id"], list(r["zones"])) for r in rows]


_CLAIM = """
WITH candidates AS (
    -- The best due leads of each zone set whose window is open, merged by priority. A
    -- per-zone-set walk keeps leads of closed zones (which pile up at the top of the
    -- priority order during the day) out of the way.
    SELECT c.id
    FROM unnest($3::int[]) AS z(id)
    CROSS JOIN LATERAL (
        SELECT l.id, l.priority, l.next_attempt_at
        FROM leads l
        WHERE l.campaign_id = $1 AND l.state = 'ready' AND l.zone_set_id = z.id
          AND l.next_attempt_at <= $2
          AND (l.attempts_day IS DISTINCT FROM $4 OR l.attempts_today < $5)
        ORDER BY l.priority DESC, l.next_attempt_at
        LIMIT $8 * 4
    ) c
    ORDER BY c.priority DESC, c.next_attempt_at
    LIMIT $8 * 4
),
picked AS (
    SELECT l.id, p.e164
    FROM leads l
    JOIN candidates USING (id)
    JOIN phones p ON p.id = l.phone_id
    JOIN cases k ON k.id = l.case_id
    -- The state is rechecked under the row lock: a status change cancels the case's leads
    -- in its transaction, so a lead of a case paid meanwhile is skipped (locked) or seen
    -- cancelled; `contactable` also refuses any lead queued by another path.
    WHERE l.state = 'ready'
      AND k.contactable
      AND p.active AND NOT p.do_not_call AND p.consent <> 'revoked'
      AND (p.last_outcome IS DISTINCT FROM 'abandoned' OR p.last_outcome_at <= $2 - $6::interval)
      AND ($7::int IS NULL OR (
            SELECT count(*) FROM call_attempts a
            WHERE a.debtor_id = l.debtor_id AND a.started_at > $2 - interval '7 days') < $7)
      AND NOT EXISTS (  -- a pending callback keeps campaigns away (dialer.callbacks.HOLD)
            SELECT 1 FROM callbacks cb WHERE cb.case_id = l.case_id AND cb.state = 'pending'
            AND NOT cb.campaigns_may_call AND cb.lead_id IS DISTINCT FROM l.id
            AND cb.due_at > $2 - interval '2 hours')
    ORDER BY l.priority DESC, l.next_attempt_at
    LIMIT $8
    FOR UPDATE OF l SKIP LOCKED
)
UPDATE leads l
SET state = 'dialing',
    claimed_by = $9,
    claimed_at = $2,
    attempts_total = l.attempts_total + 1,
    attempts_today = CASE WHEN l.attempts_day = $4 THEN l.attempts_today + 1 ELSE 1 END,
    attempts_day = $4,
    last_attempt_at = $2
FROM picked
WHERE l.id = picked.id
RETURNING l.id, l.campaign_id, l.case_id, l.debtor_id, l.phone_id, picked.e164, l.attempts_total,
          l.callback_agent_id
"""


async def claim_leads(
    conn: asyncpg.Connection,
    campaign: Campaign,
    now: datetime,
    limit: int,
    claimer: str,
    today: date,
    sets: Sequence[tuple[int, Sequence[str]]],
) -> list[ClaimedLead]:
    """Claim up to `limit` leads callable now; each is marked dialing by `claimer`.

    `sets` are the known zone sets (from `zone_sets`); only leads whose zones all sit
    inside the campaign's call window now are claimed. `today` is the contact center's
    date, for the daily attempt limit.
    """
    if limit <= 0:
        return []
    open_ids = open_zone_sets(campaign.window, sets, now)
    if not open_ids:
        return []
    profile = campaign.compliance
    rows = await conn.fetch(
        _CLAIM,
        campaign.id,
        now,
        open_ids,
        today,
        campaign.max_attempts_per_day,
        profile.abandon_redial_embargo,
        profile.max_attempts_per_debtor_7d,
        limit,
        claimer,
    )
    return [
        ClaimedLead(
            id=r["id"],
            campaign_id=r["campaign_id"],
            case_id=r["case_id"],
            debtor_id=r["debtor_id"],
            phone_id=r["phone_id"],
            e164=r["e164"],
            attempt_number=r["attempts_total"],
            callback_agent_id=r["callback_agent_id"],
        )
        for r in rows
    ]


def _next_day_start(campaign: Campaign, zones: Sequence[str], now: datetime) -> datetime:
    """When this lead's next calling day opens (local midnight tomorrow, then the window)."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(zones[0]) if zones else now.tzinfo
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zone)
    opening = campaign.window.next_open(zones, midnight) if zones else None
    return opening or midnight


# The debtor's first number that may be called: active (not wrong), not do-not-call,
# consent not revoked; in the debtor's order.
_CALLABLE_PHONE = """
SELECT p.id, sorted_zones(COALESCE(NULLIF(p.time_zones, '{}'), $2::text[])) AS zones
FROM phones p
WHERE p.debtor_id = $1 AND p.active AND NOT p.do_not_call AND p.consent <> 'revoked'
ORDER BY p.position, p.id
LIMIT 1
"""

# Lead states that still lead to a call; a status change or a phone's flags stop them.
_REQUEUED = (LeadState.SCHEDULED, LeadState.READY)


async def finish_attempt(
    conn: asyncpg.Connection,
    campaign: Campaign,
    lead_id: int,
    outcome: AttemptOutcome,
    now: datetime,
    default_zones: Sequence[str],
) -> NextStep:
    """Apply an attempt's outcome to its lead and phone, in one transaction.

    A lead whose case stopped being contactable during the call is not queued again
    (cancelled, with the reason); one whose number may no longer be called moves to the
    debtor's next number, as after a wrong number."""
    async with conn.transaction():
        lead = await conn.fetchrow(
            "SELECT l.id, l.debtor_id, l.phone_id, l.attempts_total, l.attempts_today, "
            "l.cancel_reason, z.zones, c.contactable, c.status, "
            "COALESCE(p.active AND NOT p.do_not_call AND p.consent <> 'revoked', false) "
            "AS phone_callable "
            "FROM leads l JOIN zone_sets z ON z.id = l.zone_set_id "
            "JOIN cases c ON c.id = l.case_id LEFT JOIN phones p ON p.id = l.phone_id "
            "WHERE l.id = $1 FOR UPDATE OF l",
            lead_id,
        )
        if lead is None:
            raise LookupError(f"lead {lead_id} does not exist")
        step = next_step(
            outcome,
            lead["attempts_total"],
            lead["attempts_today"],
            campaign.retry_rules,
            now,
            _next_day_start(campaign, lead["zones"], now),
        )
        await conn.execute(
            "UPDATE phones SET last_outcome = $2, last_outcome_at = $3, "
            "active = active AND NOT $4 WHERE id = $1",
            lead["phone_id"],
            outcome.value,
            now,
            step.deactivate_phone,
        )
        phone_id, zone_set_id = lead["phone_id"], None
        cancel_reason = lead["cancel_reason"]
        if step.state in _REQUEUED and (cancel_reason or not lead["contactable"]):
            cancel_reason = cancel_reason or f"case status {lead['status']}"
            step = NextStep(LeadState.CANCELLED, deactivate_phone=step.deactivate_phone)
        elif step.deactivate_phone or (step.state in _REQUEUED and not lead["phone_callable"]):
            nxt = await conn.fetchrow(_CALLABLE_PHONE, lead["debtor_id"], list(default_zones))
            if nxt is None:
                step = NextStep(LeadState.EXHAUSTED, deactivate_phone=step.deactivate_phone)
            else:
                phone_id = nxt["id"]
                zone_set_id = await _zone_set_id(conn, nxt["zones"])
        await conn.execute(
            "UPDATE leads SET state = $2, next_attempt_at = COALESCE($3, next_attempt_at), "
            "last_outcome = $4, phone_id = $5, zone_set_id = COALESCE($6, zone_set_id), "
            "claimed_by = NULL, claimed_at = NULL, callback_agent_id = NULL, "
            "priority = base_priority, cancel_reason = $7, "
            "cancelled_at = CASE WHEN $2 = 'cancelled' THEN COALESCE(cancelled_at, $8) END "
            "WHERE id = $1",
            lead_id,
            step.state.value,
            step.next_attempt_at,
            outcome.value,
            phone_id,
            zone_set_id,
            cancel_reason if step.state is LeadState.CANCELLED else None,
            now,
        )
    return step


async def release_claims(conn: asyncpg.Connection, claimer: str, lead_ids: Sequence[int]) -> int:
    """Put leads claimed by `claimer` but never dialed back to ready (counters restored);
    those whose case stopped being contactable meanwhile are cancelled instead."""
    status = await conn.execute(
        "UPDATE leads SET claimed_by = NULL, claimed_at = NULL, "
        "state = CASE WHEN cancel_reason IS NULL THEN 'ready' ELSE 'cancelled' END, "
        "attempts_total = attempts_total - 1, attempts_today = greatest(attempts_today - 1, 0) "
        "WHERE claimed_by = $1 AND state = 'dialing' AND id = ANY($2::bigint[])",
        claimer,
        list(lead_ids),
    )
    return int(status.split()[-1])


async def skip_lead(conn: asyncpg.Connection, claimer: str, lead_id: int, until: datetime) -> bool:
    """A previewed lead the agent did not call: back to the queue at `until`, its attempt
    counters as before the claim (cancelled instead if its case may no longer be
    contacted)."""
    status = await conn.execute(
        "UPDATE leads SET next_attempt_at = $3, claimed_by = NULL, claimed_at = NULL, "
        "state = CASE WHEN cancel_reason IS NULL THEN 'scheduled' ELSE 'cancelled' END, "
        "attempts_total = attempts_total - 1, attempts_today = greatest(attempts_today - 1, 0) "
        "WHERE claimed_by = $1 AND state = 'dialing' AND id = $2",
        claimer,
        lead_id,
        until,
    )
    return status.endswith(" 1")


async def move_leads_off_phone(
    conn: asyncpg.Connection, phone_id: int, now: datetime, default_zones: Sequence[str]
) -> int:
    """A number may no longer be called (do-not-call, consent revoked, wrong number): the
    queued leads waiting to dial it, in every campaign, move to the debtor's next number
    that may be called, or stop (cancelled) when there is none. Returns how many moved or
    stopped. A lead being dialed moves when its call ends (`finish_attempt`)."""
    async with conn.transaction():
        debtor_id = await conn.fetchval(
            "SELECT debtor_id FROM phones WHERE id = $1 "
            "AND NOT (active AND NOT do_not_call AND consent <> 'revoked')",
            phone_id,
        )
        if debtor_id is None:
            return 0  # unknown, or still callable
        # The leads waiting on the number: those of the debtor's cases (leads_case_idx).
        nxt = await conn.fetchrow(_CALLABLE_PHONE, debtor_id, list(default_zones))
        if nxt is None:
            status = await conn.execute(
                "UPDATE leads SET state = 'cancelled', cancel_reason = $3, cancelled_at = $4 "
                "WHERE case_id IN (SELECT id FROM cases WHERE debtor_id = $2) "
                "AND phone_id = $1 AND state IN ('scheduled', 'ready')",
                phone_id,
                debtor_id,
                NO_PHONE,
                now,
            )
        else:
            status = await conn.execute(
                "UPDATE leads SET phone_id = $3, zone_set_id = $4 "
                "WHERE case_id IN (SELECT id FROM cases WHERE debtor_id = $2) "
                "AND phone_id = $1 AND state IN ('scheduled', 'ready')",
                phone_id,
                debtor_id,
                nxt["id"],
                await _zone_set_id(conn, nxt["zones"]),
            )
    return int(status.split()[-1])


# Callbacks jump the queue: far above any balance-based priority.
CALLBACK_PRIORITY = 10**11


async def schedule_callback(
    conn: asyncpg.Connection,
    actor: Actor,
    campaign: Campaign,
    case_id: int,
    at: datetime,
    agent_id: int | None,
    default_zones: Sequence[str],
    ends_call: bool = False,
) -> int:
    """Schedule a callback of a case at `at`: personal (to `agent_id` first) or for the
    campaign (`agent_id` None). Creates the lead if the case has none in the campaign, and
    keeps its attempt counters if it has. A lead being dialed stays with its call unless
    `ends_call` (the callback is the disposition of that very call). Returns the lead id.

    Raises NotContactable when the case must not be contacted or no number of its debtor
    may be called. The case row is share-locked, so a concurrent status change waits for
    this callback and then cancels it, or is seen."""
    async with conn.transaction():
        phone = await conn.fetchrow(
            "SELECT c.debtor_id, c.contactable, c.status, p.id, p.zones FROM cases c "
            "LEFT JOIN LATERAL ("
            "SELECT p.id, sorted_zones(COALESCE(NULLIF(p.time_zones, '{}'), $2::text[])) AS zones "
            "FROM phones p WHERE p.debtor_id = c.debtor_id AND p.active AND NOT p.do_not_call "
            "AND p.consent <> 'revoked' ORDER BY p.position, p.id LIMIT 1) p ON true "
            "WHERE c.id = $1 FOR SHARE OF c",
            case_id,
            list(default_zones),
        )
        if phone is None:
            raise LookupError(f"case {case_id} does not exist")
        if not phone["contactable"]:
            raise NotContactable(
                f"case {case_id} must not be contacted (status {phone['status']!r}): no callback"
            )
        if phone["id"] is None:
            raise NotContactable(f"case {case_id} has no phone that may be called")
        zone_set_id = await _zone_set_id(conn, phone["zones"])
        lead_id = await conn.fetchval(
            """
            INSERT INTO leads (campaign_id, case_id, debtor_id, phone_id, zone_set_id, state,
                               priority, next_attempt_at, callback_agent_id)
            VALUES ($1, $2, $3, $4, $5, 'scheduled', $6, $7, $8)
            ON CONFLICT (campaign_id, case_id) DO UPDATE
            SET state = CASE WHEN leads.state = 'dialing' AND NOT $9 THEN 'dialing' ELSE 'scheduled' END,
                claimed_by = CASE WHEN $9 THEN NULL ELSE leads.claimed_by END,
                priority = $6, next_attempt_at = $7, callback_agent_id = $8,
                cancel_reason = NULL, cancelled_at = NULL
            RETURNING id
            """,
            campaign.id,
            case_id,
            phone["debtor_id"],
            phone["id"],
            zone_set_id,
            CALLBACK_PRIORITY,
            at,
            agent_id,
            ends_call,
        )
        await audit.record(
            conn,
            actor,
            "lead.callback",
            "case",
            case_id,
            after={"campaign_id": campaign.id, "at": at.isoformat(), "agent_id": agent_id},
        )
    return int(lead_id)


async def _zone_set_id(conn: asyncpg.Connection, zones: Sequence[str]) -> int:
    zone_set_id = await conn.fetchval(
        "WITH ins AS (INSERT INTO zone_sets (zones) VALUES ($1) "
        "ON CONFLICT (zones) DO NOTHING RETURNING id) "
        "SELECT id FROM ins UNION ALL SELECT id FROM zone_sets WHERE zones = $1 LIMIT 1",
        list(zones),
    )
    return int(zone_set_id)
