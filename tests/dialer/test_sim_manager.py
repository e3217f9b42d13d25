"""The simulator's manager sessions behave like Asterisk 22's manager.c."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from dialer.sim.server import AmiSimulator, SimOptions
from tests.dialer.sim_wire import RawAmi, login

OPTIONS = SimOptions(port=0, time_scale=40, auth_fail_delay=0.05)


@pytest.fixture
async def sim() -> AsyncIterator[AmiSimulator]:
    async with AmiSimulator(OPTIONS) as running:
        yield running


async def test_login_is_followed_by_successful_auth(sim: AmiSimulator) -> None:
    ami = await RawAmi.open(sim.port)
    await login(ami, OPTIONS.secret)
    auth = await ami.event(lambda m: m.event == "SuccessfulAuth")
    assert (auth.get("Privilege"), auth.get("Service"), auth.get("AccountID"),
            auth.get("UsingPassword")) == ("security,all", "AMI", "pratica", "0")  # fmt: skip
    assert [m.event for m in ami.seen if m.event] == ["FullyBooted", "SuccessfulAuth"]
    ami.close()


async def test_challenge_is_decimal_and_the_same_for_the_session(sim: AmiSimulator) -> None:
    ami = await RawAmi.open(sim.port)
    await ami.send(("Action", "Challenge"), ("ActionID", "c1"), ("AuthType", "MD5"))
    first = (await ami.reply("c1")).get("Challenge")
    await ami.send(("Action", "Challenge"), ("ActionID", "c2"), ("AuthType", "md5"))
    assert first.isdigit() and (await ami.reply("c2")).get("Challenge") == first
    await ami.send(("Action", "Challenge"), ("ActionID", "c3"), ("AuthType", "plain"))
    refused = await ami.reply("c3")
    assert (refused.response, refused.get("Message")) == ("Error", "Must specify AuthType")
    key = hashlib.md5((first + OPTIONS.secret).encode(), usedforsecurity=False).hexdigest()
    await ami.send(("Action", "Login"), ("ActionID", "l"), ("AuthType", "md5"),
                   ("Username", "pratica"), ("Key", key))  # fmt: skip
    assert (await ami.reply("l")).get("Message") == "Authentication accepted"
    ami.close()


async def test_a_second_login_answers_already_authenticated_and_keeps_the_session(
    sim: AmiSimulator,
) -> None:
    ami = await RawAmi.open(sim.port)
    await login(ami, OPTIONS.secret)
    await ami.send(("Action", "Login"), ("ActionID", "again"), ("Username", "pratica"),
                   ("Secret", "wrong"))  # fmt: skip
    again = await ami.reply("again")
    assert (again.response, again.get("Message")) == ("Success", "Already authenticated")
    await ami.sync()
    assert sim.logins == 1
    ami.close()


async def test_a_message_without_action_is_refused(sim: AmiSimulator) -> None:
    ami = await RawAmi.open(sim.port)
    await ami.send(("ActionID", "n1"), ("Foo", "bar"))
    refused = await ami.reply("n1")
    assert (refused.response, refused.get("Message")) == ("Error", "Missing action in request")
    await login(ami, OPTIONS.secret)
    await ami.send(("ActionID", "n2"))
    assert (await ami.reply("n2")).get("Message") == "Missing action in request"
    bad = await ami.event(lambda m: m.event == "RequestBadFormat")
    assert bad.get("RequestType") == "Action: NONE"
    ami.close()


async def test_long_lines_and_too_many_lines_are_refused_and_not_run(sim: AmiSimulator) -> None:
    ami = await RawAmi.open(sim.port)
    await login(ami, OPTIONS.secret)
    long_value = b"x" * 1100
    await ami.send_raw(b"Action: Setvar\r\nActionID: long\r\nVariable: LONG\r\nValue: "
                       + long_value + b"\r\n\r\n")  # fmt: skip
    refused = await ami.reply("long")
    assert refused.get("Message") == "Failed to parse message: line too long"
    lines = b"".join(b"X-Filler-%d: 1\r\n" % i for i in range(130))
    await ami.send_raw(b"Action: Setvar\r\nActionID: many\r\nVariable: MANY\r\nValue: 1\r\n"
                       + lines + b"\r\n")  # fmt: skip
    refused = await ami.reply("many")
    assert refused.get("Message") == "Too many lines in message or allocation failure"
    ok = b"Action: Setvar\r\nActionID: fits\r\nVariable: FITS\r\nValue: " + b"y" * 990 + b"\r\n\r\n"
    await ami.send_raw(ok)
    assert (await ami.reply("fits")).response == "Success"
    assert "LONG" not in sim.pbx.globals and "MANY" not in sim.pbx.globals
    assert sim.pbx.globals["FITS"] == "y" * 990
    ami.close()


async def test_command_runs_cli_commands(sim: AmiSimulator) -> None:
    ami = await RawAmi.open(sim.port)
    await login(ami, OPTIONS.secret)
    await ami.send(("Action", "Command"), ("ActionID", "v"), ("Command", "core show version"))
    version = await ami.reply("v")
    assert version.response == "Success"
    assert version.get("Output").startswith("Asterisk 22.")
    await ami.send(("Action", "Originate"), ("ActionID", "o"), ("Channel", "Local/7@sim-agents"),
                   ("Context", "pratica-agent-conf"), ("Exten", "7"), ("Priority", "1"),
                   ("Async", "true"))  # fmt: skip
    await ami.reply("o")
    await ami.event(lambda m: m.event == "ConfbridgeJoin")
    await ami.send(("Action", "Command"), ("ActionID", "c"), ("Command", "core show channels"))
    output = (await ami.reply("c")).get_all("Output")
    assert output[0].startswith("Channel ")
    assert sum("sim-agents" in line for line in output) == 2
    assert "2 active channels" in output
    await ami.send(("Action", "Command"), ("ActionID", "x"), ("Command", "core frobnicate"))
    unknown = await ami.reply("x")
    assert unknown.response == "Error"
    assert unknown.get("Output").startswith("No such command 'core frobnicate'")
    ami.close()


@pytest.mark.parametrize(
    ("mask", "classes"),
    [("garbage", frozenset()), ("off", frozenset()), ("call,user", frozenset({"call", "user"})),
     ("on", None), ("2", frozenset({"call"}))],
)  # fmt: skip
async def test_event_mask_values_as_asterisk_reads_them(
    sim: AmiSimulator, mask: str, classes: frozenset[str] | None
) -> None:
    ami = await RawAmi.open(sim.port)
    await login(ami, OPTIONS.secret)
    await ami.send(("Action", "Events"), ("ActionID", "e"), ("EventMask", mask))
    reply = await ami.reply("e")
    assert reply.get("Events") == ("Off" if classes == frozenset() else "On")
    session = next(s for s in sim.sessions if s.authenticated)
    assert session.events == classes
    ami.close()
