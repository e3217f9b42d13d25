"""A discrete-event simulation of an outbound shift, to evaluate and tune pacers.

Virtual clock, N agents. Each dial ends as no answer (rings until the timeout),
busy/failed (ends early), answering machine (detected after a delay and dropped) or a
live answer (decided a few seconds after pickup, like AMD). A live answer waits at most
the connect limit for a free agent, else it is abandoned (it hears the message). Talk
and wrap-up times are lognormal; the live-answer probability may drift over the shift.
Any pacer runs through the same `Policy` interface, once per virtual second.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pacing.estimator import DialOutcome, Estimator
from pacing.model import AbandonRecord, AgentPhase, PacingSettings, Snapshot


class Policy(Protocol):
    name: str

    def decide(self, snapshot: Snapshot) -> int: ...


@dataclass(frozen=True)
class Scenario:
    agents: int = 20
    hours: float = 4.0
    # Live-answer probability over the shift: (fraction of shift, probability) points.
    live: Sequence[tuple[float, float]] = ((0.0, 0.25), (1.0, 0.25))
    machine: float = 0.15  # share of dials answered by a machine
    fail: float = 0.10  # busy/congestion/failed, ending within seconds
    ring_median: float = 8.0  # seconds until a person or machine picks up
    ring_sigma: float = 0.45
    no_answer_timeout: float = 25.0
    amd_delay: float = 2.3  # pickup -> live decision
    machine_delay: float = 2.4  # pickup -> machine decision
    talk_mean: float = 180.0
    talk_sigma: float = 0.8
    wrap_mean: float = 20.0
    wrap_sigma: float = 0.5
    connect_limit: float = 2.0

    def live_at(self, fraction: float) -> float:
        points = sorted(self.live)
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            if x0 <= fraction <= x1:
                return y0 if x1 == x0 else y0 + (y1 - y0) * (fraction - x0) / (x1 - x0)
        return points[-1][1]


def _lognormal(rng: random.Random, mean: float, sigma: float) -> float:
    mu = math.log(mean) - sigma * sigma / 2
    return rng.lognormvariate(mu, sigma)


@dataclass
class Result:
    policy: str
    agents: int
    hours: float
    dials: int = 0
    live: int = 0
    machines: int = 0
    connects: int = 0
    abandons: int = 0
    talk_seconds: float = 0.0
    ready_seconds: float = 0.0
    series: list[tuple[float, float, float]] = field(
        default_factory=list
    )  # (hour, abandon, occupancy)

    @property
    def abandon_rate(self) -> float:
        return self.abandons / self.live if self.live else 0.0

    @property
    def occupancy(self) -> float:
        """Talk time over logged-in time."""
        return self.talk_seconds / (self.agents * self.hours * 3600.0)

    @property
    def connects_per_agent_hour(self) -> float:
        return self.connects / (self.agents * self.hours)

    @property
    def mean_wait(self) -> float:
        """Mean agent wait between calls (ready time per connect)."""
        return self.ready_seconds / self.connects if self.connects else float("inf")


# Event kinds, ordered so that at equal times agents free up before calls need them.
_AGENT_FREE, _TALK_END, _LIVE, _END, _ABANDON_CHECK = range(5)


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        policy: Policy,
        seed: int = 1,
        settings: PacingSettings | None = None,
        foresight: bool = False,
    ):
        self.sc = scenario
        self.policy = policy
        self.rng = random.Random(seed)
        self.settings = settings or PacingSettings(connect_limit=scenario.connect_limit)
        self.foresight = foresight
        self.estimator = Estimator(prior_talk=scenario.talk_mean, prior_wrap=scenario.wrap_mean)
        n = scenario.agents
        self.phase = np.zeros(n, dtype=np.int8)
        self.since = np.zeros(n)
        self.idle_since = np.zeros(n)
        self.calls: dict[int, float] = {}  # call id -> dial time (in flight, undecided)
        self.waiting: dict[int, float] = {}  # live call id -> decision time, waiting for an agent
        self.events: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.next_call = 0
        self.result = Result(policy.name, n, scenario.hours)

    def _push(self, at: float, kind: int, ident: int) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, kind, self.seq, ident))

    # --- agents -------------------------------------------------------------------------

    def _free_agent(self) -> int | None:
        ready = np.flatnonzero(self.phase == AgentPhase.READY)
        if ready.size == 0:
            return None
        return int(ready[np.argmin(self.idle_since[ready])])

    def _connect(self, agent: int, now: float) -> None:
        self.result.ready_seconds += now - self.since[agent]
        self.result.connects += 1
        talk = _lognormal(self.rng, self.sc.talk_mean, self.sc.talk_sigma)
        self.phase[agent] = AgentPhase.TALKING
        self.since[agent] = now
        self._push(now + talk, _TALK_END, agent)

    # --- the shift ----------------------------------------------------------------------

    def _dial(self, now: float) -> None:
        sc, rng = self.sc, self.rng
        call = self.next_call
        self.next_call += 1
        self.result.dials += 1
        p_live = sc.live_at(now / (sc.hours * 3600.0))
        draw = rng.random()
        ring = _lognormal(rng, sc.ring_median * math.exp(sc.ring_sigma**2 / 2), sc.ring_sigma)
        if draw < p_live:
            kind, at = DialOutcome.LIVE, now + ring + sc.amd_delay
            self._push(at, _LIVE, call)
        elif draw < p_live + sc.machine:
            kind, at = DialOutcome.MACHINE, now + ring + sc.machine_delay
            self._push(at, _END, call)
        elif draw < p_live + sc.machine + sc.fail:
            kind, at = DialOutcome.OTHER, now + rng.uniform(0.5, 4.0)
            self._push(at, _END, call)
        else:
            kind, at = DialOutcome.OTHER, now + sc.no_answer_timeout
            self._push(at, _END, call)
        self.calls[call] = now
        self._outcomes[call] = kind

    def snapshot(self, now: float) -> Snapshot:
        return Snapshot(
            now=now,
            agent_phase=self.phase.copy(),
            agent_elapsed=now - self.since,
            call_elapsed=now
            - np.fromiter(self.calls.values(), dtype=np.float64, count=len(self.calls)),
            waiting_live=len(self.waiting),
            settings=self.settings,
            estimates=self.estimator.estimates(now),
            abandons=AbandonRecord(self.result.live, self.result.abandons),
        )

    def run(self, progress: Callable[[float], None] | None = None) -> Result:
        sc = self.sc
        end = sc.hours * 3600.0
        self._outcomes: dict[int, DialOutcome] = {}
        if self.foresight:
            return self._run_foresight(end)
        tick = 0.0
        bucket = 300.0
        next_bucket = bucket
        while tick < end:
            while self.events and self.events[0][0] <= tick:
                at, kind, _, ident = heapq.heappop(self.events)
                self._handle(at, kind, ident)
            snap = self.snapshot(tick)
            for _ in range(max(0, int(self.policy.decide(snap)))):
                self._dial(tick)
            if tick >= next_bucket:
                self._record_series(tick)
                next_bucket += bucket
                if progress is not None:
                    progress(tick / end)
            tick += 1.0
        # Close the books at the end of the shift: talking counts up to the end.
        for agent in range(sc.agents):
            if self.phase[agent] == AgentPhase.TALKING:
                self.result.talk_seconds += end - self.since[agent]
            elif self.phase[agent] == AgentPhase.READY:
                self.result.ready_seconds += end - self.since[agent]
        self._record_series(end)
        return self.result

    def _record_series(self, now: float) -> None:
        talking_now = float(
            np.sum(np.where(self.phase == AgentPhase.TALKING, now - self.since, 0.0))
        )
        occupancy = (self.result.talk_seconds + talking_now) / (self.sc.agents * max(now, 1.0))
        self.result.series.append((now / 3600.0, self.result.abandon_rate, occupancy))

    def _handle(self, at: float, kind: int, ident: int) -> None:
        sc = self.sc
        if kind == _TALK_END:
            agent = ident
            talked = at - self.since[agent]
            self.result.talk_seconds += talked
            self.estimator.talk_ended(at, talked)
            wrap = _lognormal(self.rng, sc.wrap_mean, sc.wrap_sigma)
            self.phase[agent] = AgentPhase.WRAP
            self.since[agent] = at
            self._push(at + wrap, _AGENT_FREE, agent)
        elif kind == _AGENT_FREE:
            agent = ident
            self.estimator.wrap_ended(at, at - self.since[agent])
            self.phase[agent] = AgentPhase.READY
            self.since[agent] = at
            self.idle_since[agent] = at
            if self.waiting:  # the oldest waiting live answer takes this agent
                call = min(self.waiting, key=lambda c: self.waiting[c])
                del self.waiting[call]
                self._connect(agent, at)
        elif kind == _LIVE:
            dialed = self.calls.pop(ident)
            self.result.live += 1
            self.estimator.dial_ended(at, DialOutcome.LIVE, at - dialed)
            free = self._free_agent()
            if free is not None and not self.waiting:
                self._connect(free, at)
            else:
                self.waiting[ident] = at
                self._push(at + sc.connect_limit, _ABANDON_CHECK, ident)
        elif kind == _END:
            dialed = self.calls.pop(ident)
            outcome = self._outcomes.pop(ident)
            if outcome is DialOutcome.MACHINE:
                self.result.machines += 1
            self.estimator.dial_ended(at, outcome, at - dialed)
        elif kind == _ABANDON_CHECK:
            if ident in self.waiting:
                del self.waiting[ident]
                self.result.abandons += 1

    def _run_foresight(self, end: float) -> Result:
        """The physical limit: an oracle dials only calls it knows will be live, timed to
        reach their decision the instant an agent frees up. Agents never wait and no call
        is abandoned; occupancy is talk / (talk + wrap-up)."""
        for agent in range(self.sc.agents):
            self._push(0.0, _AGENT_FREE, agent)
        while self.events:
            at, kind, _, ident = heapq.heappop(self.events)
            agent = ident
            if at >= end:
                break
            if kind == _AGENT_FREE:
                self.phase[agent] = AgentPhase.READY
                self.since[agent] = at
                self.result.dials += 1
                self.result.live += 1
                self._connect(agent, at)
            elif kind == _TALK_END:
                self.result.talk_seconds += at - self.since[agent]
                wrap = _lognormal(self.rng, self.sc.wrap_mean, self.sc.wrap_sigma)
                self.phase[agent] = AgentPhase.WRAP
                self.since[agent] = at
                self._push(at + wrap, _AGENT_FREE, agent)
        for agent in range(self.sc.agents):
            if self.phase[agent] == AgentPhase.TALKING:
                self.result.talk_seconds += end - self.since[agent]
        self.result.series.append((self.sc.hours, 0.0, self.result.occupancy))
        return self.result
