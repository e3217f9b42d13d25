"""Callbacks agreed with a debtor: kept until honoured, and keeping campaigns away until then.

A callback set in a disposition is a row here, whatever the call was. A personal callback
of a call no campaign can carry for that agent (a manual or inbound call, or a preview
campaign, which offers its leads to whichever agent is free) pops on that agent's screen
at its time with the case and "Call now"; the others are carried by a campaign's lead
(`leads.schedule_callback`). While a callback is pending, campaign claims skip the case's
other leads until `HOLD` after its time (the agent's window to honour it), unless the
agent allowed campaigns to call. The next disposition of a call of the case, or the agent
cancelling it, closes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from core import audit
from core.bus import EventBus
from core.identity import Actor, PermissionDenied, Role

# How long after its time a pending callback still keeps campaigns away (the literal in
# `leads._CLAIM` says the same).
HOLD = timedelta(hours=2)


@dataclass(frozen=True)
class NewCallback:
    case_id: int
    due_at: datetime
    agent_id: int | None  # personal; None: a campaign calls back
    campaign_id: int | None = None
    lead_id: int | None = None  # the campaign's lead that carries it
    campaigns_may_call: bool = False
    attempt_key: str | None = None


async def add_callback(
    conn: asyncpg.Connection, actor: Actor, callback: NewCallback, now: datetime
) -> int:
    callback_id = await conn.fetchval(
        "INSERT INTO callbacks (case_id, due_at, agent_id, campaign_id, lead_id, "
        "campaigns_may_call, attempt_key, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        callback.case_id,
        callback.due_at,
        callback.agent_id,
        callback.campaign_id,
        callback.lead_id,
        callback.campaigns_may_call,
        callback.attempt_key,
        now,
    )
    await audit.record(
        conn, actor, "callback.create", "case", callback.case_id,
        after={"callback_id": callback_id, "due_at": callback.due_at.isoformat(),
               "agent_id": callback.agent_id, "campaign_id": callback.campaign_id,
               "campaigns_may_call": callback.campaigns_may_call},
    )  # fmt: skip
    return int(callback_id)


async def close_callbacks(
    conn: asyncpg.Connection,
    case_id: int,
    started_before: datetime,
    attempt_key: str,
    now: datetime,
) -> int:
    """The debtor was reached on a call (`attempt_key`) and its outcome recorded: the
    case's callbacks set before that call are honoured."""
    status = await conn.execute(
        "UPDATE callbacks SET state = 'done', closed_at = $3, closed_by = $4 "
        "WHERE case_id = $1 AND state = 'pending' AND created_at < $2",
        case_id,
        started_before,
        now,
        attempt_key,
    )
    return int(status.split()[-1])


async def cancel_callback(
    conn: asyncpg.Connection, actor: Actor, callback_id: int, now: datetime
) -> bool:
    """The agent (or a supervisor) drops a pending personal callback."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT agent_id, case_id FROM callbacks WHERE id = $1 AND state = 'pending' FOR UPDATE",
            callback_id,
        )
        if row is None:
            return False
        if row["agent_id"] != actor.user_id and not actor.role.at_least(Role.SUPERVISOR):
            raise PermissionDenied("only the agent of a callback cancels it")
        await conn.execute(
            "UPDATE callbacks SET state = 'cancelled', closed_at = $2 WHERE id = $1",
            callback_id,
            now,
        )
        await audit.record(
            conn, actor, "callback.cancel", "case", row["case_id"],
            after={"callback_id": callback_id},
        )  # fmt: skip
    return True


async def agent_callbacks(conn: asyncpg.Connection, agent_id: int) -> list[dict[str, Any]]:
    """The agent's pending personal callbacks, soonest first."""
    rows = await conn.fetch(
        "SELECT cb.id, cb.case_id, cb.due_at, cb.announced_at IS NOT NULL AS due, c.reference "
        "FROM callbacks cb JOIN cases c ON c.id = cb.case_id "
        "WHERE cb.agent_id = $1 AND cb.state = 'pending' AND cb.lead_id IS NULL "
        "ORDER BY cb.due_at, cb.id",
        agent_id,
    )
    return [
        {"id": r["id"], "case_id": r["case_id"], "reference": r["reference"],
         "due_at": r["due_at"].isoformat(), "due": r["due"]}
        for r in rows
    ]  # fmt: skip


async def announce_due(pool: asyncpg.Pool, bus: EventBus, now: datetime) -> int:
    """Pop every personal callback whose time has come on its agent's screen, once (the
    row lock lets several servers share the work). Returns how many."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "UPDATE callbacks cb SET announced_at = $1 FROM cases c "
            "WHERE cb.id IN (SELECT id FROM callbacks WHERE state = 'pending' "
            "  AND announced_at IS NULL AND agent_id IS NOT NULL AND lead_id IS NULL "
            "  AND due_at <= $1 ORDER BY due_at LIMIT 500 FOR UPDATE SKIP LOCKED) "
            "AND c.id = cb.case_id "
            "RETURNING cb.id, cb.agent_id, cb.case_id, cb.due_at, c.reference",
            now,
        )
    for r in rows:
        await bus.broadcast(
            f"agent:{r['agent_id']}",
            {"type": "callback_due", "callback_id": r["id"], "case_id": r["case_id"],
             "reference": r["reference"], "due_at": r["due_at"].isoformat(),
             "summary": f"Callback due: {r['reference']}"},
        )  # fmt: skip
    return len(rows)
