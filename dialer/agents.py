"""Agent sessions: the state of each logged-in agent and the choice of who takes a call.

Pure: transitions take the current monotonic time and return the new state; the engine
persists and publishes them. States: logged out, ready, reserved (a live answer is being
put through to the agent), on call, wrap-up (bounded, the agent may extend it up to a
maximum), paused with a reason code. An agent may ask to be paused after the current call
instead of being made ready again.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace


class AgentState(enum.StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    RESERVED = "reserved"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


# Default pause reasons with their maximum durations in seconds (supervisors see overruns).
DEFAULT_PAUSE_REASONS: dict[str, int] = {
    "break": 15 * 60,
    "lunch": 60 * 60,
    "training": 2 * 60 * 60,
    "meeting": 60 * 60,
    "technical": 10 * 60,
}

_ALLOWED: dict[AgentState, frozenset[AgentState]] = {
    AgentState.LOGGED_OUT: frozenset({AgentState.READY, AgentState.PAUSED}),
    AgentState.READY: frozenset(
        {AgentState.RESERVED, AgentState.ON_CALL, AgentState.PAUSED, AgentState.LOGGED_OUT}
    ),
    # A paused agent may place a call by hand (reserved for it), and returns to the pause
    # when it does not connect.
    AgentState.RESERVED: frozenset(
        {AgentState.ON_CALL, AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT}
    ),
    AgentState.ON_CALL: frozenset({AgentState.WRAP_UP, AgentState.LOGGED_OUT}),
    AgentState.WRAP_UP: frozenset({AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT}),
    AgentState.PAUSED: frozenset({AgentState.READY, AgentState.RESERVED, AgentState.LOGGED_OUT}),
}


# States in which the agent is not busy with a call.
_FREE = frozenset({AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT})


class AgentStateError(ValueError):
    """A transition the agent's current state does not allow."""


@dataclass(frozen=True)
class AgentSession:
    agent_id: int
    state: AgentState = AgentState.LOGGED_OUT
    since: float = 0.0  # monotonic time the current state began
    pause_reason: str | None = None
    case_id: int | None = None  # the case on screen (on call / wrap-up)
    attempt_key: str | None = None
    # When the agent last became free: the longest-idle ready agent takes the next call.
    idle_since: float = 0.0
    calls: int = 0
    talk_seconds: float = 0.0
    inbound: bool = False  # in the inbound group (blended)
    outbound: bool = True
    campaign_ids: frozenset[int] = field(default_factory=frozenset)
    # Wrap-up: when it ends (monotonic; None when unbounded or not wrapping up) and the
    # seconds the agent added to it.
    wrap_up_until: float | None = None
    wrap_up_extended: float = 0.0
    # "Pause after this call": the pause reason the agent goes to instead of ready.
    pause_after_call: str | None = None

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.since)

    def to(
        self,
        state: AgentState,
        now: float,
        *,
        pause_reason: str | None = None,
        case_id: int | None = None,
        attempt_key: str | None = None,
        wrap_up_until: float | None = None,
    ) -> AgentSession:
        if state not in _ALLOWED[self.state]:
            raise AgentStateError(f"agent {self.agent_id}: cannot go from {self.state} to {state}")
        if state is AgentState.PAUSED and not pause_reason:
            raise AgentStateError("a pause needs a reason code")
        talk = self.talk_seconds
        calls = self.calls
        if self.state is AgentState.ON_CALL:
            talk += self.elapsed(now)
        if state is AgentState.ON_CALL:
            calls += 1
        keeps_case = state in {AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP}
        return replace(
            self,
            state=state,
            since=now,
            pause_reason=pause_reason if state is AgentState.PAUSED else None,
            case_id=(case_id if case_id is not None else self.case_id) if keeps_case else None,
            attempt_key=(attempt_key or self.attempt_key) if keeps_case else None,
            idle_since=now
            if state is AgentState.READY and self.state is not AgentState.RESERVED
            else self.idle_since,
            calls=calls,
            talk_seconds=talk,
            wrap_up_until=wrap_up_until if state is AgentState.WRAP_UP else None,
            wrap_up_extended=0.0,
            # The wish holds through the call and its wrap-up; any free state ends it.
            pause_after_call=None if state in _FREE else self.pause_after_call,
        )

    def wrap_up_left(self, now: float) -> float | None:
        """Seconds of wrap-up left (None when not wrapping up against a limit)."""
        if self.state is not AgentState.WRAP_UP or self.wrap_up_until is None:
            return None
        return max(0.0, self.wrap_up_until - now)

    def extended(self, seconds: float, maximum: float) -> AgentSession:
        """Wrap-up `seconds` longer, within `maximum` extra seconds per wrap-up: what is
        left of it is granted; nothing left is an error."""
        if self.state is not AgentState.WRAP_UP or self.wrap_up_until is None:
            raise AgentStateError("only a wrap-up with a time limit can be extended")
        if seconds <= 0:
            raise AgentStateError("extend wrap-up by a positive number of seconds")
        grant = min(seconds, maximum - self.wrap_up_extended)
        if grant <= 0:
            raise AgentStateError(
                f"wrap-up cannot be extended further: the maximum is {maximum:g} extra seconds"
            )
        return replace(
            self,
            wrap_up_until=self.wrap_up_until + grant,
            wrap_up_extended=self.wrap_up_extended + grant,
        )

    def pausing_after_call(self, reason: str | None) -> AgentSession:
        """Ask (or, with None, no longer ask) to be paused when the current call ends."""
        if reason is not None and self.state in _FREE:
            raise AgentStateError(f"you are {self.state.value}, not on a call: pause now instead")
        return replace(self, pause_after_call=reason)

    def overrun(self, now: float, wrap_up_max: float, pause_max: Mapping[str, int]) -> float:
        """Seconds beyond the allowed time in wrap-up or pause (0 when within it)."""
        if self.state is AgentState.WRAP_UP:
            if self.wrap_up_until is not None:
                return max(0.0, now - self.wrap_up_until)
            return max(0.0, self.elapsed(now) - wrap_up_max)
        if (
            self.state is AgentState.PAUSED
            and self.pause_reason is not None
            and self.pause_reason in pause_max
        ):
            return max(0.0, self.elapsed(now) - pause_max[self.pause_reason])
        return 0.0


def pick_agent(
    sessions: Iterable[AgentSession],
    campaign_id: int | None,
    preferred_agent_id: int | None = None,
    inbound: bool = False,
) -> AgentSession | None:
    """The agent to connect a live call to: the case's own agent when ready, else the
    longest-idle ready agent of the campaign (or of the inbound group)."""
    ready = [
        s
        for s in sessions
        if s.state is AgentState.READY
        and (s.inbound if inbound else s.outbound)
        and (inbound or campaign_id is None or campaign_id in s.campaign_ids)
    ]
    if not ready:
        return None
    if preferred_agent_id is not None:
        for s in ready:
            if s.agent_id == preferred_agent_id:
                return s
    return min(ready, key=lambda s: (s.idle_since, s.agent_id))
