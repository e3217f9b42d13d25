"""The agent desk: the live sessions of the agents, shared by the browser and the dialer.

A state change is applied in memory at once (the dialer reserves an agent on the hot path
between a live answer and the Redirect, and must not wait for the database), then written
to the state log and the audit log and published on the bus by one writer task, in order.
The agent's own wishes about wrap-up (more time, "pause after this call") go the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from core import audit
from core.bus import EventBus
from core.clock import Clock
from core.identity import Actor, PermissionDenied, Role
from core.tasks import cancel_and_wait
from dialer.agents import DEFAULT_PAUSE_REASONS, AgentSession, AgentState, AgentStateError

log = logging.getLogger(__name__)

# States only the dialer sets (a browser cannot claim to be on a call).
_ENGINE_ONLY = {AgentState.RESERVED, AgentState.ON_CALL}


def session_view(
    session: AgentSession, now: float, wrap_up_extend_max: float | None = None
) -> dict[str, Any]:
    view = asdict(session)
    view["state"] = session.state.value
    view["campaign_ids"] = sorted(session.campaign_ids)
    view["in_state_seconds"] = round(session.elapsed(now), 1)
    left = session.wrap_up_left(now)
    view["wrap_up_seconds_left"] = None if left is None else round(left, 1)
    if wrap_up_extend_max is not None:
        view["wrap_up_extend_left"] = max(0.0, wrap_up_extend_max - session.wrap_up_extended)
    for monotonic in ("since", "idle_since", "wrap_up_until"):
        view.pop(monotonic)
    return view


@dataclass(frozen=True)
class _Change:
    """One change to record: a state change (`agent.state`) or a wish of the agent."""

    actor: Actor
    before: AgentSession
    after: AgentSession
    at: datetime
    action: str = "agent.state"
    cause: str | None = None  # why the system changed the state (e.g. the browser left)


class AgentDesk:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: EventBus,
        clock: Clock,
        pause_reasons: Mapping[str, int] | None = None,
        wrap_up_max: float = 60.0,
        wrap_up_extend_max: float = 120.0,
    ):
        self.pool = pool
        self.bus = bus
        self.clock = clock
        self.pause_reasons = dict(pause_reasons or DEFAULT_PAUSE_REASONS)
        self.wrap_up_max = wrap_up_max
        # Extra seconds an agent may add to one wrap-up (supervisors may change it).
        self.wrap_up_extend_max = wrap_up_extend_max
        self.sessions: dict[int, AgentSession] = {}
        self.groups_set: set[int] = set()  # agents whose groups a supervisor chose
        self._queue: asyncio.Queue[_Change] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        # Called with (before, after) on every change, synchronously (the engine listens).
        self.listeners: list[Callable[[AgentSession, AgentSession], None]] = []

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="agent-desk-writer")

    async def stop(self) -> None:
        await self._queue.join()
        await cancel_and_wait(self._writer)

    def session(self, agent_id: int) -> AgentSession:
        return self.sessions.get(agent_id) or AgentSession(agent_id)

    def change(
        self,
        actor: Actor,
        agent_id: int,
        state: AgentState,
        *,
        pause_reason: str | None = None,
        case_id: int | None = None,
        attempt_key: str | None = None,
        campaign_ids: frozenset[int] | None = None,
        inbound: bool | None = None,
        wrap_up_until: float | None = None,
        cause: str | None = None,
    ) -> AgentSession:
        """Apply a transition now; recording and publishing follow in order.

        When the dialer (or a supervisor) makes an agent ready who asked to be paused after
        the call, the agent is paused with the reason they chose instead."""
        if actor.user_id != agent_id and not actor.role.at_least(Role.SUPERVISOR):
            raise PermissionDenied("agents change only their own state")
        if (
            state in _ENGINE_ONLY
            and actor.user_id is not None
            and not actor.role.at_least(Role.ADMIN)
        ):
            raise PermissionDenied(f"{state} is set by the dialer")
        if state is AgentState.PAUSED and pause_reason not in self.pause_reasons:
            raise AgentStateError(
                f"unknown pause reason {pause_reason!r}; known: {', '.join(self.pause_reasons)}"
            )
        before = self.session(agent_id)
        if state is AgentState.READY and before.pause_after_call and actor.user_id != agent_id:
            state, pause_reason = AgentState.PAUSED, before.pause_after_call
            cause = cause or "pause after call"
        after = before.to(
            state,
            self.clock.monotonic(),
            pause_reason=pause_reason,
            case_id=case_id,
            attempt_key=attempt_key,
            wrap_up_until=wrap_up_until,
        )
        if campaign_ids is not None or inbound is not None:
            after = replace(
                after,
                campaign_ids=after.campaign_ids if campaign_ids is None else campaign_ids,
                inbound=after.inbound if inbound is None else inbound,
            )
        self.sessions[agent_id] = after
        self._queue.put_nowait(_Change(actor, before, after, self.clock.now(), cause=cause))
        for listener in self.listeners:
            try:
                listener(before, after)
            except Exception:
                log.exception("agent desk listener failed")
        return self.sessions[agent_id]

    def restore(
        self, actor: Actor, agent_id: int, state: AgentState, case_id: int, attempt_key: str
    ) -> AgentSession:
        """Put an agent back in the state a call adopted after a restart says it is in
        (e.g. on a call that outlived the previous process), whatever the session held;
        recorded and published like any change."""
        before = self.session(agent_id)
        after = replace(
            before,
            state=state,
            since=self.clock.monotonic(),
            pause_reason=None,
            case_id=case_id,
            attempt_key=attempt_key,
        )
        self.sessions[agent_id] = after
        self._queue.put_nowait(
            _Change(actor, before, after, self.clock.now(), cause="restored after a restart")
        )
        for listener in self.listeners:
            try:
                listener(before, after)
            except Exception:
                log.exception("agent desk listener failed")
        return after

    def _own_wish(self, actor: Actor, agent_id: int) -> AgentSession:
        if actor.user_id != agent_id and not actor.role.at_least(Role.SUPERVISOR):
            raise PermissionDenied("agents change only their own wrap-up and pauses")
        return self.session(agent_id)

    def extend_wrap_up(self, actor: Actor, agent_id: int, seconds: float) -> AgentSession:
        """More wrap-up time, within `wrap_up_extend_max` extra seconds per wrap-up (what
        is left of it is granted). The engine reads the new limit from the session."""
        before = self._own_wish(actor, agent_id)
        after = before.extended(seconds, self.wrap_up_extend_max)
        self.sessions[agent_id] = after
        self._queue.put_nowait(
            _Change(actor, before, after, self.clock.now(), action="agent.wrap_up_extend")
        )
        return after

    def pause_after_call(self, actor: Actor, agent_id: int, reason: str | None) -> AgentSession:
        """Pause with `reason` when the current call and its wrap-up end (None: cancel)."""
        if reason is not None and reason not in self.pause_reasons:
            raise AgentStateError(
                f"unknown pause reason {reason!r}; known: {', '.join(self.pause_reasons)}"
            )
        before = self._own_wish(actor, agent_id)
        after = before.pausing_after_call(reason)
        self.sessions[agent_id] = after
        self._queue.put_nowait(
            _Change(actor, before, after, self.clock.now(), action="agent.pause_after_call")
        )
        return after

    def view(self, session: AgentSession) -> dict[str, Any]:
        """The session as the agent's console and supervisors see it."""
        return session_view(session, self.clock.monotonic(), self.wrap_up_extend_max)

    def assign_campaigns(self, agent_id: int, campaign_ids: frozenset[int]) -> None:
        """Which campaigns the agent takes calls for (not a state change)."""
        self.sessions[agent_id] = replace(self.session(agent_id), campaign_ids=campaign_ids)

    def assign_groups(self, agent_id: int, *, inbound: bool, outbound: bool) -> None:
        """Whether the agent takes inbound callers, outbound calls, or both (blended)."""
        session = replace(self.session(agent_id), inbound=inbound, outbound=outbound)
        self.sessions[agent_id] = session

    async def set_groups(
        self, actor: Actor, agent_id: int, *, inbound: bool, outbound: bool
    ) -> AgentSession:
        """A supervisor's choice of the agent's groups: kept for the agent's next shifts
        on this node and audited."""
        actor.require(Role.SUPERVISOR, "changing an agent's call groups")
        if not inbound and not outbound:
            raise AgentStateError("an agent needs at least one group: inbound or outbound")
        before = self.session(agent_id)
        self.assign_groups(agent_id, inbound=inbound, outbound=outbound)
        self.groups_set.add(agent_id)
        async with self.pool.acquire() as conn:
            await audit.record(
                conn, actor, "agent.groups", "agent", agent_id,
                before={"inbound": before.inbound, "outbound": before.outbound},
                after={"inbound": inbound, "outbound": outbound},
            )  # fmt: skip
        return self.sessions[agent_id]

    def snapshot(self) -> list[dict[str, Any]]:
        now = self.clock.monotonic()
        out = []
        for session in sorted(self.sessions.values(), key=lambda s: s.agent_id):
            view = session_view(session, now, self.wrap_up_extend_max)
            view["overrun_seconds"] = round(
                session.overrun(now, self.wrap_up_max, self.pause_reasons), 1
            )
            out.append(view)
        return out

    async def _write_loop(self) -> None:
        while True:
            change = await self._queue.get()
            try:
                await self._record(change)
            except Exception:
                log.exception("could not record a change of agent %d", change.after.agent_id)
            finally:
                self._queue.task_done()

    async def _record(self, change: _Change) -> None:
        before, after, at = change.before, change.after, change.at
        async with self.pool.acquire() as conn, conn.transaction():
            if change.action == "agent.state":
                await conn.execute(
                    "INSERT INTO agent_state_log (agent_id, state, pause_reason, at, case_id) "
                    "VALUES ($1, $2, $3, $4, $5)",
                    after.agent_id,
                    after.state.value,
                    after.pause_reason,
                    at,
                    after.case_id,
                )
                old: dict[str, Any] = {"state": before.state.value}
                new: dict[str, Any] = {
                    "state": after.state.value,
                    "pause_reason": after.pause_reason,
                }
                if change.cause:
                    new["cause"] = change.cause
            elif change.action == "agent.wrap_up_extend":
                old = {"wrap_up_extended": before.wrap_up_extended}
                new = {"wrap_up_extended": after.wrap_up_extended}
            else:
                old = {"pause_after_call": before.pause_after_call}
                new = {"pause_after_call": after.pause_after_call}
            await audit.record(
                conn, change.actor, change.action, "agent", after.agent_id, before=old, after=new
            )
        event = {
            "type": "agent.state",
            "agent": session_view(after, self.clock.monotonic(), self.wrap_up_extend_max),
            "at": at.isoformat(),
        }
        await self.bus.broadcast(f"agent:{after.agent_id}", event)
        await self.bus.broadcast("agents", event)
        await self.bus.publish("agent_states", event)
