"""The simulator, driven with each recording's actions, emits what Asterisk emitted."""

from __future__ import annotations

import pytest

from dialer.sim.debtors import DebtorModel
from dialer.sim.server import AmiSimulator, SimOptions
from tests.dialer.recordings import SCENARIOS
from tests.dialer.scenario import Normalizer, recorded_inbound, replay_against


@pytest.mark.parametrize("name", SCENARIOS)
async def test_simulator_reproduces_the_recorded_session(name: str) -> None:
    options = SimOptions(
        port=0, time_scale=25, debtors=DebtorModel(lab_rule=True), auth_fail_delay=0.05
    )
    async with AmiSimulator(options) as sim:
        got = await replay_against(name, "127.0.0.1", sim.port, options.secret)
    expected = Normalizer().groups(recorded_inbound(name))
    assert Normalizer().groups(got) == expected
