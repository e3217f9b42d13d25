"""What the pacer sees and decides with: dialing modes, campaign pacing settings, and the
snapshot of one decision (agents, calls in flight, the measured abandon rate)."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pacing.estimator import Estimates


class Mode(enum.StrEnum):
    PREVIEW = "preview"  # the agent sees the case, then dials
    PROGRESSIVE = "progressive"  # one call per free agent
    POWER = "power"  # a fixed number of calls per free agent
    PREDICTIVE = "predictive"  # model-based, under an abandon budget


class AgentPhase(enum.IntEnum):
    READY = 0
    TALKING = 1
    WRAP = 2


@dataclass(frozen=True)
class PacingSettings:
    mode: Mode = Mode.PREDICTIVE
    ratio: float = 2.0  # power mode: calls per free agent
    target_abandon: float = 0.02  # where the campaign should end over its window
    hard_cap: float = 0.03  # never crossed: below `cap_margin` of it the pacer turns progressive
    cap_margin: float = 0.004
    window_seconds: float = 30 * 86400.0  # regulatory window (24 h UK, 30 days US)
    connect_limit: float = 2.0  # seconds a live answer may wait for an agent
    max_lines_per_agent: float = 6.0  # absolute ceiling on calls in flight per agent
    min_outcomes: int = 50  # cold start: progressive until this many dials have ended
    min_talks: int = 10  # ... and this many talks were seen

    def __post_init__(self) -> None:
        if not 0 < self.target_abandon <= self.hard_cap < 1:
            raise ValueError("need 0 < target_abandon <= hard_cap < 1")
        if self.ratio < 1:
            raise ValueError("power ratio must be at least 1")


@dataclass(frozen=True)
class AbandonRecord:
    """Measured over the regulatory window: live answers and abandoned calls."""

    live: int = 0
    abandoned: int = 0

    @property
    def rate(self) -> float:
        return self.abandoned / self.live if self.live else 0.0


@dataclass(frozen=True)
class Snapshot:
    now: float
    agent_phase: npt.NDArray[np.int8]  # AgentPhase per logged-in agent
    agent_elapsed: npt.NDArray[np.float64]  # seconds in that phase
    call_elapsed: npt.NDArray[np.float64]  # seconds each call in flight has been ringing
    waiting_live: int  # live answers already waiting for an agent
    settings: PacingSettings
    estimates: Estimates
    abandons: AbandonRecord = field(default_factory=AbandonRecord)

    # Cached: a decision reads it several times, and the snapshot is immutable.
    @functools.cached_property
    def ready(self) -> int:
        return int(np.count_nonzero(self.agent_phase == AgentPhase.READY))

    @property
    def agents(self) -> int:
        return int(self.agent_phase.size)
