"""Agents' nailed-up legs as Asterisk reports them; pure, no I/O.

An agent's phone is called once per shift into the agent's own conference, and every
live debtor is then moved into that conference. A leg is up only when Asterisk says so
(the Originate succeeded, or the channel joined the conference) and down as soon as its
channel hangs up or the Originate fails, so the dialer never sends a debtor into an empty
conference. Each leg has its own id (`agent-<agent>-<token>`): a new leg never collides with
one that is still up, or with a leg left by a process that died.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from dialer.ami_events import (
    AmiEvent,
    ConfbridgeJoin,
    CoreShowChannel,
    Hangup,
    NewChannel,
    NewState,
    OriginateResponse,
)

_LEG_ID = re.compile(r"^agent-(\d+)-([0-9a-f]{8})(;2)?$")


def new_leg_id(agent_id: int) -> str:
    return f"agent-{agent_id}-{secrets.token_hex(4)}"


def far_half(leg_id: str) -> str:
    """The OtherChannelId of a leg placed through a Local channel."""
    return leg_id + ";2"


def agent_of_leg(uniqueid: str) -> tuple[int, str] | None:
    """(agent id, leg id) of a Uniqueid made by `new_leg_id` (either half), else None."""
    match = _LEG_ID.match(uniqueid)
    if match is None:
        return None
    return int(match.group(1)), f"agent-{match.group(1)}-{match.group(2)}"


@dataclass(frozen=True, slots=True)
class AgentLegUp:
    agent_id: int
    leg_id: str
    channel: str
    at: float


@dataclass(frozen=True, slots=True)
class AgentLegDown:
    """The leg hung up, or never came up (`failed`, with Asterisk's reason)."""

    agent_id: int
    leg_id: str
    at: float
    failed: bool = False
    cause: int = 0


@dataclass(frozen=True, slots=True)
class AgentLegFound:
    """A leg Asterisk has that this process did not place (left by one that died)."""

    agent_id: int
    leg_id: str
    channel: str
    at: float


AgentLegNotice = AgentLegUp | AgentLegDown | AgentLegFound


@dataclass(frozen=True, slots=True)
class Leg:
    agent_id: int
    leg_id: str
    action_id: str = ""
    channel: str = ""
    up: bool = False


@dataclass
class AgentLegTracker:
    legs: dict[str, Leg] = field(default_factory=dict)  # by leg id
    _by_action: dict[str, str] = field(default_factory=dict)

    def expect(self, agent_id: int, leg_id: str, action_id: str = "") -> None:
        """Register a leg before its Originate is sent."""
        self.legs[leg_id] = Leg(agent_id, leg_id, action_id)
        if action_id:
            self._by_action[action_id] = leg_id

    def bind_action(self, leg_id: str, action_id: str) -> None:
        leg = self.legs.get(leg_id)
        if leg is not None:
            self.legs[leg_id] = replace(leg, action_id=action_id)
            self._by_action[action_id] = leg_id

    def leg_of(self, agent_id: int) -> Leg | None:
        """The agent's current leg (the newest one we placed or adopted)."""
        found = None
        for leg in self.legs.values():
            if leg.agent_id == agent_id:
                found = leg
        return found

    def forget(self, leg_id: str) -> None:
        leg = self.legs.pop(leg_id, None)
        if leg is not None and leg.action_id:
            self._by_action.pop(leg.action_id, None)

    def feed(self, event: AmiEvent, at: float) -> list[AgentLegNotice]:
        if isinstance(event, OriginateResponse):
            leg_id = self._by_action.get(event.action_id)
            if leg_id is None:
                found = agent_of_leg(event.uniqueid)
                leg_id = found[1] if found is not None and found[1] in self.legs else None
            if leg_id is None:
                return []
            self._by_action.pop(event.action_id, None)
            leg = self.legs[leg_id]
            if event.success:
                return self._up(leg, event.channel_name if not leg.channel else leg.channel, at)
            self.forget(leg_id)
            return [AgentLegDown(leg.agent_id, leg_id, at, failed=True, cause=event.reason)]
        channel = getattr(event, "channel", None)
        if channel is None:
            return []
        found = agent_of_leg(channel.uniqueid)
        if found is None or found[1] not in self.legs:
            return []
        leg = self.legs[found[1]]
        near = channel.uniqueid == leg.leg_id
        if isinstance(event, NewChannel | NewState) and near and not leg.channel:
            self.legs[leg.leg_id] = replace(leg, channel=channel.name)
        elif isinstance(event, ConfbridgeJoin) and near:
            return self._up(leg, channel.name, at)
        elif isinstance(event, Hangup):
            self.forget(leg.leg_id)
            return [
                AgentLegDown(leg.agent_id, leg.leg_id, at, failed=not leg.up, cause=event.cause)
            ]
        return []

    def _up(self, leg: Leg, channel: str, at: float) -> list[AgentLegNotice]:
        if leg.up:
            return []
        self.legs[leg.leg_id] = replace(leg, up=True, channel=channel or leg.channel)
        return [AgentLegUp(leg.agent_id, leg.leg_id, channel or leg.channel, at)]

    def reconcile(self, snapshot: Iterable[CoreShowChannel], at: float) -> list[AgentLegNotice]:
        """Apply a CoreShowChannels list: legs we knew that Asterisk no longer has are down;
        legs Asterisk has that we do not know (left by a process that died) are reported
        found, for the dialer to adopt or hang up."""
        present: dict[str, str] = {}
        for item in snapshot:
            found = agent_of_leg(item.channel.uniqueid)
            if found is not None and item.channel.uniqueid == found[1]:
                present[found[1]] = item.channel.name
        notices: list[AgentLegNotice] = []
        for leg in list(self.legs.values()):
            if leg.leg_id not in present:
                if leg.up or not leg.action_id:
                    self.forget(leg.leg_id)
                    notices.append(AgentLegDown(leg.agent_id, leg.leg_id, at, failed=not leg.up))
            elif not leg.up:
                notices += self._up(leg, present[leg.leg_id], at)
        for leg_id, channel in present.items():
            if leg_id not in self.legs:
                found = agent_of_leg(leg_id)
                if found is not None:
                    notices.append(AgentLegFound(found[0], leg_id, channel, at))
        return notices

    def adopt(self, agent_id: int, leg_id: str, channel: str) -> None:
        """Take over a leg left up by a previous process."""
        self.legs[leg_id] = Leg(agent_id, leg_id, channel=channel, up=True)
