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
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

import asyncpg

from core.bus import EventBus
from core.clock import Clock
from core.identity import SYSTEM
from core.tasks import cancel_and_wait
from dialer.agent_desk import AgentDesk
from dialer.agent_dialing import MANUAL_WINDOW, AgentDialer
from dialer.agent_legs import AgentLegDown, AgentLegFound, AgentLegUp
from dialer.agents import AgentSession, AgentState, AgentStateError
from dialer.ami_events import ChannelRef
from dialer.attempts import AttemptEnd, AttemptLedger
from dialer.call_control import ABANDON_CONTEXT, AMD_CONTEXT, HOLD_CONTEXT, CallControl, Notice
from dialer.call_notices import (
    CallAnswered,
    CallConnected,
    CallEnded,
    CallOutcome,
    CallTimings,
    DialRefused,
    LinkChanged,
    LiveAnswer,
    MachineDetected,
)
from dialer.call_state import attempt_of_uniqueid
from dialer.call_window import CallWindow
from dialer.campaigns import Campaign, DialMode, get_campaign
from dialer.inbound_calls import InboundArrived, InboundConnected, InboundEnded
from dialer.inbound_router import InboundRouter, InboundSettings
from dialer.leads import ClaimedLead, claim_leads, promote_due, release_claims, zone_sets
from dialer.recovery import (
    UnendedAttempt,
    recovered_end,
    release_stale_claims,
    undisposed_connected,
    unended_attempts,
)
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
    # After the AMI link comes back, dial again only once it has stayed up this long
    # (clock seconds), doubled for every other drop in the last `flap_window`: live
    # debtors cannot be connected while the link is down, so a flapping link would turn
    # into abandoned calls.
    link_stable_for: float = 10.0
    flap_window: float = 600.0
    max_link_hold: float = 300.0
    # Asterisk refusing Originates (shutting down, overloaded, misconfigured): stop
    # dialing for this long, doubled for every further refusal in a row.
    refusal_hold: float = 5.0
    max_refusal_hold: float = 120.0
    # Seconds a clean stop waits for the calls it ends (ringing ones are hung up, live
    # ones connected or abandoned) to be recorded; connected calls are handed over.
    stop_grace: float = 5.0
    # Answered calls that end before AMD decides, with no decision at all in between: then
    # dialing stops for `dialplan_failure_hold` (clock seconds) and an alert is raised.
    dialplan_failures_to_stop: int = 3
    # Clock seconds of such calls with no decision at all (amd.conf decides within 4 s).
    amd_silence_limit: float = 6.0
    dialplan_failure_hold: float = 300.0


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
    agent_left_at: datetime | None = None


@dataclass
class EngineCounters:
    """Ground truth of what the engine did, for tests and the demo view."""

    dialed: int = 0
    live: int = 0
    connected: int = 0
    abandoned: int = 0
    machines: int = 0
    ended: int = 0
    refused: int = 0  # Originates Asterisk refused (not attempts on a debtor)
    # Abandons whose redirect to the message failed (the link was down): the debtor was
    # not connected in time, and hears the dialplan's own safety-net message, or nothing.
    abandoned_unheard: int = 0
    # Answered calls that ended before any AMD decision (the silence, or a failing dialplan).
    dialplan_failures: int = 0
    agent_left: int = 0  # connected debtors whose agent's leg dropped mid-call
    recovered: int = 0  # attempts closed or adopted after a restart
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
        self.ledger = AttemptLedger(pool, bus, self.settings.default_zones, node=self.settings.node)
        self.campaigns: dict[int, Campaign] = {}
        # Every campaign this engine has run, active or stopped: a call, wrap-up or adopted
        # attempt of a stopped campaign still settles its lead by the campaign's rules.
        self._known: dict[int, Campaign] = {}
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
        self.legs_up: set[int] = set()  # agents whose nailed-up leg Asterisk reports up
        self._legs_pending: set[int] = set()  # agents whose leg is being originated
        self._hold_until = 0.0  # no dialing before this clock time (link or refusals)
        self._hold_reason = ""
        self._drops: deque[float] = deque(maxlen=64)
        self._refusals = 0
        self._stopping = False
        self._amd_misses: dict[int, int] = {}  # campaign -> answered calls in a row w/o AMD
        self._amd_miss_since: dict[int, float] = {}  # campaign -> when the first of them ended
        self.alerts: dict[int, str] = {}  # campaign -> what a supervisor must fix now
        # Each agent's last recorded state (state, pause reason), read at a restart.
        self._last_states: dict[int, tuple[str, str | None]] = {}
        desk.listeners.append(self._agent_changed)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start following calls: first what a previous process of this node left (see
        `recover`), then pacing."""
        await self.ledger.start()
        # The notice loop starts after the recovery: a call that ends while it runs is
        # reported after its attempt has been taken back, not dropped as unknown.
        if self.calls.link_up:
            try:
                await self.recover(at_start=True)
            except Exception:
                # Not fatal: the next reconnect runs it again; meanwhile nothing is dialed.
                log.exception("engine: recovery at start failed; holding dialing")
                self._hold(self.settings.link_stable_for, "recovery failed")
        self._tasks = [
            asyncio.create_task(self._notice_loop(), name="engine-notices"),
            asyncio.create_task(self._tick_loop(), name="engine-ticks"),
            asyncio.create_task(self._deadline_loop(), name="engine-deadlines"),
        ]

    async def stop(self) -> None:
        """A clean stop: no new dials; ringing calls are hung up and live debtors are
        connected or abandoned as usual, for up to `stop_grace`; claimed leads and preview
        offers go back. Connected calls (and their agents' legs) stay up on Asterisk and
        are handed over: the next start of this node adopts them. Idle agents' legs are
        hung up."""
        self._stopping = True
        ticks = [t for t in self._tasks if t.get_name() == "engine-ticks"]
        await cancel_and_wait(*ticks)
        try:
            async with asyncio.timeout(self.settings.stop_grace):
                await self._wind_down()
        except TimeoutError:
            log.warning("engine: %d calls still ending at stop; the next start adopts them",
                        len(self.live))  # fmt: skip
        except Exception:
            log.exception("engine: winding down failed; the next start reconciles")
        await cancel_and_wait(*self._tasks)
        await cancel_and_wait(*self._background)
        await self.ledger.stop()

    async def _wind_down(self) -> None:
        if self.calls.link_up:
            for call in list(self.live.values()):
                if call.live_at is None and call.connected is None:
                    with contextlib.suppress(Exception):
                        await self.calls.cancel(call.key)
        for agent_id in list(self.agent_calls.offers):
            await self.agent_calls.agent_left(agent_id)
        # Bounded by stop_grace (the caller's timeout); the calls end on the notice task.
        while any(c.connected is None for c in self.live.values()) or self.board.waiting:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if self.calls.link_up:
            busy = {c.agent_id for c in self.live.values() if c.agent_id is not None}
            busy |= {c.agent_id for c in self.agent_calls.calls.values()}
            busy |= self.inbound.busy_agents()
            for agent_id in list(self.legs_up - busy):
                with contextlib.suppress(Exception):
                    await self.calls.hangup_agent_leg(agent_id)
        # Wrap-ups in progress settle their leads as contacted now (the agent's
        # disposition, saved later, still applies).
        for campaign_id, key in list(self._wrapping.values()):
            campaign = self.campaign(campaign_id)
            if campaign is not None:
                self.ledger.settle_undisposed(key, campaign, self.clock.now())
        await self.ledger.drain()
        async with self.pool.acquire() as conn:
            await release_stale_claims(conn, self.settings.node)

    def campaign(self, campaign_id: int | None) -> Campaign | None:
        """An active campaign of this node, or one it ran before (stopped since)."""
        if campaign_id is None:
            return None
        return self.campaigns.get(campaign_id) or self._known.get(campaign_id)

    # --- recovery ---------------------------------------------------------------------------

    async def recover(self, at_start: bool = False) -> int:
        """Reconcile this node's attempts without an end with what Asterisk has now.

        Calls still up are adopted and followed to the end; calls gone are closed with the
        outcome their recorded milestones support; leads claimed and never dialed are
        released. At start, connected calls that lost their wrap-up with the old process
        settle their lead. Returns how many attempts were adopted or closed."""
        snapshot = await self.calls.snapshot()
        present = {key for item in snapshot if (key := _attempt_key(item.channel)) is not None}
        async with self.pool.acquire() as conn:
            rows = await unended_attempts(conn, self.settings.node)
        now = self.clock.now()
        handled = 0
        closed_connected: set[str] = set()
        for row in rows:
            if row.key in self.live or row.key in self.agent_calls.calls:
                continue
            if self.inbound.follows(row.key):
                continue
            handled += 1
            campaign = await self._campaign_by_id(row.campaign_id)
            if row.key in present:
                self._adopt(row)
            else:
                end = recovered_end(row, now)
                self.ledger.close(end, campaign)
                if end.outcome == "completed":
                    closed_connected.add(row.key)
        await self.ledger.drain()
        # Connected calls whose wrap-up nobody follows: every one at start (the wrap-ups
        # died with the old process), else the ones just closed. Their leads settle as
        # contacted; the agent's disposition, when it comes, still applies.
        async with self.pool.acquire() as conn:
            undisposed = await undisposed_connected(conn, self.settings.node)
        for key, campaign_id in undisposed:
            if not at_start and key not in closed_connected:
                continue
            campaign = await self._campaign_by_id(campaign_id)
            if campaign is not None:
                self.ledger.settle_undisposed(key, campaign, now)
        await self.ledger.drain()
        released = 0
        if at_start:
            # Only at start: while this process runs, a lead it claimed may not have its
            # attempt written yet (the tick that claimed it is between the claim and the
            # ledger), and releasing it then would let it be dialed twice.
            async with self.pool.acquire() as conn:
                keep = [offer.lead.id for offer in self.agent_calls.offers.values()]
                released = await release_stale_claims(conn, self.settings.node, keep)
        if at_start:
            # After a reconnect the client has already reconciled what it saw; at start
            # the calls and legs found are taken over now, before any pacing.
            self._last_states = await _last_agent_states(self.pool)
            for notice in self.calls.reconcile_now(snapshot):
                await self.on_notice(notice)
        self.counters.recovered += handled
        if handled or released:
            log.warning("recovery: %d unended attempts adopted or closed, %d claimed leads "
                        "released", handled, released)  # fmt: skip
        return handled

    async def _campaign_by_id(self, campaign_id: int | None) -> Campaign | None:
        if campaign_id is None:
            return None
        known = self.campaign(campaign_id)
        if known is not None:
            return known
        async with self.pool.acquire() as conn:
            campaign = await get_campaign(conn, campaign_id)
        if campaign is not None:
            self._known[campaign.id] = campaign
        return campaign

    def _adopt(self, row: UnendedAttempt) -> None:
        """Follow a call a previous process placed; its missed notices come from the
        CoreShowChannels reconciliation that follows."""
        if row.direction == "inbound":
            self.inbound.adopt(row.key, row.case_id, row.e164, row.agent_id)
            return
        if row.placed_by_agent and row.agent_id is not None and row.case_id is not None:
            self.agent_calls.adopt(row)
            return
        if row.campaign_id is None or row.lead_id is None or row.case_id is None:
            return
        lead = ClaimedLead(
            row.lead_id, row.campaign_id, row.case_id, row.debtor_id or 0, row.phone_id or 0,
            row.e164, row.attempt_number, row.callback_agent_id,
        )  # fmt: skip
        call = LiveCall(
            row.key, row.campaign_id, lead, self.clock.monotonic(), agent_id=row.agent_id
        )
        self.live[row.key] = call

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
        self._known[campaign.id] = campaign
        # Agents already working on this node join it (as they join every campaign of
        # the node at their first Ready).
        for session in list(self.desk.sessions.values()):
            if (
                session.state is not AgentState.LOGGED_OUT
                and campaign.id not in session.campaign_ids
            ):
                self.desk.assign_campaigns(session.agent_id, session.campaign_ids | {campaign.id})
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
        """Stop dialing a campaign. Its calls in progress end as usual; previews offered to
        agents go back to the queue."""
        self.campaigns.pop(campaign_id, None)
        for agent_id, offer in list(self.agent_calls.offers.items()):
            if offer.campaign_id == campaign_id:
                self._spawn(self.agent_calls.agent_left(agent_id, back_to_ready=True))

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
        """The campaign's agents the pacer may count on: logged in, with a phone leg up
        (a debtor sent to an agent without one would hear silence)."""
        return [
            s
            for s in self.desk.sessions.values()
            if campaign_id in s.campaign_ids
            and s.outbound
            and s.state is not AgentState.LOGGED_OUT
            and s.agent_id in self.legs_up
        ]

    def reachable(self) -> list[AgentSession]:
        """Sessions that may be offered a call: every agent whose leg is up."""
        return [s for s in self.desk.sessions.values() if s.agent_id in self.legs_up]

    def _hold(self, seconds: float, reason: str) -> None:
        until = self.clock.monotonic() + seconds
        if until > self._hold_until:
            self._hold_until, self._hold_reason = until, reason
            log.warning("dialing held for %.0f s: %s", seconds, reason)

    def dialing_allowed(self) -> bool:
        """Whether new calls may be placed now (the link is up and has been stable, and
        Asterisk is not refusing Originates)."""
        return (
            self.calls.link_up
            and not self._stopping
            and (self.clock.monotonic() >= self._hold_until)
        )

    def dialing_status(self) -> dict[str, Any]:
        left = max(0.0, self._hold_until - self.clock.monotonic())
        return {
            "allowed": self.dialing_allowed(),
            "held_seconds": round(left, 1),
            "reason": self._hold_reason
            if left > 0
            else ("link down" if not self.calls.link_up else ""),
            "alerts": dict(self.alerts),
        }

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
        if not self.dialing_allowed():
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
        placed = 0
        for n, lead in enumerate(leads):
            if not self.dialing_allowed():
                # Refused or cut off mid-batch: the rest were never dialed.
                async with self.pool.acquire() as conn:
                    await release_claims(conn, self.settings.node, [x.id for x in leads[n:]])
                break
            await self._dial(campaign, lead, wall)
            placed += 1
        return placed

    def dial_string(self, e164: str) -> str:
        return self.settings.dial_template.format(number=e164.lstrip("+"))

    async def _dial(self, campaign: Campaign, lead: ClaimedLead, wall: datetime) -> None:
        key = uuid.uuid4().hex[:20]
        await self.ledger.open(key, lead, wall)
        preferred = lead.callback_agent_id
        self.live[key] = LiveCall(key, campaign.id, lead, self.clock.monotonic(), preferred)
        self.counters.dialed += 1
        sent = await self.calls.dial(
            key,
            self.dial_string(lead.e164),
            context=AMD_CONTEXT if campaign.amd else HOLD_CONTEXT,
            timeout=float(campaign.no_answer_timeout),
            caller_id=campaign.caller_id or "",
            variables={"CAMPAIGN": str(campaign.id), "CASE": str(lead.case_id)},
        )
        if sent:
            self._refusals = 0
        elif self.calls.link_up:
            self.note_refusal()

    def note_refusal(self) -> None:
        """Asterisk refused an Originate: back off before trying again."""
        self._refusals += 1
        hold = self.settings.refusal_hold * 2 ** min(self._refusals - 1, 8)
        self._hold(min(hold, self.settings.max_refusal_hold), "Asterisk refuses Originate")

    # --- call notices -----------------------------------------------------------------------

    async def _notice_loop(self) -> None:
        async for decision in self.calls.notices():
            try:
                await self.on_notice(decision.notice)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("engine: could not handle %s", type(decision.notice).__name__)

    async def on_notice(self, notice: Notice) -> None:
        if isinstance(notice, InboundArrived | InboundConnected | InboundEnded):
            await self.inbound.on_notice(notice)
            return
        if isinstance(notice, LinkChanged):
            await self._link_changed(notice)
            return
        if isinstance(notice, AgentLegUp | AgentLegDown | AgentLegFound):
            await self._leg_notice(notice)
            return
        if isinstance(notice, DialRefused) and notice.attempt_id in self.live:
            self.live.pop(notice.attempt_id)
            self.counters.refused += 1
            self.counters.dialed -= 1
            self.ledger.refused(notice.attempt_id, notice.reason)
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
            self._amd_ok(call.campaign_id)  # the dialplan decides: it works
            self.counters.live += 1
            self.ledger.mark(call.key, amd_at=wall, amd_result=notice.amd_status or "HUMAN")
            now = self.clock.monotonic()
            call.live_at = now
            self.pacer.dial_ended(call.campaign_id, now, "live", now - call.started)
            campaign = self.campaign(call.campaign_id)
            limit = campaign.compliance.connect_limit if campaign else 2.0
            self.board.arrive(
                WaitingCall(
                    call.key,
                    arrived=now,
                    deadline=now + limit,
                    # A call of a campaign stopped meanwhile (or adopted after a restart
                    # before its campaign resumed) goes to any free agent rather than to
                    # nobody: a person is on the line.
                    campaign_id=call.campaign_id if call.campaign_id in self.campaigns else None,
                    case_id=call.lead.case_id,
                    preferred_agent_id=call.preferred_agent_id,
                )
            )
            await self.assign()
            self._wake.set()
        elif isinstance(notice, MachineDetected):
            self._amd_ok(call.campaign_id)
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
        campaign = self.campaign(call.campaign_id)
        if (
            outcome is CallOutcome.LIVE_ANSWER
            and call.live_at is None
            and campaign is not None
            and campaign.amd
        ):
            # Answered and ended before answering-machine detection decided: the debtor
            # heard only silence (and hung up during it, or the dialplan failed: app_amd
            # not loaded, a broken context). Nobody was there: abandoned, by every
            # profile's rule (Italy's "silent call", a live answer not connected in time).
            outcome = CallOutcome.ABANDONED
            self._dialplan_failed(campaign, call.key)
        if (
            notice.reconciled
            and call.connected is None
            and (
                outcome is CallOutcome.LIVE_ANSWER
                or (call.live_at is not None and outcome in (CallOutcome.LOST, CallOutcome.FAILED))
            )
        ):
            # Answered, then gone while the link was down, and nobody connected them: what
            # the debtor heard is unknown, so it counts against the cap (never in favour).
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
        if call.live_at is None:
            kind = "machine" if outcome is CallOutcome.MACHINE else "other"
            self.pacer.dial_ended(call.campaign_id, now, kind, now - call.started)
        else:
            self.pacer.live_settled(call.campaign_id, outcome is CallOutcome.ABANDONED)
        duration = None if call.connected is None else max(0.0, now - call.connected)
        answered, decided = self.wall_times(notice.timings, wall)
        abandoned_at = None
        if outcome is CallOutcome.ABANDONED:
            # Marked when the engine abandoned it; else (the link was down at the deadline)
            # the connect limit ran out at `decided + limit`, or at the end at the latest.
            limit = campaign.compliance.connect_limit if campaign else 2.0
            abandoned_at = min(wall, decided + timedelta(seconds=limit)) if decided else wall
        self.ledger.close(
            AttemptEnd(
                call.key,
                outcome.value,
                wall,
                hangup_cause=notice.far_cause or None,
                agent_id=agent_id if call.connected is not None else None,
                recording=f"{call.key}.wav" if call.connected is not None else None,
                duration=duration,
                answered_at=answered,
                amd_at=decided,
                abandoned_at=abandoned_at,
                agent_left_at=call.agent_left_at,
                source="reconciled" if notice.reconciled else "events",
            ),
            campaign,
        )

    def _amd_ok(self, campaign_id: int) -> None:
        self._amd_misses.pop(campaign_id, None)
        self._amd_miss_since.pop(campaign_id, None)

    def _dialplan_failed(self, campaign: Campaign, key: str) -> None:
        """An answered call ended without an AMD decision. One is a debtor who hung up in
        the silence; several with no decision at all in between mean the dialplan cannot
        run AMD: say so loudly and stop dialing until someone fixes Asterisk (dialing
        resumes by itself after the hold, and every further failure holds it again)."""
        self.counters.dialplan_failures += 1
        misses = self._amd_misses[campaign.id] = self._amd_misses.get(campaign.id, 0) + 1
        now = self.clock.monotonic()
        first = self._amd_miss_since.setdefault(campaign.id, now)
        log.warning("campaign %d: attempt %s was answered and ended before any AMD decision "
                    "(%d with no decision in between)", campaign.id, key, misses)  # fmt: skip
        # Several, and for longer than AMD ever takes to decide: at a campaign's start a few
        # debtors hang up before the first decisions can arrive.
        if (
            misses >= self.settings.dialplan_failures_to_stop
            and now - first >= self.settings.amd_silence_limit
        ):
            reason = (
                f"campaign {campaign.id}: {misses} answered calls ended without an AMD "
                "decision and none was decided: the dialplan is failing (is app_amd loaded? see "
                "asterisk_conf/README.md); answered debtors hear silence and count as abandoned"
            )
            log.critical("%s", reason)
            self.alerts[campaign.id] = reason
            self._hold(self.settings.dialplan_failure_hold, reason)

    def wall_times(
        self, timings: CallTimings, wall: datetime
    ) -> tuple[datetime | None, datetime | None]:
        """The answer and AMD-decision times of a call's timings (the call-control loop's
        clock) on the wall clock."""
        loop_now = asyncio.get_running_loop().time()
        scale = getattr(self.clock, "scale", 1.0)

        def at(t: float | None) -> datetime | None:
            return None if t is None else wall - timedelta(seconds=(loop_now - t) * scale)

        return at(timings.answered), at(timings.decided)

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
        for waiting, agent in self.board.assign(self.reachable()):
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
            self.counters.abandoned_unheard += 1
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
                            campaign = self.campaign(campaign_id)
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
            if before.state is AgentState.LOGGED_OUT or not after.campaign_ids:
                self._join(after)
            if after.agent_id not in self.legs_up:
                self._start_leg(after.agent_id)
            if self.board.waiting:
                self._spawn(self.assign())
        if after.state is AgentState.LOGGED_OUT:
            if after.agent_id in self.agent_calls.offers:
                self._spawn(self.agent_calls.agent_left(after.agent_id))
            # The agent left: so does the agent's leg (a debtor still in the conference is
            # noticed when the leg's hangup comes back).
            self._spawn(self._hang_up_leg(after.agent_id))
        if after.state is not AgentState.WRAP_UP:
            self._wrap_deadlines.pop(after.agent_id, None)
            wrapping = self._wrapping.pop(after.agent_id, None)
            if wrapping is not None and before.state is AgentState.WRAP_UP:
                # Left wrap-up (ready, pause, logout) without a disposition: the contact was
                # made, so the lead is settled provisionally as when wrap-up runs out (a
                # no-op when the disposition was saved first); the disposition stays open.
                campaign_id, key = wrapping
                campaign = self.campaign(campaign_id)
                if campaign is not None:
                    self.ledger.settle_undisposed(key, campaign, self.clock.now())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task the engine keeps a reference to until it is done."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _join(self, session: AgentSession) -> None:
        """First ready of a shift: join the node's campaigns (and the inbound group)."""
        if not session.campaign_ids:
            self.desk.assign_campaigns(session.agent_id, frozenset(self.campaigns))
        if self.settings.inbound.blended and session.agent_id not in self.desk.groups_set:
            self.desk.assign_groups(session.agent_id, inbound=True, outbound=session.outbound)

    def _start_leg(self, agent_id: int) -> None:
        """Nail up the agent's leg (once at a time); it counts once Asterisk reports it up."""
        if agent_id in self._legs_pending or not self.calls.link_up:
            return
        extension = self._extensions.get(agent_id, str(agent_id))
        dial = self.settings.agent_dial_template.format(extension=extension, agent_id=agent_id)
        self._legs_pending.add(agent_id)
        self._spawn(self._nail_up(agent_id, dial))

    async def _nail_up(self, agent_id: int, dial: str) -> None:
        try:
            await self.calls.login_agent(agent_id, dial)
        except Exception as exc:
            self._legs_pending.discard(agent_id)
            log.warning("agent %d: could not nail up the agent leg: %s", agent_id, exc)

    async def _hang_up_leg(self, agent_id: int) -> None:
        self.legs_up.discard(agent_id)
        try:
            await self.calls.hangup_agent_leg(agent_id)
        except Exception as exc:
            log.warning("agent %d: could not hang up the agent leg: %s", agent_id, exc)

    # --- agents' legs and the AMI link ------------------------------------------------------

    async def _leg_notice(self, notice: AgentLegUp | AgentLegDown | AgentLegFound) -> None:
        agent_id = notice.agent_id
        if isinstance(notice, AgentLegUp):
            self._legs_pending.discard(agent_id)
            session = self.desk.session(agent_id)
            if session.state is AgentState.LOGGED_OUT:
                # The agent left while the leg was being placed.
                await self.calls.hangup_agent_leg(agent_id)
                return
            self.legs_up.add(agent_id)
            if self.board.waiting:
                await self.assign()
            self._wake.set()
            return
        if isinstance(notice, AgentLegFound):
            await self._leg_found(notice)
            return
        self._legs_pending.discard(agent_id)
        current = self.calls.legs.leg_of(agent_id)
        if current is not None and current.leg_id != notice.leg_id:
            return  # an old leg of the agent went; a newer one is up or coming
        self.legs_up.discard(agent_id)
        await self._agent_leg_lost(agent_id, failed=notice.failed)

    async def _agent_leg_lost(self, agent_id: int, failed: bool) -> None:
        """The agent's phone leg is gone: the agent is offered nothing more until it is
        back, and a debtor in the agent's conference is not left alone."""
        wall = self.clock.now()
        for call in list(self.live.values()):
            if call.agent_id == agent_id and call.agent_left_at is None:
                call.agent_left_at = wall
                self.counters.agent_left += 1
                log.warning("attempt %s: agent %d's leg dropped mid-call; the debtor hears the "
                            "cut-off message", call.key, agent_id)  # fmt: skip
                with contextlib.suppress(Exception):
                    await self.calls.redirect_to(call.key, ABANDON_CONTEXT)
        for key in self.agent_calls.agent_leg_lost(agent_id, wall) + self.inbound.connected_to(
            agent_id
        ):
            with contextlib.suppress(Exception):
                await self.calls.redirect_to(key, ABANDON_CONTEXT)
        session = self.desk.session(agent_id)
        if session.state in (AgentState.READY, AgentState.RESERVED):
            with contextlib.suppress(AgentStateError):
                self.desk.change(SYSTEM, agent_id, AgentState.PAUSED, pause_reason="technical")
        if session.state is not AgentState.LOGGED_OUT:
            message = (
                "Your phone could not be connected. Check the softphone and press Ready."
                if failed
                else "Your phone line dropped. Press Ready to connect it again."
            )
            await self.bus.broadcast(
                f"agent:{agent_id}", {"type": "phone_lost", "failed": failed, "message": message}
            )

    async def _leg_found(self, notice: AgentLegFound) -> None:
        """A leg a previous process of this node left up: the agent is taken back as it
        was. On an adopted call: back on that call. Otherwise, if the agent's last recorded
        state was ready or a pause, back in it, with the leg (a debtor waiting after the
        restart is put through at once instead of waiting for a new leg). A leg whose agent
        had left, or that a newer leg replaced, is hung up."""
        agent_id = notice.agent_id
        on_call = [c for c in self.live.values() if c.agent_id == agent_id]
        manual = self.agent_calls.calls_of(agent_id)
        last = self._last_states.get(agent_id)
        newer = self.calls.legs.leg_of(agent_id)
        idle = self.desk.session(agent_id).state is AgentState.LOGGED_OUT
        # Working when the previous process died (whatever its call became meanwhile).
        keep_idle = idle and last is not None and last[0] != "logged_out"
        if (not on_call and not manual and not keep_idle) or newer is not None:
            with contextlib.suppress(Exception):
                await self.calls.hangup_channel(notice.channel)
            return
        self.calls.adopt_agent_leg(agent_id, notice.leg_id, notice.channel)
        self.legs_up.add(agent_id)
        if on_call or manual:
            key, case_id = (on_call[0].key, on_call[0].lead.case_id) if on_call else manual[0]
            self.desk.restore(SYSTEM, agent_id, AgentState.ON_CALL, case_id, key)
        elif last is not None and last[0] == "paused" and last[1] in self.desk.pause_reasons:
            self.desk.change(SYSTEM, agent_id, AgentState.PAUSED, pause_reason=last[1])
        else:
            self.desk.change(SYSTEM, agent_id, AgentState.READY)

    async def _link_changed(self, notice: LinkChanged) -> None:
        now = self.clock.monotonic()
        if not notice.up:
            self._drops.append(now)
            self.legs_up.clear()  # nothing can be put through until reconciled
            self._hold(self.settings.link_stable_for, "the AMI link dropped")
            return
        recent = sum(1 for t in self._drops if now - t <= self.settings.flap_window)
        hold = self.settings.link_stable_for * 2 ** max(0, recent - 1)
        self._hold_until = 0.0
        self._hold(min(hold, self.settings.max_link_hold), f"the AMI link came back ({recent} "
                   f"drops in {self.settings.flap_window:.0f} s)")  # fmt: skip
        # Legs Asterisk still has are up again (reconciled); agents whose leg is gone
        # were told by their AgentLegDown. Debtors found waiting are put through now.
        self.legs_up |= {leg.agent_id for leg in self.calls.legs.legs.values() if leg.up}
        if self.board.waiting:
            await self.assign()
        try:
            await self.recover()
        except Exception:
            log.exception("engine: recovery after the reconnect failed")


def _attempt_key(ref: ChannelRef) -> str | None:
    """The attempt (or inbound call) a channel of a CoreShowChannels list belongs to."""
    return ref.attempt or attempt_of_uniqueid(ref.uniqueid)


async def _last_agent_states(pool: asyncpg.Pool) -> dict[int, tuple[str, str | None]]:
    """Every agent's last recorded state today (the state log), for taking agents back
    after a restart."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT DISTINCT ON (agent_id) agent_id, state, pause_reason FROM agent_state_log "
            "WHERE at > now() - interval '12 hours' ORDER BY agent_id, id DESC"
        )
    return {r["agent_id"]: (r["state"], r["pause_reason"]) for r in rows}
