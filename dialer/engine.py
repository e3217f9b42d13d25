"""The campaign engine: the outbound call from the pacer's decision to the agent's screen.

Every tick, for each campaign this node owns: ask the pacer how many calls to launch,
claim that many leads, open their ledger rows and originate them. Call notices from the
AMI side drive the rest: a live answer waits on the switchboard for an agent (the case's
own agent, else the longest-idle ready one); the agent is reserved, the debtor is
redirected into the agent's conference and the agent's browser gets the case in the same
instant; if no agent frees up within the connect limit, the debtor is redirected to the
abandonment message. Everything is recorded afterwards by the attempt ledger.

Nothing here knows whether Asterisk is real or simulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol

import asyncpg

from core.bus import EventBus
from core.clock import Clock
from core.identity import SYSTEM
from core.tasks import cancel_and_wait
from dialer.agent_desk import AgentDesk
from dialer.agent_dialing import MANUAL_WINDOW, AgentDialer
from dialer.agents import AgentSession, AgentState, AgentStateError
from dialer.attempts import AttemptEnd, AttemptLedger
from dialer.call_control import AMD_CONTEXT, HOLD_CONTEXT, CallControl
from dialer.call_notices import (
    CallAnswered,
    CallConnected,
    CallEnded,
    CallNotice,
    CallOutcome,
    LiveAnswer,
    MachineDetected,
)
from dialer.call_window import CallWindow
from dialer.campaigns import Campaign, DialMode, get_campaign
from dialer.inbound_calls import InboundArrived, InboundConnected, InboundEnded, InboundNotice
from dialer.inbound_router import InboundRouter, InboundSettings
from dialer.leads import ClaimedLead, claim_leads, promote_due, zone_sets
from dialer.switchboard import Switchboard, WaitingCall

log = logging.getLogger(__name__)


class Pacer(Protocol):
    def start(self, campaign: Campaign, live: int = 0, abandoned: int = 0) -> None:
        """Begin pacing a campaign, with its regulatory window's record so far."""
        ...

    def launch(
        self,
        campaign: Campaign,
        agents: Sequence[AgentSession],
        ringing: Sequence[float],
        waiting_live: int,
        now: float,
    ) -> int:
        """How many new calls the campaign should place now (`ringing`: seconds each call
        in flight has rung without a live decision)."""
        ...

    def dial_ended(self, campaign_id: int, now: float, outcome: str, seconds: float) -> None:
        """A dial reached its live decision ('live') or ended ('machine' or other)."""
        ...

    def live_settled(self, campaign_id: int, abandoned: bool) -> None:
        """A live answer was connected, or abandoned."""
        ...

    def agent_changed(
        self, campaign_ids: frozenset[int], before: AgentSession, after: AgentSession, now: float
    ) -> None:
        """Learn talk and wrap-up times from agent state changes."""
        ...


@dataclass(frozen=True)
class EngineSettings:
    dial_template: str = "PJSIP/{number}@carrier"
    # The agent's nailed-up leg: `{extension}` (SIP) or `{agent_id}`.
    agent_dial_template: str = "PJSIP/{extension}"
    default_zones: tuple[str, ...] = ("Europe/Rome",)
    node: str = "node-1"
    tick: float = 0.5  # seconds between pacing decisions (clock time)
    promote_every: float = 5.0
    max_launch: int = 50  # never more than this many originates per campaign per tick
    wrap_up_max: float = 60.0
    # Per-agent wrap-up limits overriding `wrap_up_max` (simulated agents in the demo).
    wrap_limits: Mapping[int, float] = field(default_factory=dict)
    inbound: InboundSettings = field(default_factory=InboundSettings)
    # Calls agents place from a case (campaign previews use the campaign's window).
    manual_window: CallWindow = MANUAL_WINDOW


@dataclass
class LiveCall:
    key: str
    campaign_id: int
    lead: ClaimedLead
    started: float
    preferred_agent_id: int | None = None
    agent_id: int | None = None
    live_at: float | None = None
    connected: float | None = None
    abandoned: bool = False


@dataclass
class EngineCounters:
    """Ground truth of what the engine did, for tests and the demo view."""

    dialed: int = 0
    live: int = 0
    connected: int = 0
    abandoned: int = 0
    machines: int = 0
    ended: int = 0
    # The latest reservation-to-Redirect times (bounded: a node runs for months).
    live_to_redirect: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


class CampaignEngine:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: EventBus,
        clock: Clock,
        desk: AgentDesk,
        calls: CallControl,
        pacer: Pacer,
        settings: EngineSettings | None = None,
    ):
        self.pool = pool
        self.bus = bus
        self.clock = clock
        self.desk = desk
        self.calls = calls
        self.pacer = pacer
        self.settings = settings or EngineSettings()
        self.ledger = AttemptLedger(pool, bus, self.settings.default_zones)
        self.campaigns: dict[int, Campaign] = {}
        self.live: dict[str, LiveCall] = {}
        self.board = Switchboard()
        self.counters = EngineCounters()
        self._wrap_deadlines: dict[int, float] = {}
        self._wrapping: dict[int, tuple[int | None, str]] = {}  # agent -> (campaign, attempt)
        self._last_promote: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._extensions: dict[int, str] = {}
        self.inbound = InboundRouter(self, self.settings.inbound)
        self.agent_calls = AgentDialer(self, self.settings.manual_window)
        self.legs_up: set[int] = set()  # agents whose nailed-up leg was originated
        desk.listeners.append(self._agent_changed)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.ledger.start()
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name="engine-ticks"),
            asyncio.create_task(self._notice_loop(), name="engine-notices"),
            asyncio.create_task(self._deadline_loop(), name="engine-deadlines"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        await self.ledger.stop()

    async def add_campaign(self, campaign_id: int) -> Campaign:
        async with self.pool.acquire() as conn:
            campaign = await get_campaign(conn, campaign_id)
            rows = await conn.fetch(
                "SELECT id, sip_extension FROM users WHERE sip_extension IS NOT NULL"
            )
        if campaign is None:
            raise LookupError(f"no campaign {campaign_id}")
        self._extensions.update({r["id"]: r["sip_extension"] for r in rows})
        self.campaigns[campaign.id] = campaign
        live, abandoned = await self._window_record(campaign)
        self.pacer.start(campaign, live, abandoned)
        return campaign

    async def _window_record(self, campaign: Campaign) -> tuple[int, int]:
        """Live answers and abandons of the campaign over its regulatory window."""
        seconds = {"24h": 86400, "30d": 30 * 86400}.get(str(campaign.compliance.abandon_window))
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE outcome IN ('completed', 'abandoned', 'live_answer')) "
                "AS live, count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned "
                "FROM call_attempts WHERE campaign_id = $1 "
                "AND ($2::int IS NULL OR started_at > now() - make_interval(secs => $2))",
                campaign.id,
                seconds,
            )
        return int(row["live"]), int(row["abandoned"])

    def remove_campaign(self, campaign_id: int) -> None:
        self.campaigns.pop(campaign_id, None)

    # --- pacing and dialing -----------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            for campaign in list(self.campaigns.values()):
                try:
                    await self.pace(campaign)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("campaign %d: pacing tick failed", campaign.id)
            await self.clock.sleep(self.settings.tick)

    def agents_of(self, campaign_id: int) -> list[AgentSession]:
        return [
            s
            for s in self.desk.sessions.values()
            if campaign_id in s.campaign_ids and s.outbound and s.state is not AgentState.LOGGED_OUT
        ]

    def held_for_inbound(self, agents: Sequence[AgentSession]) -> int:
        """Ready agents the pacer must not count on: blended agents are taken by inbound
        callers first (and the configured reserve is kept free for them)."""
        if not any(s.inbound for s in agents):
            return 0
        return self.inbound.waiting + self.settings.inbound.reserved_agents

    def wake(self) -> None:
        self._wake.set()

    def ringing(self, campaign_id: int, now: float) -> list[float]:
        """Seconds each call of the campaign has been in flight without a live decision."""
        return [
            now - call.started
            for call in self.live.values()
            if call.campaign_id == campaign_id and call.live_at is None
        ]

    async def pace(self, campaign: Campaign) -> int:
        """One pacing decision for one campaign; returns how many calls were placed."""
        if not self.calls.link_up:
            return 0  # never dial blind; reconciliation runs when the link is back
        now = self.clock.monotonic()
        wall = self.clock.now()
        async with self.pool.acquire() as conn:
            if now - self._last_promote.get(campaign.id, -1e9) >= self.settings.promote_every:
                await promote_due(conn, campaign.id, wall)
                self._last_promote[campaign.id] = now
            waiting = sum(1 for w in self.board.waiting.values() if w.campaign_id == campaign.id)
            agents = self.agents_of(campaign.id)
            waiting += self.held_for_inbound(agents)
            if campaign.mode is DialMode.PREVIEW:
                return await self.agent_calls.offer_previews(conn, campaign, agents)
            want = self.pacer.launch(campaign, agents, self.ringing(campaign.id, now), waiting, now)
            want = min(want, self.settings.max_launch)
            if want <= 0:
                return 0
            leads = await claim_leads(
                conn, campaign, wall, want, self.settings.node, wall.date(), await zone_sets(conn)
            )
        for lead in leads:
            await self._dial(campaign, lead, wall)
        return len(leads)

    def dial_string(self, e164: str) -> str:
        return self.settings.dial_template.format(number=e164.lstrip("+"))

    async def _dial(self, campaign: Campaign, lead: ClaimedLead, wall: datetime) -> None:
        key = uuid.uuid4().hex[:20]
        await self.ledger.open(key, lead, wall)
        preferred = lead.callback_agent_id
        self.live[key] = LiveCall(key, campaign.id, lead, self.clock.monotonic(), preferred)
        self.counters.dialed += 1
        await self.calls.dial(
            key,
            self.dial_string(lead.e164),
            context=AMD_CONTEXT if campaign.amd else HOLD_CONTEXT,
            timeout=float(campaign.no_answer_timeout),
            caller_id=campaign.caller_id or "",
            variables={"CAMPAIGN": str(campaign.id), "CASE": str(lead.case_id)},
        )

    # --- call notices -----------------------------------------------------------------------

    async def _notice_loop(self) -> None:
        async for decision in self.calls.notices():
            try:
                await self.on_notice(decision.notice)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("engine: could not handle %s", type(decision.notice).__name__)

    async def on_notice(self, notice: CallNotice | InboundNotice) -> None:
        if isinstance(notice, InboundArrived | InboundConnected | InboundEnded):
            await self.inbound.on_notice(notice)
            return
        if notice.attempt_id in self.agent_calls.calls:
            await self.agent_calls.on_notice(notice)
            return
        call = self.live.get(notice.attempt_id)
        if call is None:
            return  # not an attempt of this engine (or already finished)
        wall = self.clock.now()
        if isinstance(notice, CallAnswered):
            self.ledger.mark(call.key, answered_at=wall)
        elif isinstance(notice, LiveAnswer):
            self.counters.live += 1
            self.ledger.mark(call.key, amd_at=wall, amd_result=notice.amd_status or "HUMAN")
            now = self.clock.monotonic()
            call.live_at = now
            self.pacer.dial_ended(call.campaign_id, now, "live", now - call.started)
            campaign = self.campaigns.get(call.campaign_id)
            limit = campaign.compliance.connect_limit if campaign else 2.0
            self.board.arrive(
                WaitingCall(
                    call.key,
                    arrived=now,
                    deadline=now + limit,
                    campaign_id=call.campaign_id,
                    case_id=call.lead.case_id,
                    preferred_agent_id=call.preferred_agent_id,
                )
            )
            await self.assign()
            self._wake.set()
        elif isinstance(notice, MachineDetected):
            self.counters.machines += 1
            self.ledger.mark(call.key, amd_at=wall, amd_result="MACHINE")
        elif isinstance(notice, CallConnected):
            call.connected = self.clock.monotonic()
            self.counters.connected += 1
            self.ledger.mark(call.key, connected_at=wall)
            if call.agent_id is not None:
                with contextlib.suppress(AgentStateError):
                    self.desk.change(SYSTEM, call.agent_id, AgentState.ON_CALL)
        elif isinstance(notice, CallEnded):
            await self._ended(call, notice, wall)

    async def _ended(self, call: LiveCall, notice: CallEnded, wall: datetime) -> None:
        self.live.pop(call.key, None)
        self.board.gone(call.key)
        self.counters.ended += 1
        outcome = notice.outcome
        if call.abandoned and outcome is not CallOutcome.COMPLETED:
            outcome = CallOutcome.ABANDONED
        now = self.clock.monotonic()
        agent_id = call.agent_id
        if agent_id is not None:
            session = self.desk.session(agent_id)
            with contextlib.suppress(AgentStateError):
                if session.state is AgentState.ON_CALL:
                    self.begin_wrap_up(agent_id, call.campaign_id, call.key)
                elif session.state is AgentState.RESERVED:
                    self.desk.change(SYSTEM, agent_id, AgentState.READY)
        campaign = self.campaigns.get(call.campaign_id)
        if call.live_at is None:
            kind = "machine" if outcome is CallOutcome.MACHINE else "other"
            self.pacer.dial_ended(call.campaign_id, now, kind, now - call.started)
        else:
            self.pacer.live_settled(call.campaign_id, outcome is CallOutcome.ABANDONED)
        duration = None if call.connected is None else max(0.0, now - call.connected)
        self.ledger.close(
            AttemptEnd(
                call.key,
                outcome.value,
                wall,
                hangup_cause=notice.far_cause or None,
                agent_id=agent_id if call.connected is not None else None,
                recording=f"{call.key}.wav" if call.connected is not None else None,
                duration=duration,
            ),
            campaign,
        )

    def begin_wrap_up(self, agent_id: int, campaign_id: int | None, key: str) -> None:
        """The call ended: the agent wraps up, within the wrap-up limit."""
        limit = self.settings.wrap_limits.get(agent_id, self.settings.wrap_up_max)
        until = self.clock.monotonic() + limit
        # The session carries the limit: the agent's console counts it down, and the
        # agent may extend it (`AgentDesk.extend_wrap_up`).
        self.desk.change(SYSTEM, agent_id, AgentState.WRAP_UP, wrap_up_until=until)
        self._wrap_deadlines[agent_id] = until
        self._wrapping[agent_id] = (campaign_id, key)
        self._wake.set()

    # --- connecting live answers ------------------------------------------------------------

    async def assign(self) -> None:
        retry: list[WaitingCall] = []
        taken = False
        for waiting, agent in self.board.assign(list(self.desk.sessions.values())):
            call = self.live.get(waiting.key)
            if call is None and not waiting.inbound:
                continue
            if self.desk.session(agent.agent_id).state is not AgentState.READY:
                # The pairs were chosen before this loop awaited a Redirect; meanwhile a
                # concurrent assign() reserved this agent. The call keeps waiting (same
                # deadline) instead of being dropped from the board.
                self.board.arrive(waiting)
                taken = True
                continue
            if waiting.inbound:
                if not await self.inbound.connect(waiting, agent):
                    retry.append(waiting)  # the caller keeps waiting for another agent
                continue
            if call is None:
                continue
            started = self.clock.monotonic()
            call.agent_id = agent.agent_id
            pop = {"campaign_id": call.campaign_id, "direction": "outbound",
                   "number": call.lead.e164, "summary": f"Connected: {call.lead.e164}"}  # fmt: skip
            if await self.put_through(
                agent.agent_id, call.lead.case_id, call.key,
                partial(self.calls.connect_to_agent, call.key, str(agent.agent_id)),
                pop,
            ):  # fmt: skip
                self.counters.live_to_redirect.append(self.clock.monotonic() - started)
            else:
                call.agent_id = None
        for waiting in retry:
            if waiting.key in self.inbound.calls:
                self.board.arrive(waiting)
        if taken:
            await self.assign()  # another ready agent may take the calls put back

    async def put_through(
        self,
        agent_id: int,
        case_id: int,
        key: str,
        redirect: Callable[[], Awaitable[None]],
        pop: Mapping[str, Any],
    ) -> bool:
        """Reserve the agent, move the caller into the agent's conference and pop the case
        on the agent's screen in the same instant. False when the redirect failed (the
        agent is ready again and the caller keeps its place)."""
        self.desk.change(SYSTEM, agent_id, AgentState.RESERVED, case_id=case_id, attempt_key=key)
        try:
            await redirect()
        except Exception:
            log.warning("call %s: redirect to agent %d failed", key, agent_id)
            with contextlib.suppress(AgentStateError):
                self.desk.change(SYSTEM, agent_id, AgentState.READY)
            return False
        self.ledger.mark(key, agent_id=agent_id)
        await self.bus.broadcast(
            f"agent:{agent_id}",
            {"type": "screen_pop", "case_id": case_id, "attempt_key": key, **pop},
        )
        return True

    async def _abandon(self, waiting: WaitingCall) -> None:
        call = self.live.get(waiting.key)
        if call is None:
            return
        call.abandoned = True
        self.counters.abandoned += 1
        self.ledger.mark(call.key, abandoned_at=self.clock.now())
        try:
            await self.calls.abandon(call.key)
        except Exception:
            log.warning("attempt %s: redirect to the abandonment message failed", call.key)

    async def _deadline_loop(self) -> None:
        while True:
            now = self.clock.monotonic()
            for waiting in self.board.expired(now):
                if waiting.inbound:
                    await self.inbound.expired(waiting)
                else:
                    await self._abandon(waiting)
            for agent_id, deadline in list(self._wrap_deadlines.items()):
                session = self.desk.session(agent_id)
                if session.state is AgentState.WRAP_UP and session.wrap_up_until is not None:
                    deadline = self._wrap_deadlines[agent_id] = session.wrap_up_until  # extended
                if now >= deadline:
                    del self._wrap_deadlines[agent_id]
                    if session.state is AgentState.WRAP_UP:
                        # Wrap-up is bounded: the agent is made ready again (or paused, when
                        # they asked for it); the disposition stays open for them to save.
                        key = self._wrapping.pop(agent_id, None)
                        if key is not None:
                            campaign_id, attempt_key = key
                            campaign = (
                                None if campaign_id is None else self.campaigns.get(campaign_id)
                            )
                            if campaign is not None:
                                self.ledger.settle_undisposed(
                                    attempt_key, campaign, self.clock.now()
                                )
                        self.desk.change(SYSTEM, agent_id, AgentState.READY)
            deadlines = [d for d in (self.board.next_deadline(),) if d is not None]
            deadlines += list(self._wrap_deadlines.values())
            wait = min((d - now for d in deadlines), default=1.0)
            self._wake.clear()
            real = max(0.0, min(wait, 1.0)) / getattr(self.clock, "scale", 1.0)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives with the wake-up, and stop() would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(real, 0.001)):
                    await self._wake.wait()

    # --- agents -----------------------------------------------------------------------------

    def _agent_changed(self, before: AgentSession, after: AgentSession) -> None:
        self.pacer.agent_changed(before.campaign_ids, before, after, self.clock.monotonic())
        if after.state is AgentState.READY:
            if before.state is AgentState.LOGGED_OUT:
                self._start_shift(after)
            if self.board.waiting:
                self._spawn(self.assign())
        if after.state is AgentState.LOGGED_OUT:
            self.legs_up.discard(after.agent_id)
            if after.agent_id in self.agent_calls.offers:
                self._spawn(self.agent_calls.agent_left(after.agent_id))
        if after.state is not AgentState.WRAP_UP:
            self._wrap_deadlines.pop(after.agent_id, None)
            wrapping = self._wrapping.pop(after.agent_id, None)
            if wrapping is not None and before.state is AgentState.WRAP_UP:
                # Left wrap-up (ready, pause, logout) without a disposition: the contact was
                # made, so the lead is settled provisionally as when wrap-up runs out (a
                # no-op when the disposition was saved first); the disposition stays open.
                campaign_id, key = wrapping
                campaign = None if campaign_id is None else self.campaigns.get(campaign_id)
                if campaign is not None:
                    self.ledger.settle_undisposed(key, campaign, self.clock.now())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task the engine keeps a reference to until it is done."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _start_shift(self, session: AgentSession) -> None:
        """First ready of a shift: join the node's campaigns and nail up the agent's leg."""
        if not session.campaign_ids:
            self.desk.assign_campaigns(session.agent_id, frozenset(self.campaigns))
        if self.settings.inbound.blended and session.agent_id not in self.desk.groups_set:
            self.desk.assign_groups(session.agent_id, inbound=True, outbound=session.outbound)
        extension = self._extensions.get(session.agent_id, str(session.agent_id))
        dial = self.settings.agent_dial_template.format(
            extension=extension, agent_id=session.agent_id
        )
        self._spawn(self._nail_up(session.agent_id, dial))

    async def _nail_up(self, agent_id: int, dial: str) -> None:
        try:
            await self.calls.login_agent(str(agent_id), dial)
            self.legs_up.add(agent_id)
        except Exception:
            log.warning("agent %d: could not nail up the agent leg", agent_id)
