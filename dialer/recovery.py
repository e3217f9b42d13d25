"""What a dialer node left unfinished, read back from the database after a crash or a stop.

Every attempt is written before its Originate is sent, with the node that follows it, and
its milestones (answer, AMD decision, connect, abandon) as they happen. A node that starts
(or reconnects to Asterisk) compares its attempts without an end with what Asterisk still
has: calls still up are adopted and followed to the end; calls gone are closed here with
the outcome their recorded milestones support. Leads the node claimed but never dialed
are released.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from dialer.attempts import AttemptEnd
from dialer.call_notices import CallOutcome


@dataclass(frozen=True)
class UnendedAttempt:
    key: str
    direction: str
    campaign_id: int | None
    lead_id: int | None
    case_id: int | None
    debtor_id: int | None
    phone_id: int | None
    e164: str
    agent_id: int | None
    started_at: datetime
    answered_at: datetime | None
    amd_at: datetime | None
    amd_result: str | None
    connected_at: datetime | None
    abandoned_at: datetime | None
    disposition: str | None
    attempt_number: int
    callback_agent_id: int | None

    @property
    def placed_by_agent(self) -> bool:
        """A manual or preview call: written with its agent, dialed straight into the
        agent's conference (so never through answering-machine detection)."""
        return self.direction == "outbound" and self.agent_id is not None and self.amd_at is None


async def unended_attempts(conn: asyncpg.Connection, node: str) -> list[UnendedAttempt]:
    """The node's attempts without an end (NULL node: written before nodes were recorded)."""
    rows = await conn.fetch(
        "SELECT a.attempt_key, a.direction, a.campaign_id, a.lead_id, a.case_id, a.debtor_id, "
        "a.phone_id, a.e164, a.agent_id, a.started_at, a.answered_at, a.amd_at, a.amd_result, "
        "a.connected_at, a.abandoned_at, a.disposition, "
        "COALESCE(l.attempts_total, 0) AS attempts_total, l.callback_agent_id "
        "FROM call_attempts a LEFT JOIN leads l ON l.id = a.lead_id "
        "WHERE a.ended_at IS NULL AND (a.node = $1 OR a.node IS NULL) ORDER BY a.id",
        node,
    )
    return [
        UnendedAttempt(
            r["attempt_key"],
            r["direction"],
            r["campaign_id"],
            r["lead_id"],
            r["case_id"],
            r["debtor_id"],
            r["phone_id"],
            r["e164"],
            r["agent_id"],
            r["started_at"],
            r["answered_at"],
            r["amd_at"],
            r["amd_result"],
            r["connected_at"],
            r["abandoned_at"],
            r["disposition"],
            r["attempts_total"],
            r["callback_agent_id"],
        )  # fmt: skip
        for r in rows
    ]


def recovered_outcome(a: UnendedAttempt) -> CallOutcome:
    """The outcome an attempt's recorded milestones support, its call being gone.

    Connected: completed. Abandoned, or a person (or an answer AMD never classified) left
    waiting while nobody followed the call: abandoned, since the debtor did not reach an
    agent and the regulator's figure must not miss it. A machine: machine. Never
    answered, or nothing recorded: lost (an attempt was made; its result is unknown).
    """
    if a.connected_at is not None:
        return CallOutcome.COMPLETED
    if a.abandoned_at is not None:
        return CallOutcome.ABANDONED
    if a.amd_result == "MACHINE":
        return CallOutcome.MACHINE
    if a.direction == "inbound":
        return CallOutcome.ABANDONED if a.answered_at is not None else CallOutcome.LOST
    if a.amd_at is not None or a.answered_at is not None:
        return CallOutcome.ABANDONED
    return CallOutcome.LOST


def recovered_end(a: UnendedAttempt, now: datetime) -> AttemptEnd:
    """How to close an attempt whose call is gone (`now`: when this was learnt)."""
    outcome = recovered_outcome(a)
    return AttemptEnd(
        a.key,
        outcome.value,
        now,
        agent_id=a.agent_id if a.connected_at is not None else None,
        recording=f"{a.key}.wav" if a.connected_at is not None else None,
        abandoned_at=now if outcome is CallOutcome.ABANDONED else None,
        source="recovered",
    )


async def undisposed_connected(conn: asyncpg.Connection, node: str) -> list[tuple[str, int]]:
    """Connected calls of the node that ended without a disposition while their lead still
    waits for one (the wrap-up was lost with the process): (attempt key, campaign id)."""
    rows = await conn.fetch(
        "SELECT a.attempt_key, a.campaign_id FROM call_attempts a JOIN leads l ON l.id = a.lead_id "
        "WHERE l.state = 'dialing' AND l.claimed_by = $1 AND a.outcome = 'completed' "
        "AND a.disposition IS NULL AND a.settled_provisionally_at IS NULL "
        "AND a.campaign_id IS NOT NULL",
        node,
    )
    return [(r["attempt_key"], r["campaign_id"]) for r in rows]


async def release_stale_claims(
    conn: asyncpg.Connection, node: str, keep: Sequence[int] = ()
) -> int:
    """Leads this node claimed that no unended attempt follows (claimed, then the process
    stopped before dialing, or a preview nobody is looking at): back to ready with their
    attempt counters restored. `keep`: leads still held in memory (preview offers)."""
    status = await conn.execute(
        "UPDATE leads l SET state = 'ready', claimed_by = NULL, claimed_at = NULL, "
        "attempts_total = greatest(attempts_total - 1, 0), "
        "attempts_today = greatest(attempts_today - 1, 0) "
        "WHERE l.state = 'dialing' AND l.claimed_by = $1 AND NOT (l.id = ANY($2::bigint[])) "
        "AND NOT EXISTS (SELECT 1 FROM call_attempts a WHERE a.lead_id = l.id "
        "AND (a.ended_at IS NULL OR (a.outcome = 'completed' AND a.disposition IS NULL "
        "AND a.settled_provisionally_at IS NULL)))",
        node,
        list(keep),
    )
    return int(status.split()[-1])
