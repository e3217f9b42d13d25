"""Every recorded Asterisk 22 session, replayed through the codec and the call tracker."""

from __future__ import annotations

import pytest

from dialer.ami_events import parse_event
from dialer.call_state import CallEnded, CallOutcome
from dialer.call_tracker import CallTracker
from tests.dialer.recordings import SCENARIOS, inbound

# The full ordered list of what the tracker reports for each recording.
EXPECTED: dict[str, list[tuple[str, str, str]]] = {
    "login-fail": [],
    "misc": [],  # a synchronous Originate without our ids: not a dialer call
    "originate-answer": [
        ("CallRinging", "42", ""),
        ("CallAnswered", "42", ""),
        ("LiveAnswer", "42", ""),
        ("CallEnded", "42", "abandoned"),  # waited 9 s for an agent, then hung up
    ],
    "originate-noanswer": [("CallRinging", "42", ""), ("CallEnded", "42", "no_answer")],
    "originate-busy": [("CallEnded", "42", "busy")],
    "originate-congestion": [("CallEnded", "42", "failed")],
    "hangup-while-ringing": [("CallRinging", "49", ""), ("CallEnded", "49", "no_answer")],
    "abandon-redirect": [
        ("CallRinging", "46", ""),
        ("CallAnswered", "46", ""),
        ("LiveAnswer", "46", ""),
        ("CallEnded", "46", "abandoned"),
    ],
    "amd": [
        ("CallRinging", "47", ""),
        ("CallRinging", "48", ""),
        ("CallAnswered", "47", ""),
        ("CallAnswered", "48", ""),
        ("LiveAnswer", "47", ""),
        ("CallConnected", "47", ""),
        ("MachineDetected", "48", ""),
        ("CallEnded", "48", "machine"),
        ("CallEnded", "47", "completed"),
    ],
    "bridge-to-held-agent": [
        ("CallRinging", "43", ""),
        ("CallAnswered", "43", ""),
        ("LiveAnswer", "43", ""),
        ("CallConnected", "43", ""),
        ("CallEnded", "43", "completed"),
    ],
    "redirect-to-agent-conf": [
        ("CallRinging", "44", ""),
        ("CallAnswered", "44", ""),
        ("LiveAnswer", "44", ""),
        ("CallConnected", "44", ""),
        ("CallEnded", "44", "completed"),
        ("CallRinging", "45", ""),
        ("CallAnswered", "45", ""),
        ("LiveAnswer", "45", ""),
        ("CallConnected", "45", ""),
        ("CallEnded", "45", "completed"),
    ],
}


def replay(name: str, skip: int = 0) -> list[tuple[str, str, str]]:
    tracker = CallTracker()
    out: list[tuple[str, str, str]] = []
    for recorded in inbound(name)[skip:]:
        for notice in tracker.feed_message(recorded.message, recorded.t):
            outcome = notice.outcome.value if isinstance(notice, CallEnded) else ""
            out.append((type(notice).__name__, notice.attempt_id, outcome))
    return out


def test_every_recording_has_an_expectation() -> None:
    assert sorted(EXPECTED) == SCENARIOS


@pytest.mark.parametrize("name", SCENARIOS)
def test_recorded_session_reports_the_full_ordered_outcome_list(name: str) -> None:
    assert replay(name) == EXPECTED[name]


@pytest.mark.parametrize("name", SCENARIOS)
def test_joining_mid_stream_never_crashes_and_ends_every_call_it_sees(name: str) -> None:
    total = len(inbound(name))
    for skip in range(total + 1):
        notices = replay(name, skip)
        ended = [n for n in notices if n[0] == "CallEnded"]
        assert len(ended) == len({n[1] for n in ended}), f"a call ended twice at skip={skip}"
        expected_ends = [n for n in EXPECTED[name] if n[0] == "CallEnded"]
        # A call whose every event was cut is simply never seen; one that is seen ends.
        assert {n[1] for n in ended} <= {n[1] for n in expected_ends}


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_finished_call_leaves_nothing_in_the_channel_index(name: str) -> None:
    """The index from channel to attempt holds live calls only: events that arrive after
    a call ended (Asterisk sends some) must not put its channels back, or a node that runs
    for months grows by every call it ever made."""
    tracker = CallTracker()
    for recorded in inbound(name):
        tracker.feed_message(recorded.message, recorded.t)
    assert not tracker.calls
    assert tracker._by_uniqueid == {}


def test_timings_follow_the_recorded_clock() -> None:
    tracker = CallTracker()
    for recorded in inbound("amd"):
        tracker.feed_message(recorded.message, recorded.t)
    human, machine = tracker.get("47"), tracker.get("48")
    assert human is not None and machine is not None
    t = human.timings
    assert t.dialing is not None and t.ringing is not None and t.answered is not None
    assert t.decided is not None and t.connected is not None and t.hungup is not None
    assert t.dialing < t.ringing < t.answered < t.decided < t.connected < t.hungup
    # AMD() decides about 2.3 s after answer on a real Asterisk.
    assert 2.0 < t.decided - t.answered < 2.6
    assert machine.outcome is CallOutcome.MACHINE
    assert machine.amd_cause == "MAXWORDS-3-2"


def test_busy_is_recognised_from_the_far_leg_cause() -> None:
    tracker = CallTracker()
    for recorded in inbound("originate-busy"):
        tracker.feed_message(recorded.message, recorded.t)
    call = tracker.get("42")
    assert call is not None
    assert (call.far_cause, call.dial_status, call.originate_reason) == (17, "BUSY", 5)


def test_every_recorded_message_decodes_and_typed_events_parse() -> None:
    for name in SCENARIOS:
        for recorded in inbound(name):
            assert recorded.message.headers
            event = parse_event(recorded.message)
            if recorded.message.event in ("Newchannel", "Hangup", "DialEnd"):
                assert event is not None
