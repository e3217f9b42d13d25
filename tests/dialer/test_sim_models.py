"""The simulator's debtor model, virtual clock and simulated agents."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import replace

from dialer.ami_client import AmiClient, OriginateRequest, ReceivedEvent
from dialer.sim.clock import ScaledClock
from dialer.sim.debtors import AgentModel, DebtorModel, DebtorOutcome
from dialer.sim.server import AmiSimulator, SimOptions
from tests.dialer.sim_wire import RawAmi, login


def draw(model: DebtorModel, seed: int, hour: float, n: int = 4000) -> Counter[DebtorOutcome]:
    rng = random.Random(seed)
    return Counter(model.decide(rng, "39333", hour, {}).outcome for _ in range(n))


def test_the_debtor_model_is_reproducible_from_its_seed() -> None:
    model = DebtorModel()
    assert draw(model, 5, 10.0) == draw(model, 5, 10.0)
    assert draw(model, 5, 10.0) != draw(model, 6, 10.0)


def test_shares_follow_the_configured_weights() -> None:
    model = DebtorModel(live=1, machine=1, busy=0, congestion=0, invalid=0, no_answer=2,
                        hourly_drift=0.0)  # fmt: skip
    counts = draw(model, 1, 12.0)
    assert counts[DebtorOutcome.BUSY] == 0
    assert 0.45 < counts[DebtorOutcome.NOANSWER] / 4000 < 0.55
    assert 0.20 < counts[DebtorOutcome.ANSWER] / 4000 < 0.30


def test_people_answer_more_in_the_evening_than_in_the_morning() -> None:
    model = DebtorModel(hourly_drift=0.5)
    evening = draw(model, 2, 19.0)[DebtorOutcome.ANSWER]
    morning = draw(model, 2, 8.0)[DebtorOutcome.ANSWER]
    assert evening > morning * 1.5


def test_lab_rule_matches_the_recordings_dialplan() -> None:
    model = DebtorModel(lab_rule=True)
    rng = random.Random(0)
    outcomes = [model.decide(rng, str(1000 + d), 9, {}).outcome.value for d in range(10)]
    assert outcomes == ["ANSWER"] * 5 + ["NOANSWER"] * 2 + ["BUSY", "MACHINE", "CONGESTION"]
    assert model.decide(rng, "1011", 9, {}).ring == 4.0
    forced = model.decide(rng, "1011", 9, {"SIM_OUTCOME": "busy", "SIM_TALK": "7"})
    assert (forced.outcome, forced.talk) == (DebtorOutcome.BUSY, 7.0)


async def test_the_virtual_clock_runs_faster_than_real_time() -> None:
    clock = ScaledClock(scale=100.0)
    start = clock.monotonic()
    await clock.sleep(5.0)  # 50 ms real
    assert 5.0 <= clock.monotonic() - start < 10.0
    assert clock.real(60.0) == 0.6


async def test_simulated_agents_end_calls_and_report_ready_after_wrap_up() -> None:
    options = SimOptions(
        port=0, time_scale=50, simulated_agents=True, auth_fail_delay=0.05,
        agents=AgentModel(talk_median=3.0, talk_sigma=0.0, wrap_median=2.0, wrap_sigma=0.0),
    )  # fmt: skip
    async with AmiSimulator(options) as sim:
        client = AmiClient("127.0.0.1", sim.port, "pratica", options.secret, action_timeout=1.0)
        await client.connect()
        events: list[str] = []

        async def collect() -> None:
            async for item in client.events():
                if isinstance(item, ReceivedEvent) and item.message.event == "UserEvent":
                    events.append(item.message.get("UserEvent"))

        reader = asyncio.create_task(collect())
        await client.originate(OriginateRequest("", "Local/3@sim-agents", "pratica-agent-conf",
                                                "3", channel_id="agent-3"))  # fmt: skip
        await client.originate(OriginateRequest("77", "Local/1@sim-debtors", "pratica-hold",
                                                variables={"__SIM_OUTCOME": "ANSWER",
                                                           "__SIM_RING": "1",
                                                           "__SIM_TALK": "600"}))  # fmt: skip
        for _ in range(200):
            if "WaitingForAgent" in events:
                break
            await asyncio.sleep(0.01)
        debtor = sim.pbx.find("att-77")
        assert debtor is not None
        await client.redirect(debtor.name, "pratica-join-agent", "3")
        for _ in range(300):
            if "SimAgentReady" in events:
                break
            await asyncio.sleep(0.01)
        assert "SimAgentReady" in events
        assert sim.pbx.find("att-77") is None  # the agent hung up after 3 s of talk
        assert sim.pbx.find("agent-3") is not None  # and stays in its conference
        assert sim.pbx.truth["connected"] == 1
        reader.cancel()
        await client.close()


def test_sim_options_are_frozen_and_replaceable() -> None:
    base = SimOptions()
    assert replace(base, port=1).port == 1 and base.port == 5038


def test_forcing_an_outcome_keeps_a_consistent_ring_time() -> None:
    model = DebtorModel(ring_median=2.0, ring_sigma=0.0, no_answer=1.0, live=0.0, machine=0.0,
                        busy=0.0, congestion=0.0, invalid=0.0)  # fmt: skip
    rng = random.Random(1)
    drawn = model.decide(rng, "1", 9, {})
    assert (drawn.outcome, drawn.ring) == (DebtorOutcome.NOANSWER, model.no_answer_ring)
    answered = model.decide(rng, "1", 9, {"SIM_OUTCOME": "ANSWER"})
    assert (answered.outcome, answered.ring) == (DebtorOutcome.ANSWER, 2.0)
    unanswered = DebtorModel(live=1.0, no_answer=0.0).decide(
        rng, "1", 9, {"SIM_OUTCOME": "NOANSWER"}
    )
    assert unanswered.ring == model.no_answer_ring


async def test_lab_debtor_talk_time_follows_the_number() -> None:
    options = SimOptions(port=0, time_scale=40, debtors=DebtorModel(lab_rule=True))
    async with AmiSimulator(options) as sim:
        ami = await RawAmi.open(sim.port)
        await login(ami, options.secret)
        for number in ("1001", "1301"):
            await ami.send(("Action", "Originate"), ("ActionID", number),
                           ("Channel", f"Local/{number}@sim-debtors"), ("Context", "pratica-hold"),
                           ("Exten", "s"), ("Priority", "1"), ("Async", "true"))  # fmt: skip
            await ami.event(lambda m, n=number: m.get("UserEvent") == "SimDebtor"
                            and m.get("Number") == n)  # fmt: skip
        talks = {m.get("Number"): m.get("Talk") for m in ami.events("UserEvent")
                 if m.get("UserEvent") == "SimDebtor"}  # fmt: skip
        ami.close()
    assert talks == {"1001": "15", "1301": "30"}
