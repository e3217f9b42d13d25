"""Outbound calls over one AMI connection: dial, follow, connect, abandon, reconcile.

`CallControl` owns the `CallTracker` and the single task that reads the client's event
stream in order and feeds the state machines. The dialer engine calls `dial`,
`connect_to_agent`, `abandon` and `cancel`, and reads `notices()`: every notice comes
with the latency from the AMI bytes arriving to the decision being available.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from core.tasks import cancel_and_wait
from dialer.agent_legs import (
    AgentLegDown,
    AgentLegNotice,
    AgentLegTracker,
    far_half,
    new_leg_id,
)
from dialer.ami_client import (
    AmiActionFailed,
    AmiClient,
    AmiDisconnected,
    ConnectionLost,
    OriginateRequest,
    ReceivedEvent,
    Reconnected,
)
from dialer.ami_events import CoreShowChannel
from dialer.call_notices import DialRefused, LinkChanged
from dialer.call_state import CallAttempt, CallNotice, CallRules, channel_ids
from dialer.call_tracker import CallTracker
from dialer.inbound_calls import InboundNotice, InboundTracker

log = logging.getLogger(__name__)

# Dialplan contexts of asterisk_conf/extensions.conf.
HOLD_CONTEXT = "pratica-hold"
AMD_CONTEXT = "pratica-amd"
JOIN_AGENT_CONTEXT = "pratica-join-agent"
ABANDON_CONTEXT = "pratica-abandon"
AGENT_CONF_CONTEXT = "pratica-agent-conf"
INBOUND_TIMEOUT_CONTEXT = "pratica-inbound-timeout"


class DuplicateAttempt(Exception):
    """An attempt id that was already dialed: refused, so no lead is dialed twice."""


class UnknownCall(Exception):
    pass


Notice = CallNotice | InboundNotice | AgentLegNotice | LinkChanged


@dataclass(frozen=True, slots=True)
class Decision:
    notice: Notice
    latency: float  # seconds from the event's bytes being decoded to this notice


@dataclass
class CallControl:
    client: AmiClient
    rules: CallRules = field(default_factory=CallRules)
    tracker: CallTracker = field(init=False)
    inbound: InboundTracker = field(default_factory=InboundTracker)
    legs: AgentLegTracker = field(default_factory=AgentLegTracker)
    _out: asyncio.Queue[Decision] = field(default_factory=asyncio.Queue)
    _pump: asyncio.Task[None] | None = None
    link_up: bool = True

    def __post_init__(self) -> None:
        self.tracker = CallTracker(self.rules)

    def start(self) -> None:
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run())

    async def snapshot(self) -> list[CoreShowChannel]:
        """What Asterisk has now (CoreShowChannels)."""
        return await self.client.core_show_channels()

    async def resume(self, snapshot: Sequence[CoreShowChannel] | None = None) -> int:
        """After a process restart: adopt the calls Asterisk still has (CoreShowChannels).

        Their missed notices (answered, live and waiting, connected) are reported like
        after a reconnect, and agents' legs left up are reported found. Returns the number
        of calls adopted.
        """
        if snapshot is None:
            snapshot = await self.client.core_show_channels()
        for notice in self.reconcile_now(snapshot):
            self._out.put_nowait(Decision(notice, 0.0))
        return self.tracker.active + self.inbound.active

    def reconcile_now(self, snapshot: Sequence[CoreShowChannel]) -> list[Notice]:
        """Apply a CoreShowChannels list and return the notices, for a caller that acts on
        them at once (the engine's recovery at start) instead of through `notices()`."""
        return self._reconcile(snapshot, asyncio.get_running_loop().time())

    def _reconcile(self, snapshot: Sequence[CoreShowChannel], at: float) -> list[Notice]:
        notices: list[Notice] = [*self.tracker.reconcile(snapshot, at)]
        notices += self.inbound.reconcile(snapshot, at)
        notices += self.legs.reconcile(snapshot, at)
        return notices

    async def stop(self) -> None:
        await cancel_and_wait(self._pump)
        self._pump = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        async for item in self.client.events():
            notices: Sequence[Notice]
            if isinstance(item, ReceivedEvent):
                if item.event is None:
                    continue
                notices = self.tracker.feed(item.event, item.received_at)
                inbound = self.inbound.feed(item.event, item.received_at)
                legs = self.legs.feed(item.event, item.received_at)
                if inbound or legs:
                    notices = [*notices, *inbound, *legs]
                received = item.received_at
            elif isinstance(item, Reconnected):
                self.link_up = True
                notices = [*self._reconcile(item.snapshot, item.at), LinkChanged(True, item.at)]
                received = item.at
                log.info("AMI reconciled: %d notices, %d calls live", len(notices) - 1,
                         self.tracker.active)  # fmt: skip
            elif isinstance(item, ConnectionLost):
                self.link_up = False
                notices = [LinkChanged(False, item.at)]
                received = item.at
            now = loop.time()
            for notice in notices:
                self._out.put_nowait(Decision(notice, now - received))

    async def notices(self) -> AsyncIterator[Decision]:
        while True:
            yield await self._out.get()

    def call(self, attempt_id: str) -> CallAttempt:
        call = self.tracker.get(attempt_id)
        if call is None:
            raise UnknownCall(attempt_id)
        return call

    async def dial(
        self,
        attempt_id: str,
        dial_string: str,
        *,
        context: str = HOLD_CONTEXT,
        exten: str = "s",
        timeout: float = 30.0,
        caller_id: str = "",
        variables: Mapping[str, str] | None = None,
    ) -> bool:
        """Originate once. False when the link dropped before Asterisk answered the action:
        the call stays pending and reconciliation decides (it is never re-sent)."""
        if self.tracker.get(attempt_id) is not None:
            raise DuplicateAttempt(attempt_id)
        loop = asyncio.get_running_loop()
        channel_id, _ = channel_ids(attempt_id)
        self.tracker.expect(attempt_id, channel_id, loop.time())
        request = OriginateRequest(
            attempt_id, dial_string, context, exten, 1, timeout, caller_id, dict(variables or {})
        )
        try:
            await self.client.originate(request)
        except AmiActionFailed as exc:
            # Refused before anything was queued (shutting down, bad extension, ...): the
            # debtor's phone never rang. Not an ended call: a refusal of its own.
            log.warning("originate of attempt %s refused: %s", attempt_id, exc)
            self.tracker.refused(attempt_id, loop.time())
            self._out.put_nowait(Decision(DialRefused(attempt_id, str(exc), loop.time()), 0.0))
            return False
        except AmiDisconnected:
            log.warning("AMI dropped while originating attempt %s; reconciling later", attempt_id)
            return False
        return True

    async def connect_to_agent(self, attempt_id: str, agent_id: str) -> None:
        """Move a live debtor into the agent's nailed-up conference."""
        await self.client.redirect(self.call(attempt_id).channel, JOIN_AGENT_CONTEXT, agent_id)

    async def redirect_to(self, attempt_id: str, context: str, exten: str = "s") -> None:
        """Send a call (outbound attempt or inbound caller) to a dialplan context."""
        channel = self.inbound.channel(attempt_id)
        if channel is None:
            channel = self.call(attempt_id).channel
        await self.client.redirect(channel, context, exten)

    async def abandon(self, attempt_id: str) -> None:
        """No agent in time: play the abandonment message."""
        await self.client.redirect(self.call(attempt_id).channel, ABANDON_CONTEXT, "s")

    async def cancel(self, attempt_id: str) -> None:
        """Stop a call that is still ringing (or any call of this attempt)."""
        call = self.call(attempt_id)
        if call.channel:
            await self.client.hangup(call.channel)

    def _inbound_channel(self, attempt_id: str) -> str:
        channel = self.inbound.channel(attempt_id)
        if channel is None:
            raise UnknownCall(attempt_id)
        return channel

    async def connect_inbound(self, attempt_id: str, agent_id: str) -> None:
        """Move a waiting inbound caller into the agent's conference."""
        await self.client.redirect(self._inbound_channel(attempt_id), JOIN_AGENT_CONTEXT, agent_id)

    async def inbound_timeout(self, attempt_id: str) -> None:
        """No agent within the queue's maximum wait: the callback message, then hang up."""
        await self.client.redirect(self._inbound_channel(attempt_id), INBOUND_TIMEOUT_CONTEXT, "s")

    async def login_agent(self, agent_id: int, dial_string: str) -> str:
        """Nail up an agent's leg into its own conference for the shift; returns its leg id.
        The leg counts as up only when Asterisk reports it (`AgentLegUp`); a refused or
        failed Originate is reported `AgentLegDown(failed=True)`."""
        leg_id = new_leg_id(agent_id)
        self.legs.expect(agent_id, leg_id)
        request = OriginateRequest(
            "", dial_string, AGENT_CONF_CONTEXT, str(agent_id), timeout=60.0,
            channel_id=leg_id, other_channel_id=far_half(leg_id),
        )  # fmt: skip
        try:
            await self.client.originate(request)
        except AmiActionFailed as exc:
            self.legs.forget(leg_id)
            at = asyncio.get_running_loop().time()
            self._out.put_nowait(Decision(AgentLegDown(agent_id, leg_id, at, failed=True), 0.0))
            raise exc
        return leg_id

    async def hangup_agent_leg(self, agent_id: int) -> bool:
        """Hang up the agent's leg (the agent left); False when it has none we know of."""
        leg = self.legs.leg_of(agent_id)
        if leg is None:
            return False
        if not leg.channel:
            return False
        await self.client.hangup(leg.channel)
        return True

    def adopt_agent_leg(self, agent_id: int, leg_id: str, channel: str) -> None:
        self.legs.adopt(agent_id, leg_id, channel)

    async def hangup_channel(self, channel: str) -> None:
        await self.client.hangup(channel)
