"""The AMI codec: framing, partial reads, garbage, limits, and safe encoding."""

from __future__ import annotations

import pytest

from dialer.ami_codec import AmiDecoder, AmiEncodeError, AmiMessage, encode, encode_message
from tests.dialer.recordings import FIXTURES, SCENARIOS, load


def test_round_trip_keeps_repeated_headers_in_order() -> None:
    message = AmiMessage.of(
        ("Event", "Newchannel"), ("ChanVariable", "ATTEMPT=7"), ("ChanVariable", "X=1")
    )
    decoded = AmiDecoder().feed(encode(message))
    assert decoded == [message]
    assert decoded[0].channel_vars() == {"ATTEMPT": "7", "X": "1"}


def test_one_byte_at_a_time_gives_the_same_messages() -> None:
    raw = b"".join(encode(r.message) for r in load("amd") if r.direction == "in")
    whole = AmiDecoder().feed(raw)
    decoder = AmiDecoder()
    pieces = [m for i in range(len(raw)) for m in decoder.feed(raw[i : i + 1])]
    assert pieces == whole
    assert len(whole) == len([r for r in load("amd") if r.direction == "in"]) > 150


def test_banner_is_taken_apart_from_messages() -> None:
    decoder = AmiDecoder(expect_banner=True)
    out = decoder.feed(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n\r\n")
    assert decoder.banner == "Asterisk Call Manager/11.0.0"
    assert out == [AmiMessage.of(("Response", "Success"))]


def test_garbage_lines_and_bare_newlines_are_tolerated() -> None:
    decoder = AmiDecoder()
    out = decoder.feed(b"\x00\xff junk without colon\nEvent: Ping\nValue: a: b\n\n\r\n\r\n")
    assert out == [AmiMessage.of(("Event", "Ping"), ("Value", "a: b"))]
    assert decoder.stats.garbage_lines == 1


def test_huge_header_is_skipped_with_a_clear_limit_and_the_stream_recovers() -> None:
    decoder = AmiDecoder(max_line=1024)
    huge = b"Event: Junk\r\nData: " + b"x" * 5000 + b"\r\n\r\n"
    out = decoder.feed(huge + b"Event: After\r\n\r\n")
    assert out == [AmiMessage.of(("Event", "After"))]
    assert decoder.stats.oversized_lines == 1
    assert decoder.stats.dropped_messages == 1
    assert "1024" in decoder.stats.last_error


def test_a_line_that_never_ends_does_not_grow_memory() -> None:
    decoder = AmiDecoder(max_line=1024, max_message=4096)
    assert decoder.feed(b"Event: Start\r\n") == []
    for _ in range(100):
        assert decoder.feed(b"y" * 1000) == []
    assert len(decoder._buffer) <= 4096
    # The endless line belonged to a message: that message is dropped, the next one is not.
    assert decoder.feed(b"\r\n\r\nEvent: Back\r\n\r\n") == [AmiMessage.of(("Event", "Back"))]
    assert decoder.stats.dropped_messages == 1


def test_too_many_headers_drop_the_message() -> None:
    decoder = AmiDecoder(max_headers=10)
    body = b"".join(b"H%d: v\r\n" % i for i in range(50))
    assert decoder.feed(b"Event: Big\r\n" + body + b"\r\nEvent: Ok\r\n\r\n") == [
        AmiMessage.of(("Event", "Ok"))
    ]


@pytest.mark.parametrize("value", ["a\r\nAction: Hangup", "x\ny"])
def test_encoding_refuses_header_injection(value: str) -> None:
    with pytest.raises(AmiEncodeError):
        encode_message([("Channel", value)])


def test_fixtures_are_all_present() -> None:
    assert len(SCENARIOS) == 11
    assert (FIXTURES / "README.md").exists()
