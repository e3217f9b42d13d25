"""Inbound calls on the AMI side: typed events in, notices out; pure, no I/O.

A caller reaches `pratica-inbound` (asterisk_conf/extensions.conf), which sets the
`ATTEMPT` channel variable to `in-<Uniqueid>` and announces the call with the
`PraticaInbound` user event (caller number and dialed number). From then on the call is
followed by that Uniqueid: joining an agent's conference connects it, its Hangup ends
it. Outbound attempts use other ids (see `dialer.call_tracker`), so the two trackers
never claim each other's calls. `reconcile` applies a `CoreShowChannels` list after a
reconnect: calls that vanished while the link was down end, waiting calls that this
process never saw (a restart) are announced so they still reach an agent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dialer.ami_events import AmiEvent, ConfbridgeJoin, CoreShowChannel, Hangup, UserEvent

INBOUND_PREFIX = "in-"
INBOUND_CONTEXT = "pratica-inbound"
ARRIVED_EVENT = "PraticaInbound"


def is_inbound_key(key: str) -> bool:
    return key.startswith(INBOUND_PREFIX)


@dataclass(frozen=True, slots=True)
class InboundArrived:
    """A caller is waiting (the queue's message and music play) for an agent."""

    attempt_id: str
    channel: str
    caller: str  # the caller id number as the carrier gave it
    dialed: str  # the number they called (the DID)
    at: float
    adopted: bool = False  # found waiting after a reconnect or restart


@dataclass(frozen=True, slots=True)
class InboundConnected:
    attempt_id: str
    at: float


@dataclass(frozen=True, slots=True)
class InboundEnded:
    attempt_id: str
    at: float
    cause: int
    connected: bool
    reconciled: bool = False  # ended while the AMI link was down


InboundNotice = InboundArrived | InboundConnected | InboundEnded


@dataclass
class _Call:
    key: str
    uniqueid: str
    channel: str
    connected: bool = False


@dataclass
class InboundTracker:
    calls: dict[str, _Call] = field(default_factory=dict)  # by attempt key
    _by_uniqueid: dict[str, str] = field(default_factory=dict)

    def channel(self, key: str) -> str | None:
        call = self.calls.get(key)
        return None if call is None else call.channel

    def feed(self, event: AmiEvent, at: float) -> list[InboundNotice]:
        if isinstance(event, UserEvent) and event.name == ARRIVED_EVENT:
            key = event.channel.attempt or INBOUND_PREFIX + event.channel.uniqueid
            if key in self.calls or not is_inbound_key(key):
                return []
            self._add(_Call(key, event.channel.uniqueid, event.channel.name))
            return [
                InboundArrived(
                    key, event.channel.name, event.field("Caller"), event.field("Did"), at
                )
            ]
        ref = getattr(event, "channel", None)
        if ref is None:
            return []
        known = self._by_uniqueid.get(ref.uniqueid)
        if known is None:
            return []
        key = known
        call = self.calls[key]
        if ref.name and ref.name != call.channel:
            call.channel = ref.name  # renamed (masquerade)
        if isinstance(event, ConfbridgeJoin) and not call.connected:
            call.connected = True
            return [InboundConnected(key, at)]
        if isinstance(event, Hangup):
            self._remove(call)
            return [InboundEnded(key, at, event.cause, call.connected)]
        return []

    def reconcile(self, snapshot: Iterable[CoreShowChannel], at: float) -> list[InboundNotice]:
        present: dict[str, CoreShowChannel] = {}
        for item in snapshot:
            key = item.channel.attempt
            if is_inbound_key(key):
                present[key] = item
        notices: list[InboundNotice] = []
        for key, call in list(self.calls.items()):
            if key not in present:
                self._remove(call)
                notices.append(InboundEnded(key, at, 0, call.connected, reconciled=True))
        for key, item in present.items():
            if key in self.calls:
                continue
            call = _Call(key, item.channel.uniqueid, item.channel.name)
            call.connected = item.application == "ConfBridge"
            self._add(call)
            if not call.connected:
                caller = "" if item.caller == "<unknown>" else item.caller
                notices.append(InboundArrived(key, item.channel.name, caller, "", at, adopted=True))
        return notices

    def _add(self, call: _Call) -> None:
        self.calls[call.key] = call
        self._by_uniqueid[call.uniqueid] = call.key

    def _remove(self, call: _Call) -> None:
        self.calls.pop(call.key, None)
        self._by_uniqueid.pop(call.uniqueid, None)

    @property
    def active(self) -> int:
        return len(self.calls)
