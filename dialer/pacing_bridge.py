"""The engine's pacer: the campaign's live view turned into a `pacing` snapshot.

One estimator per campaign learns from the engine's own calls (time to a live decision,
how other dials end) and agents (talk and wrap-up times); the abandon record of the
campaign's regulatory window is seeded from the attempt ledger when the campaign starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dialer.agents import AgentSession, AgentState
from dialer.campaigns import Campaign, DialMode
from pacing.estimator import DialOutcome, Estimator
from pacing.model import AbandonRecord, AgentPhase, Mode, PacingSettings, Snapshot
from pacing.predictive import decide

_MODES = {
    DialMode.PREVIEW: Mode.PREVIEW,
    DialMode.PROGRESSIVE: Mode.PROGRESSIVE,
    DialMode.POWER: Mode.POWER,
    DialMode.PREDICTIVE: Mode.PREDICTIVE,
}
_PHASES = {
    AgentState.READY: AgentPhase.READY,
    AgentState.RESERVED: AgentPhase.TALKING,
    AgentState.ON_CALL: AgentPhase.TALKING,
    AgentState.WRAP_UP: AgentPhase.WRAP,
}


def settings_for(campaign: Campaign) -> PacingSettings:
    """Pacing settings from the campaign (its `pacing` JSON) and its compliance profile."""
    profile = campaign.compliance
    window = {"24h": 86400.0, "30d": 30 * 86400.0}.get(str(profile.abandon_window), 365 * 86400.0)
    cap = float(campaign.pacing.get("hard_cap", profile.abandon_cap))
    return PacingSettings(
        mode=_MODES[campaign.mode],
        ratio=float(campaign.pacing.get("ratio", 2.0)),
        target_abandon=min(float(campaign.pacing.get("target_abandon", 0.02)), cap),
        hard_cap=min(cap, profile.abandon_cap),
        window_seconds=window,
        connect_limit=profile.connect_limit,
    )


@dataclass
class CampaignPacing:
    settings: PacingSettings
    estimator: Estimator = field(default_factory=Estimator)
    live: int = 0
    abandoned: int = 0


class CampaignPacer:
    def __init__(self) -> None:
        self.campaigns: dict[int, CampaignPacing] = {}

    def start(self, campaign: Campaign, live: int = 0, abandoned: int = 0) -> None:
        """Begin pacing a campaign, with the window's record so far."""
        self.campaigns[campaign.id] = CampaignPacing(
            settings_for(campaign), live=live, abandoned=abandoned
        )

    def _state(self, campaign: Campaign) -> CampaignPacing:
        if campaign.id not in self.campaigns:
            self.start(campaign)
        return self.campaigns[campaign.id]

    def launch(
        self,
        campaign: Campaign,
        agents: Sequence[AgentSession],
        ringing: Sequence[float],
        waiting_live: int,
        now: float,
    ) -> int:
        state = self._state(campaign)
        working = [a for a in agents if a.state in _PHASES]
        snapshot = Snapshot(
            now=now,
            agent_phase=np.array([_PHASES[a.state] for a in working], dtype=np.int8),
            agent_elapsed=np.array([a.elapsed(now) for a in working], dtype=np.float64),
            call_elapsed=np.asarray(ringing, dtype=np.float64),
            waiting_live=waiting_live,
            settings=state.settings,
            estimates=state.estimator.estimates(now),
            abandons=AbandonRecord(state.live, state.abandoned),
        )
        return decide(snapshot)

    def dial_ended(self, campaign_id: int, now: float, outcome: str, seconds: float) -> None:
        """A dial reached its live decision (`live`) or ended (`machine`, anything else)."""
        state = self.campaigns.get(campaign_id)
        if state is None:
            return
        kind = {"live": DialOutcome.LIVE, "machine": DialOutcome.MACHINE}.get(
            outcome, DialOutcome.OTHER
        )
        state.estimator.dial_ended(now, kind, seconds)

    def live_settled(self, campaign_id: int, abandoned: bool) -> None:
        state = self.campaigns.get(campaign_id)
        if state is not None:
            state.live += 1
            state.abandoned += int(abandoned)

    def agent_changed(
        self, campaign_ids: frozenset[int], before: AgentSession, after: AgentSession, now: float
    ) -> None:
        spent = before.elapsed(now)
        for campaign_id in campaign_ids:
            state = self.campaigns.get(campaign_id)
            if state is None:
                continue
            if before.state is AgentState.ON_CALL and after.state is not AgentState.ON_CALL:
                state.estimator.talk_ended(now, spent)
            elif before.state is AgentState.WRAP_UP and after.state is AgentState.READY:
                state.estimator.wrap_ended(now, spent)
