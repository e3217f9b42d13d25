"""Presence: an agent whose console is gone is no longer offered calls.

The agent's browser holds a WebSocket to the server. When every console of an agent is
closed and none comes back within the grace period (a reload or a network blip is not an
absence), the agent is paused with the disconnect reason ('technical'): still logged in,
so supervisors see who dropped out and for how long, the agent's phone leg and shift are
kept, and the agent comes back with one press of Ready. An agent on a call keeps the call
and is paused when it and its wrap-up end; an agent holding a preview offer is logged out,
which puts the lead back for another agent at once. Every change goes through the desk, so
it is audited like any other.
"""

from __future__ import annotations

import asyncio
import logging

from core.identity import SYSTEM
from core.tasks import cancel_and_wait
from dialer.agent_desk import AgentDesk
from dialer.agents import AgentState, AgentStateError

log = logging.getLogger(__name__)

CAUSE = "console disconnected"


class AgentPresence:
    def __init__(self, desk: AgentDesk, grace: float, reason: str = "technical"):
        self.desk = desk
        self.grace = grace
        self.reason = reason
        self.consoles: dict[int, int] = {}  # agent -> open consoles
        self._timers: dict[int, asyncio.Task[None]] = {}
        # Agents whose "pause after this call" was set here, not by themselves.
        self._flagged: set[int] = set()

    def connected(self, agent_id: int) -> None:
        self.consoles[agent_id] = self.consoles.get(agent_id, 0) + 1
        timer = self._timers.pop(agent_id, None)
        if timer is not None:
            timer.cancel()
        if agent_id in self._flagged:
            # Back during the call: the agent decides again what follows it.
            self._flagged.discard(agent_id)
            if self.desk.session(agent_id).pause_after_call == self.reason:
                try:
                    self.desk.pause_after_call(SYSTEM, agent_id, None)
                except AgentStateError:
                    pass

    def disconnected(self, agent_id: int) -> None:
        left = self.consoles.get(agent_id, 0) - 1
        if left > 0:
            self.consoles[agent_id] = left
            return
        self.consoles.pop(agent_id, None)
        if agent_id not in self._timers:
            self._timers[agent_id] = asyncio.create_task(
                self._after_grace(agent_id), name=f"presence-{agent_id}"
            )

    async def _after_grace(self, agent_id: int) -> None:
        await self.desk.clock.sleep(self.grace)
        self._timers.pop(agent_id, None)
        if self.consoles.get(agent_id):
            return
        try:
            self.away(agent_id)
        except Exception:
            log.exception("presence: could not take agent %d out of the calls", agent_id)

    def away(self, agent_id: int) -> None:
        """Every console of the agent is gone: no more calls for the agent."""
        session = self.desk.session(agent_id)
        if session.state in {AgentState.READY, AgentState.WRAP_UP}:
            self.desk.change(
                SYSTEM, agent_id, AgentState.PAUSED, pause_reason=self.reason, cause=CAUSE
            )
        elif session.state is AgentState.RESERVED and session.attempt_key is None:
            self.desk.change(SYSTEM, agent_id, AgentState.LOGGED_OUT, cause=CAUSE)
        elif session.state in {AgentState.RESERVED, AgentState.ON_CALL}:
            if session.pause_after_call is None:
                self.desk.pause_after_call(SYSTEM, agent_id, self.reason)
                self._flagged.add(agent_id)

    async def close(self) -> None:
        await cancel_and_wait(*self._timers.values())
        self._timers.clear()
