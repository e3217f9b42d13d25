"""The pacing decision: how many calls to launch now.

Predictive mode runs a small time-resolved queue over the next HORIZON seconds, in STEP
second steps. Per step it has the expected live answers that arrive (from each call in
flight, given how long it has rung, plus each call launched now) and the agents that free
up (each busy agent by its probability given how long it has talked or wrapped up, read a
connect limit later because an answer may wait that long for one). The idle-agent pool
is carried from step to step as a normal clipped at zero, its two moments matched; what
would drive it below zero is answers that found no agent: abandons. Unlike the pointwise
excess of demand over supply (the previous model), this counts bursts and carries the
pool forward, so its expected abandons are calibrated enough to steer by.

The pacer adds calls while the last one is worth it: its marginal expected abandons
(how much it raises the horizon's abandons, per live answer it brings) stay under a
threshold. Where the threshold sits is set by the abandon rate measured over the
regulatory window: below the aim (a share of the target, so the window ends under it)
the threshold rises slowly, above it it falls fast. The hard cap is protected three
ways: the threshold shrinks with the headroom under the cap counted in abandons (early
in a window, or in a small campaign, one abandon moves the rate a lot); a high quantile
of the horizon's abandons must fit in what is left of the cap; and once the window is
at the cap less a margin the pacer is progressive, which does not abandon. Cold start
(too few dials or talks seen) is progressive.

Pure: a snapshot in, a count out; no I/O, no clock.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from pacing.estimator import RING_BINS, SUPPLY_EXTRA, TALK_BINS, TALK_STEP, WRAP_BINS, Estimates
from pacing.model import AgentPhase, Mode, Snapshot

FloatArray = npt.NDArray[np.float64]

_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
MAX_CANDIDATES = 400
FINE_CANDIDATES = 24
COARSE_CANDIDATES = 12
HORIZON = 26  # seconds simulated: a new call's live decision falls within it (p > 0.99)
STEP = 2  # seconds per queue step: the connect limit's grain
_EDGES = np.arange(0, HORIZON + 1, STEP)
_ZERO = np.zeros(1)
VARIANCE_FLOOR = 0.01  # integer counts: keeps the normal from collapsing on a point
# Marginal abandons per live answer the last launched call may bring, before steering, at
# 20 agents and a 2% target. The last call is the riskiest one, so this sits well above
# the target average rate. Tuned on the simulator (bench/pacing/RESULTS.md).
THRESHOLD_BASE = 0.15
# The queue model over-states the marginal abandons more in smaller teams (fewer agents
# freeing, lumpier counts): the threshold scales as (20 / agents) ** TEAM_EXPONENT.
TEAM_EXPONENT = 0.6
STEER_GAIN = 3.0  # threshold x exp(gain x relative shortfall of the rate under the aim)
STEER_UP = 0.5  # ... capped upwards (rises at most e^1.5 times), down to exp(-2 x gain)
STEER_PRIOR = 300.0  # live answers of pseudo-evidence that the window runs at the aim
AIM = 0.9  # the steering aims at this share of the target: the window ends under it
CAP_QUANTILE = 2.0  # standard deviations of the horizon's abandons kept under the cap
THIN_ABANDONS = 0.0  # headroom (in abandons) under which the pacer is progressive
# Below this many abandons of headroom under the cap the threshold shrinks in proportion.
# Measured: 6 suits teams of 10 and more (fewer early trips to the guard at 20 agents);
# small teams, already at a reduced threshold, had a lower worst seed with 3.
HEADROOM_ABANDONS = 6.0
HEADROOM_ABANDONS_SMALL = 3.0
SMALL_TEAM = 10.0  # below this many agents: the direct marginal, and a smaller threshold


def progressive(s: Snapshot) -> int:
    """One call per free agent, counting calls already in flight."""
    free = s.ready - s.waiting_live
    return max(0, free - int(s.call_elapsed.size))


def power(s: Snapshot) -> int:
    free = s.ready - s.waiting_live
    return max(0, math.ceil(s.settings.ratio * free) - int(s.call_elapsed.size))


def threshold(s: Snapshot) -> float | None:
    """The marginal abandon probability this decision may accept, or None: progressive."""
    st = s.settings
    record = s.abandons
    # Headroom under the cap less the margin, in abandons. Thin remaining budget: one more
    # abandon would cross it (the per-decision `remaining` limit in `_largest_ok` keeps the
    # window from getting there in the first place).
    headroom = (st.hard_cap - st.cap_margin) * record.live - record.abandoned
    if record.abandoned and headroom < THIN_ABANDONS:
        return None
    aim = AIM * st.target_abandon
    # Early in the window a single abandon swings the measured rate; the prior holds the
    # estimate at the aim until the evidence outweighs it.
    rate = (record.abandoned + aim * STEER_PRIOR) / (record.live + STEER_PRIOR)
    steer = math.exp(STEER_GAIN * max(-2.0, min(STEER_UP, (aim - rate) / aim)))
    team = (20.0 / max(s.agents, 1)) ** TEAM_EXPONENT
    value = THRESHOLD_BASE * team * (st.target_abandon / 0.02) * steer
    # Small teams: every abandon weighs more in the window, and their marginal (the
    # direct probability, see `_largest_ok`) is not shrunk by the team scaling above.
    value *= min(1.0, s.agents / SMALL_TEAM)
    # Early in the window (or in a small campaign) one abandon moves the rate by a lot,
    # and reaching the guard above turns the pacer progressive for a long while, so the
    # threshold shrinks as the headroom does.
    scale = HEADROOM_ABANDONS if s.agents >= SMALL_TEAM else HEADROOM_ABANDONS_SMALL
    value *= min(1.0, max(headroom, 0.0) / scale)
    return min(value, 0.5)


def _clipped_normal_tables() -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """For Y = mu + sd * Z, Z standard normal, as functions of z = mu / sd: the excess
    (E[max(Y, 0)] - max(mu, 0)) / sd and the variance ratio Var[max(Y, 0)] / sd^2. Both
    flatten out at the ends of the grid, where interpolation holds them at their limits
    (0 and 0 / 1); and the upper tail P(Z > z). Tables keep the loop of
    `expected_abandons` to a few numpy calls per step."""
    z = np.linspace(-12.0, 12.0, 4801)
    cdf = 0.5 * (1.0 + np.array([math.erf(x / math.sqrt(2.0)) for x in z]))
    pdf = np.exp(-0.5 * z * z) * _INV_SQRT2PI
    positive = z * cdf + pdf
    second = (z * z + 1.0) * cdf + z * pdf
    excess = positive - np.maximum(z, 0.0)
    return z, excess, np.maximum(second - positive * positive, 0.0), 1.0 - cdf


_Z, _EXCESS, _SPREAD, _TAIL = _clipped_normal_tables()


def _live_steps(est: Estimates, elapsed: FloatArray) -> FloatArray:
    """[call, step]: P(the call, rung `elapsed` s, reaches a live answer within the step),
    from the cumulative live and end probabilities by ring time."""
    t0 = np.minimum(elapsed.astype(np.int64), RING_BINS)
    f_live = est.f_live[np.minimum(t0[:, None] + _EDGES[None, :], RING_BINS)]
    survival = np.maximum(1.0 - est.f_end[t0], 1e-9)
    step = (f_live[:, 1:] - f_live[:, :-1]) * (1.0 / survival)[:, None]
    return np.minimum(step, 1.0)


def _supply(s: Snapshot) -> tuple[FloatArray, FloatArray]:
    """Per step ahead: mean and variance of the agents that free up in it, read a connect
    limit later because an answer may wait that long. Step 0 is what frees within the
    connect limit itself: available from the start, like the agents free now."""
    est = s.estimates
    extra = min(SUPPLY_EXTRA, int(math.ceil(s.settings.connect_limit)))
    phase = s.agent_phase
    elapsed = s.agent_elapsed
    talking = phase == AgentPhase.TALKING
    wrapping = phase == AgentPhase.WRAP
    t_bins = np.minimum((elapsed[talking] * (1.0 / TALK_STEP)).astype(np.int64), TALK_BINS - 1)
    w_bins = np.minimum(elapsed[wrapping].astype(np.int64), WRAP_BINS - 1)
    rows = _EDGES + extra
    cumulative = np.concatenate(
        (est.talk_free[rows[:, None], t_bins], est.wrap_free[rows[:, None], w_bins]), axis=1
    )  # [edge, agent]: free by the edge (+ extra)
    step = np.empty_like(cumulative)
    step[0] = cumulative[0]
    np.subtract(cumulative[1:], cumulative[:-1], out=step[1:])
    np.maximum(step, 0.0, out=step)
    return step.sum(axis=1), (step * (1.0 - step)).sum(axis=1)


def expected_abandons(
    s: Snapshot, n: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """For each candidate count of new calls: the horizon's expected abandons, its expected
    live answers, and (for teams under SMALL_TEAM, else zeros) the probability that the
    last of the new calls, if answered, finds no agent free; and a new call's probability
    of a live answer within the horizon.

    The idle pool is carried step by step as a normal clipped at zero (its first two
    moments are exact for the clipped normal); what falls below zero in a step is the
    answers that found no agent."""
    est = s.estimates
    d = _live_steps(est, s.call_elapsed)
    demand = d.sum(axis=0)
    demand_var = (d * (1.0 - d)).sum(axis=0)
    q_new = _live_steps(est, _ZERO)[0]
    supply, supply_var = _supply(s)
    # Answers already waiting take the first agents to free up.
    backlog = max(0, s.waiting_live - s.ready)
    demand[0] += backlog
    new_mean = q_new[:, None] * n[None, :]  # [step, candidate]
    drift = (supply[1:] - demand)[:, None] - new_mean
    base_var = supply_var[1:] + demand_var + VARIANCE_FLOOR
    spread = base_var[:, None] + new_mean * (1.0 - q_new)[:, None]
    idle: FloatArray = np.full(n.shape, max(0, s.ready - s.waiting_live) + supply[0])
    idle_var: FloatArray = np.full(n.shape, supply_var[0])
    start = idle
    short = np.zeros(n.shape)
    small = s.agents < SMALL_TEAM  # only small teams decide on `short` (see `_largest_ok`)
    weights = q_new / max(float(q_new.sum()), 1e-12)
    interp = np.interp
    for k in range(drift.shape[0]):
        mu = idle + drift[k]
        var = idle_var + spread[k]
        sd = np.sqrt(var)
        z = mu / sd
        idle = np.maximum(mu, 0.0) + sd * interp(z, _Z, _EXCESS)  # E[max(Y, 0)]
        idle_var = var * interp(z, _Z, _SPREAD)  # Var[max(Y, 0)]
        if small:
            # The last new call's answer, if it lands in this step, finds no agent when
            # the pool left by everyone else is under one agent (continuity-corrected).
            short += weights[k] * interp((mu + q_new[k] - 0.5) / sd, _Z, _TAIL)
    # Each step loses E[max(-Y, 0)] = E[max(Y, 0)] - E[Y]; summed over the steps, that
    # telescopes to the final pool less the initial one less the total drift.
    lost = idle - start - drift.sum(axis=0)
    live = demand.sum() - backlog + n * q_new.sum()
    return lost, live, short, float(q_new.sum())


def decide(s: Snapshot) -> int:
    st = s.settings
    if st.mode is Mode.PREVIEW:
        return 0
    if st.mode is Mode.PROGRESSIVE:
        return progressive(s)
    if st.mode is Mode.POWER:
        return power(s)
    est = s.estimates
    if est.dials_seen < st.min_outcomes or est.talks_seen < st.min_talks or est.p_live <= 0.0:
        return progressive(s)
    allowed = threshold(s)
    floor = progressive(s)
    if allowed is None:
        return floor
    ceiling = int(st.max_lines_per_agent * s.agents) - int(s.call_elapsed.size)
    limit = max(0, min(ceiling, MAX_CANDIDATES))
    if limit == 0:
        return floor
    # A second's launch is usually a handful of calls: try every count up to FINE_CANDIDATES
    # first, and only when all of them pass, a coarse grid beyond (the next decision is a
    # second away, so stopping short of the exact count costs little).
    best, passed = _largest_ok(s, np.arange(min(limit, FINE_CANDIDATES) + 1.0), allowed)
    if passed and limit > FINE_CANDIDATES:
        coarse = np.unique(
            np.round(np.geomspace(FINE_CANDIDATES, limit, COARSE_CANDIDATES))
        ).astype(np.float64)
        best, _ = _largest_ok(s, np.concatenate(([FINE_CANDIDATES - 1.0], coarse)), allowed)
    return max(floor, best)


def _largest_ok(s: Snapshot, n: FloatArray, allowed: float) -> tuple[int, bool]:
    """The largest candidate in `n` (increasing, first one already accepted or 0) whose
    step from the previous candidate keeps the marginal abandons per added live answer
    within `allowed` and whose total fits in the hard cap; and whether all passed."""
    st = s.settings
    lost, live, short, q_total = expected_abandons(s, n)
    if s.agents >= SMALL_TEAM:
        # The marginal expected abandons per added live answer: the added call's own risk
        # and that of the answers it takes an agent from.
        marginal = np.diff(lost) / (np.diff(n) * max(q_total, 1e-9))
    else:
        # With a handful of agents the pool is a few integers and the normal
        # approximation of its change exaggerates the marginal abandons (one Bernoulli
        # answer is not a normal); the probability that the added answer itself finds no
        # agent, continuity-corrected, is the better-calibrated measure there.
        marginal = short[1:]
    record = s.abandons
    remaining = (st.hard_cap - st.cap_margin) * (record.live + live[1:]) - record.abandoned
    # Abandons come in bursts: what must fit under the cap is a high quantile of the
    # horizon's abandons (roughly Poisson), not their mean.
    worst = lost[1:] + CAP_QUANTILE * np.sqrt(np.maximum(lost[1:], 0.0))
    ok = (marginal <= allowed) & (worst <= remaining)
    if ok.all():
        return int(n[-1]), True
    return int(n[int(np.argmin(ok))]), False
