"""Online estimates of a campaign's call and agent behaviour, with exponential decay in
time so that hour-of-day drift is followed.

`Estimator` is the mutable learner fed with finished dials and talks; `estimates()`
returns an immutable `Estimates` whose numpy tables the pacer reads: the probability
that a call in flight turns into a live answer within the horizon given how long it has
rung, and that a busy agent is free within the horizon given how long it has talked or
wrapped up.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RING_BINS = 120  # 1-second bins from dial to a call's end or live decision
GRID = 30  # the decision looks 1..GRID seconds ahead
SUPPLY_EXTRA = 5  # supply is read up to the connect limit later (seconds, rounded up)
TALK_STEP = 2.0
TALK_BINS = 1800  # 2-second bins: one hour
WRAP_BINS = 600  # 1-second bins: ten minutes

FloatArray = npt.NDArray[np.float64]


class DialOutcome(enum.IntEnum):
    LIVE = 0  # a person: needs an agent at the live decision
    MACHINE = 1  # answering machine, dropped after detection
    OTHER = 2  # busy, congestion, failed, no answer


def _bin(seconds: float, step: float, bins: int) -> int:
    return min(bins - 1, max(0, int(seconds / step)))


@dataclass(frozen=True)
class Estimates:
    dials: float  # effective (decayed) number of finished dials
    talks: float
    p_live: float
    live_time: FloatArray  # P(live decision at bin t | dial), sums to p_live
    other_time: FloatArray  # P(non-live end at bin t | dial), sums to 1 - p_live
    talk_pmf: FloatArray  # talk duration, TALK_STEP bins
    wrap_pmf: FloatArray  # wrap-up duration, 1-second bins
    f_live: FloatArray  # cumulative P(live decision by t), t = 0..RING_BINS
    f_end: FloatArray  # cumulative P(any end or live decision by t)
    # Dials and talks ended since the estimator started, not decayed: the cold-start test.
    # (The decayed counts settle at rate x decay time, which for a small team stays under
    # any fixed minimum, so they cannot tell a cold campaign from a small one.)
    dials_seen: int = 0
    talks_seen: int = 0

    # For the decision: [k, bin] = P(free within k seconds | elapsed bin), k = 0..GRID + a
    # few seconds of connect limit. Built on first use, so that policies which never read
    # them (the baselines in the simulator) do not pay for them at every refresh.
    @functools.cached_property
    def talk_free(self) -> FloatArray:
        return _talk_free_table(self.talk_pmf, self.wrap_pmf, GRID + SUPPLY_EXTRA)

    @functools.cached_property
    def wrap_free(self) -> FloatArray:
        return _wrap_free_table(self.wrap_pmf, GRID + SUPPLY_EXTRA)

    def live_by(self, elapsed: FloatArray, ahead: FloatArray) -> FloatArray:
        """[call, k]: P(the call, rung `elapsed` s, is live within `ahead[k]` seconds)."""
        t0 = np.clip(elapsed.astype(np.int64), 0, RING_BINS)
        t1 = np.clip(t0[:, None] + ahead.astype(np.int64)[None, :], 0, RING_BINS)
        survival = np.maximum(1.0 - self.f_end[t0], 1e-9)
        return np.clip((self.f_live[t1] - self.f_live[t0][:, None]) / survival[:, None], 0.0, 1.0)

    @property
    def horizon(self) -> float:
        """How far ahead a decision looks: when a new call's live decision typically
        falls (median dial-to-decision time), at least 3 s."""
        if self.p_live <= 0:
            return 10.0
        cdf = np.cumsum(self.live_time) / self.p_live
        return float(max(3.0, np.searchsorted(cdf, 0.5) + 1.0))

    def live_within(self, elapsed: FloatArray, horizon: float) -> FloatArray:
        """P(a call that has rung `elapsed` s becomes live within `horizon` s)."""
        f_live = np.concatenate(([0.0], np.cumsum(self.live_time)))
        f_end = f_live + np.concatenate(([0.0], np.cumsum(self.other_time)))
        t0 = np.clip(elapsed.astype(np.int64), 0, RING_BINS)
        t1 = np.clip((elapsed + horizon).astype(np.int64), 0, RING_BINS)
        survival = np.maximum(1.0 - f_end[t0], 1e-9)
        return np.clip((f_live[t1] - f_live[t0]) / survival, 0.0, 1.0)

    def free_after_talk(self, horizon: float) -> FloatArray:
        """Table by talk-elapsed bin: P(talk ends and wrap-up ends within `horizon`)."""
        wrap_cdf = np.cumsum(self.wrap_pmf)
        steps = int(horizon // TALK_STEP) + 1
        tail = np.concatenate((np.cumsum(self.talk_pmf[::-1])[::-1], [0.0]))
        total = np.zeros(TALK_BINS)
        padded = np.concatenate((self.talk_pmf, np.zeros(steps)))
        for j in range(steps):
            budget = int(horizon - j * TALK_STEP)
            if budget < 0:
                break
            total += padded[j : j + TALK_BINS] * wrap_cdf[min(budget, WRAP_BINS - 1)]
        return np.clip(total / np.maximum(tail[:TALK_BINS], 1e-9), 0.0, 1.0)

    def free_after_wrap(self, horizon: float) -> FloatArray:
        """Table by wrap-elapsed second: P(wrap-up ends within `horizon`)."""
        cdf = np.concatenate(([0.0], np.cumsum(self.wrap_pmf)))
        idx = np.arange(WRAP_BINS)
        ahead = np.clip(idx + int(horizon), 0, WRAP_BINS)
        survival = np.maximum(1.0 - cdf[idx], 1e-9)
        return np.clip((cdf[ahead] - cdf[idx]) / survival, 0.0, 1.0)


class Estimator:
    """Decaying counts: an observation `tau` seconds old weighs 1/e of a new one."""

    def __init__(
        self,
        tau: float = 1800.0,
        prior_talk: float = 180.0,
        prior_wrap: float = 20.0,
        refresh: float = 10.0,
        tau_dials: float | None = None,
        min_dials: float = 300.0,
        prior_weight: float = 10.0,
    ):
        # Answer rates move faster than talk times (a jump in who picks up must be seen in
        # minutes), so dial outcomes forget faster than agent times by default.
        self.tau = tau
        self.tau_dials = tau_dials if tau_dials is not None else min(tau, 300.0)
        # The derived tables are rebuilt at most every `refresh` seconds of campaign time.
        self.refresh = refresh
        self._built_at = -math.inf
        self.last = 0.0
        self.min_dials = min_dials
        self._dial_total = 0.0
        self.dials_seen = 0
        self.talks_seen = 0
        self.live_w = np.zeros(RING_BINS)
        self.other_w = np.zeros(RING_BINS)
        self.talk_w = np.zeros(TALK_BINS)
        self.wrap_w = np.zeros(WRAP_BINS)
        # Priors so that tables exist before data. They weigh `prior_weight` observations
        # (not decayed): the first talks to end are the short ones (the long ones are
        # still going), so a lighter prior lets the early tables promise agents far too
        # soon; the data outweighs it within minutes in a busy campaign.
        self.prior_weight = prior_weight
        self._prior_talk = prior_weight * _lognormal_pmf(prior_talk, 0.8, TALK_STEP, TALK_BINS)
        self._prior_wrap = prior_weight * _lognormal_pmf(prior_wrap, 0.6, 1.0, WRAP_BINS)
        self._cache: Estimates | None = None
        self._dirty = True

    def _age(self, now: float) -> None:
        if now > self.last:
            factor = math.exp(-(now - self.last) / self.tau)
            dial_factor = math.exp(-(now - self.last) / self.tau_dials)
            # A small team ends few dials per decay time: aging stops at `min_dials`
            # effective dials, or a handful of answers would make the ring-time tables
            # (and the live probability) too noisy to pace on.
            if self._dial_total * dial_factor < self.min_dials:
                dial_factor = min(1.0, self.min_dials / max(self._dial_total, 1e-9))
            self._dial_total *= dial_factor
            self.live_w *= dial_factor
            self.other_w *= dial_factor
            self.talk_w *= factor
            self.wrap_w *= factor
            self.last = now

    def dial_ended(self, now: float, outcome: DialOutcome, seconds: float) -> None:
        """A dial reached its live decision (LIVE) or ended otherwise, `seconds` after dialing."""
        self._age(now)
        self.dials_seen += 1
        self._dial_total += 1.0
        target = self.live_w if outcome is DialOutcome.LIVE else self.other_w
        target[_bin(seconds, 1.0, RING_BINS)] += 1.0
        self._dirty = True

    def talk_ended(self, now: float, seconds: float) -> None:
        self._age(now)
        self.talks_seen += 1
        self.talk_w[_bin(seconds, TALK_STEP, TALK_BINS)] += 1.0
        self._dirty = True

    def wrap_ended(self, now: float, seconds: float) -> None:
        self._age(now)
        self.wrap_w[_bin(seconds, 1.0, WRAP_BINS)] += 1.0
        self._dirty = True

    def estimates(self, now: float | None = None) -> Estimates:
        stale = self._cache is None or (
            self._dirty and (now is None or now - self._built_at >= self.refresh)
        )
        if stale:
            self._dirty = False
            self._built_at = self.last if now is None else now
            dials = float(self.live_w.sum() + self.other_w.sum())
            live = self.live_w / dials if dials > 0 else np.zeros(RING_BINS)
            other = self.other_w / dials if dials > 0 else np.zeros(RING_BINS)
            talks = float(self.talk_w.sum())
            talk = (self.talk_w + self._prior_talk) / (talks + self.prior_weight)
            wraps = float(self.wrap_w.sum())
            wrap = (self.wrap_w + self._prior_wrap) / (wraps + self.prior_weight)
            f_live = np.concatenate(([0.0], np.cumsum(live)))
            f_end = f_live + np.concatenate(([0.0], np.cumsum(other)))
            self._cache = Estimates(
                dials=dials,
                talks=talks,
                p_live=float(live.sum()),
                live_time=live,
                other_time=other,
                talk_pmf=talk,
                wrap_pmf=wrap,
                f_live=f_live,
                f_end=f_end,
                dials_seen=self.dials_seen,
                talks_seen=self.talks_seen,
            )
        assert self._cache is not None
        return self._cache


def _lognormal_pmf(mean: float, sigma: float, step: float, bins: int) -> FloatArray:
    mu = math.log(mean) - sigma * sigma / 2
    edges = np.arange(bins + 1) * step
    with np.errstate(divide="ignore"):
        z = (np.log(np.maximum(edges, 1e-9)) - mu) / (sigma * math.sqrt(2))
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z))
    cdf[0] = 0.0
    pmf = np.diff(cdf)
    pmf[-1] += 1.0 - cdf[-1]
    return pmf / pmf.sum()


def _talk_free_table(talk: FloatArray, wrap: FloatArray, max_h: int) -> FloatArray:
    """[h, bin]: P(remaining talk + wrap-up <= h | talked `bin` so far), h = 0..max_h, as one
    matrix product: sum over j of P(talk ends j bins later) * P(wrap <= h - j * step)."""
    steps = max_h // int(TALK_STEP) + 1
    wrap_cdf = np.cumsum(wrap)
    h = np.arange(max_h + 1)[:, None]
    budget = h - np.arange(steps)[None, :] * int(TALK_STEP)
    coefficients = np.where(budget >= 0, wrap_cdf[np.clip(budget, 0, WRAP_BINS - 1)], 0.0)
    padded = np.concatenate((talk, np.zeros(steps)))
    shifted = np.lib.stride_tricks.sliding_window_view(padded, TALK_BINS)[:steps]
    tail = np.cumsum(talk[::-1])[::-1]
    # Both factors are non-negative: only the upper clip is needed.
    return np.minimum((coefficients @ shifted) * (1.0 / np.maximum(tail, 1e-9))[None, :], 1.0)


def _wrap_free_table(wrap: FloatArray, max_h: int) -> FloatArray:
    cdf = np.concatenate(([0.0], np.cumsum(wrap)))
    idx = np.arange(WRAP_BINS)
    ahead = np.clip(idx[None, :] + np.arange(max_h + 1)[:, None], 0, WRAP_BINS)
    survival = np.maximum(1.0 - cdf[idx], 1e-9)
    return np.clip((cdf[ahead] - cdf[idx][None, :]) / survival[None, :], 0.0, 1.0)
