"""The AMI client and call control against the simulator over real TCP, in fast virtual time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest

from dialer.agent_legs import AgentLegUp
from dialer.ami_client import (
    AmiActionFailed,
    AmiAuthenticationError,
    AmiClient,
    AmiTimeout,
    HealthStatus,
    OriginateRequest,
)
from dialer.call_control import AMD_CONTEXT, CallControl, Decision, DuplicateAttempt
from dialer.call_state import (
    CallConnected,
    CallEnded,
    CallOutcome,
    LiveAnswer,
    MachineDetected,
)
from dialer.sim.debtors import DebtorModel
from dialer.sim.server import AmiSimulator, SimFaults, SimOptions

SCALE = 40.0  # virtual seconds per real second
DEBTOR = "Local/{number}@sim-debtors"
OPTIONS = SimOptions(
    port=0,
    time_scale=SCALE,
    debtors=DebtorModel(ring_median=2.0, ring_sigma=0.0, talk_median=4.0, talk_sigma=0.0),
    hold_max=20.0,
    auth_fail_delay=0.05,
)


@dataclass
class Rig:
    sim: AmiSimulator
    client: AmiClient
    control: CallControl
    decisions: list[Decision]
    collector: asyncio.Task[None] | None = None

    async def until(self, predicate: object, timeout: float = 5.0) -> Decision:
        """Wait for a notice matching predicate(notice) (real seconds)."""
        check = predicate if callable(predicate) else (lambda n: n == predicate)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = 0
        while loop.time() < deadline:
            for decision in self.decisions[seen:]:
                if check(decision.notice):
                    return decision
            seen = len(self.decisions)
            await asyncio.sleep(0.005)
        raise AssertionError(f"no matching notice; got {[d.notice for d in self.decisions]}")

    async def ended(self, attempt_id: str, timeout: float = 5.0) -> CallEnded:
        decision = await self.until(
            lambda n: isinstance(n, CallEnded) and n.attempt_id == attempt_id, timeout
        )
        assert isinstance(decision.notice, CallEnded)
        return decision.notice


async def make_rig(
    options: SimOptions = OPTIONS,
    *,
    reconnect_delay: float = 0.05,
    ping_interval: float = 10.0,
    ping_timeout: float = 1.0,
) -> Rig:
    sim = AmiSimulator(options)
    await sim.start()
    client = AmiClient(
        "127.0.0.1", sim.port, options.username, options.secret, action_timeout=1.0,
        reconnect_delay=reconnect_delay, ping_interval=ping_interval, ping_timeout=ping_timeout,
    )  # fmt: skip
    await client.connect()
    control = CallControl(client)
    control.start()
    decisions: list[Decision] = []

    async def collect() -> None:
        async for decision in control.notices():
            decisions.append(decision)

    rig = Rig(sim, client, control, decisions)
    rig.collector = asyncio.get_running_loop().create_task(collect())
    return rig


async def close_rig(rig: Rig) -> None:
    if rig.collector is not None:
        rig.collector.cancel()
    await rig.control.stop()
    await rig.client.close()
    await rig.sim.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made = await make_rig()
    yield made
    await close_rig(made)


def forced(outcome: str, **extra: str) -> dict[str, str]:
    return {"__SIM_OUTCOME": outcome, **{f"__{k}": v for k, v in extra.items()}}


@pytest.mark.parametrize(
    ("sim_outcome", "expected"),
    [
        ("NOANSWER", CallOutcome.NO_ANSWER),
        ("BUSY", CallOutcome.BUSY),
        ("CONGESTION", CallOutcome.FAILED),
        ("INVALID", CallOutcome.INVALID_NUMBER),
    ],
)
async def test_unanswered_call_outcomes(rig: Rig, sim_outcome: str, expected: CallOutcome) -> None:
    attempt = f"u-{sim_outcome.lower()}"
    assert await rig.control.dial(
        attempt, DEBTOR.format(number="100"), timeout=5.0, variables=forced(sim_outcome)
    )
    ended = await rig.ended(attempt)
    assert ended.outcome is expected
    assert ended.timings.dialing is not None and ended.timings.answered is None


async def test_answering_machine_is_detected_and_hung_up(rig: Rig) -> None:
    await rig.control.dial("m1", DEBTOR.format(number="101"), context=AMD_CONTEXT,
                           variables=forced("MACHINE"))  # fmt: skip
    await rig.until(lambda n: isinstance(n, MachineDetected) and n.attempt_id == "m1")
    ended = await rig.ended("m1")
    assert ended.outcome is CallOutcome.MACHINE
    t = ended.timings
    assert t.answered is not None and t.decided is not None
    assert 2.0 < (t.decided - t.answered) * SCALE < 3.5  # AMD decides ~2.4 s after answer


async def test_live_answer_connected_to_nailed_up_agent_completes_and_agent_stays(rig: Rig) -> None:
    leg = await rig.control.login_agent(7, "Local/7@sim-agents")
    await rig.until(lambda n: isinstance(n, AgentLegUp) and n.leg_id == leg)
    await rig.control.dial("l1", DEBTOR.format(number="102"), context=AMD_CONTEXT,
                           variables=forced("ANSWER"))  # fmt: skip
    live = await rig.until(lambda n: isinstance(n, LiveAnswer) and n.attempt_id == "l1")
    await rig.control.connect_to_agent("l1", "7")
    await rig.until(lambda n: isinstance(n, CallConnected) and n.attempt_id == "l1")
    ended = await rig.ended("l1")
    assert ended.outcome is CallOutcome.COMPLETED
    assert live.latency < 0.05
    # The agent's leg is still in its conference for the next call.
    channels = await rig.client.core_show_channels()
    assert {c.channel.uniqueid for c in channels} == {leg, f"{leg};2"}
    assert await rig.client.hangup("/^Local\\/7@sim-agents-.*$/") != []


async def test_live_answer_without_free_agent_is_abandoned_and_hears_message(rig: Rig) -> None:
    await rig.control.dial(
        "a1", DEBTOR.format(number="103"), variables=forced("ANSWER", SIM_TALK="30")
    )
    await rig.until(lambda n: isinstance(n, LiveAnswer) and n.attempt_id == "a1")
    await asyncio.sleep(2.0 / SCALE)  # the connect limit passes with no agent
    await rig.control.abandon("a1")
    ended = await rig.ended("a1")
    assert ended.outcome is CallOutcome.ABANDONED
    assert rig.sim.pbx.truth.get("abandon_message") == 1


async def test_person_hanging_up_within_the_connect_limit_is_a_live_answer(rig: Rig) -> None:
    await rig.control.dial("h1", DEBTOR.format(number="104"), context=AMD_CONTEXT,
                           variables=forced("ANSWER", SIM_TALK="0"))  # fmt: skip
    ended = await rig.ended("h1")
    assert ended.outcome is CallOutcome.LIVE_ANSWER


async def test_dialer_cancels_a_ringing_call(rig: Rig) -> None:
    await rig.control.dial(
        "c1", DEBTOR.format(number="105"), variables=forced("ANSWER", SIM_RING="60")
    )
    await rig.until(lambda n: type(n).__name__ == "CallRinging" and n.attempt_id == "c1")
    await rig.control.cancel("c1")
    assert (await rig.ended("c1")).outcome is CallOutcome.NO_ANSWER


async def test_the_same_attempt_is_never_dialed_twice(rig: Rig) -> None:
    await rig.control.dial("d1", DEBTOR.format(number="106"), variables=forced("BUSY"))
    with pytest.raises(DuplicateAttempt):
        await rig.control.dial("d1", DEBTOR.format(number="106"))
    await rig.ended("d1")
    with pytest.raises(DuplicateAttempt):
        await rig.control.dial("d1", DEBTOR.format(number="106"))
    assert rig.sim.pbx.truth["originate"] == 1


def test_originate_always_sends_async_and_our_ids() -> None:
    headers = dict(OriginateRequest("42", "PJSIP/39333@carrier", "pratica-amd").headers("o1"))
    assert headers["Async"] == "true"
    assert (headers["ChannelId"], headers["OtherChannelId"]) == ("att-42", "att-42-2")
    assert headers["Variable"] == "ATTEMPT=42"


async def test_reconnect_mid_call_reconciles_without_dialing_twice() -> None:
    rig = await make_rig(reconnect_delay=0.5)
    try:
        await rig.control.login_agent(8, "Local/8@sim-agents")
        await rig.control.dial("r-live", DEBTOR.format(number="107"),
                               variables=forced("ANSWER", SIM_TALK="60"))  # fmt: skip
        await rig.until(lambda n: isinstance(n, LiveAnswer) and n.attempt_id == "r-live")
        await rig.control.connect_to_agent("r-live", "8")
        await rig.until(lambda n: isinstance(n, CallConnected))
        await rig.control.dial("r-gone", DEBTOR.format(number="108"), timeout=5.0,
                               variables=forced("NOANSWER"))  # fmt: skip
        await rig.until(lambda n: type(n).__name__ == "CallRinging" and n.attempt_id == "r-gone")
        await rig.control.dial("r-wait", DEBTOR.format(number="109"),
                               variables=forced("ANSWER", SIM_RING="8", SIM_TALK="60"))  # fmt: skip
        await rig.until(lambda n: type(n).__name__ == "CallRinging" and n.attempt_id == "r-wait")
        rig.sim.drop_connections()
        # 0.5 s real = 20 virtual s without AMI: the ringing call times out meanwhile.
        gone = await rig.ended("r-gone", timeout=5.0)
        assert gone.reconciled and gone.outcome is CallOutcome.NO_ANSWER
        assert rig.client.logins == 2 and rig.client.health is HealthStatus.UP
        readopted = rig.control.tracker.get("r-live")
        assert readopted is not None and not readopted.is_over
        # Answered while the link was down: reported on reconnect, and still connectable.
        await rig.until(lambda n: isinstance(n, LiveAnswer) and n.attempt_id == "r-wait")
        await rig.control.abandon("r-wait")
        assert (await rig.ended("r-wait")).outcome is CallOutcome.ABANDONED
        live = await rig.ended("r-live", timeout=5.0)
        assert live.outcome is CallOutcome.COMPLETED and not live.reconciled
        assert rig.sim.pbx.truth["originate"] == 4  # agent leg + three calls, none re-sent
    finally:
        await close_rig(rig)


async def test_originate_in_flight_when_the_link_drops_is_never_resent() -> None:
    rig = await make_rig(reconnect_delay=0.05)
    try:
        rig.sim.freeze()  # Asterisk stops answering: the Originate gets no reply

        async def drop_soon() -> None:
            await asyncio.sleep(0.1)
            rig.sim.drop_connections()

        dropper = asyncio.create_task(drop_soon())
        sent = await rig.control.dial("f1", DEBTOR.format(number="109"), variables=forced("ANSWER"))
        await dropper
        assert sent is False
        ended = await rig.ended("f1")
        assert ended.outcome is CallOutcome.LOST and ended.reconciled
        await asyncio.sleep(0.2)
        assert rig.sim.pbx.truth.get("originate", 0) == 0
        with pytest.raises(DuplicateAttempt):
            await rig.control.dial("f1", DEBTOR.format(number="109"))
    finally:
        await close_rig(rig)


async def test_half_open_link_is_detected_by_the_health_ping() -> None:
    rig = await make_rig(ping_interval=0.05, ping_timeout=0.1, reconnect_delay=0.05)
    try:
        rig.sim.freeze()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        for _ in range(300):
            if rig.client.logins >= 2 or loop.time() > deadline:
                break
            await asyncio.sleep(0.01)
        assert rig.client.logins >= 2  # more if a ping is slow on a loaded machine
        assert rig.client.health is HealthStatus.UP
        assert await rig.client.ping() < 0.5
    finally:
        await close_rig(rig)


async def test_every_action_times_out_instead_of_hanging(rig: Rig) -> None:
    rig.sim.freeze()
    with pytest.raises(AmiTimeout):
        await rig.client.redirect("Local/1@sim-debtors-00000001;1", "pratica-abandon", "s")


async def test_wrong_secret_is_a_clear_error_and_is_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with AmiSimulator(OPTIONS) as sim:
        client = AmiClient("127.0.0.1", sim.port, "pratica", "wrong", reconnect_delay=0.05)
        with caplog.at_level(logging.ERROR), pytest.raises(AmiAuthenticationError) as info:
            await client.connect(timeout=2.0)
        assert "Authentication failed" in str(info.value)
        assert client.health is HealthStatus.AUTH_FAILED
        assert any("login refused" in r.getMessage() for r in caplog.records)
        await asyncio.sleep(0.3)
        assert sim.connections == 1 and sim.logins == 0


async def test_client_survives_garbage_and_huge_headers_mid_call() -> None:
    faults = SimFaults(garbage_every=3, huge_header_every=5, huge_header_bytes=150_000)
    rig = await make_rig(replace(OPTIONS, faults=faults))
    try:
        await rig.control.dial("g1", DEBTOR.format(number="110"), variables=forced("BUSY"))
        assert (await rig.ended("g1")).outcome is CallOutcome.BUSY
        await rig.control.dial("g2", DEBTOR.format(number="111"), context=AMD_CONTEXT,
                               variables=forced("MACHINE"))  # fmt: skip
        assert (await rig.ended("g2")).outcome is CallOutcome.MACHINE
        assert rig.client.health is HealthStatus.UP
    finally:
        await close_rig(rig)


async def test_reordered_events_across_channels_still_give_the_outcome() -> None:
    rig = await make_rig(replace(OPTIONS, faults=SimFaults(reorder=True, event_delay=0.002)))
    try:
        await rig.control.dial("o1", DEBTOR.format(number="112"), variables=forced("CONGESTION"))
        await rig.control.dial("o2", DEBTOR.format(number="113"), timeout=3.0,
                               variables=forced("NOANSWER"))  # fmt: skip
        assert (await rig.ended("o1")).outcome is CallOutcome.FAILED
        assert (await rig.ended("o2")).outcome is CallOutcome.NO_ANSWER
    finally:
        await close_rig(rig)


async def test_a_peer_speaking_garbage_fails_connect_clearly_without_hanging() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n" + b"z" * 200_000 + b"\r\n\r\n")
        await writer.drain()
        await reader.read(1000)
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = AmiClient("127.0.0.1", port, "pratica", "x", action_timeout=0.2, reconnect_delay=0.05)
    with pytest.raises(AmiTimeout):
        await client.connect(timeout=0.5)
    await client.close()
    server.close()
    await server.wait_closed()


async def test_repeated_connection_drops_end_every_call_once_and_never_dial_twice() -> None:
    faults = SimFaults(drop_after_events=15)
    rig = await make_rig(replace(OPTIONS, faults=faults), reconnect_delay=0.02)
    try:
        attempts = {"x1": "BUSY", "x2": "CONGESTION", "x3": "NOANSWER", "x4": "ANSWER"}
        sent = 0
        for attempt, outcome in attempts.items():
            for _ in range(200):  # the engine dials only while the link is up
                if rig.client.health is HealthStatus.UP:
                    break
                await asyncio.sleep(0.01)
            sent += await rig.control.dial(
                attempt, DEBTOR.format(number="120"), timeout=3.0,
                variables=forced(outcome, SIM_TALK="1"),
            )  # fmt: skip
        for attempt in attempts:
            await rig.ended(attempt, timeout=8.0)
        ended = [d.notice for d in rig.decisions if isinstance(d.notice, CallEnded)]
        assert sorted(n.attempt_id for n in ended) == sorted(attempts)
        by_attempt = {n.attempt_id: n for n in ended}
        # Calls that reached Asterisk get their real outcome, even across the drops.
        if not by_attempt["x4"].reconciled:
            assert by_attempt["x4"].outcome in (CallOutcome.LIVE_ANSWER, CallOutcome.ABANDONED)
        assert rig.client.logins > 1  # it did reconnect, more than once
        assert sent <= rig.sim.pbx.truth.get("originate", 0) <= len(attempts)
    finally:
        await close_rig(rig)


async def test_list_action_answered_with_an_error_fails_at_once(rig: Rig) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(AmiActionFailed, match="Regex compile failed"):
        await rig.client.hangup("/(unclosed/")
    assert loop.time() - start < 0.5  # not the action timeout


async def test_a_stalled_consumer_resets_the_link_instead_of_growing_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="dialer.ami_client")
    async with AmiSimulator(OPTIONS) as sim:
        client = AmiClient("127.0.0.1", sim.port, "pratica", OPTIONS.secret, max_backlog=20,
                           reconnect_delay=0.05)  # fmt: skip
        await client.connect()
        await client.originate(OriginateRequest("", "Local/4@sim-agents", "pratica-agent-conf",
                                                "4", channel_id="agent-4"))  # fmt: skip
        for _ in range(300):  # nobody reads client.events()
            if client.logins >= 2:
                break
            await asyncio.sleep(0.01)
        assert client.logins >= 2
        assert any("backlog over 20" in r.getMessage() for r in caplog.records)
        await client.close()


async def test_a_restarted_dialer_adopts_the_calls_asterisk_still_has() -> None:
    first = await make_rig()
    try:
        await first.control.dial("s1", DEBTOR.format(number="130"),
                                 variables=forced("ANSWER", SIM_TALK="60"))  # fmt: skip
        await first.until(lambda n: isinstance(n, LiveAnswer) and n.attempt_id == "s1")
        # The dialer process dies; a new one starts against the same Asterisk.
        if first.collector is not None:
            first.collector.cancel()
        await first.control.stop()
        await first.client.close()
        client = AmiClient("127.0.0.1", first.sim.port, "pratica", OPTIONS.secret,
                           action_timeout=1.0)  # fmt: skip
        await client.connect()
        control = CallControl(client)
        control.start()
        assert await control.resume() == 1
        second = Rig(first.sim, client, control, [])

        async def collect() -> None:
            async for decision in control.notices():
                second.decisions.append(decision)

        second.collector = asyncio.create_task(collect())
        await second.until(lambda n: isinstance(n, LiveAnswer) and n.attempt_id == "s1")
        await control.abandon("s1")
        assert (await second.ended("s1")).outcome is CallOutcome.ABANDONED
        await close_rig(second)
    finally:
        await first.sim.close()
