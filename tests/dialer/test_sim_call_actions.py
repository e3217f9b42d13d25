"""Call control and inquiry actions on the simulator, as Asterisk 22 answers them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dialer.ami_codec import AmiMessage
from dialer.sim.server import AmiSimulator, SimOptions
from tests.dialer.sim_wire import RawAmi, login

OPTIONS = SimOptions(port=0, time_scale=40, auth_fail_delay=0.05)


@pytest.fixture
async def ami() -> AsyncIterator[tuple[AmiSimulator, RawAmi]]:
    async with AmiSimulator(OPTIONS) as sim:
        connection = await RawAmi.open(sim.port)
        await login(connection, OPTIONS.secret)
        yield sim, connection
        connection.close()


async def ask(raw: RawAmi, action: str, action_id: str, *headers: tuple[str, str]) -> AmiMessage:
    await raw.send(("Action", action), ("ActionID", action_id), *headers)
    return await raw.reply(action_id)


async def agent_leg(raw: RawAmi, agent: str = "7") -> None:
    reply = await ask(raw, "Originate", f"agent-{agent}", ("Channel", f"Local/{agent}@sim-agents"),
                      ("Context", "pratica-agent-conf"), ("Exten", agent), ("Priority", "1"),
                      ("Async", "true"), ("ChannelId", f"agent-{agent}"),
                      ("OtherChannelId", f"agent-{agent}-2"))  # fmt: skip
    assert reply.get("Message") == "Originate successfully queued"
    await raw.event(lambda m: m.event == "ConfbridgeJoin" and m.get("Uniqueid") == f"agent-{agent}")


async def test_hangup_without_cause_ends_both_halves_with_cause_0(
    ami: tuple[AmiSimulator, RawAmi],
) -> None:
    _, raw = ami
    await agent_leg(raw)
    assert (await ask(raw, "Hangup", "h", ("Channel", "agent-7"))).get(
        "Message"
    ) == "Channel Hungup"
    await raw.event(lambda m: m.event == "Hangup" and m.get("Uniqueid") == "agent-7-2")
    hangups = [
        (m.get("Uniqueid"), m.get("Cause"), m.get("Cause-txt")) for m in raw.events("Hangup")
    ]
    assert hangups == [("agent-7", "0", "Unknown"), ("agent-7-2", "0", "Unknown")]


async def test_no_answer_is_cause_19_user_alerting(ami: tuple[AmiSimulator, RawAmi]) -> None:
    _, raw = ami
    await ask(raw, "Originate", "o", ("Channel", "Local/1005@sim-debtors"), ("Context", "pratica-hold"),
              ("Exten", "s"), ("Priority", "1"), ("Async", "true"), ("Timeout", "2000"),
              ("ChannelId", "att-1"), ("Variable", "__SIM_OUTCOME=NOANSWER"))  # fmt: skip
    hangup = await raw.event(lambda m: m.event == "Hangup" and m.get("Cause") == "19")
    assert hangup.get("Cause-txt") == "User alerting, no answer"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ((("Context", "pratica-abandon"), ("Exten", "s"), ("Priority", "1")), "Channel not specified"),
        ((("Channel", "agent-7"), ("Exten", "s"), ("Priority", "1")), "Context not specified"),
        ((("Channel", "agent-7"), ("Context", "pratica-abandon"), ("Priority", "1")), "Exten not specified"),
        ((("Channel", "agent-7"), ("Context", "pratica-abandon"), ("Exten", "s")), "Priority not specified"),
        ((("Channel", "agent-7"), ("Context", "pratica-abandon"), ("Exten", "s"),
          ("Priority", "nolabel")), "Priority is invalid"),
        ((("Channel", "agent-7"), ("Context", "pratica-abandon"), ("Exten", "s"), ("Priority", "1"),
          ("ExtraChannel", "nobody")), "ExtraChannel does not exist: nobody"),
    ],
)  # fmt: skip
async def test_bad_redirects_are_refused_with_their_own_messages(
    ami: tuple[AmiSimulator, RawAmi], headers: tuple[tuple[str, str], ...], message: str
) -> None:
    sim, raw = ami
    await agent_leg(raw)
    reply = await ask(raw, "Redirect", "r", *headers)
    assert (reply.response, reply.get("Message")) == ("Error", message)
    agent = sim.pbx.find("agent-7")
    assert agent is not None and agent.context == "pratica-agent-conf"


async def test_redirect_to_a_missing_context_is_accepted_then_the_channel_hangs_up(
    ami: tuple[AmiSimulator, RawAmi],
) -> None:
    sim, raw = ami
    await agent_leg(raw)
    reply = await ask(raw, "Redirect", "r", ("Channel", "agent-7"), ("Context", "nowhere"),
                      ("Exten", "s"), ("Priority", "1"))  # fmt: skip
    assert (reply.response, reply.get("Message")) == ("Success", "Redirect successful")
    hangup = await raw.event(lambda m: m.event == "Hangup" and m.get("Uniqueid") == "agent-7")
    assert hangup.get("Cause") == "0"
    await raw.event(lambda m: m.event == "Hangup" and m.get("Uniqueid") == "agent-7-2")
    assert sim.pbx.channels == {}


async def test_redirect_of_a_ringing_originate_fails_it_at_once(
    ami: tuple[AmiSimulator, RawAmi],
) -> None:
    _, raw = ami
    await ask(raw, "Originate", "o", ("Channel", "Local/1001@sim-debtors"), ("Context", "pratica-hold"),
              ("Exten", "s"), ("Priority", "1"), ("Async", "true"), ("ChannelId", "att-2"),
              ("Variable", "__SIM_OUTCOME=ANSWER,__SIM_RING=600"))  # fmt: skip
    await raw.event(lambda m: m.event == "DialState" and m.get("DestUniqueid") == "att-2")
    reply = await ask(raw, "Redirect", "r", ("Channel", "att-2"), ("Context", "pratica-abandon"),
                      ("Exten", "s"), ("Priority", "1"))  # fmt: skip
    assert reply.get("Message") == "Redirect successful"
    failure = await raw.event(lambda m: m.event == "OriginateResponse", timeout=0.5)
    assert (failure.get("Response"), failure.get("Reason")) == ("Failure", "0")
    # At once: the redirected channel is still playing the abandonment message.
    assert not [m for m in raw.events("Hangup") if m.get("Uniqueid") == "att-2"]


async def test_confbridge_list_and_counts_with_the_announcer(
    ami: tuple[AmiSimulator, RawAmi],
) -> None:
    _, raw = ami
    await agent_leg(raw)
    start = raw.events("ConfbridgeStart")[0]
    join = raw.events("ConfbridgeJoin")[0]
    assert (start.get("BridgeNumChannels"), join.get("BridgeNumChannels")) == ("1", "2")
    reply = await ask(raw, "ConfbridgeList", "l", ("Conference", "agent-7"))
    assert reply.get("Message") == "Confbridge user list will follow"
    complete = await raw.event(lambda m: m.event == "ConfbridgeListComplete")
    items = [m for m in raw.events("ConfbridgeList") if m.action_id == "l"]
    assert [m.get("Uniqueid") for m in items] == ["agent-7"]
    assert complete.get("ListItems") == "1" and items[0].get("Admin") == "No"
    missing = await ask(raw, "ConfbridgeList", "m", ("Conference", "agent-99"))
    assert missing.get("Message") == "No Conference by that name found."


async def test_getvar_reads_globals_and_functions_and_setvar_global_emits_varset(
    ami: tuple[AmiSimulator, RawAmi],
) -> None:
    _, raw = ami
    await agent_leg(raw)
    assert (await ask(raw, "Getvar", "g1", ("Variable", "PRATICA_HOLD_MAX"))).get("Value") == "30"
    state = await ask(raw, "Getvar", "g2", ("Channel", "agent-7"), ("Variable", "CHANNEL(state)"))
    assert state.get("Value") == "Up"
    await ask(raw, "Setvar", "s", ("Variable", "PRATICA_FLAG"), ("Value", "1"))
    varset = await raw.event(lambda m: m.event == "VarSet" and m.get("Variable") == "PRATICA_FLAG")
    assert (varset.get("Channel"), varset.get("Uniqueid"), varset.get("Value")) == (
        "none",
        "none",
        "1",
    )
    missing = await ask(
        raw, "Setvar", "s2", ("Channel", "nobody"), ("Variable", "X"), ("Value", "1")
    )
    assert missing.get("Message") == "No such channel"


async def test_status_takes_a_uniqueid_and_lists_variables(
    ami: tuple[AmiSimulator, RawAmi],
) -> None:
    _, raw = ami
    await agent_leg(raw)
    await ask(raw, "Setvar", "s", ("Channel", "agent-7"), ("Variable", "CASE"), ("Value", "c-9"))
    reply = await ask(
        raw, "Status", "st", ("Channel", "agent-7"), ("Variables", "CASE,CHANNEL(state)")
    )
    assert reply.get("EventList") == "start"
    await raw.event(lambda m: m.event == "StatusComplete")
    items = [m for m in raw.events("Status") if m.action_id == "st"]
    assert [m.get("Uniqueid") for m in items] == ["agent-7"]
    assert items[0].get_all("Variable") == ["CASE=c-9", "CHANNEL(state)=Up"]


async def test_callerid_device_state_and_varset_are_emitted_and_filtered() -> None:
    async with AmiSimulator(OPTIONS) as sim:
        everything, calls = await RawAmi.open(sim.port), await RawAmi.open(sim.port)
        await login(everything, OPTIONS.secret)
        await login(calls, OPTIONS.secret, events="call")
        await everything.send(("Action", "Originate"), ("ActionID", "o"),
                              ("Channel", "Local/1001@sim-debtors"), ("Context", "pratica-hold"),
                              ("Exten", "s"), ("Priority", "1"), ("Async", "true"),
                              ("CallerID", '"Pratica" <0212345678>'),
                              ("Variable", "__SIM_OUTCOME=ANSWER,__SIM_RING=1,__SIM_TALK=1"))  # fmt: skip
        await everything.event(lambda m: m.event == "OriginateResponse")
        await everything.send(("Action", "Setvar"), ("ActionID", "s"), ("Variable", "G"),
                              ("Value", "1"))  # fmt: skip
        await everything.event(lambda m: m.event == "VarSet")
        await calls.sync()
        for name in ("NewCallerid", "NewConnectedLine", "DeviceStateChange"):
            assert everything.events(name) and calls.events(name), name
        caller = everything.events("NewCallerid")[0]
        assert caller.get("CallerIDNum") == "0212345678"
        assert not calls.events("VarSet") and not calls.events("UserEvent")
        everything.close()
        calls.close()
