"""The attempt ledger: every call attempt with its timings, written off the hot path.

The engine acts first (Redirect within milliseconds of a live answer) and records after:
milestones are queued and written in order by one writer task. Closing an attempt is one
transaction: the ledger row, the lead's next step (unless an agent took the call, then the
disposition decides), the phone's last outcome and the call activity on the case. The
`call.ended` event follows on the bus for the live statistics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core import audit
from core.activity import Activity, ActivityKind, Channel, Direction, NewActivity, announce, append
from core.bus import EventBus
from core.identity import SYSTEM
from core.tasks import cancel_and_wait
from dialer.campaigns import Campaign, get_campaign
from dialer.leads import ClaimedLead, finish_attempt, release_claims
from dialer.retry import AttemptOutcome

log = logging.getLogger(__name__)

CALLS_TOPIC = "calls"

# How the call's final outcome counts for the lead.
LEAD_OUTCOME: dict[str, AttemptOutcome] = {
    "no_answer": AttemptOutcome.NO_ANSWER,
    "busy": AttemptOutcome.BUSY,
    "failed": AttemptOutcome.FAILED,
    "lost": AttemptOutcome.FAILED,
    "invalid_number": AttemptOutcome.INVALID_NUMBER,
    "machine": AttemptOutcome.MACHINE,
    # A person answered and hung up before the connect limit: nobody was abandoned, but
    # nobody talked either; try again like an unanswered call.
    "live_answer": AttemptOutcome.NO_ANSWER,
    "abandoned": AttemptOutcome.ABANDONED,
    "completed": AttemptOutcome.CONNECTED,
}

_SUMMARY = {
    "no_answer": "Outbound call: no answer",
    "busy": "Outbound call: busy",
    "failed": "Outbound call: failed",
    "lost": "Outbound call: lost while the Asterisk link was down",
    "invalid_number": "Outbound call: invalid number",
    "machine": "Outbound call: answering machine",
    "live_answer": "Outbound call: answered, hung up before an agent was connected",
    "abandoned": "Outbound call: answered, no agent free (abandonment message played)",
    "completed": "Outbound call: connected to an agent",
}
_INBOUND_SUMMARY = {
    "completed": "Inbound call: connected to an agent",
    "abandoned": "Inbound call: the caller hung up before an agent answered",
    "queue_timeout": "Inbound call: no agent within the maximum wait (callback message played)",
    "lost": "Inbound call: lost while the Asterisk link was down",
}


@dataclass(frozen=True)
class AttemptEnd:
    key: str
    outcome: str  # the call state machine's outcome value
    ended_at: datetime
    hangup_cause: int | None = None
    agent_id: int | None = None
    recording: str | None = None
    duration: float | None = None  # seconds connected
    # Milestones the call reached that were not marked as they happened (the link was
    # down, or the process that followed the call died): kept only where none is recorded,
    # so every outcome has its timings and the regulator's figure can be recomputed.
    answered_at: datetime | None = None
    amd_at: datetime | None = None
    abandoned_at: datetime | None = None
    agent_left_at: datetime | None = None
    source: str = "events"  # 'events', 'reconciled' or 'recovered' (see the migration)


Op = Callable[[asyncpg.Connection], Awaitable[None]]


class AttemptLedger:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: EventBus,
        default_zones: Sequence[str] = ("Europe/Rome",),
        node: str = "",
    ):
        self.pool = pool
        self.bus = bus
        self.default_zones = tuple(default_zones)
        self.node = node  # written on every attempt: the node that follows it
        self._queue: asyncio.Queue[Op] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="attempt-ledger")

    async def drain(self) -> None:
        await self._queue.join()

    async def stop(self) -> None:
        await self.drain()
        await cancel_and_wait(self._writer)

    async def _write_loop(self) -> None:
        while True:
            op = await self._queue.get()
            try:
                async with self.pool.acquire() as conn:
                    await op(conn)
            except Exception:
                log.exception("attempt ledger: a write failed")
            finally:
                self._queue.task_done()

    async def open(self, key: str, lead: ClaimedLead, started_at: datetime) -> None:
        """Written before the Originate is sent, so a crash never loses a dialed call."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO call_attempts (attempt_key, campaign_id, lead_id, case_id, debtor_id, "
                "phone_id, e164, started_at, node) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                key,
                lead.campaign_id,
                lead.id,
                lead.case_id,
                lead.debtor_id,
                lead.phone_id,
                lead.e164,
                started_at,
                self.node,
            )

    async def open_inbound(
        self,
        key: str,
        e164: str,
        started_at: datetime,
        case_id: int | None,
        debtor_id: int | None,
        phone_id: int | None,
    ) -> None:
        """An inbound call enters the ledger when it arrives (no campaign, no lead)."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO call_attempts (attempt_key, direction, case_id, debtor_id, phone_id, "
                "e164, started_at, answered_at, node) "
                "VALUES ($1, 'inbound', $2, $3, $4, $5, $6, $6, $7) "
                "ON CONFLICT (attempt_key) DO NOTHING",
                key,
                case_id,
                debtor_id,
                phone_id,
                e164,
                started_at,
                self.node,
            )

    async def open_call(
        self,
        key: str,
        started_at: datetime,
        case_id: int,
        debtor_id: int,
        phone_id: int,
        e164: str,
        campaign_id: int | None,
        lead_id: int | None,
        agent_id: int,
    ) -> None:
        """A call an agent places (manual or preview), written before the Originate."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO call_attempts (attempt_key, campaign_id, lead_id, case_id, debtor_id, "
                "phone_id, e164, started_at, agent_id, node) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                key,
                campaign_id,
                lead_id,
                case_id,
                debtor_id,
                phone_id,
                e164,
                started_at,
                agent_id,
                self.node,
            )

    def mark(self, key: str, **fields: Any) -> None:
        """Record milestones later, in order (answered_at, amd_at, amd_result, connected_at,
        agent_id, abandoned_at)."""
        allowed = {
            "answered_at",
            "amd_at",
            "amd_result",
            "connected_at",
            "agent_id",
            "abandoned_at",
        }
        if not fields or not set(fields) <= allowed:
            raise ValueError(f"unknown attempt fields: {sorted(set(fields) - allowed)}")
        names = sorted(fields)
        # Column names come from the fixed set above, values are parameters.
        assignments = ", ".join(
            f"{name} = COALESCE({name}, ${i + 2})" for i, name in enumerate(names)
        )
        sql = f"UPDATE call_attempts SET {assignments} WHERE attempt_key = $1"  # noqa: S608

        async def write(conn: asyncpg.Connection) -> None:
            await conn.execute(sql, key, *(fields[n] for n in names))

        self._queue.put_nowait(write)

    def settle_undisposed(self, key: str, campaign: Campaign, now: datetime) -> None:
        """Wrap-up ended without a disposition: the contact was made, so the lead is
        released as done, provisionally. The disposition stays open: the agent may still
        save it, and its outcome then replaces this settlement (`apply_disposition`)."""

        async def write(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                lead_id = await conn.fetchval(
                    "UPDATE call_attempts SET settled_provisionally_at = $2 "
                    "WHERE attempt_key = $1 AND disposition IS NULL "
                    "AND settled_provisionally_at IS NULL RETURNING lead_id",
                    key,
                    now,
                )
                if lead_id is not None:
                    await finish_attempt(
                        conn, campaign, lead_id, AttemptOutcome.CONNECTED, now, self.default_zones
                    )

        self._queue.put_nowait(write)

    def refused(self, key: str, reason: str) -> None:
        """Asterisk refused the Originate: the debtor's phone never rang, so this was not an
        attempt on the debtor. The row goes (no figure may count it), the lead gets its
        claim and attempt counters back, and the refusal stays in the audit log."""

        async def write(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                row = await conn.fetchrow(
                    "DELETE FROM call_attempts WHERE attempt_key = $1 AND ended_at IS NULL "
                    "RETURNING lead_id, case_id, campaign_id, node",
                    key,
                )
                if row is None:
                    return
                if row["lead_id"] is not None:
                    await release_claims(conn, row["node"] or self.node, [row["lead_id"]])
                await audit.record(
                    conn, SYSTEM, "call.refused", "case", row["case_id"],
                    after={"attempt_key": key, "campaign_id": row["campaign_id"], "reason": reason},
                    outcome="refused",
                )  # fmt: skip

        self._queue.put_nowait(write)

    def close(self, end: AttemptEnd, campaign: Campaign | None) -> None:
        async def write(conn: asyncpg.Connection) -> None:
            await self._close(conn, end, campaign)

        self._queue.put_nowait(write)

    async def _close(
        self, conn: asyncpg.Connection, end: AttemptEnd, campaign: Campaign | None
    ) -> None:
        async with conn.transaction():
            row = await conn.fetchrow(
                "UPDATE call_attempts SET ended_at = $2, outcome = $3, hangup_cause = $4, "
                "agent_id = COALESCE(agent_id, $5), recording = COALESCE(recording, $6), "
                "answered_at = COALESCE(answered_at, $7), amd_at = COALESCE(amd_at, $8), "
                "abandoned_at = COALESCE(abandoned_at, $9), "
                "agent_left_at = COALESCE(agent_left_at, $10), end_source = $11 "
                "WHERE attempt_key = $1 AND ended_at IS NULL "
                "RETURNING campaign_id, lead_id, case_id, e164, started_at, answered_at, amd_result, "
                "agent_id, direction, agent_left_at",
                end.key,
                end.ended_at,
                end.outcome,
                end.hangup_cause,
                end.agent_id,
                end.recording,
                end.answered_at,
                end.amd_at,
                end.abandoned_at if end.outcome == "abandoned" else None,
                end.agent_left_at,
                end.source,
            )
            if row is None:
                return  # closed already (a replayed end after a reconnect)
            lead_outcome = LEAD_OUTCOME.get(end.outcome, AttemptOutcome.FAILED)
            if campaign is None and row["campaign_id"] is not None and row["lead_id"] is not None:
                # The campaign was stopped while the call was up, or this process adopted
                # the call after a restart: the lead still takes its next step.
                campaign = await get_campaign(conn, row["campaign_id"])
            if campaign is not None and row["lead_id"] is not None:
                if lead_outcome is not AttemptOutcome.CONNECTED:
                    await finish_attempt(
                        conn,
                        campaign,
                        row["lead_id"],
                        lead_outcome,
                        end.ended_at,
                        self.default_zones,
                    )
            activity = None
            if row["case_id"] is not None:
                activity = await self._call_activity(conn, row, end)
        # Announced after the commit, so a listener that reads the database sees it.
        if activity is not None:
            await announce(self.bus, activity)
        await self.bus.publish(
            CALLS_TOPIC,
            {
                "type": "call.ended",
                "attempt_key": end.key,
                "direction": row["direction"],
                "campaign_id": row["campaign_id"],
                "case_id": row["case_id"],
                "agent_id": row["agent_id"],
                "started_at": row["started_at"].isoformat(),
                "outcome": end.outcome,
                "amd_result": row["amd_result"],
                "answered": row["answered_at"] is not None,
                "activity_id": None if activity is None else activity.id,
            },
        )

    async def _call_activity(
        self, conn: asyncpg.Connection, row: asyncpg.Record, end: AttemptEnd
    ) -> Activity | None:
        data: dict[str, Any] = {
            "attempt_key": end.key,
            "number": row["e164"],
            "outcome": end.outcome,
        }
        if end.duration is not None:
            data["talk_seconds"] = round(end.duration, 1)
        if end.source != "events":
            data["end_source"] = end.source
        if row["agent_left_at"] is not None:
            data["agent_left_at"] = row["agent_left_at"].isoformat()
        inbound = row["direction"] == "inbound"
        if inbound:
            summary = _INBOUND_SUMMARY.get(end.outcome, f"Inbound call: {end.outcome}")
        else:
            summary = _SUMMARY.get(end.outcome, f"Outbound call: {end.outcome}")
        if row["agent_left_at"] is not None:
            summary += "; the agent's line dropped and the debtor heard the cut-off message"
        if end.source == "recovered":
            summary += " (recorded after a restart of the dialer)"
        appended = await append(
            conn,
            NewActivity(
                row["case_id"],
                ActivityKind.CALL,
                Channel.VOICE,
                Direction.INBOUND if inbound else Direction.OUTBOUND,
                row["started_at"],
                summary,
                agent_id=row["agent_id"],
                reference=end.recording,
                delivery_status=end.outcome,
                external_id=end.key,
                data=data,
            ),
        )
        if not appended.created:
            return None
        if end.outcome == "completed":
            await conn.execute(
                "UPDATE cases SET last_contact_at = GREATEST(last_contact_at, $2), updated_at = now() "
                "WHERE id = $1",
                row["case_id"],
                end.ended_at,
            )
        return appended.activity
