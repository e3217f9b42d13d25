"""The simulated PBX restarts like Asterisk 22's `core restart now|gracefully`."""

from __future__ import annotations

import asyncio

import pytest

from dialer.sim.server import AmiSimulator, SimOptions
from tests.dialer.sim_wire import RawAmi, login

OPTIONS = SimOptions(port=0, time_scale=40, auth_fail_delay=0.05)


async def originate(ami: RawAmi, action_id: str, *headers: tuple[str, str]) -> None:
    await ami.send(("Action", "Originate"), ("ActionID", action_id), ("Async", "true"),
                   *headers)  # fmt: skip
    assert (await ami.reply(action_id)).get("Message") == "Originate successfully queued"


async def test_restart_now_hangs_up_refuses_actions_closes_and_boots_a_fresh_pbx() -> None:
    async with AmiSimulator(OPTIONS) as sim:
        ami = await RawAmi.open(sim.port)
        await login(ami, OPTIONS.secret)
        await originate(ami, "agent", ("Channel", "Local/7@sim-agents"),
                        ("Context", "pratica-agent-conf"), ("Exten", "7"), ("Priority", "1"),
                        ("ChannelId", "agent-7"), ("OtherChannelId", "agent-7-2"))  # fmt: skip
        await originate(ami, "ringing", ("Channel", "Local/1001@sim-debtors"),
                        ("Context", "pratica-hold"), ("Exten", "s"), ("Priority", "1"),
                        ("ChannelId", "att-1"), ("OtherChannelId", "att-1-2"),
                        ("Variable", "__SIM_OUTCOME=ANSWER,__SIM_RING=600"))  # fmt: skip
        await ami.event(lambda m: m.event == "ConfbridgeJoin")
        await ami.event(lambda m: m.get("UserEvent") == "SimDebtor")
        port = sim.port
        restart = asyncio.create_task(sim.restart(down_for=0.5, shutting_down_for=0.3))
        await ami.event(lambda m: m.event == "SoftHangupRequest")
        await ami.send(("Action", "Ping"), ("ActionID", "p"))
        refused = await ami.reply("p")
        assert (refused.response, refused.get("Message")) == ("Error", "Asterisk is shutting down")
        late = await RawAmi.open(port)
        await late.send(("Action", "Login"), ("ActionID", "l"), ("Username", "pratica"),
                        ("Secret", OPTIONS.secret))  # fmt: skip
        assert (await late.reply("l")).get("Message") == "Asterisk is shutting down"
        shutdown = await ami.event(lambda m: m.event == "Shutdown")
        assert (shutdown.get("Privilege"), shutdown.get("Shutdown"), shutdown.get("Restart")) == (
            "system,all",
            "Cleanly",
            "True",
        )
        assert await ami.until_closed() == b""
        hung_up = {m.get("Uniqueid"): m.get("Cause") for m in ami.events("Hangup")}
        assert {"agent-7", "agent-7-2", "att-1", "att-1-2"} <= set(hung_up)
        soft = {m.get("Uniqueid") for m in ami.events("SoftHangupRequest")
                if m.get("Cause") == "4"}  # fmt: skip
        assert {"agent-7", "agent-7-2", "att-1", "att-1-2"} <= soft
        failed = [m for m in ami.events("OriginateResponse") if m.action_id == "ringing"]
        assert [(m.get("Response"), m.get("Reason")) for m in failed] == [("Failure", "0")]
        assert [m.get("Conference") for m in ami.events("ConfbridgeEnd")] == ["agent-7"]
        await asyncio.sleep(0.1)
        with pytest.raises(ConnectionRefusedError):
            await RawAmi.open(port)
        await restart
        assert sim.port == port and sim.pbx.channels == {}
        fresh = await RawAmi.open(port)
        await login(fresh, OPTIONS.secret)
        await fresh.event(lambda m: m.event == "FullyBooted")
        await originate(fresh, "again", ("Channel", "Local/8@sim-agents"),
                        ("Context", "pratica-agent-conf"), ("Exten", "8"), ("Priority", "1"))  # fmt: skip
        first = await fresh.event(lambda m: m.event == "Newchannel")
        assert first.get("Uniqueid").endswith(".1")  # a new Uniqueid sequence
        fresh.close()
        late.close()


async def test_restart_gracefully_waits_for_the_calls_to_end() -> None:
    async with AmiSimulator(OPTIONS) as sim:
        ami = await RawAmi.open(sim.port)
        await login(ami, OPTIONS.secret)
        await originate(ami, "o", ("Channel", "Local/1001@sim-debtors"),
                        ("Context", "pratica-hold"), ("Exten", "s"), ("Priority", "1"),
                        ("ChannelId", "att-2"),
                        ("Variable", "__SIM_OUTCOME=ANSWER,__SIM_RING=1,__SIM_TALK=4"))  # fmt: skip
        await ami.event(lambda m: m.event == "OriginateResponse")
        restart = asyncio.create_task(sim.restart(down_for=0.2, gracefully=True,
                                                  shutting_down_for=0.1))  # fmt: skip
        await asyncio.sleep(0.02)
        await ami.send(("Action", "Hangup"), ("ActionID", "h"), ("Channel", "att-2"))
        assert (await ami.reply("h")).get("Message") == "Asterisk is shutting down"
        shutdown = await ami.event(lambda m: m.event == "Shutdown", timeout=5.0)
        hangups = [m for m in ami.events("Hangup") if m.get("Uniqueid") == "att-2"]
        assert [m.get("Cause") for m in hangups] == ["16"]  # the debtor ended the call
        assert not [m for m in ami.events("SoftHangupRequest") if m.get("Cause") == "4"]
        assert shutdown.get("Shutdown") == "Cleanly"
        await restart
        ami.close()
