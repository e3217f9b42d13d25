import math
import random

import numpy as np
import pytest

from pacing.estimator import TALK_STEP, DialOutcome, Estimator
from pacing.model import AbandonRecord, AgentPhase, Mode, PacingSettings, Snapshot
from pacing.policies import Predictive, Progressive, Ratio, VicidialAdaptive
from pacing.predictive import decide
from pacing.sim import Scenario, Simulation


def test_progressive_never_abandons():
    result = Simulation(Scenario(agents=10, hours=1.0), Progressive(), seed=4).run()
    assert result.live > 50 and result.abandons == 0


def test_perfect_foresight_never_abandons_and_is_never_beaten():
    scenario = Scenario(agents=10, hours=1.0)
    bound = Simulation(scenario, Progressive(name="oracle"), seed=5, foresight=True).run()
    assert bound.abandons == 0
    assert abs(bound.occupancy - 180 / 200) < 0.05  # talk / (talk + wrap-up)
    for policy in (Progressive(), Ratio(3.0), VicidialAdaptive(), Predictive()):
        assert Simulation(scenario, policy, seed=5).run().occupancy <= bound.occupancy


def test_estimators_converge_on_known_distributions():
    rng = random.Random(3)
    est = Estimator(tau=1e9, tau_dials=1e9)
    for t in range(5000):
        live = rng.random() < 0.3
        est.dial_ended(
            t, DialOutcome.LIVE if live else DialOutcome.OTHER, rng.uniform(6, 14) if live else 25
        )
    for t in range(3000):
        est.talk_ended(t, rng.lognormvariate(math.log(150), 0.6))
        est.wrap_ended(t, rng.lognormvariate(math.log(15), 0.4))
    e = est.estimates()
    assert abs(e.p_live - 0.3) < 0.02
    talk_mean = float((e.talk_pmf * (np.arange(e.talk_pmf.size) + 0.5) * TALK_STEP).sum())
    assert abs(talk_mean - 150 * math.exp(0.18)) / (150 * math.exp(0.18)) < 0.05
    # A call that rang 20 s without a pickup will not become live (all pickups by 14 s).
    assert e.live_by(np.array([20.0]), np.array([5.0]))[0, 0] < 0.01
    # A fresh call becomes live within 15 s with about the live probability.
    assert abs(e.live_by(np.array([0.0]), np.array([15.0]))[0, 0] - 0.3) < 0.03


def test_estimates_follow_drift():
    est = Estimator(tau=600.0, tau_dials=600.0)
    for t in range(2000):
        est.dial_ended(t, DialOutcome.LIVE if t % 10 == 0 else DialOutcome.OTHER, 10)
    for t in range(2000, 6000):
        est.dial_ended(t, DialOutcome.LIVE if t % 2 == 0 else DialOutcome.OTHER, 10)
    assert abs(est.estimates().p_live - 0.5) < 0.05


def _snapshot(**overrides):
    est = Estimator()
    for t in range(400):
        est.dial_ended(t, DialOutcome.LIVE if t % 4 == 0 else DialOutcome.OTHER, 8 + t % 6)
    for t in range(50):
        est.talk_ended(t, 150 + t)
        est.wrap_ended(t, 15 + t % 10)
    values = dict(
        now=100.0,
        agent_phase=np.array([0, 0, 1, 1, 2] * 4, dtype=np.int8),
        agent_elapsed=np.linspace(1, 200, 20),
        call_elapsed=np.array([1.0, 4.0, 9.0, 16.0]),
        waiting_live=0,
        settings=PacingSettings(),
        estimates=est.estimates(),
        abandons=AbandonRecord(500, 5),
    )
    values.update(overrides)
    return Snapshot(**values)


def test_decide_is_deterministic_and_respects_modes():
    snap = _snapshot()
    assert decide(snap) == decide(snap)
    ready = int(np.count_nonzero(snap.agent_phase == AgentPhase.READY))
    assert decide(_snapshot(settings=PacingSettings(mode=Mode.PREVIEW))) == 0
    assert decide(_snapshot(settings=PacingSettings(mode=Mode.PROGRESSIVE))) == ready - 4
    assert decide(_snapshot(settings=PacingSettings(mode=Mode.POWER, ratio=3.0))) == 3 * ready - 4
    # Predictive dials more than progressive when busy agents are about to be free.
    assert decide(snap) > ready - 4


def test_cold_start_and_a_window_at_the_cap_are_progressive():
    snap = _snapshot()
    ready = int(np.count_nonzero(snap.agent_phase == AgentPhase.READY))
    cold = _snapshot(estimates=Estimator().estimates())
    assert decide(cold) == ready - 4
    at_cap = _snapshot(abandons=AbandonRecord(1000, 30))
    assert decide(at_cap) == ready - 4


@pytest.mark.parametrize("agents", [1, 3, 5])
def test_small_teams_stay_under_the_cap(agents):
    scenario = Scenario(agents=agents, hours=2.0)
    for seed in (1, 2):
        result = Simulation(scenario, Predictive(), seed=seed).run()
        assert result.abandon_rate <= 0.03, (seed, result.abandons, result.live)


def test_hard_cap_holds_when_the_answer_rate_jumps():
    jump = Scenario(agents=20, hours=2.0, live=((0.0, 0.1), (0.5, 0.1), (0.5001, 0.5), (1.0, 0.5)))
    for seed in (1, 2):
        result = Simulation(jump, Predictive(), seed=seed).run()
        assert result.abandon_rate <= 0.03, (seed, result.abandons, result.live)


def test_expected_abandons_grow_with_the_calls_launched():
    from pacing.predictive import expected_abandons

    n = np.arange(0.0, 40.0)
    lost, live, short, q_new = expected_abandons(_snapshot(), n)
    assert np.all(np.diff(lost) >= -1e-12) and np.all(np.diff(live) > 0)
    assert np.all((short >= 0) & (short <= 1)) and 0 < q_new <= 1
    # Forty calls on a team with four free agents abandon some of what they bring.
    assert lost[-1] > 0.5 and lost[0] < lost[-1]


def test_a_small_team_is_not_held_in_cold_start_by_decayed_counts():
    est = Estimator(tau_dials=60.0, min_dials=0.0)
    for t in range(0, 3000, 20):  # one dial every 20 s: ~3 effective dials at a time
        est.dial_ended(t, DialOutcome.LIVE if t % 80 == 0 else DialOutcome.OTHER, 10)
    for t in range(20):
        est.talk_ended(t, 150)
    e = est.estimates()
    assert e.dials < PacingSettings().min_outcomes <= e.dials_seen
    assert e.talks_seen == 20


def test_dial_memory_keeps_a_floor_of_effective_dials():
    est = Estimator(tau_dials=60.0, min_dials=100.0)
    for t in range(200):
        est.dial_ended(t, DialOutcome.LIVE if t % 4 == 0 else DialOutcome.OTHER, 10)
    est.dial_ended(5000.0, DialOutcome.OTHER, 10)  # a long quiet spell, then one dial
    e = est.estimates()
    assert e.dials >= 100.0
    assert abs(e.p_live - 0.25) < 0.05


def test_low_answer_rate_launches_several_calls_per_free_agent():
    est = Estimator()
    for t in range(2000):
        est.dial_ended(t, DialOutcome.LIVE if t % 8 == 0 else DialOutcome.OTHER, 8 + t % 6)
    for t in range(50):
        est.talk_ended(t, 150 + t)
        est.wrap_ended(t, 15 + t % 10)
    snap = _snapshot(
        agent_phase=np.array([0] * 10 + [1] * 90, dtype=np.int8),
        agent_elapsed=np.linspace(1, 300, 100),
        call_elapsed=np.array([], dtype=np.float64),
        estimates=est.estimates(),
        abandons=AbandonRecord(3000, 40),
    )
    assert decide(snap) >= 3 * 10  # p = 0.125: progressive would launch 10
