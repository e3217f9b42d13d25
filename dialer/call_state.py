"""The per-call state machine: one outbound call attempt, fed typed AMI events.

Pure: `step(call, event, at)` returns the new immutable `CallAttempt` and the notices
the dialer must act on (live answer, machine, connected, ended with an outcome). No
I/O, no clock: `at` is the time the event was received, from whatever clock the caller
injects. Internal phases are folded into the public `CallOutcome` only at the end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import Enum

from dialer.ami_events import (
    AmiEvent,
    BridgeEnter,
    BridgeLeave,
    ChannelRef,
    ChannelState,
    DialEnd,
    DialState,
    Hangup,
    NewChannel,
    NewExten,
    NewState,
    OriginateResponse,
    UserEvent,
)
from dialer.call_notices import (
    CallAnswered,
    CallConnected,
    CallEnded,
    CallNotice,
    CallOutcome,
    CallRinging,
    CallTimings,
    LiveAnswer,
    MachineDetected,
)

__all__ = [
    "CallAnswered",
    "CallAttempt",
    "CallConnected",
    "CallEnded",
    "CallNotice",
    "CallOutcome",
    "CallPhase",
    "CallRinging",
    "CallRules",
    "CallTimings",
    "LiveAnswer",
    "MachineDetected",
    "adopt_leg",
    "attempt_of_uniqueid",
    "channel_ids",
    "classify",
    "close_refused",
    "close_vanished",
    "new_attempt",
    "step",
]

log = logging.getLogger(__name__)

# UserEvent names the dialplan sends. `SimAMD` is the lab name in the recordings.
AMD_EVENTS = frozenset({"PraticaAMD", "SimAMD"})
WAITING_EVENT = "WaitingForAgent"
ABANDON_EVENT = "PraticaAbandoned"
# Dialplan contexts that mean "the abandonment message is playing".
ABANDON_CONTEXTS = frozenset({"pratica-abandon", "lab-abandon"})
# Where a live debtor waits for an agent.
HOLD_CONTEXTS = frozenset({"pratica-hold", "lab-hold-for-agent"})

# Q.850 causes (see causes.h) grouped by the outcome they mean on an unanswered call.
BUSY_CAUSES = frozenset({17})
NO_ANSWER_CAUSES = frozenset({18, 19, 20})
INVALID_CAUSES = frozenset({1, 3, 22, 28})
# OriginateResponse `Reason` values (enum ast_control_frame_type subset Asterisk reports).
REASON_NO_ANSWER = 3
REASON_ANSWERED = 4
REASON_BUSY = 5
REASON_CONGESTION = 8


class CallPhase(Enum):
    ORIGINATING = "originating"  # Originate sent, no channel seen yet
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"  # picked up, answering-machine detection running
    LIVE = "live"  # a person: waiting for an agent
    CONNECTED = "connected"  # in the agent's bridge
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallRules:
    """Parameters of classification; `connect_limit` runs from the live decision."""

    connect_limit: float = 2.0


@dataclass(frozen=True, slots=True)
class CallAttempt:
    attempt_id: str
    channel_id: str  # the Uniqueid we asked for with ChannelId
    phase: CallPhase = CallPhase.ORIGINATING
    channel: str = ""  # our leg's channel name, for Redirect/Hangup
    legs_up: frozenset[str] = frozenset()
    legs_seen: frozenset[str] = frozenset()
    timings: CallTimings = CallTimings()
    dial_status: str = ""
    originate_reason: int | None = None
    far_cause: int = 0  # hangup cause of the far (`;2`/trunk) leg
    near_cause: int = 0
    amd_status: str = ""
    amd_cause: str = ""
    abandoned: bool = False
    bridge_id: str = ""
    outcome: CallOutcome | None = None
    # Which side went first: 'near' (our leg: the dialplan or the dialer ended the call)
    # or 'far' (the debtor's side hung up).
    first_hangup: str = ""

    @property
    def other_channel_id(self) -> str:
        return other_channel_id(self.channel_id)

    @property
    def is_over(self) -> bool:
        return self.phase is CallPhase.ENDED


def channel_ids(attempt_id: str) -> tuple[str, str]:
    """The ChannelId/OtherChannelId to originate with: correlation without a lookup."""
    return f"att-{attempt_id}", other_channel_id(f"att-{attempt_id}")


def other_channel_id(channel_id: str) -> str:
    return channel_id + "-2"


def attempt_of_uniqueid(uniqueid: str) -> str | None:
    """Our attempt id from a Uniqueid made by `channel_ids`, else None."""
    if not uniqueid.startswith("att-"):
        return None
    base = uniqueid[4:]
    return base[:-2] if base.endswith("-2") else base


def new_attempt(attempt_id: str, channel_id: str, at: float) -> CallAttempt:
    return CallAttempt(attempt_id, channel_id, timings=CallTimings(originated=at))


def step(
    call: CallAttempt, event: AmiEvent, at: float, rules: CallRules = CallRules()
) -> tuple[CallAttempt, list[CallNotice]]:
    """Apply one event that the tracker routed to this call."""
    if call.phase is CallPhase.ENDED:
        return call, []
    notices: list[CallNotice] = []
    before = call.phase
    if isinstance(event, NewChannel):
        call = _saw_leg(call, event.channel, at)
    elif isinstance(event, NewState):
        call = _saw_leg(call, event.channel, at)
        if event.channel.state == ChannelState.RINGING:
            call = _ringing(call, at, notices)
        elif event.channel.state == ChannelState.UP:
            call = _answered(call, at, notices)
    elif isinstance(event, DialState) and event.status == "RINGING":
        call = _ringing(call, at, notices)
    elif isinstance(event, DialEnd):
        call = replace(call, dial_status=event.status)
        if event.status == "ANSWER":
            call = _answered(call, at, notices)
    elif isinstance(event, OriginateResponse):
        call = replace(call, originate_reason=event.reason)
        if event.success:
            call = _answered(call, at, notices)
        elif not call.legs_up:  # refused before any channel, or all legs already gone
            call = _end(call, at, notices, rules)
    elif isinstance(event, UserEvent):
        call = _user_event(call, event, at, notices)
    elif isinstance(event, NewExten):
        if event.channel.context in ABANDON_CONTEXTS and call.phase is not CallPhase.CONNECTED:
            call = replace(call, abandoned=True)
    elif isinstance(event, BridgeEnter):
        if call.phase is not CallPhase.CONNECTED and not call.abandoned:
            call = replace(
                call,
                phase=CallPhase.CONNECTED,
                bridge_id=event.bridge_id,
                timings=replace(call.timings, connected=at),
            )
            notices.append(CallConnected(call.attempt_id, event.bridge_id, at))
    elif isinstance(event, BridgeLeave):
        pass  # leaving the bridge is followed by Hangup or a new BridgeEnter
    elif isinstance(event, Hangup):
        call = _hangup(call, event, at, notices, rules)
    if call.phase is not before:
        log.debug("call %s: %s -> %s", call.attempt_id, before.value, call.phase.value)
    return call, notices


def _saw_leg(call: CallAttempt, ref: ChannelRef, at: float) -> CallAttempt:
    if ref.uniqueid in call.legs_seen:
        return call
    channel = ref.name if ref.uniqueid == call.channel_id or not call.channel else call.channel
    phase = CallPhase.DIALING if call.phase is CallPhase.ORIGINATING else call.phase
    timings = (
        call.timings if call.timings.dialing is not None else replace(call.timings, dialing=at)
    )
    return replace(
        call,
        phase=phase,
        channel=channel,
        legs_up=call.legs_up | {ref.uniqueid},
        legs_seen=call.legs_seen | {ref.uniqueid},
        timings=timings,
    )


def _ringing(call: CallAttempt, at: float, notices: list[CallNotice]) -> CallAttempt:
    if call.phase not in (CallPhase.ORIGINATING, CallPhase.DIALING):
        return call
    notices.append(CallRinging(call.attempt_id, at))
    return replace(call, phase=CallPhase.RINGING, timings=replace(call.timings, ringing=at))


def _answered(call: CallAttempt, at: float, notices: list[CallNotice]) -> CallAttempt:
    if call.phase not in (CallPhase.ORIGINATING, CallPhase.DIALING, CallPhase.RINGING):
        return call
    notices.append(CallAnswered(call.attempt_id, call.channel, at))
    return replace(call, phase=CallPhase.ANSWERED, timings=replace(call.timings, answered=at))


def _user_event(
    call: CallAttempt, event: UserEvent, at: float, notices: list[CallNotice]
) -> CallAttempt:
    if event.name in AMD_EVENTS and not call.amd_status:
        status = event.field("Status", "NOTSURE").upper()
        cause = event.field("Cause")
        call = replace(
            call, amd_status=status, amd_cause=cause, timings=replace(call.timings, decided=at)
        )
        if status == "MACHINE":
            notices.append(MachineDetected(call.attempt_id, at, cause))
            return call
        # HUMAN and NOTSURE are both treated as a person: hanging up on a person is
        # worse than connecting a machine.
        return _live(call, at, notices)
    if event.name == WAITING_EVENT:
        if call.timings.decided is None:
            call = replace(call, timings=replace(call.timings, decided=at))
        return _live(call, at, notices)
    if event.name == ABANDON_EVENT and call.phase is not CallPhase.CONNECTED:
        return replace(call, abandoned=True)
    return call


def _live(call: CallAttempt, at: float, notices: list[CallNotice]) -> CallAttempt:
    if call.phase in (CallPhase.LIVE, CallPhase.CONNECTED) or call.amd_status == "MACHINE":
        return call
    if call.phase is not CallPhase.ANSWERED:
        call = _answered(call, at, notices)
    notices.append(LiveAnswer(call.attempt_id, call.channel, at, call.amd_status or "NONE"))
    return replace(call, phase=CallPhase.LIVE)


def _hangup(
    call: CallAttempt, event: Hangup, at: float, notices: list[CallNotice], rules: CallRules
) -> CallAttempt:
    uid = event.channel.uniqueid
    if not call.first_hangup:
        call = replace(call, first_hangup="near" if uid == call.channel_id else "far")
    if uid == call.channel_id and call.other_channel_id in call.legs_seen:
        call = replace(call, near_cause=event.cause)
    else:
        call = replace(call, far_cause=event.cause)
    call = replace(call, legs_up=call.legs_up - {uid}, legs_seen=call.legs_seen | {uid})
    if not call.legs_up:
        call = _end(call, at, notices, rules)
    return call


def classify(call: CallAttempt, at: float, rules: CallRules = CallRules()) -> CallOutcome:
    """The outcome of a call that is over, from everything it reported."""
    if call.phase is CallPhase.CONNECTED or call.timings.connected is not None:
        return CallOutcome.COMPLETED
    if call.amd_status == "MACHINE":
        return CallOutcome.MACHINE
    if call.phase is CallPhase.LIVE:
        decided = call.timings.decided if call.timings.decided is not None else at
        if call.abandoned or at - decided > rules.connect_limit:
            return CallOutcome.ABANDONED
        return CallOutcome.LIVE_ANSWER
    if call.phase is CallPhase.ANSWERED:
        return CallOutcome.ABANDONED if call.abandoned else CallOutcome.LIVE_ANSWER
    return _unanswered(call)


def _unanswered(call: CallAttempt) -> CallOutcome:
    cause = call.far_cause if call.far_cause not in (0, 16) else call.near_cause
    if cause in BUSY_CAUSES or call.dial_status == "BUSY":
        return CallOutcome.BUSY
    if cause in INVALID_CAUSES:
        return CallOutcome.INVALID_NUMBER
    if cause in NO_ANSWER_CAUSES or call.dial_status in ("NOANSWER", "CANCEL"):
        return CallOutcome.NO_ANSWER
    if call.dial_status in ("CONGESTION", "CHANUNAVAIL"):
        return CallOutcome.FAILED
    reason = call.originate_reason
    if reason == REASON_BUSY:
        return CallOutcome.BUSY
    if reason == REASON_NO_ANSWER:
        return CallOutcome.NO_ANSWER
    if reason == REASON_CONGESTION:
        return CallOutcome.FAILED
    if call.phase is CallPhase.RINGING:
        return CallOutcome.NO_ANSWER
    if cause in (0, 16) and call.legs_seen:
        # Torn down before ringing with a normal cause: cancelled by us.
        return CallOutcome.NO_ANSWER
    return CallOutcome.FAILED


def _end(
    call: CallAttempt,
    at: float,
    notices: list[CallNotice],
    rules: CallRules,
    outcome: CallOutcome | None = None,
    reconciled: bool = False,
) -> CallAttempt:
    final = outcome or classify(call, at, rules)
    timings = replace(call.timings, hungup=at)
    notices.append(
        CallEnded(
            call.attempt_id,
            final,
            timings,
            call.far_cause,
            call.dial_status,
            reconciled,
            near_first=call.first_hangup == "near",
        )
    )
    log.info("call %s ended: %s", call.attempt_id, final.value)
    return replace(call, phase=CallPhase.ENDED, outcome=final, timings=timings)


def close_vanished(
    call: CallAttempt, at: float, rules: CallRules = CallRules()
) -> tuple[CallAttempt, list[CallNotice]]:
    """End a call that is gone from Asterisk after a reconnect (reconciliation).

    A call never seen on Asterisk may or may not have been dialed while the link was
    down: it ends as LOST, which the dialer must count as an attempt (never redial it
    at once). Others are classified from what was seen before the link dropped.
    """
    if call.phase is CallPhase.ENDED:
        return call, []
    notices: list[CallNotice] = []
    outcome = CallOutcome.LOST if call.phase is CallPhase.ORIGINATING else None
    return _end(call, at, notices, rules, outcome, reconciled=True), notices


def close_refused(call: CallAttempt, at: float) -> tuple[CallAttempt, list[CallNotice]]:
    """End a call whose Originate Asterisk refused outright (`Response: Error`)."""
    if call.phase is CallPhase.ENDED:
        return call, []
    notices: list[CallNotice] = []
    return _end(call, at, notices, CallRules(), CallOutcome.FAILED), notices


def adopt_leg(
    call: CallAttempt, ref: ChannelRef, application: str, at: float
) -> tuple[CallAttempt, list[CallNotice]]:
    """Re-adopt a live channel seen in CoreShowChannels after a reconnect.

    What happened while the link was down is inferred from the channel's state, context
    and application, and reported with the notices the dialer missed (a debtor now
    waiting in the hold context is a live answer to connect).
    """
    notices: list[CallNotice] = []
    call = _saw_leg(call, ref, at)
    ours = ref.uniqueid == call.channel_id
    if ref.state == ChannelState.RINGING:
        call = _ringing(call, at, notices)
    elif ref.state == ChannelState.UP:
        call = _answered(call, at, notices)
    if not ours:
        return call, notices
    if application == "ConfBridge" and call.phase is not CallPhase.CONNECTED:
        call = replace(call, phase=CallPhase.CONNECTED, timings=replace(call.timings, connected=at))
        notices.append(CallConnected(call.attempt_id, "", at))
    elif ref.context in HOLD_CONTEXTS and call.phase is CallPhase.ANSWERED:
        call = replace(call, timings=replace(call.timings, decided=at))
        call = _live(call, at, notices)
    elif ref.context in ABANDON_CONTEXTS and call.phase is not CallPhase.CONNECTED:
        # Already hearing the abandonment message (sent there before the reconnect or
        # restart, or by the dialplan's own safety net): abandoned, nothing to put through.
        call = replace(call, abandoned=True)
    return call, notices
