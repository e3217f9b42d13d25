"""Inbound calls on the engine's side: from a caller in the queue to an agent's screen.

A `PraticaInbound` arrival is identified by its number (the case's debtor or a linked
person; unknown callers get a triage ticket), entered in the attempt ledger, and put on
the engine's switchboard with the queue's maximum wait. The switchboard serves it like a
live outbound answer, oldest first: to the case's own agent when ready, else to the
longest-idle ready agent of the inbound group; the caller is redirected into the agent's
conference and the case pops on the agent's screen. A caller who hangs up while waiting,
or who reaches the maximum wait (and hears the callback message), is an abandoned
inbound call: counted, and a callback lead is scheduled for the case.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import asyncpg

from core.cases import CaseError
from core.identity import SYSTEM
from dialer.agents import AgentSession, AgentState, AgentStateError
from dialer.attempts import AttemptEnd
from dialer.campaigns import Campaign, get_campaign
from dialer.inbound import CallerMatch, caller_e164, identify_caller, open_triage_case
from dialer.inbound_calls import InboundArrived, InboundConnected, InboundEnded, InboundNotice
from dialer.leads import schedule_callback
from dialer.switchboard import WaitingCall

if TYPE_CHECKING:
    from dialer.engine import CampaignEngine

log = logging.getLogger(__name__)

INBOUND_TOPIC = "inbound"


@dataclass(frozen=True)
class InboundSettings:
    max_wait: float = 90.0  # seconds in the queue before the callback message
    # Callback leads of abandoned inbound calls go to this campaign; when unset, to the
    # active campaign that already holds a lead of the case (else none is scheduled).
    callback_campaign_id: int | None = None
    # Ready agents that outbound pacing leaves free for inbound callers (blending).
    reserved_agents: int = 0
    # Every agent joins the inbound group at the start of a shift (blended); supervisors
    # can take agents out of it (`AgentDesk.set_groups`).
    blended: bool = True
    default_region: str = "IT"


@dataclass
class InboundCall:
    key: str
    caller: str
    e164: str | None
    match: CallerMatch
    arrived: float  # monotonic
    triage: bool
    agent_id: int | None = None
    connected: float | None = None
    timed_out: bool = False


@dataclass
class InboundCounters:
    offered: int = 0
    identified: int = 0
    triage: int = 0
    connected: int = 0
    abandoned: int = 0  # the caller hung up while waiting
    timed_out: int = 0  # the queue's maximum wait was reached
    callbacks: int = 0
    longest_wait: float = 0.0


@dataclass
class InboundRouter:
    engine: CampaignEngine
    settings: InboundSettings = field(default_factory=InboundSettings)
    calls: dict[str, InboundCall] = field(default_factory=dict)
    counters: InboundCounters = field(default_factory=InboundCounters)

    @property
    def waiting(self) -> int:
        return sum(1 for w in self.engine.board.waiting.values() if w.inbound)

    def view(self) -> dict[str, Any]:
        """The supervisor's inbound numbers (JSON, also pushed on the `inbound` topic)."""
        c = self.counters
        return {"offered": c.offered, "identified": c.identified, "triage": c.triage,
                "connected": c.connected, "abandoned": c.abandoned, "timed_out": c.timed_out,
                "callbacks": c.callbacks, "waiting": self.waiting,
                "longest_wait_seconds": round(c.longest_wait, 1)}  # fmt: skip

    def follows(self, key: str) -> bool:
        return key in self.calls

    def busy_agents(self) -> set[int]:
        return {c.agent_id for c in self.calls.values() if c.agent_id is not None}

    def adopt(self, key: str, case_id: int | None, e164: str, agent_id: int | None) -> None:
        """Follow an inbound call a previous process of this node connected (one still
        waiting is announced again by the reconciliation and routed as new)."""
        if key in self.calls or case_id is None or agent_id is None:
            return
        match = CallerMatch(0, case_id, (case_id,), None, "debtor")
        now = self.engine.clock.monotonic()
        self.calls[key] = InboundCall(key, e164, e164, match, now, False, agent_id, now)

    def connected_to(self, agent_id: int) -> list[str]:
        """Keys of the callers connected to (or being put through to) the agent."""
        return [c.key for c in self.calls.values() if c.agent_id == agent_id]

    async def _announce(self) -> None:
        await self.engine.bus.broadcast(INBOUND_TOPIC, {"type": "inbound.stats", **self.view()})

    async def on_notice(self, notice: InboundNotice) -> None:
        if isinstance(notice, InboundArrived):
            await self._arrived(notice)
        elif isinstance(notice, InboundConnected):
            self._connected(notice)
        elif isinstance(notice, InboundEnded):
            await self._ended(notice)
        await self._announce()

    # --- arrival ----------------------------------------------------------------------------

    async def _arrived(self, n: InboundArrived) -> None:
        engine = self.engine
        if n.attempt_id in self.calls:
            return
        now = engine.clock.monotonic()
        wall = engine.clock.now()
        e164 = caller_e164(n.caller, self.settings.default_region)
        async with engine.pool.acquire() as conn:
            match = None if e164 is None else await identify_caller(conn, e164)
            triage = match is None
            if match is None:
                try:
                    match = await open_triage_case(
                        conn, e164, n.attempt_id, self.settings.default_region
                    )
                except CaseError:
                    # Another call from the same unknown number opened its ticket first.
                    match = None if e164 is None else await identify_caller(conn, e164)
                    if match is None:
                        raise
        call = InboundCall(n.attempt_id, n.caller, e164, match, now, triage)
        self.calls[call.key] = call
        self.counters.offered += 1
        if triage:
            self.counters.triage += 1
        else:
            self.counters.identified += 1
        await engine.ledger.open_inbound(
            call.key, e164 or n.caller or "withheld", wall, match.case_id, match.debtor_id,
            match.phone_id,
        )  # fmt: skip
        engine.board.arrive(
            WaitingCall(
                call.key,
                arrived=now,
                deadline=now + self.settings.max_wait,
                case_id=match.case_id,
                preferred_agent_id=match.assigned_agent_id,
                inbound=True,
                caller=e164 or n.caller,
            )
        )
        await engine.assign()
        engine.wake()

    # --- connecting ---------------------------------------------------------------------------

    async def connect(self, waiting: WaitingCall, agent: AgentSession) -> bool:
        """Put a waiting caller through to `agent` (reserved here); False if it failed."""
        engine = self.engine
        call = self.calls.get(waiting.key)
        if call is None:
            return False
        waited = engine.clock.monotonic() - call.arrived
        call.agent_id = agent.agent_id
        pop = {
            "campaign_id": None,
            "direction": "inbound",
            "number": call.e164 or call.caller,
            "triage": call.triage,
            "summary": (
                f"Connected: inbound call from {call.e164 or 'a withheld number'}"
                + (" (unknown caller: triage ticket)" if call.triage else "")
            ),
        }
        if not await engine.put_through(
            agent.agent_id, call.match.case_id, call.key,
            partial(engine.calls.connect_inbound, call.key, str(agent.agent_id)), pop,
        ):  # fmt: skip
            call.agent_id = None
            return False
        self.counters.longest_wait = max(self.counters.longest_wait, waited)
        return True

    def _connected(self, n: InboundConnected) -> None:
        call = self.calls.get(n.attempt_id)
        if call is None:
            return
        engine = self.engine
        call.connected = engine.clock.monotonic()
        self.counters.connected += 1
        engine.ledger.mark(call.key, connected_at=engine.clock.now())
        if call.agent_id is not None:
            with contextlib.suppress(AgentStateError):
                engine.desk.change(SYSTEM, call.agent_id, AgentState.ON_CALL)

    async def expired(self, waiting: WaitingCall) -> None:
        """The queue's maximum wait: the caller hears the callback message."""
        call = self.calls.get(waiting.key)
        if call is None:
            return
        call.timed_out = True
        try:
            await self.engine.calls.inbound_timeout(call.key)
        except Exception:
            log.warning("inbound %s: redirect to the callback message failed", call.key)

    # --- the end ------------------------------------------------------------------------------

    async def _ended(self, n: InboundEnded) -> None:
        engine = self.engine
        call = self.calls.pop(n.attempt_id, None)
        if call is None:
            return
        engine.board.gone(call.key)
        wall = engine.clock.now()
        now = engine.clock.monotonic()
        if call.connected is not None:
            outcome = "completed"
        elif n.reconciled:
            outcome = "lost"
        elif call.timed_out:
            outcome = "queue_timeout"
        else:
            outcome = "abandoned"
        if call.connected is None:
            self.counters.longest_wait = max(self.counters.longest_wait, now - call.arrived)
        agent_id = call.agent_id
        if agent_id is not None:
            session = engine.desk.session(agent_id)
            with contextlib.suppress(AgentStateError):
                if session.state is AgentState.ON_CALL:
                    engine.begin_wrap_up(agent_id, None, call.key)
                elif session.state is AgentState.RESERVED:
                    engine.desk.change(SYSTEM, agent_id, AgentState.READY)
        duration = None if call.connected is None else max(0.0, now - call.connected)
        engine.ledger.close(
            AttemptEnd(
                call.key,
                outcome,
                wall,
                hangup_cause=n.cause or None,
                agent_id=agent_id if call.connected is not None else None,
                recording=f"{call.key}.wav" if call.connected is not None else None,
                duration=duration,
            ),
            None,
        )
        if call.connected is None:
            # Not served (hung up in the queue, the maximum wait, or gone while the link
            # was down): an abandoned inbound call, called back.
            if not call.triage:
                await self._callback(call, wall)
            if outcome == "queue_timeout":
                self.counters.timed_out += 1
            else:
                self.counters.abandoned += 1

    async def _callback(self, call: InboundCall, wall: datetime) -> None:
        """An abandoned inbound call becomes a callback lead of the case, due now."""
        engine = self.engine
        try:
            async with engine.pool.acquire() as conn:
                campaign = await self._callback_campaign(conn, call.match.case_id)
                if campaign is None:
                    log.info("inbound %s: no campaign to call the case back from", call.key)
                    return
                await schedule_callback(
                    conn,
                    SYSTEM,
                    campaign,
                    call.match.case_id,
                    wall,
                    call.match.assigned_agent_id,
                    engine.settings.default_zones,
                )
        except LookupError:
            log.info("inbound %s: the case has no phone that may be called back", call.key)
            return
        self.counters.callbacks += 1

    async def _callback_campaign(self, conn: asyncpg.Connection, case_id: int) -> Campaign | None:
        campaign_id = self.settings.callback_campaign_id
        if campaign_id is None:
            campaign_id = await conn.fetchval(
                "SELECT l.campaign_id FROM leads l JOIN campaigns c ON c.id = l.campaign_id "
                "WHERE l.case_id = $1 AND c.active ORDER BY l.last_attempt_at DESC NULLS LAST "
                "LIMIT 1",
                case_id,
            )
        if campaign_id is None:
            return None
        return await get_campaign(conn, int(campaign_id))
