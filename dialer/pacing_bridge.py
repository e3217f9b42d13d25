"""The engine's pacer: turns the engine's view (agents, calls in flight) into a decision."""

from __future__ import annotations

from collections.abc import Sequence

from dialer.agents import AgentSession, AgentState
from dialer.call_notices import CallEnded
from dialer.call_state import CallAttempt
from dialer.campaigns import Campaign


class ProgressivePacer:
    """One call per ready agent not already covered by a call in flight."""

    def launch(
        self,
        campaign: Campaign,
        agents: Sequence[AgentSession],
        in_flight: Sequence[CallAttempt],
        now: float,
    ) -> int:
        ready = sum(1 for a in agents if a.state is AgentState.READY)
        return max(0, ready - len(in_flight))

    def observe(self, campaign_id: int, call: CallEnded, now: float) -> None:
        return None
