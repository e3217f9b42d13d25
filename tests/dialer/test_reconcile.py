"""Reconciliation after a reconnect, on the pure tracker: no I/O."""

from __future__ import annotations

from dialer.ami_events import ChannelRef, CoreShowChannel, NewChannel, NewState
from dialer.call_state import CallEnded, CallOutcome, CallPhase
from dialer.call_tracker import CallTracker


def ref(uniqueid: str, state: int, attempt: str = "") -> ChannelRef:
    return ChannelRef(f"Local/1@sim-debtors-0001;{1 if '-2' not in uniqueid else 2}",
                      uniqueid, uniqueid.removesuffix("-2"), state, "pratica-hold", "s", attempt)  # fmt: skip


def item(uniqueid: str, state: int, app: str = "Wait") -> CoreShowChannel:
    return CoreShowChannel(ref(uniqueid, state), app, "00:00:05")


def test_vanished_calls_end_live_calls_are_readopted_unknown_calls_are_adopted() -> None:
    tracker = CallTracker()
    tracker.expect("1", "att-1", 0.0)  # was ringing, vanished
    tracker.expect("2", "att-2", 0.0)  # answered, still up in a conference
    tracker.expect("3", "att-3", 0.0)  # Originate lost in flight: never seen
    tracker.feed(NewChannel(ref("att-1", 0)), 1.0)
    tracker.feed(NewState(ref("att-1", 5)), 2.0)
    tracker.feed(NewChannel(ref("att-2", 0)), 1.0)
    snapshot = [item("att-2", 6, "ConfBridge"), item("att-2-2", 6), item("att-9", 6)]
    notices = tracker.reconcile(snapshot, 10.0)
    ended = {n.attempt_id: n for n in notices if isinstance(n, CallEnded)}
    assert ended["1"].outcome is CallOutcome.NO_ANSWER and ended["1"].reconciled
    assert ended["3"].outcome is CallOutcome.LOST
    assert set(ended) == {"1", "3"}
    live = tracker.get("2")
    assert live is not None and live.phase is CallPhase.CONNECTED
    assert live.legs_up == {"att-2", "att-2-2"}
    adopted = tracker.get("9")  # started by another process or before our restart
    # Found waiting in the hold context: a live answer the dialer must still connect.
    assert adopted is not None and adopted.phase is CallPhase.LIVE
    missed = [(type(n).__name__, n.attempt_id) for n in notices if not isinstance(n, CallEnded)]
    assert missed == [
        ("CallAnswered", "2"),
        ("CallConnected", "2"),
        ("CallAnswered", "9"),
        ("LiveAnswer", "9"),
    ]
    assert tracker.reconcile(snapshot, 11.0) == []  # idempotent


def test_a_readopted_call_still_ends_with_its_outcome() -> None:
    from dialer.ami_events import Hangup

    tracker = CallTracker()
    tracker.reconcile([item("att-5", 6, "ConfBridge"), item("att-5-2", 6)], 1.0)
    assert tracker.feed(Hangup(ref("att-5-2", 6), 16, ""), 5.0) == []
    notices = tracker.feed(Hangup(ref("att-5", 6), 16, ""), 5.1)
    assert [(type(n).__name__, getattr(n, "outcome", None)) for n in notices] == [
        ("CallEnded", CallOutcome.COMPLETED)
    ]


def test_a_call_found_in_the_abandonment_message_after_a_restart_ends_abandoned() -> None:
    from dialer.ami_events import ChannelRef, CoreShowChannel, Hangup
    from dialer.call_notices import CallOutcome, LiveAnswer
    from dialer.call_tracker import CallTracker

    tracker = CallTracker()
    ref = ChannelRef("Local/1@d-0001;1", "att-9", "att-9", 6, "pratica-abandon", "s", "9")
    notices = tracker.reconcile([CoreShowChannel(ref, "Playback", "40")], 1.0)
    assert not any(isinstance(n, LiveAnswer) for n in notices)  # nobody to put through
    (ended,) = tracker.feed(Hangup(ref, 16, "Normal Clearing"), 3.0)
    assert ended.outcome is CallOutcome.ABANDONED
