"""Two engine instances share one campaign against the simulator: no lead is dialed twice,
every attempt is in the ledger, and the abandon accounting matches the simulator's own
ground truth."""

from __future__ import annotations

import asyncio
from datetime import time

import pytest

from core import users
from core.bus import InProcessBus
from core.identity import SYSTEM, Role
from dialer.agent_desk import AgentDesk
from dialer.agents import AgentState
from dialer.ami_client import AmiClient
from dialer.call_control import CallControl
from dialer.campaigns import DialMode, create_campaign
from dialer.engine import CampaignEngine, EngineSettings
from dialer.leads import load_leads
from dialer.pacing_bridge import CampaignPacer
from dialer.sim.clock import ScaledClock
from dialer.sim.debtors import DebtorModel
from dialer.sim.server import AmiSimulator, SimOptions
from tests.dialer.test_leads import make_cases

SCALE = 20.0
ROME = ["Europe/Rome"]


@pytest.mark.timeout(180)
async def test_two_engines_share_a_campaign_without_double_dials(pool):
    await run_shared_campaign(pool, nodes=2, drop_link_after=None)


@pytest.mark.timeout(180)
async def test_an_ami_disconnect_mid_campaign_loses_nothing_and_dials_nothing_twice(pool):
    await run_shared_campaign(pool, nodes=1, drop_link_after=20)


async def run_shared_campaign(pool, nodes: int, drop_link_after: int | None) -> None:
    clock = ScaledClock(SCALE)
    sim = AmiSimulator(
        SimOptions(
            port=0,
            time_scale=SCALE,
            auth_fail_delay=0.05,
            seed=11,
            debtors=DebtorModel(
                live=0.5,
                machine=0.1,
                busy=0.1,
                congestion=0.0,
                invalid=0.0,
                no_answer=0.3,
                talk_median=20.0,
                ring_median=4.0,
            ),
        )
    )
    await sim.start()
    async with pool.acquire() as conn:
        await make_cases(conn, [[(f"+39333300{n:04d}", ROME)] for n in range(60)])
        campaign = await create_campaign(
            conn,
            SYSTEM,
            "shared",
            mode=DialMode.POWER,
            pacing={"ratio": 2.5},
            window_start=time(0),
            window_end=time(23, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7),
            max_attempts_total=2,
            retry_delays={
                "no_answer": 30,
                "busy": 30,
                "machine": 30,
                "abandoned": 30,
                "failed": 30,
            },
        )
        await load_leads(conn, campaign, clock.now(), ROME)
        agent_ids = [
            (await users.create_user(conn, SYSTEM, f"sh{n}", "password1", Role.AGENT)).id
            for n in range(8)
        ]
    engines, closers = [], []
    groups = (
        [("node-a", agent_ids[:4]), ("node-b", agent_ids[4:])]
        if nodes == 2
        else [("node-a", agent_ids)]
    )
    for node, agents in groups:
        client = AmiClient(
            "127.0.0.1",
            sim.port,
            "pratica",
            "pratica-sim",
            action_timeout=2.0,
            reconnect_delay=0.05,
        )
        await client.connect()
        calls = CallControl(client)
        calls.start()
        desk = AgentDesk(pool, InProcessBus(), clock, wrap_up_max=3.0)
        await desk.start()
        engine = CampaignEngine(
            pool,
            InProcessBus(),
            clock,
            desk,
            calls,
            CampaignPacer(),
            EngineSettings(
                dial_template="Local/{number}@sim-debtors",
                agent_dial_template="Local/{agent_id}@sim-agents",
                default_zones=tuple(ROME),
                node=node,
                tick=0.5,
                promote_every=1.0,
                wrap_up_max=3.0,
            ),
        )
        await engine.start()
        await engine.add_campaign(campaign.id)
        for agent_id in agents:
            desk.change(SYSTEM, agent_id, AgentState.READY)
        engines.append(engine)
        closers.append((engine, desk, calls, client))
    try:
        dropped = False
        async with asyncio.timeout(120):
            while True:
                await asyncio.sleep(0.5)
                if (
                    drop_link_after is not None
                    and not dropped
                    and engines[0].counters.dialed >= drop_link_after
                ):
                    sim.drop_connections()  # mid-campaign, with calls in flight
                    dropped = True
                async with pool.acquire() as conn:
                    # Abandoned numbers wait out the profile's embargo (5 days in Italy).
                    open_leads = await conn.fetchval(
                        "SELECT count(*) FROM leads WHERE state IN ('ready', 'dialing') OR "
                        "(state = 'scheduled' AND next_attempt_at < $1::timestamptz + interval '1 hour')",
                        clock.now(),
                    )
                    busy = await conn.fetchval(
                        "SELECT count(*) FROM call_attempts WHERE ended_at IS NULL"
                    )
                if open_leads == 0 and busy == 0 and not any(e.live for e in engines):
                    break
        for engine in engines:
            await engine.ledger.drain()
    except TimeoutError:
        async with pool.acquire() as conn:
            print(await conn.fetch("SELECT state, last_outcome, count(*) FROM leads GROUP BY 1, 2"))
            print(
                await conn.fetch(
                    "SELECT outcome, disposition, count(*) FROM call_attempts GROUP BY 1, 2"
                )
            )
        print([(e.counters, len(e.live)) for e in engines])
        print([dict((k, v.state.value) for k, v in e.desk.sessions.items()) for e in engines])
        raise
    finally:
        for engine, desk, calls, client in closers:
            await engine.stop()
            await desk.stop()
            await calls.stop()
            await client.close()
        await sim.close()

    async with pool.acquire() as conn:
        per_lead = await conn.fetch(
            "SELECT l.id, l.attempts_total, count(a.id) AS attempts, "
            "bool_or(EXISTS (SELECT 1 FROM call_attempts b WHERE b.lead_id = l.id AND b.id <> a.id "
            "  AND b.started_at < a.ended_at AND a.started_at < b.ended_at)) AS overlapping, "
            "array_agg(DISTINCT split_part(a.attempt_key, '-', 1)) AS keys "
            "FROM leads l JOIN call_attempts a ON a.lead_id = l.id GROUP BY l.id"
        )
        outcomes = dict(
            await conn.fetch("SELECT outcome, count(*) FROM call_attempts GROUP BY outcome")
        )
    assert len(per_lead) == 60
    assert all(r["attempts"] == r["attempts_total"] <= 2 for r in per_lead)
    async with pool.acquire() as conn:
        embargoed = await conn.fetch(
            "SELECT next_attempt_at - $1::timestamptz AS wait FROM leads WHERE state = 'scheduled'",
            clock.now(),
        )
    assert all(r["wait"].days >= 4 for r in embargoed)
    assert not any(r["overlapping"] for r in per_lead)
    truth = sim.pbx.truth
    attempts = sum(outcomes.values())
    # Each attempt was originated once (plus the 8 agents' legs), even across a reconnect.
    assert truth.get("originate", 0) == attempts + 8
    # Every message played was an abandon; an abandon decided while the link was down could
    # not be redirected (the debtor hears the dialplan's safety net later, or hangs up first).
    unheard = sum(e.counters.abandoned_unheard for e in engines)
    messages = truth.get("abandon_message", 0)
    assert messages <= outcomes.get("abandoned", 0) <= messages + unheard
    assert outcomes.get("completed", 0) == truth.get("connected", 0)
    # Every node dialed, and every dial is in the ledger.
    dialed = [e.counters.dialed for e in engines]
    assert all(d > 0 for d in dialed) and sum(dialed) == attempts
    if drop_link_after is not None:
        assert dropped
