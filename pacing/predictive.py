"""The pacing decision: how many calls to launch now.

Predictive mode looks one horizon ahead (the typical time from dial to live decision).
Demand is the number of live answers that calls in flight, and the new calls, will
produce within the horizon, each with its probability given how long it has already
rung; supply is the number of agents free by the horizon plus the connect limit: free
agents now, and busy agents by their probability of being free given how long they have
talked or wrapped up. Both are sums of independent Bernoulli variables; their difference
is approximated as normal. The pacer launches the most calls whose expected abandoned
answers (the expected excess of demand over supply) stay within the abandon budget times
the expected live answers. The budget is steered by the abandon rate measured over the
regulatory window so the campaign ends under its target, and close to the hard cap the
pacer falls back to progressive, which does not abandon. Cold start is progressive.

Pure: a snapshot in, a count out; no I/O, no clock.
"""

from __future__ import annotations

import math

import numpy as np

from pacing.estimator import GRID, SUPPLY_EXTRA, TALK_BINS, TALK_STEP, WRAP_BINS
from pacing.model import AgentPhase, Mode, Snapshot

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)
MAX_CANDIDATES = 400
BUDGET_BASE = 0.45
STEER_GAIN = 1.0


def _erf(x: np.ndarray) -> np.ndarray:
    """Vectorized erf (Abramowitz and Stegun 7.1.26, error below 1.5e-7)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


def progressive(s: Snapshot) -> int:
    """One call per free agent, counting calls already in flight."""
    free = s.ready - s.waiting_live
    return max(0, free - int(s.call_elapsed.size))


def power(s: Snapshot) -> int:
    free = s.ready - s.waiting_live
    return max(0, math.ceil(s.settings.ratio * free) - int(s.call_elapsed.size))


def budget(s: Snapshot) -> float | None:
    """The abandon rate this decision may aim at, or None: stay progressive."""
    st = s.settings
    record = s.abandons
    # Thin remaining budget: the window is at the cap (the per-decision `remaining` limit
    # in `decide` keeps it from getting there in the first place).
    if record.abandoned >= (st.hard_cap - st.cap_margin) * max(record.live, 1) and record.abandoned:
        return None
    confidence = record.live / (record.live + 200.0)
    steer = 1.0 + STEER_GAIN * confidence * (st.target_abandon - record.rate) / st.target_abandon
    # The normal approximation under-counts bursts (it takes the largest expected excess,
    # not the expected largest one), so the decision aims below the target; the measured
    # rate then steers it up or down.
    value = BUDGET_BASE * st.target_abandon * min(max(steer, 0.3), 1.8)
    # Small teams: every abandon weighs more; be proportionally more careful.
    value *= min(1.0, s.agents / 10.0) ** 0.5
    return min(value, st.hard_cap - st.cap_margin)


def decide(s: Snapshot) -> int:
    st = s.settings
    if st.mode is Mode.PREVIEW:
        return 0
    if st.mode is Mode.PROGRESSIVE:
        return progressive(s)
    if st.mode is Mode.POWER:
        return power(s)
    est = s.estimates
    if est.dials < st.min_outcomes or est.talks < st.min_talks or est.p_live <= 0.0:
        return progressive(s)
    allowed = budget(s)
    if allowed is None:
        return progressive(s)

    ahead = np.arange(1, GRID + 1, dtype=np.float64)
    extra = min(SUPPLY_EXTRA, int(math.ceil(st.connect_limit)))
    # Demand: live answers by each second ahead, from the calls in flight.
    q = est.live_by(s.call_elapsed, ahead)  # [call, k]
    # Live answers already waiting take the first agents to free up.
    demand = q.sum(axis=0) + max(0, s.waiting_live - s.ready)
    demand_var = (q * (1.0 - q)).sum(axis=0)
    q0 = est.live_by(np.zeros(1), ahead)[0]  # a new call

    # Supply: agents free by each second ahead plus the connect limit.
    phase = s.agent_phase
    elapsed = s.agent_elapsed
    columns = np.arange(1, GRID + 1) + extra
    talking = phase == AgentPhase.TALKING
    wrapping = phase == AgentPhase.WRAP
    t_bins = np.clip((elapsed[talking] / TALK_STEP).astype(np.int64), 0, TALK_BINS - 1)
    w_bins = np.clip(elapsed[wrapping].astype(np.int64), 0, WRAP_BINS - 1)
    p_talk = est.talk_free[columns][:, t_bins]  # [k, agent]
    p_wrap = est.wrap_free[columns][:, w_bins]
    free_now = max(0, s.ready - s.waiting_live)
    supply = free_now + p_talk.sum(axis=1) + p_wrap.sum(axis=1)
    supply_var = (p_talk * (1 - p_talk)).sum(axis=1) + (p_wrap * (1 - p_wrap)).sum(axis=1)

    ceiling = int(st.max_lines_per_agent * s.agents) - int(s.call_elapsed.size)
    limit = max(0, min(ceiling, MAX_CANDIDATES))
    n = np.arange(limit + 1, dtype=np.float64)[:, None]
    # The unserved live answers by time t are the excess of cumulative demand over
    # cumulative supply; the largest excess over the grid is what gets abandoned.
    mu = demand[None, :] + n * q0[None, :] - supply[None, :]
    sigma = np.sqrt(demand_var[None, :] + supply_var[None, :] + n * (q0 * (1 - q0))[None, :] + 0.25)
    z = mu / sigma
    excess = mu * 0.5 * (1.0 + _erf(z / _SQRT2)) + sigma * np.exp(-0.5 * z * z) / _SQRT2PI
    expected_abandons = excess.max(axis=1)
    expected_live = np.maximum(demand[-1] + n[:, 0] * q0[-1], 1e-9)
    # Two limits: the rate this decision may run at, and what is left of the hard cap
    # over the window once these calls are answered.
    record = s.abandons
    remaining = (st.hard_cap - st.cap_margin) * (record.live + expected_live) - record.abandoned
    ok = (expected_abandons <= allowed * expected_live) & (expected_abandons <= remaining)
    floor = progressive(s)
    if not ok[0]:
        return floor
    best = limit if ok.all() else int(np.argmin(ok)) - 1
    return max(floor, best)
