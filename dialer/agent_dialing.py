"""Calls an agent places: manual dialing from a case, and preview campaigns.

Both use the agent's nailed-up leg: the debtor is originated straight into the agent's
conference (`pratica-join-agent,<agent>`), so there is no answering-machine detection
and no abandonment (the agent is on the line when the debtor answers). The agent is
reserved for the call from the dial to the hangup, then wraps up like after any call.
The same checks as the predictive claim hold: the phone is active, not do-not-call,
without revoked consent, and the call window is open in every zone the number may be in
(the campaign's window for previews, `manual_window` for calls from a case).

In a preview campaign every ready agent is offered the next lead: the case pops with the
number, the agent is held (reserved) and chooses to call it or skip it; a skipped lead
goes back to the queue later with its attempt counters unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

import asyncpg

from core.identity import SYSTEM, Actor
from dialer.agents import AgentSession, AgentState, AgentStateError
from dialer.attempts import AttemptEnd
from dialer.call_control import JOIN_AGENT_CONTEXT
from dialer.call_notices import (
    CallAnswered,
    CallConnected,
    CallEnded,
    CallNotice,
    CallOutcome,
    DialRefused,
)
from dialer.call_window import CallWindow
from dialer.campaigns import Campaign
from dialer.leads import ClaimedLead, claim_leads, skip_lead, zone_sets

if TYPE_CHECKING:
    from dialer.engine import CampaignEngine
    from dialer.recovery import UnendedAttempt

log = logging.getLogger(__name__)

# Calls from a case: the hours debt-collection rules treat as convenient (8:00-21:00 in the
# debtor's local time, every day); a campaign's own window applies to its previews.
MANUAL_WINDOW = CallWindow(time(8, 0), time(21, 0), frozenset(range(1, 8)))
SKIP_DELAY = timedelta(minutes=30)


class AgentDialError(Exception):
    """The call cannot be placed now; the message says why."""


@dataclass(frozen=True)
class PreviewOffer:
    agent_id: int
    campaign_id: int
    lead: ClaimedLead


@dataclass
class AgentCall:
    key: str
    agent_id: int
    case_id: int
    e164: str
    campaign_id: int | None
    lead_id: int | None
    back_to: AgentState  # where the agent returns when the call does not connect
    pause_reason: str | None
    started: float
    connected: float | None = None
    agent_left_at: datetime | None = None


@dataclass
class AgentDialer:
    engine: CampaignEngine
    manual_window: CallWindow = MANUAL_WINDOW
    calls: dict[str, AgentCall] = field(default_factory=dict)
    offers: dict[int, PreviewOffer] = field(default_factory=dict)  # by agent
    dialed: int = 0

    # --- placing a call -----------------------------------------------------------------------

    async def dial_case(
        self, actor: Actor, agent_id: int, case_id: int, phone_id: int | None = None
    ) -> str:
        """A manual call from the case on the agent's screen; returns the attempt key."""
        if agent_id in self.offers:
            raise AgentDialError("call or skip the previewed case first")
        return await self._dial(actor, agent_id, case_id, phone_id, None)

    async def dial_preview(self, actor: Actor, agent_id: int, lead_id: int) -> str:
        offer = self.offers.get(agent_id)
        if offer is None or offer.lead.id != lead_id:
            raise AgentDialError("this lead is not previewed by you (any more)")
        key = await self._dial(actor, agent_id, offer.lead.case_id, offer.lead.phone_id, offer)
        self.offers.pop(agent_id, None)
        return key

    async def skip_preview(self, actor: Actor, agent_id: int, lead_id: int) -> None:
        offer = self.offers.get(agent_id)
        if offer is None or offer.lead.id != lead_id:
            raise AgentDialError("this lead is not previewed by you (any more)")
        engine = self.engine
        del self.offers[agent_id]
        async with engine.pool.acquire() as conn:
            await skip_lead(conn, engine.settings.node, lead_id, engine.clock.now() + SKIP_DELAY)
        with contextlib.suppress(AgentStateError):
            engine.desk.change(SYSTEM, agent_id, AgentState.READY)

    async def _dial(
        self,
        actor: Actor,
        agent_id: int,
        case_id: int,
        phone_id: int | None,
        offer: PreviewOffer | None,
    ) -> str:
        engine = self.engine
        if not engine.calls.link_up:
            raise AgentDialError("the link to Asterisk is down; try again in a moment")
        session = engine.desk.session(agent_id)
        allowed = {AgentState.RESERVED} if offer is not None else {AgentState.READY,
                                                                   AgentState.PAUSED}  # fmt: skip
        if session.state not in allowed or agent_id not in engine.legs_up:
            if session.state is AgentState.LOGGED_OUT or agent_id not in engine.legs_up:
                raise AgentDialError("press Ready first, so that your phone is connected")
            raise AgentDialError(f"you cannot place a call while {session.state.value}")
        campaign = None if offer is None else engine.campaigns.get(offer.campaign_id)
        window = campaign.window if campaign is not None else self.manual_window
        wall = engine.clock.now()
        async with engine.pool.acquire() as conn:
            if await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM call_attempts WHERE case_id = $1 "
                "AND ended_at IS NULL)",
                case_id,
            ):
                raise AgentDialError("the case is on a call right now")
            phone = await _callable_phone(conn, case_id, phone_id, engine.settings.default_zones)
        if phone is None:
            raise AgentDialError("the case has no phone that may be called")
        zones = list(phone["zones"])
        if not window.open_in(zones, wall):
            raise AgentDialError(
                f"outside the call window in the debtor's time ({', '.join(zones)})"
            )
        key = uuid.uuid4().hex[:20]
        call = AgentCall(
            key, agent_id, case_id, phone["e164"],
            None if offer is None else offer.campaign_id,
            None if offer is None else offer.lead.id,
            AgentState.PAUSED if session.state is AgentState.PAUSED else AgentState.READY,
            session.pause_reason, engine.clock.monotonic(),
        )  # fmt: skip
        if session.state is not AgentState.RESERVED:
            engine.desk.change(
                SYSTEM, agent_id, AgentState.RESERVED, case_id=case_id, attempt_key=key
            )
        await engine.ledger.open_call(
            key, wall, case_id, phone["debtor_id"], phone["id"], phone["e164"],
            call.campaign_id, call.lead_id, agent_id,
        )  # fmt: skip
        self.calls[key] = call
        self.dialed += 1
        dialed = await engine.calls.dial(
            key,
            engine.dial_string(phone["e164"]),
            context=JOIN_AGENT_CONTEXT,
            exten=str(agent_id),
            timeout=float(campaign.no_answer_timeout if campaign is not None else 30),
            caller_id=(campaign.caller_id or "") if campaign is not None else "",
            variables={"CASE": str(case_id)},
        )
        if not dialed and key in self.calls and not engine.calls.link_up:
            log.warning("manual call %s: the link dropped while dialing", key)
        elif not dialed:
            # Refused by Asterisk: the DialRefused notice puts the agent back; say why.
            raise AgentDialError("Asterisk refused the call; try again in a moment")
        await engine.bus.broadcast(
            f"agent:{agent_id}",
            {"type": "screen_pop", "case_id": case_id, "attempt_key": key,
             "campaign_id": call.campaign_id, "direction": "outbound", "manual": True,
             "number": phone["e164"], "summary": f"Calling {phone['e164']}"},
        )  # fmt: skip
        return key

    # --- following the call -------------------------------------------------------------------

    async def on_notice(self, notice: CallNotice) -> None:
        engine = self.engine
        call = self.calls.get(notice.attempt_id)
        if call is None:
            return
        if isinstance(notice, CallAnswered):
            engine.ledger.mark(call.key, answered_at=engine.clock.now())
        elif isinstance(notice, CallConnected):
            call.connected = engine.clock.monotonic()
            engine.ledger.mark(call.key, connected_at=engine.clock.now())
            with contextlib.suppress(AgentStateError):
                engine.desk.change(SYSTEM, call.agent_id, AgentState.ON_CALL)
        elif isinstance(notice, CallEnded):
            await self._ended(call, notice)
        elif isinstance(notice, DialRefused):
            self.calls.pop(call.key, None)
            engine.note_refusal()
            engine.ledger.refused(call.key, notice.reason)
            session = engine.desk.session(call.agent_id)
            if session.state is AgentState.RESERVED:
                with contextlib.suppress(AgentStateError):
                    engine.desk.change(
                        SYSTEM, call.agent_id, call.back_to, pause_reason=call.pause_reason
                    )

    async def _ended(self, call: AgentCall, notice: CallEnded) -> None:
        engine = self.engine
        self.calls.pop(call.key, None)
        outcome = notice.outcome
        if call.connected is not None:
            outcome = CallOutcome.COMPLETED
        session = engine.desk.session(call.agent_id)
        with contextlib.suppress(AgentStateError):
            if session.state is AgentState.ON_CALL:
                engine.begin_wrap_up(call.agent_id, call.campaign_id, call.key)
            elif session.state is AgentState.RESERVED:
                engine.desk.change(
                    SYSTEM, call.agent_id, call.back_to, pause_reason=call.pause_reason
                )
        now = engine.clock.monotonic()
        campaign = engine.campaign(call.campaign_id)
        wall = engine.clock.now()
        answered, _ = engine.wall_times(notice.timings, wall)
        engine.ledger.close(
            AttemptEnd(
                call.key,
                outcome.value,
                wall,
                hangup_cause=notice.far_cause or None,
                agent_id=call.agent_id,
                recording=f"{call.key}.wav" if call.connected is not None else None,
                duration=None if call.connected is None else max(0.0, now - call.connected),
                answered_at=answered,
                agent_left_at=call.agent_left_at,
                source="reconciled" if notice.reconciled else "events",
            ),
            campaign,
        )

    # --- preview campaigns --------------------------------------------------------------------

    async def offer_previews(
        self, conn: asyncpg.Connection, campaign: Campaign, agents: list[AgentSession]
    ) -> int:
        """Offer the next lead to each ready agent of a preview campaign."""
        engine = self.engine
        free = [
            s
            for s in agents
            if s.state is AgentState.READY
            and s.agent_id not in self.offers
            and s.agent_id in engine.legs_up
        ]
        if not free:
            return 0
        wall = engine.clock.now()
        leads = await claim_leads(
            conn,
            campaign,
            wall,
            len(free),
            engine.settings.node,
            wall.date(),
            await zone_sets(conn),
        )
        free.sort(key=lambda s: (s.idle_since, s.agent_id))
        for agent, lead in zip(free, leads, strict=False):
            self.offers[agent.agent_id] = PreviewOffer(agent.agent_id, campaign.id, lead)
            engine.desk.change(SYSTEM, agent.agent_id, AgentState.RESERVED, case_id=lead.case_id)
            await engine.bus.broadcast(
                f"agent:{agent.agent_id}",
                {"type": "preview", "case_id": lead.case_id, "lead_id": lead.id,
                 "campaign_id": campaign.id, "number": lead.e164,
                 "summary": f"Preview: {lead.e164} (call or skip)"},
            )  # fmt: skip
        return len(leads)

    async def agent_left(self, agent_id: int, back_to_ready: bool = False) -> None:
        """The agent logged out with a preview on screen, or its campaign stopped (then
        the agent is made ready again): the lead goes back, its counters as before."""
        offer = self.offers.pop(agent_id, None)
        if offer is None:
            return
        engine = self.engine
        async with engine.pool.acquire() as conn:
            await skip_lead(conn, engine.settings.node, offer.lead.id, engine.clock.now())
        if back_to_ready and engine.desk.session(agent_id).state is AgentState.RESERVED:
            with contextlib.suppress(AgentStateError):
                engine.desk.change(SYSTEM, agent_id, AgentState.READY)

    # --- recovery and the agent's leg --------------------------------------------------------

    def calls_of(self, agent_id: int) -> list[tuple[str, int]]:
        """(attempt key, case id) of the agent's calls in progress."""
        return [(c.key, c.case_id) for c in self.calls.values() if c.agent_id == agent_id]

    def agent_leg_lost(self, agent_id: int, wall: datetime) -> list[str]:
        """The agent's leg dropped: its calls are marked; returns their keys (the engine
        sends the debtors to the cut-off message)."""
        keys = []
        for call in self.calls.values():
            if call.agent_id == agent_id and call.agent_left_at is None:
                call.agent_left_at = wall
                keys.append(call.key)
        return keys

    def adopt(self, row: UnendedAttempt) -> None:
        """Follow a manual or preview call placed by a previous process of this node."""
        if row.agent_id is None or row.case_id is None:
            return
        engine = self.engine
        call = AgentCall(
            row.key, row.agent_id, row.case_id, row.e164, row.campaign_id, row.lead_id,
            AgentState.READY, None, engine.clock.monotonic(),
        )  # fmt: skip
        if row.connected_at is not None:
            call.connected = engine.clock.monotonic()
        self.calls[row.key] = call


# The case (may it be contacted at all?) and its phone to dial (the chosen one, else the
# first that may be called). The case row is share-locked: a status change in progress is
# waited for, and its outcome is what this sees.
_PHONE = """
SELECT c.contactable, c.status, c.debtor_id, p.id, p.e164, p.zones
FROM cases c
LEFT JOIN LATERAL (
    SELECT p.id, p.e164, sorted_zones(COALESCE(NULLIF(p.time_zones, '{}'), $3::text[])) AS zones
    FROM phones p
    WHERE p.debtor_id = c.debtor_id AND ($2::bigint IS NULL OR p.id = $2)
      AND p.active AND NOT p.do_not_call AND p.consent <> 'revoked'
    ORDER BY p.position, p.id
    LIMIT 1
) p ON true
WHERE c.id = $1
FOR SHARE OF c
"""


async def _callable_phone(
    conn: asyncpg.Connection, case_id: int, phone_id: int | None, default_zones: tuple[str, ...]
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(_PHONE, case_id, phone_id, list(default_zones))
    if row is not None and not row["contactable"]:
        raise AgentDialError(
            f"this case must not be contacted (its status is {row['status']!r}); "
            "the call was not placed"
        )
    return None if row is None or row["id"] is None else row


__all__ = ["AgentDialError", "AgentDialer", "PreviewOffer"]
