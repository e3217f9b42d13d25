"""What a call attempt reports to the dialer: its outcome, timings and notices.

Plain frozen records shared by the call state machine (`dialer.call_state`), the
tracker and the dialer engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class CallOutcome(Enum):
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"  # congestion, channel unavailable, originate refused
    INVALID_NUMBER = "invalid_number"
    MACHINE = "machine"
    LIVE_ANSWER = "live_answer"  # a person answered and hung up before the connect limit
    ABANDONED = "abandoned"  # a person was not connected within the limit
    COMPLETED = "completed"  # connected to an agent
    LOST = "lost"  # vanished while the AMI link was down; state unknown


@dataclass(frozen=True, slots=True)
class CallTimings:
    """Seconds on the injected clock; None for milestones the call never reached."""

    originated: float | None = None
    dialing: float | None = None
    ringing: float | None = None
    answered: float | None = None
    decided: float | None = None  # AMD decision (or WaitingForAgent without AMD)
    connected: float | None = None
    hungup: float | None = None


@dataclass(frozen=True, slots=True)
class CallRinging:
    attempt_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallAnswered:
    attempt_id: str
    channel: str
    at: float


@dataclass(frozen=True, slots=True)
class LiveAnswer:
    """A person is on the line: connect them to an agent now (the 2 s clock runs)."""

    attempt_id: str
    channel: str
    at: float
    amd_status: str


@dataclass(frozen=True, slots=True)
class MachineDetected:
    attempt_id: str
    at: float
    amd_cause: str


@dataclass(frozen=True, slots=True)
class CallConnected:
    attempt_id: str
    bridge_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallEnded:
    attempt_id: str
    outcome: CallOutcome
    timings: CallTimings
    far_cause: int
    dial_status: str
    reconciled: bool = False
    near_first: bool = False  # our leg hung up before the debtor's (dialplan or dialer)


@dataclass(frozen=True, slots=True)
class DialRefused:
    """Asterisk refused the Originate (`Response: Error`): the phone never rang."""

    attempt_id: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class LinkChanged:
    """The AMI link went down, or came back and was reconciled (not a call's notice)."""

    up: bool
    at: float


CallNotice = (
    CallRinging
    | CallAnswered
    | LiveAnswer
    | MachineDetected
    | CallConnected
    | CallEnded
    | DialRefused
)
