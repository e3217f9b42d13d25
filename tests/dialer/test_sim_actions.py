"""The simulator's AMI surface over a raw socket: login variants, actions, errors."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator

import pytest

from dialer.ami_client import AmiActionFailed, AmiClient
from dialer.ami_codec import AmiDecoder, AmiMessage, encode
from dialer.sim.server import AmiSimulator, SimOptions

OPTIONS = SimOptions(port=0, time_scale=40, auth_fail_delay=0.05)


class RawAmi:
    """A bare AMI connection for checking the wire format."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.decoder = AmiDecoder(expect_banner=True)
        self.inbox: list[AmiMessage] = []

    @classmethod
    async def open(cls, port: int) -> RawAmi:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, *headers: tuple[str, str]) -> None:
        self.writer.write(encode(AmiMessage(headers)))
        await self.writer.drain()

    async def reply(self, action_id: str, timeout: float = 2.0) -> AmiMessage:
        async def find() -> AmiMessage:
            while True:
                for m in self.inbox:
                    if m.action_id == action_id and m.response:
                        self.inbox.remove(m)
                        return m
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("closed")
                self.inbox.extend(self.decoder.feed(data))

        return await asyncio.wait_for(find(), timeout)

    async def until_closed(self, timeout: float = 2.0) -> bytes:
        return await asyncio.wait_for(self.reader.read(), timeout)

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def sim() -> AsyncIterator[AmiSimulator]:
    async with AmiSimulator(OPTIONS) as running:
        yield running


async def login(ami: RawAmi, events: str = "on") -> None:
    await ami.send(("Action", "Login"), ("ActionID", "l"), ("Username", "pratica"),
                   ("Secret", OPTIONS.secret), ("Events", events))  # fmt: skip
    assert (await ami.reply("l")).get("Message") == "Authentication accepted"


async def test_banner_is_asterisk_22s(sim: AmiSimulator) -> None:
    ami = await RawAmi.open(sim.port)
    await login(ami)
    assert ami.decoder.banner == "Asterisk Call Manager/11.0.0"
    ami.close()


async def test_md5_challenge_login(sim: AmiSimulator) -> None:
    ami = await RawAmi.open(sim.port)
    await ami.send(("Action", "Challenge"), ("ActionID", "c"), ("AuthType", "md5"))
    challenge = (await ami.reply("c")).get("Challenge")
    key = hashlib.md5((challenge + OPTIONS.secret).encode(), usedforsecurity=False).hexdigest()
    await ami.send(("Action", "Login"), ("ActionID", "l"), ("AuthType", "md5"),
                   ("Username", "pratica"), ("Key", key))  # fmt: skip
    assert (await ami.reply("l")).response == "Success"
    ami.close()


async def test_wrong_secret_answers_authentication_failed_then_closes(sim: AmiSimulator) -> None:
    ami = await RawAmi.open(sim.port)
    await ami.send(("Action", "Login"), ("ActionID", "l"), ("Username", "pratica"),
                   ("Secret", "nope"))  # fmt: skip
    reply = await ami.reply("l")
    assert (reply.response, reply.get("Message")) == ("Error", "Authentication failed")
    assert await ami.until_closed() == b""


async def test_actions_before_login_are_refused(sim: AmiSimulator) -> None:
    ami = await RawAmi.open(sim.port)
    await ami.send(("Action", "Ping"), ("ActionID", "p"))
    assert (await ami.reply("p")).get("Message") == "Permission denied"
    ami.close()


async def test_unknown_action_is_an_error_and_a_bad_format_event(sim: AmiSimulator) -> None:
    ami = await RawAmi.open(sim.port)
    await login(ami)
    await ami.send(("Action", "Frobnicate"), ("ActionID", "x"))
    reply = await ami.reply("x")
    assert reply.response == "Error"
    assert reply.get("Message").startswith("Invalid/unknown command: Frobnicate.")
    await ami.send(("Action", "Ping"), ("ActionID", "p"))
    assert (await ami.reply("p")).get("Ping") == "Pong"
    assert any(m.event == "RequestBadFormat" for m in ami.inbox)
    ami.close()


async def test_setvar_getvar_status_and_events_off(sim: AmiSimulator) -> None:
    ami = await RawAmi.open(sim.port)
    await login(ami)
    await ami.send(("Action", "Originate"), ("ActionID", "o"), ("Channel", "Local/7@sim-agents"),
                   ("Context", "pratica-agent-conf"), ("Exten", "7"), ("Async", "true"),
                   ("ChannelId", "agent-7"), ("OtherChannelId", "agent-7-2"))  # fmt: skip
    assert (await ami.reply("o")).get("Message") == "Originate successfully queued"
    await asyncio.sleep(0.05)
    name = sim.pbx.find("agent-7")
    assert name is not None
    await ami.send(("Action", "Setvar"), ("ActionID", "s"), ("Channel", name.name),
                   ("Variable", "CASE"), ("Value", "c-9"))  # fmt: skip
    assert (await ami.reply("s")).response == "Success"
    await ami.send(("Action", "Getvar"), ("ActionID", "g"), ("Channel", name.name),
                   ("Variable", "CASE"))  # fmt: skip
    assert (await ami.reply("g")).get("Value") == "c-9"
    await ami.send(("Action", "Status"), ("ActionID", "st"))
    assert (await ami.reply("st")).get("EventList") == "start"
    await ami.send(("Action", "Ping"), ("ActionID", "p0"))
    await ami.reply("p0")
    items = [m.event for m in ami.inbox if m.action_id == "st"]
    assert items == ["Status", "Status", "StatusComplete"]  # both halves of the agent leg
    await ami.send(("Action", "Events"), ("ActionID", "e"), ("EventMask", "off"))
    assert (await ami.reply("e")).get("Events") == "Off"
    ami.inbox.clear()
    await ami.send(("Action", "Hangup"), ("ActionID", "h"), ("Channel", name.name))
    assert (await ami.reply("h")).response == "Success"
    await ami.send(("Action", "Ping"), ("ActionID", "p"))
    await ami.reply("p")
    assert not [m for m in ami.inbox if m.event in ("Hangup", "BridgeLeave")]
    assert sim.pbx.channels == {}
    ami.close()


async def test_event_filter_cuts_dialplan_events(sim: AmiSimulator) -> None:
    ami = await RawAmi.open(sim.port)
    await login(ami, events="call,user")
    await ami.send(("Action", "Originate"), ("ActionID", "o"), ("Channel", "Local/8@sim-agents"),
                   ("Context", "pratica-agent-conf"), ("Exten", "8"), ("Async", "true"))  # fmt: skip
    await ami.reply("o")
    await asyncio.sleep(0.05)
    await ami.send(("Action", "Ping"), ("ActionID", "p"))
    await ami.reply("p")
    events = {m.event for m in ami.inbox}
    assert {"Newchannel", "UserEvent", "ConfbridgeJoin"} <= events
    assert "Newexten" not in events and "FullyBooted" not in events
    ami.close()


async def test_client_bridge_action_hangs_up_the_held_agent_with_the_debtor(
    sim: AmiSimulator,
) -> None:
    client = AmiClient("127.0.0.1", sim.port, "pratica", OPTIONS.secret, action_timeout=1.0)
    await client.connect()
    try:
        await client.setvar("", "PRATICA_GLOBAL", "1")
        from dialer.ami_api import OriginateRequest

        await client.originate(OriginateRequest("", "Local/5@sim-agents", "lab-agent-hold", "5",
                                                channel_id="agent-5"))  # fmt: skip
        await client.originate(OriginateRequest("9", "Local/1001@sim-debtors", "pratica-hold",
                                                variables={"__SIM_OUTCOME": "ANSWER",
                                                           "__SIM_RING": "1", "__SIM_TALK": "2"}))  # fmt: skip
        for _ in range(200):
            debtor = sim.pbx.find("att-9")
            if debtor is not None and debtor.state == 6:
                break
            await asyncio.sleep(0.01)
        agent, debtor = sim.pbx.find("agent-5"), sim.pbx.find("att-9")
        assert agent is not None and debtor is not None
        await client.bridge(debtor.name, agent.name)
        for _ in range(300):
            if not sim.pbx.channels:
                break
            await asyncio.sleep(0.01)
        assert sim.pbx.channels == {}  # the agent leg went down with the debtor
        with pytest.raises(AmiActionFailed):
            await client.redirect(agent.name, "pratica-abandon", "s")
        assert await client.getvar("", "PRATICA_GLOBAL") == "1"
    finally:
        await client.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_pratica_sim_pbx_command_serves_ami_until_terminated(tmp_path: object) -> None:
    port = _free_port()
    env = {**os.environ, "PRATICA_AMI_SECRET": ""}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from web.cli import main; sys.exit(main())",
        "--data-dir", str(tmp_path), "sim-pbx", "--port", str(port), "--time-scale", "50",
        "--username", "demo", "--secret", "s3cret",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 10)
    assert f":{port}" in line.decode()
    client = AmiClient("127.0.0.1", port, "demo", "s3cret", action_timeout=2.0)
    await client.connect()
    assert await client.ping() < 1.0
    await client.close()
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_client_from_settings_uses_the_event_filter(sim: AmiSimulator) -> None:
    from core.settings import AmiSettings

    settings = AmiSettings(port=sim.port, secret=OPTIONS.secret)
    client = AmiClient.from_settings(settings)
    assert client.event_mask == "call,user,system"
    await client.connect()
    session = next(iter(sim.sessions))
    assert session.events == frozenset({"call", "user", "system"})
    await client.close()
