"""The switchboard: answered calls waiting for an agent, and who takes which.

Pure. Outbound live answers wait at most the campaign's connect limit (2 s by default,
counted from the answering-machine decision) before they are abandoned; inbound calls wait
up to the queue's maximum. Calls are served oldest first; each goes to its case's agent
when that agent is ready, else to the longest-idle ready agent allowed to take it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dialer.agents import AgentSession, AgentState, pick_agent


@dataclass(frozen=True)
class WaitingCall:
    key: str  # our attempt key (outbound) or the channel's Uniqueid (inbound)
    arrived: float  # monotonic: the live decision, or the inbound call's arrival
    deadline: float  # give up (abandon / queue timeout) at this monotonic time
    campaign_id: int | None = None
    case_id: int | None = None
    preferred_agent_id: int | None = None
    inbound: bool = False
    caller: str | None = None


@dataclass
class Switchboard:
    waiting: dict[str, WaitingCall] = field(default_factory=dict)

    def arrive(self, call: WaitingCall) -> None:
        self.waiting[call.key] = call

    def gone(self, key: str) -> WaitingCall | None:
        """The caller hung up while waiting."""
        return self.waiting.pop(key, None)

    def assign(self, sessions: Iterable[AgentSession]) -> list[tuple[WaitingCall, AgentSession]]:
        free = {s.agent_id: s for s in sessions if s.state is AgentState.READY}
        out: list[tuple[WaitingCall, AgentSession]] = []
        for call in sorted(self.waiting.values(), key=lambda c: c.arrived):
            if not free:
                break
            agent = pick_agent(
                free.values(), call.campaign_id, call.preferred_agent_id, inbound=call.inbound
            )
            if agent is None:
                continue  # no agent for this campaign or group; a later call may have one
            del free[agent.agent_id]
            del self.waiting[call.key]
            out.append((call, agent))
        return out

    def expired(self, now: float) -> list[WaitingCall]:
        gone = [c for c in self.waiting.values() if now >= c.deadline]
        for call in gone:
            del self.waiting[call.key]
        return gone

    def next_deadline(self) -> float | None:
        return min((c.deadline for c in self.waiting.values()), default=None)
