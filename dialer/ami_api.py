"""The typed vocabulary of the AMI client: requests, stream items, health, errors.

No I/O and no panoramisk here, so the dialer engine and the tests can use these records
without a connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from dialer.ami_codec import AmiMessage
from dialer.ami_events import ATTEMPT_VARIABLE, AmiEvent, CoreShowChannel
from dialer.call_state import channel_ids


class HealthStatus(Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    UP = "up"
    UNRESPONSIVE = "unresponsive"  # ping timed out; the link is being reset
    AUTH_FAILED = "auth_failed"  # wrong username/secret: not retried
    CLOSED = "closed"


class AmiError(Exception):
    """Base of the AMI client's errors."""


class AmiAuthenticationError(AmiError):
    pass


class AmiDisconnected(AmiError):
    """The link is down (or dropped while waiting): the action's effect is unknown."""


class AmiTimeout(AmiError):
    pass


class AmiActionFailed(AmiError):
    """Asterisk answered `Response: Error`."""


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    message: AmiMessage
    event: AmiEvent | None  # None for events the dialer does not type
    received_at: float  # loop time when its bytes were decoded


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    at: float


@dataclass(frozen=True, slots=True)
class Reconnected:
    """Logged in again; `snapshot` is CoreShowChannels taken right after login."""

    snapshot: tuple[CoreShowChannel, ...]
    at: float


StreamItem = ReceivedEvent | ConnectionLost | Reconnected


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    attempt_id: str
    channel: str  # dial string, e.g. PJSIP/393331234567@carrier
    context: str
    exten: str = "s"
    priority: int = 1
    timeout: float = 30.0  # seconds of ringing before giving up
    caller_id: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    # Set for legs that are not call attempts (an agent's nailed-up leg): used as the
    # ChannelId, and no ATTEMPT variable is set.
    channel_id: str = ""
    other_channel_id: str = ""  # with `channel_id`: the Local channel's far half

    def headers(self, action_id: str) -> list[tuple[str, str]]:
        if self.channel_id:
            channel_id = self.channel_id
            other_id = self.other_channel_id or self.channel_id + "-2"
        else:
            channel_id, other_id = channel_ids(self.attempt_id)
        out = [
            ("Action", "Originate"),
            ("ActionID", action_id),
            ("Channel", self.channel),
            ("Context", self.context),
            ("Exten", self.exten),
            ("Priority", str(self.priority)),
            # Without Async panoramisk 1.4 raises KeyError('async') and drops the link.
            ("Async", "true"),
            ("Timeout", str(int(self.timeout * 1000))),
            ("ChannelId", channel_id),
            ("OtherChannelId", other_id),
        ]
        if not self.channel_id:
            out.append(("Variable", f"{ATTEMPT_VARIABLE}={self.attempt_id}"))
        if self.caller_id:
            out.append(("CallerID", self.caller_id))
        out += [("Variable", f"{k}={v}") for k, v in self.variables.items()]
        return out
