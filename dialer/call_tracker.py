"""Routes typed AMI events to the per-call state machines; pure, no I/O.

Correlation uses our own ids only: the Uniqueid we chose with `ChannelId`/`OtherChannelId`
(`att-<attempt>`, `att-<attempt>-2`) and the `ATTEMPT` channel variable that
`manager.conf`'s `channelvars` adds to every event. Calls seen mid-stream (after a
restart) are adopted from those ids. `reconcile` applies a `CoreShowChannels` snapshot
after a reconnect: vanished calls end with an outcome, live ones are re-adopted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from dialer.ami_codec import AmiMessage
from dialer.ami_events import (
    AmiEvent,
    ChannelRef,
    CoreShowChannel,
    DialBegin,
    DialEnd,
    DialState,
    OriginateResponse,
    parse_event,
)
from dialer.call_state import (
    CallAttempt,
    CallNotice,
    CallRules,
    adopt_leg,
    attempt_of_uniqueid,
    close_refused,
    close_vanished,
    new_attempt,
    step,
)
from dialer.inbound_calls import is_inbound_key


@dataclass
class CallTracker:
    """All calls of one AMI connection, keyed by attempt id."""

    rules: CallRules = field(default_factory=CallRules)
    calls: dict[str, CallAttempt] = field(default_factory=dict)
    finished: dict[str, CallAttempt] = field(default_factory=dict)
    _by_uniqueid: dict[str, str] = field(default_factory=dict)
    _by_action: dict[str, str] = field(default_factory=dict)
    keep_finished: int = 10_000

    def expect(self, attempt_id: str, channel_id: str, at: float, action_id: str = "") -> None:
        """Register a call before its Originate is sent."""
        call = new_attempt(attempt_id, channel_id, at)
        self.calls[attempt_id] = call
        self._by_uniqueid[channel_id] = attempt_id
        self._by_uniqueid[call.other_channel_id] = attempt_id
        if action_id:
            self._by_action[action_id] = attempt_id

    def get(self, attempt_id: str) -> CallAttempt | None:
        return self.calls.get(attempt_id) or self.finished.get(attempt_id)

    def feed_message(self, message: AmiMessage, at: float) -> list[CallNotice]:
        event = parse_event(message)
        return self.feed(event, at) if event is not None else []

    def feed(self, event: AmiEvent, at: float) -> list[CallNotice]:
        attempt_id = self._route(event)
        if attempt_id is None:
            return []
        call = self.calls.get(attempt_id)
        if call is None:
            if attempt_id in self.finished:
                return []
            call = self._adopt(attempt_id)
        call, notices = step(call, event, at, self.rules)
        self._store(call)
        return notices

    def _route(self, event: AmiEvent) -> str | None:
        if isinstance(event, OriginateResponse):
            return self._by_action.get(event.action_id) or self._from_uniqueid(event.uniqueid)
        ref: ChannelRef | None
        if isinstance(event, DialBegin | DialState | DialEnd):
            ref = event.dest
        else:
            ref = getattr(event, "channel", None)
        if ref is None:
            return None
        known = self._by_uniqueid.get(ref.uniqueid)
        if known is not None:
            return known
        if ref.attempt:
            if is_inbound_key(ref.attempt):
                return None  # an inbound call: `dialer.inbound_calls` follows it
            self._index(ref.uniqueid, ref.attempt)
            return ref.attempt
        return self._from_uniqueid(ref.uniqueid)

    def _from_uniqueid(self, uniqueid: str) -> str | None:
        known = self._by_uniqueid.get(uniqueid)
        if known is not None:
            return known
        attempt_id = attempt_of_uniqueid(uniqueid)
        if attempt_id is not None:
            self._index(uniqueid, attempt_id)
        return attempt_id

    def _index(self, uniqueid: str, attempt_id: str) -> None:
        # Not for a finished call: Asterisk sends some events after the hangup, and
        # indexing their channels again would keep an entry for every call ever made.
        if attempt_id not in self.finished:
            self._by_uniqueid.setdefault(uniqueid, attempt_id)

    def _adopt(self, attempt_id: str) -> CallAttempt:
        channel_id = f"att-{attempt_id}"
        # Seen mid-stream (after a restart): we never saw it being originated.
        call = CallAttempt(attempt_id, channel_id)
        self._by_uniqueid.setdefault(channel_id, attempt_id)
        self._by_uniqueid.setdefault(call.other_channel_id, attempt_id)
        return call

    def _store(self, call: CallAttempt) -> None:
        if call.is_over:
            self.calls.pop(call.attempt_id, None)
            self.finished[call.attempt_id] = call
            for uid in (call.channel_id, call.other_channel_id, *call.legs_seen):
                self._by_uniqueid.pop(uid, None)
            if len(self.finished) > self.keep_finished:
                self.finished.pop(next(iter(self.finished)))
        else:
            self.calls[call.attempt_id] = call

    def reconcile(self, snapshot: Iterable[CoreShowChannel], at: float) -> list[CallNotice]:
        """Apply a CoreShowChannels list taken after a reconnect."""
        live: dict[str, list[CoreShowChannel]] = {}
        for item in snapshot:
            if is_inbound_key(item.channel.attempt):
                continue
            attempt_id = (
                self._by_uniqueid.get(item.channel.uniqueid)
                or item.channel.attempt
                or attempt_of_uniqueid(item.channel.uniqueid)
            )
            if attempt_id is not None and attempt_id not in self.finished:
                live.setdefault(attempt_id, []).append(item)
        notices: list[CallNotice] = []
        for attempt_id, call in list(self.calls.items()):
            if attempt_id not in live:
                call, ended = close_vanished(call, at, self.rules)
                notices.extend(ended)
                self._store(call)
        for attempt_id, items in live.items():
            call = self.calls.get(attempt_id) or self._adopt(attempt_id)
            # Our own leg first: its context says where the call is.
            for item in sorted(items, key=lambda i: i.channel.uniqueid != call.channel_id):
                call, adopted = adopt_leg(call, item.channel, item.application, at)
                notices.extend(adopted)
                self._by_uniqueid[item.channel.uniqueid] = attempt_id
            # Legs we thought up but Asterisk no longer has are gone.
            present = frozenset(item.channel.uniqueid for item in items)
            call = replace(call, legs_up=present)
            self._store(call)
        return notices

    def refused(self, attempt_id: str, at: float) -> list[CallNotice]:
        """The Originate for this attempt was refused: end it as failed."""
        call = self.calls.get(attempt_id)
        if call is None:
            return []
        call, notices = close_refused(call, at)
        self._store(call)
        return notices

    @property
    def active(self) -> int:
        return len(self.calls)
