"""Inbound calls: who is calling, and the queue that waits for an agent.

Identification matches the caller's number (E.164) against every phone of every debtor and
linked person. The queue is pure: calls wait in arrival order; each is offered to its
case's agent when that agent is ready, else to the longest-idle ready agent of the inbound
group; a call that waits past the maximum is given up (the caller hears a message) and
becomes a callback lead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg

from dialer.agents import AgentSession, AgentState, pick_agent


@dataclass(frozen=True)
class CallerMatch:
    debtor_id: int
    case_id: int  # the case to pop: open before closed, then the largest balance
    case_ids: tuple[int, ...]
    assigned_agent_id: int | None
    relation: str  # 'debtor' or the linked person's relation (guarantor, ...)


_IDENTIFY = """
SELECT c.id AS case_id, c.debtor_id, c.assigned_agent_id, 'debtor' AS relation,
       c.status IN ('paid', 'closed') AS closed, c.balance, c.updated_at
FROM phones p JOIN cases c ON c.debtor_id = p.debtor_id
WHERE p.e164 = $1
UNION ALL
SELECT c.id, dl.debtor_id, c.assigned_agent_id, dl.relation,
       c.status IN ('paid', 'closed'), c.balance, c.updated_at
FROM phones p JOIN debtor_links dl ON dl.debtor_id = p.debtor_id JOIN cases c ON c.id = dl.case_id
WHERE p.e164 = $1
ORDER BY closed, balance DESC, updated_at DESC
"""


async def identify_caller(conn: asyncpg.Connection, e164: str) -> CallerMatch | None:
    rows = await conn.fetch(_IDENTIFY, e164)
    if not rows:
        return None
    best = rows[0]
    return CallerMatch(
        debtor_id=best["debtor_id"],
        case_id=best["case_id"],
        case_ids=tuple(dict.fromkeys(r["case_id"] for r in rows)),
        assigned_agent_id=best["assigned_agent_id"],
        relation=best["relation"],
    )


@dataclass(frozen=True)
class WaitingCall:
    key: str  # our id of the inbound call (its Uniqueid)
    caller: str  # E.164
    case_id: int | None
    preferred_agent_id: int | None
    arrived: float  # monotonic


@dataclass
class InboundQueue:
    max_wait: float = 60.0
    waiting: list[WaitingCall] = field(default_factory=list)
    answered: int = 0
    abandoned: int = 0

    def arrive(self, call: WaitingCall) -> None:
        self.waiting.append(call)

    def caller_hung_up(self, key: str) -> WaitingCall | None:
        for call in self.waiting:
            if call.key == key:
                self.waiting.remove(call)
                self.abandoned += 1
                return call
        return None

    def assign(self, sessions: Iterable[AgentSession]) -> list[tuple[WaitingCall, AgentSession]]:
        """Offer waiting calls, oldest first, to ready inbound agents."""
        free = {s.agent_id: s for s in sessions if s.state is AgentState.READY and s.inbound}
        out: list[tuple[WaitingCall, AgentSession]] = []
        for call in list(self.waiting):
            agent = pick_agent(free.values(), None, call.preferred_agent_id, inbound=True)
            if agent is None:
                break
            del free[agent.agent_id]
            self.waiting.remove(call)
            self.answered += 1
            out.append((call, agent))
        return out

    def expired(self, now: float) -> list[WaitingCall]:
        """Calls that waited too long: the dialer plays the message and schedules a callback."""
        gone = [c for c in self.waiting if now - c.arrived >= self.max_wait]
        for call in gone:
            self.waiting.remove(call)
            self.abandoned += 1
        return gone
