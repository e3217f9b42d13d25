"""Typed records for the AMI events the dialer reasons about.

`parse_event` turns an `AmiMessage` into one of these frozen records, or returns None
for events the dialer ignores (VarSet, Newexten outside the contexts it watches, ...).
Only this module knows AMI header names; the state machines see records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from dialer.ami_codec import AmiMessage

ATTEMPT_VARIABLE = "ATTEMPT"


class ChannelState(IntEnum):
    """Asterisk's `ChannelState` numbers (include/asterisk/channelstate.h)."""

    DOWN = 0
    RESERVED = 1
    OFFHOOK = 2
    DIALING = 3
    RING = 4
    RINGING = 5
    UP = 6
    BUSY = 7
    DIALING_OFFHOOK = 8
    PRERING = 9


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """The standard channel block of an event (optionally with a `Dest` prefix)."""

    name: str
    uniqueid: str
    linkedid: str
    state: int
    context: str
    exten: str
    attempt: str  # our ATTEMPT channel variable, '' when not (yet) set


def channel_ref(message: AmiMessage, prefix: str = "") -> ChannelRef:
    state = message.get(prefix + "ChannelState", "0")
    return ChannelRef(
        name=message.get(prefix + "Channel"),
        uniqueid=message.get(prefix + "Uniqueid"),
        linkedid=message.get(prefix + "Linkedid"),
        state=int(state) if state.isdigit() else 0,
        context=message.get(prefix + "Context"),
        exten=message.get(prefix + "Exten"),
        attempt=message.channel_vars(prefix).get(ATTEMPT_VARIABLE, ""),
    )


@dataclass(frozen=True, slots=True)
class NewChannel:
    channel: ChannelRef


@dataclass(frozen=True, slots=True)
class NewState:
    channel: ChannelRef


@dataclass(frozen=True, slots=True)
class NewExten:
    channel: ChannelRef
    application: str


@dataclass(frozen=True, slots=True)
class DialBegin:
    dest: ChannelRef
    dial_string: str


@dataclass(frozen=True, slots=True)
class DialState:
    dest: ChannelRef
    status: str


@dataclass(frozen=True, slots=True)
class DialEnd:
    dest: ChannelRef
    status: str  # ANSWER, BUSY, NOANSWER, CONGESTION, CHANUNAVAIL, CANCEL


@dataclass(frozen=True, slots=True)
class OriginateResponse:
    action_id: str
    channel_name: str
    uniqueid: str
    success: bool
    reason: int  # 0 failed/cancelled, 1 hung up, 3 no answer, 4 answered, 5 busy, 8 congestion


@dataclass(frozen=True, slots=True)
class UserEvent:
    channel: ChannelRef
    name: str
    fields: tuple[tuple[str, str], ...]

    def field(self, name: str, default: str = "") -> str:
        for key, value in self.fields:
            if key == name:
                return value
        return default


@dataclass(frozen=True, slots=True)
class BridgeEnter:
    channel: ChannelRef
    bridge_id: str
    bridge_type: str


@dataclass(frozen=True, slots=True)
class BridgeLeave:
    channel: ChannelRef
    bridge_id: str
    bridge_type: str


@dataclass(frozen=True, slots=True)
class ConfbridgeJoin:
    channel: ChannelRef
    conference: str


@dataclass(frozen=True, slots=True)
class ConfbridgeLeave:
    channel: ChannelRef
    conference: str


@dataclass(frozen=True, slots=True)
class Hangup:
    channel: ChannelRef
    cause: int
    cause_text: str


@dataclass(frozen=True, slots=True)
class CoreShowChannel:
    """One item of a `CoreShowChannels` list (used by reconciliation)."""

    channel: ChannelRef
    application: str
    duration: str
    caller: str = ""  # CallerIDNum (identifies an inbound caller adopted after a restart)


@dataclass(frozen=True, slots=True)
class FullyBooted:
    status: str


AmiEvent = (
    NewChannel
    | NewState
    | NewExten
    | DialBegin
    | DialState
    | DialEnd
    | OriginateResponse
    | UserEvent
    | BridgeEnter
    | BridgeLeave
    | ConfbridgeJoin
    | ConfbridgeLeave
    | Hangup
    | CoreShowChannel
    | FullyBooted
)

# UserEvent bodies carry the standard channel block plus their own fields.
_CHANNEL_BLOCK = frozenset(
    {
        "event",
        "privilege",
        "channel",
        "channelstate",
        "channelstatedesc",
        "calleridnum",
        "calleridname",
        "connectedlinenum",
        "connectedlinename",
        "language",
        "accountcode",
        "context",
        "exten",
        "priority",
        "uniqueid",
        "linkedid",
        "chanvariable",
        "userevent",
    }
)


def _int(text: str) -> int:
    return int(text) if text.lstrip("-").isdigit() else 0


def _user_event(m: AmiMessage) -> UserEvent:
    fields = tuple((k, v) for k, v in m.headers if k.lower() not in _CHANNEL_BLOCK)
    return UserEvent(channel_ref(m), m.get("UserEvent"), fields)


_PARSERS: dict[str, Callable[[AmiMessage], AmiEvent]] = {
    "Newchannel": lambda m: NewChannel(channel_ref(m)),
    "Newstate": lambda m: NewState(channel_ref(m)),
    "Newexten": lambda m: NewExten(channel_ref(m), m.get("Application")),
    "DialBegin": lambda m: DialBegin(channel_ref(m, "Dest"), m.get("DialString")),
    "DialState": lambda m: DialState(channel_ref(m, "Dest"), m.get("DialStatus")),
    "DialEnd": lambda m: DialEnd(channel_ref(m, "Dest"), m.get("DialStatus")),
    "OriginateResponse": lambda m: OriginateResponse(
        m.get("ActionID"),
        m.get("Channel"),
        m.get("Uniqueid"),
        m.get("Response") == "Success",
        _int(m.get("Reason")),
    ),
    "UserEvent": _user_event,
    "BridgeEnter": lambda m: BridgeEnter(
        channel_ref(m), m.get("BridgeUniqueid"), m.get("BridgeType")
    ),
    "BridgeLeave": lambda m: BridgeLeave(
        channel_ref(m), m.get("BridgeUniqueid"), m.get("BridgeType")
    ),
    "ConfbridgeJoin": lambda m: ConfbridgeJoin(channel_ref(m), m.get("Conference")),
    "ConfbridgeLeave": lambda m: ConfbridgeLeave(channel_ref(m), m.get("Conference")),
    "Hangup": lambda m: Hangup(channel_ref(m), _int(m.get("Cause")), m.get("Cause-txt")),
    "CoreShowChannel": lambda m: CoreShowChannel(
        channel_ref(m), m.get("Application"), m.get("Duration"), m.get("CallerIDNum")
    ),
    "FullyBooted": lambda m: FullyBooted(m.get("Status")),
}
TYPED_EVENT_NAMES = frozenset(_PARSERS)


def parse_event(message: AmiMessage) -> AmiEvent | None:
    """The typed record for an event message, None for events the dialer ignores."""
    name = message.headers[0][1] if message.headers and message.headers[0][0] == "Event" else ""
    if not name:
        name = message.event
    parser = _PARSERS.get(name)
    return parser(message) if parser is not None else None
