"""Failures of a real PBX the simulator reproduces: missing modules, agent legs dropping."""

from __future__ import annotations

import argparse

from dialer.sim.server import AmiSimulator, SimOptions
from tests.dialer.sim_wire import RawAmi, login
from web.cli import sim_pbx

OPTIONS = SimOptions(port=0, time_scale=40, auth_fail_delay=0.05)


async def originate(ami: RawAmi, action_id: str, *headers: tuple[str, str]) -> None:
    await ami.send(("Action", "Originate"), ("ActionID", action_id), ("Async", "true"),
                   ("Priority", "1"), *headers)  # fmt: skip
    assert (await ami.reply(action_id)).get("Message") == "Originate successfully queued"


async def test_without_app_amd_the_answered_call_is_hung_up_with_no_amd_event() -> None:
    options = SimOptions(port=0, time_scale=40, missing_apps=frozenset({"AMD"}))
    async with AmiSimulator(options) as sim:
        ami = await RawAmi.open(sim.port)
        await login(ami, options.secret)
        await originate(ami, "o", ("Channel", "Local/1001@sim-debtors"),
                        ("Context", "pratica-amd"), ("Exten", "s"), ("ChannelId", "att-1"),
                        ("OtherChannelId", "att-1-2"),
                        ("Variable", "ATTEMPT=1,__SIM_OUTCOME=ANSWER,__SIM_RING=1"))  # fmt: skip
        hangup = await ami.event(lambda m: m.event == "Hangup" and m.get("Uniqueid") == "att-1")
        assert (hangup.get("Cause"), hangup.get("Cause-txt")) == ("0", "Unknown")
        await ami.event(lambda m: m.event == "Hangup" and m.get("Uniqueid") == "att-1-2")
        await ami.sync()
        ran = [m.get("Application") for m in ami.events("Newexten") if m.get("Uniqueid") == "att-1"]
        assert "NoOp" in ran and "AMD" not in ran
        assert not [m for m in ami.events("UserEvent") if m.get("UserEvent") == "PraticaAMD"]
        assert not [m for m in ami.events("SoftHangupRequest") if m.get("Uniqueid") == "att-1"]
        response = ami.events("OriginateResponse")[0]
        assert (response.get("Response"), response.get("Reason")) == ("Success", "4")
        assert sim.pbx.channels == {}
        ami.close()


def test_sim_pbx_command_takes_without_app() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    sim_pbx.register(sub)
    args = parser.parse_args(["sim-pbx", "--without-app", "AMD", "--without-app", "MixMonitor"])
    assert args.without_app == ["AMD", "MixMonitor"]


async def agent_with_debtor(ami: RawAmi) -> None:
    await originate(ami, "agent", ("Channel", "Local/7@sim-agents"),
                    ("Context", "pratica-agent-conf"), ("Exten", "7"), ("ChannelId", "agent-7"),
                    ("OtherChannelId", "agent-7-2"))  # fmt: skip
    await ami.event(lambda m: m.event == "ConfbridgeJoin")
    await originate(ami, "debtor", ("Channel", "Local/1001@sim-debtors"),
                    ("Context", "pratica-hold"), ("Exten", "s"), ("ChannelId", "att-3"),
                    ("OtherChannelId", "att-3-2"),
                    ("Variable", "ATTEMPT=3,__SIM_OUTCOME=ANSWER,__SIM_RING=1,__SIM_TALK=3"))  # fmt: skip
    await ami.event(lambda m: m.get("UserEvent") == "WaitingForAgent")
    await ami.send(("Action", "Redirect"), ("ActionID", "r"), ("Channel", "att-3"),
                   ("Context", "pratica-join-agent"), ("Exten", "7"), ("Priority", "1"))  # fmt: skip
    assert (await ami.reply("r")).get("Message") == "Redirect successful"
    await ami.event(lambda m: m.event == "ConfbridgeJoin" and m.get("Uniqueid") == "att-3")


async def check_agent_left_debtor_stays(ami: RawAmi, sim: AmiSimulator) -> None:
    leave = await ami.event(
        lambda m: m.event == "ConfbridgeLeave" and m.get("Uniqueid") == "agent-7"
    )
    # The announcer, the agent and the debtor: counted before the agent is out.
    assert (leave.get("BridgeNumChannels"), leave.get("Admin")) == ("3", "No")
    await ami.event(lambda m: m.event == "Hangup" and m.get("Uniqueid") == "agent-7")
    await ami.sync()
    debtor = sim.pbx.find("att-3")
    assert debtor is not None and debtor.bridge is not None
    assert not ami.events("ConfbridgeEnd")
    # Alone in the conference until the debtor hangs up; then the conference ends.
    end = await ami.event(lambda m: m.event == "ConfbridgeEnd", timeout=5.0)
    assert end.get("BridgeNumChannels") == "1"
    last = [m for m in ami.events("ConfbridgeLeave") if m.get("Uniqueid") == "att-3"]
    assert [m.get("BridgeNumChannels") for m in last] == ["2"]
    destroy = await ami.event(lambda m: m.event == "BridgeDestroy")
    assert destroy.get("BridgeNumChannels") == "0"


async def test_ami_hangup_of_the_agent_leg_leaves_the_debtor_in_the_conference() -> None:
    async with AmiSimulator(OPTIONS) as sim:
        ami = await RawAmi.open(sim.port)
        await login(ami, OPTIONS.secret)
        await agent_with_debtor(ami)
        await ami.send(("Action", "Hangup"), ("ActionID", "h"), ("Channel", "agent-7"))
        assert (await ami.reply("h")).get("Message") == "Channel Hungup"
        await check_agent_left_debtor_stays(ami, sim)
        ami.close()


async def test_agent_phone_dropping_leaves_the_debtor_in_the_conference() -> None:
    async with AmiSimulator(OPTIONS) as sim:
        ami = await RawAmi.open(sim.port)
        await login(ami, OPTIONS.secret)
        await agent_with_debtor(ami)
        assert sim.drop_agent_phone("7")
        await check_agent_left_debtor_stays(ami, sim)
        ami.close()
