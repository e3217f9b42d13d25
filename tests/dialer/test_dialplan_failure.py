"""A dialplan that fails, as a real Asterisk without `amd.conf` did: app_amd is not loaded,
every answered call hits "No application 'AMD'" and is hung up in silence. The dialer must
count those debtors as abandoned (they answered and nobody was there), say so loudly and
stop dialing, instead of recording them as live answers that hung up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest

from core.identity import SYSTEM
from dialer.agents import AgentState
from dialer.sim.debtors import DebtorModel
from dialer.sim.server import SimOptions
from tests.dialer.engine_rig import Rig, all_day_campaign, engine_rig, until


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    sim = SimOptions(debtors=DebtorModel(lab_rule=True), missing_apps=frozenset({"AMD"}))
    async with engine_rig(pool, agents=2, prefix="noamd", sim=sim) as rig:
        yield rig


async def test_calls_ended_by_a_dialplan_without_amd_are_abandoned_and_stop_the_dialing(
    rig: Rig, caplog: pytest.LogCaptureFixture
):
    # People who answer (last digit 0-4).
    numbers = [f"+3933370{n:04d}0" for n in range(60)]
    campaign_id = await all_day_campaign(rig, "no-amd", numbers, pacing={"ratio": 2}, amd=True)
    caplog.set_level(logging.ERROR, logger="dialer.engine")
    for agent in rig.agents:
        rig.desk.change(SYSTEM, agent, AgentState.READY)
    await until(lambda: campaign_id in rig.engine.alerts, 15)
    assert not rig.engine.dialing_allowed()
    assert "app_amd" in rig.engine.dialing_status()["alerts"][campaign_id]
    assert any(r.levelno == logging.CRITICAL and "AMD decision" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    await until(lambda: not rig.engine.live, 10)
    await rig.engine.ledger.drain()
    async with rig.pool.acquire() as conn:
        outcomes = dict(
            await conn.fetch("SELECT outcome, count(*) FROM call_attempts GROUP BY outcome")
        )
    # Every answered call was counted against the cap, none as a live answer that hung up.
    assert outcomes.get("live_answer", 0) == 0
    assert outcomes.get("abandoned", 0) == rig.engine.counters.dialplan_failures >= 3
    # Dialing stopped within seconds (a few more calls were in flight): a handful of the
    # 60 leads, not the whole list.
    assert sum(outcomes.values()) <= 15
