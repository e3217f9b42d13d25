"""Originate on the simulator is checked and fails as on Asterisk 22 (manager.c, channel.c)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dialer.sim.server import AmiSimulator, SimOptions
from tests.dialer.sim_wire import RawAmi, login

OPTIONS = SimOptions(port=0, time_scale=40, auth_fail_delay=0.05)
AGENT = (("Channel", "Local/7@sim-agents"), ("Context", "pratica-agent-conf"), ("Exten", "7"),
         ("Priority", "1"))  # fmt: skip


@pytest.fixture
async def ami() -> AsyncIterator[tuple[AmiSimulator, RawAmi]]:
    async with AmiSimulator(OPTIONS) as sim:
        connection = await RawAmi.open(sim.port)
        await login(connection, OPTIONS.secret)
        yield sim, connection
        connection.close()


async def originate(ami: RawAmi, action_id: str, *headers: tuple[str, str]) -> str:
    await ami.send(("Action", "Originate"), ("ActionID", action_id), *headers)
    return (await ami.reply(action_id)).get("Message")


async def test_channel_id_in_use_is_queued_then_fails_without_a_channel(
    ami: tuple[AmiSimulator, RawAmi],
) -> None:
    sim, raw = ami
    assert await originate(raw, "a", *AGENT, ("Async", "true"), ("ChannelId", "agent-2"),
                           ("OtherChannelId", "agent-2-2")) == "Originate successfully queued"  # fmt: skip
    await raw.event(lambda m: m.event == "ConfbridgeJoin")
    channels = set(sim.pbx.channels)
    newchannels = len(raw.events("Newchannel"))
    assert await originate(raw, "b", ("Channel", "Local/8@sim-agents"),
                           ("Context", "pratica-agent-conf"), ("Exten", "8"), ("Priority", "1"),
                           ("Async", "true"), ("ChannelId", "agent-2"),
                           ("OtherChannelId", "agent-2-x")) == "Originate successfully queued"  # fmt: skip
    failure = await raw.event(lambda m: m.event == "OriginateResponse" and m.action_id == "b")
    assert (failure.get("Response"), failure.get("Reason"), failure.get("Channel"),
            failure.get("Uniqueid")) == ("Failure", "0", "Local/8@sim-agents", "agent-2")  # fmt: skip
    await raw.sync()
    assert set(sim.pbx.channels) == channels
    assert len(raw.events("Newchannel")) == newchannels
    # The other id in use fails the same way; a synchronous one is refused in its Response.
    assert await originate(raw, "c", ("Channel", "Local/9@sim-agents"),
                           ("Context", "pratica-agent-conf"), ("Exten", "9"), ("Priority", "1"),
                           ("ChannelId", "fresh"),
                           ("OtherChannelId", "agent-2-2"), ("Application", "Wait"),
                           ("Data", "1")) == "Originate failed"  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ((("Channel", "Local/7@sim-agents"), ("Context", "pratica-nowhere"), ("Exten", "7"),
          ("Priority", "1")), "Extension does not exist."),
        ((("Channel", "Local/7@sim-agents"), ("Context", "pratica-agent-conf"), ("Exten", "x"),
          ("Priority", "1")), "Extension does not exist."),
        ((("Channel", "Local/7@sim-agents"), ("Context", "pratica-agent-conf"), ("Exten", "7"),
          ("Priority", "9")), "Extension does not exist."),
        ((("Channel", "Local/7@sim-agents"), ("Context", "pratica-agent-conf"), ("Exten", "7"),
          ("Priority", "nolabel")), "Invalid priority"),
        ((("Channel", "Local7@sim-agents"), *AGENT[1:]), "Invalid channel"),
        ((*AGENT, ("Timeout", "soon")), "Invalid timeout"),
        ((("Context", "pratica-agent-conf"), ("Exten", "7"), ("Priority", "1")),
         "Channel not specified"),
    ],
)  # fmt: skip
async def test_bad_originates_are_refused_before_any_call(
    ami: tuple[AmiSimulator, RawAmi], headers: tuple[tuple[str, str], ...], message: str
) -> None:
    sim, raw = ami
    reply_message = await originate(raw, "o", *headers, ("Async", "true"))
    assert reply_message == message
    await raw.sync()
    assert not raw.events("Newchannel") and not raw.events("OriginateResponse")
    assert sim.pbx.channels == {}


async def test_a_priority_label_is_accepted(ami: tuple[AmiSimulator, RawAmi]) -> None:
    _, raw = ami
    assert await originate(raw, "o", ("Channel", "Local/7@sim-agents"), ("Context", "pratica-amd"),
                           ("Exten", "s"), ("Priority", "machine"),
                           ("Async", "true")) == "Originate successfully queued"  # fmt: skip


async def test_a_channel_id_over_149_characters_is_refused(
    ami: tuple[AmiSimulator, RawAmi],
) -> None:
    sim, raw = ami
    await raw.send_raw(
        b"Action: Originate\r\nActionID: long\r\nChannel: Local/7@sim-agents\r\n"
        b"Context: pratica-agent-conf\r\nExten: 7\r\nPriority: 1\r\nAsync: true\r\n"
        b"ChannelId: " + b"a" * 150 + b"\r\n\r\n"
    )
    reply = await raw.reply("long")
    assert (reply.response, reply.get("Message")) == (
        "Error",
        "Uniqueid length exceeds maximum of 149",
    )
    await raw.sync()
    assert sim.pbx.channels == {}


async def test_local_channel_into_a_missing_extension_fails_at_once(
    ami: tuple[AmiSimulator, RawAmi],
) -> None:
    sim, raw = ami
    assert await originate(raw, "o", ("Channel", "Local/7@no-such-context"),
                           ("Context", "pratica-hold"), ("Exten", "s"), ("Priority", "1"),
                           ("Async", "true"), ("ChannelId", "att-5"),
                           ("OtherChannelId", "att-5-2")) == "Originate successfully queued"  # fmt: skip
    failure = await raw.event(lambda m: m.event == "OriginateResponse")
    assert (failure.get("Response"), failure.get("Reason"), failure.get("Uniqueid"),
            failure.get("Channel")) == ("Failure", "0", "att-5", "Local/7@no-such-context")  # fmt: skip
    assert [m.get("Uniqueid") for m in raw.events("Newchannel")] == ["att-5", "att-5-2"]
    assert {m.get("Uniqueid") for m in raw.events("Hangup")} == {"att-5", "att-5-2"}
    assert not raw.events("DialBegin") and sim.pbx.channels == {}
    await asyncio.sleep(0)
