"""How simulated debtors behave when called: a seeded stochastic model, or the lab rule.

The lab rule reproduces the dialplan used for the recordings (outcome by the number's
last digit). The stochastic model draws the outcome from shares that drift with the
hour of day (people answer more in the evening) and draws ring and talk times from
log-normal distributions. Channel variables `SIM_OUTCOME`, `SIM_RING`, `SIM_TALK` on
the call override the draw, so a test can force any outcome.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import Enum


class DebtorOutcome(Enum):
    ANSWER = "ANSWER"
    MACHINE = "MACHINE"
    BUSY = "BUSY"
    CONGESTION = "CONGESTION"
    NOANSWER = "NOANSWER"
    INVALID = "INVALID"


@dataclass(frozen=True, slots=True)
class DebtorBehaviour:
    outcome: DebtorOutcome
    ring: float  # seconds of ringing before answering
    talk: float  # seconds a person stays on the line after the greeting


@dataclass(frozen=True, slots=True)
class DebtorModel:
    """Shares are relative weights; `hourly_drift` scales the live share by hour."""

    lab_rule: bool = False
    live: float = 0.30
    machine: float = 0.15
    busy: float = 0.08
    congestion: float = 0.04
    invalid: float = 0.03
    no_answer: float = 0.40
    ring_median: float = 9.0
    ring_sigma: float = 0.45
    talk_median: float = 60.0
    talk_sigma: float = 0.7
    no_answer_ring: float = 25.0
    hourly_drift: float = 0.35  # live share x (1 +/- drift), peak at 19:00

    def decide(
        self, rng: random.Random, number: str, hour: float, overrides: dict[str, str]
    ) -> DebtorBehaviour:
        behaviour = self._lab(number) if self.lab_rule else self._draw(rng, hour)
        behaviour = _override(behaviour, overrides)
        if behaviour.outcome is DebtorOutcome.NOANSWER and not _is_number(
            overrides.get("SIM_RING", "")
        ):
            # Nobody picks up: it rings until the far end gives up (or our timeout).
            behaviour = DebtorBehaviour(behaviour.outcome, self.no_answer_ring, behaviour.talk)
        return behaviour

    def _lab(self, number: str) -> DebtorBehaviour:
        """The lab dialplan: outcome by the last digit (D1), ring 3 + D2 % 5 seconds, talk
        15 + 5 x D3 seconds (D2, D3: the second and third digit from the end; a shorter
        number uses its first digit, as Asterisk's ${EXTEN:-3:1})."""
        digits = "".join(c for c in number if c.isdigit()) or "0"
        last = int(digits[-1])
        ring = 3.0 + int(_from_end(digits, 2)) % 5
        talk = 15.0 + 5 * int(_from_end(digits, 3))
        if last <= 4:
            return DebtorBehaviour(DebtorOutcome.ANSWER, ring, talk)
        if last <= 6:
            return DebtorBehaviour(DebtorOutcome.NOANSWER, ring, talk)
        if last == 7:
            return DebtorBehaviour(DebtorOutcome.BUSY, ring, talk)
        if last == 8:
            return DebtorBehaviour(DebtorOutcome.MACHINE, ring, talk)
        return DebtorBehaviour(DebtorOutcome.CONGESTION, ring, talk)

    def live_factor(self, hour: float) -> float:
        return 1.0 + self.hourly_drift * math.cos(2 * math.pi * (hour - 19.0) / 24.0)

    def _draw(self, rng: random.Random, hour: float) -> DebtorBehaviour:
        weights = {
            DebtorOutcome.ANSWER: self.live * self.live_factor(hour),
            DebtorOutcome.MACHINE: self.machine,
            DebtorOutcome.BUSY: self.busy,
            DebtorOutcome.CONGESTION: self.congestion,
            DebtorOutcome.INVALID: self.invalid,
            DebtorOutcome.NOANSWER: self.no_answer,
        }
        outcome = rng.choices(list(weights), weights=list(weights.values()))[0]
        ring = self.ring_median * math.exp(rng.gauss(0.0, self.ring_sigma))
        talk = self.talk_median * math.exp(rng.gauss(0.0, self.talk_sigma))
        return DebtorBehaviour(outcome, round(ring, 3), round(talk, 3))


def _from_end(digits: str, n: int) -> str:
    return digits[-n] if len(digits) >= n else digits[0]


def _override(behaviour: DebtorBehaviour, overrides: dict[str, str]) -> DebtorBehaviour:
    outcome, ring, talk = behaviour.outcome, behaviour.ring, behaviour.talk
    if overrides.get("SIM_OUTCOME", "").upper() in DebtorOutcome.__members__:
        outcome = DebtorOutcome[overrides["SIM_OUTCOME"].upper()]
    if _is_number(overrides.get("SIM_RING", "")):
        ring = float(overrides["SIM_RING"])
    if _is_number(overrides.get("SIM_TALK", "")):
        talk = float(overrides["SIM_TALK"])
    return DebtorBehaviour(outcome, ring, talk)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class AgentModel:
    """Simulated agents: talk time before they end the call, wrap-up before ready again."""

    talk_median: float = 90.0
    talk_sigma: float = 0.5
    wrap_median: float = 15.0
    wrap_sigma: float = 0.4

    def talk(self, rng: random.Random) -> float:
        return self.talk_median * math.exp(rng.gauss(0.0, self.talk_sigma))

    def wrap(self, rng: random.Random) -> float:
        return self.wrap_median * math.exp(rng.gauss(0.0, self.wrap_sigma))
