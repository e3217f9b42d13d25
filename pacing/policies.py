"""Pacing policies behind one interface: ours, and the baselines we measure it against.

`decide(snapshot) -> int` is called once per second. Ours (`Predictive`) is a pure
function of the snapshot; the VICIdial-style controller keeps the per-second samples and
dial level its method needs, as VICIdial does.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace

from pacing.model import Mode, Snapshot
from pacing.predictive import decide, power, progressive


@dataclass
class Progressive:
    name: str = "progressive"

    def decide(self, snapshot: Snapshot) -> int:
        return progressive(snapshot)


@dataclass
class Ratio:
    ratio: float
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"ratio {self.ratio:g}"

    def decide(self, snapshot: Snapshot) -> int:
        return power(replace(snapshot, settings=replace(snapshot.settings, ratio=self.ratio)))


@dataclass
class Predictive:
    name: str = "ours (predictive)"

    def decide(self, snapshot: Snapshot) -> int:
        return decide(replace(snapshot, settings=replace(snapshot.settings, mode=Mode.PREDICTIVE)))


@dataclass
class VicidialAdaptive:
    """VICIdial's adaptive dial level, re-implemented from its public description.

    Every second it samples ready agents R, answered calls waiting W and logged-in
    agents T, keeping the last 15 samples; every 15 s D = mean(R) - mean(W) (+ offset),
    m = D / mean(T), L <- L * (1 + m), capped at `max_level` and floored at 1; every
    2.5 s it places round(L * agents) minus the calls in flight, where agents counts all
    logged-in agents or only ready ones (the two variants). Panic rule: L halves when
    more than 20 calls went out in the last minute and over half of them dropped. Once
    more than 50 calls were placed and drops / human answers exceed the cap, the drop
    method applies: HARD_LIMIT sets L to 1, AVERAGE halves it, TAPERED multiplies it by
    (hours left in the shift) / 10, capped at 1.
    """

    count_ready_only: bool = False
    max_level: float = 3.0
    offset: float = 0.0
    cap: float = 0.03
    drop_method: str = "HARD_LIMIT"
    shift_hours: float = 4.0
    name: str = ""
    level: float = 1.0
    samples: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=15))
    placed: deque[tuple[float, int]] = field(default_factory=deque)
    drops_seen: deque[tuple[float, int]] = field(default_factory=deque)
    total_placed: int = 0
    last_adjust: float = 0.0
    last_place: float = -10.0
    last_abandons: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            who = "ready agents" if self.count_ready_only else "logged-in agents"
            self.name = f"VICIdial adaptive ({who})"

    def decide(self, s: Snapshot) -> int:
        now = s.now
        self.samples.append((s.ready, s.waiting_live, s.agents))
        new_drops = s.abandons.abandoned - self.last_abandons
        self.last_abandons = s.abandons.abandoned
        if new_drops:
            self.drops_seen.append((now, new_drops))
        while self.placed and now - self.placed[0][0] > 60:
            self.placed.popleft()
        while self.drops_seen and now - self.drops_seen[0][0] > 60:
            self.drops_seen.popleft()
        if now - self.last_adjust >= 15 and self.samples:
            self.last_adjust = now
            n = len(self.samples)
            mean_r = sum(x[0] for x in self.samples) / n
            mean_w = sum(x[1] for x in self.samples) / n
            mean_t = max(sum(x[2] for x in self.samples) / n, 1e-9)
            surplus = (mean_r - mean_w + self.offset) / mean_t
            self.level = min(self.max_level, max(1.0, self.level * (1 + surplus)))
            placed_minute = sum(c for _, c in self.placed)
            drops_minute = sum(c for _, c in self.drops_seen)
            if placed_minute > 20 and drops_minute > placed_minute / 2:
                self.level = max(1.0, self.level / 2)
            if self.total_placed > 50 and s.abandons.live and s.abandons.rate > self.cap:
                if self.drop_method == "HARD_LIMIT":
                    self.level = 1.0
                elif self.drop_method == "AVERAGE":
                    self.level = max(1.0, self.level / 2)
                else:
                    hours_left = max(0.0, self.shift_hours - now / 3600.0)
                    self.level = max(1.0, self.level * min(1.0, hours_left / 10.0))
        if now - self.last_place < 2.5:
            return 0
        self.last_place = now
        agents = s.ready if self.count_ready_only else s.agents
        want = max(0, math.floor(self.level * agents + 0.5) - int(s.call_elapsed.size))
        if want:
            self.placed.append((now, want))
            self.total_placed += want
        return want
