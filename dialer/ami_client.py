"""The AMI client: the one module that imports panoramisk, wrapped in a typed API.

panoramisk 1.4 keeps the transport, the ActionID bookkeeping and the reconnect loop;
this adapter removes its sharp edges:

- framing uses our codec (`PraticaProtocol.data_received`), so garbage lines and huge
  headers are bounded and every event, including the OriginateResponse that panoramisk
  would swallow into an action future, reaches one queue in wire order;
- every action is forgettable (never re-sent after a reconnect: no double dial), has a
  timeout, and fails with `AmiDisconnected` when the link drops;
- login is ours and awaited; a wrong secret is a logged `AmiAuthenticationError`, a
  health status, and no endless retry;
- a health ping with a timeout aborts a half-open link so panoramisk reconnects;
- `Originate` always carries `Async: true`, our ChannelId pair and the ATTEMPT variable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from panoramisk import Manager
from panoramisk.actions import Action
from panoramisk.message import Message

from core.settings import AmiSettings
from dialer.ami_api import (
    AmiActionFailed,
    AmiAuthenticationError,
    AmiDisconnected,
    AmiError,
    AmiTimeout,
    ConnectionLost,
    HealthStatus,
    OriginateRequest,
    ReceivedEvent,
    Reconnected,
    StreamItem,
)
from dialer.ami_codec import AmiMessage, encode_message
from dialer.ami_events import CoreShowChannel, parse_event
from dialer.ami_protocol import PraticaProtocol

__all__ = [
    "AmiActionFailed",
    "AmiAuthenticationError",
    "AmiClient",
    "AmiDisconnected",
    "AmiError",
    "AmiTimeout",
    "ConnectionLost",
    "HealthStatus",
    "OriginateRequest",
    "ReceivedEvent",
    "Reconnected",
    "StreamItem",
]

log = logging.getLogger(__name__)

ACTIONS = (
    "login",
    "logoff",
    "ping",
    "originate",
    "redirect",
    "bridge",
    "hangup",
    "setvar",
    "getvar",
    "coreshowchannels",
    "status",
    "events",
)


class _Manager(Manager):
    """Stops panoramisk from reconnecting once we decided to stop."""

    stopped = False

    last_connect_error = ""

    def connection_made(self, f: Any) -> None:
        if not f.cancelled() and f.exception() is not None:
            self.last_connect_error = str(f.exception())
        super().connection_made(f)

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        if self.stopped:
            return None
        return super().connect(*args, **kwargs)

    def dispatch(self, event: Message) -> list[str]:
        # Events reach the adapter through the protocol sink, in order; panoramisk's
        # ensure_future dispatch is not used.
        return []


class AmiClient:
    """One AMI connection. Start with `await connect()`, read `events()` from one task."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        action_timeout: float = 5.0,
        ping_interval: float = 10.0,
        ping_timeout: float | None = None,
        reconnect_delay: float = 1.0,
        events: str = "on",
        max_backlog: int = 200_000,
    ):
        self.host, self.port = host, port
        self.username = username
        self._secret = secret
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout if ping_timeout is not None else action_timeout
        self.event_mask = events
        self.max_backlog = max_backlog
        self.health = HealthStatus.DISCONNECTED
        self.last_error = ""
        self.logins = 0
        self._queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        self._pending: set[asyncio.Future[Any]] = set()
        self._login_waiter: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._action_seq = 0
        self._manager = _Manager(
            host=host,
            port=port,
            events=events,
            protocol_factory=PraticaProtocol,
            forgetable_actions=ACTIONS,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
        )
        self._manager.pratica_sink = self._sink
        # panoramisk casts these to int in its constructor; ours may be fractional.
        self._manager.reconnect_timeout = reconnect_delay
        self._manager.ping_delay = 10**9  # its keepalive has no timeout: ours replaces it

    @classmethod
    def from_settings(cls, ami: AmiSettings) -> AmiClient:
        """From `core.settings.AmiSettings`."""
        return cls(
            ami.host,
            ami.port,
            ami.username,
            ami.secret,
            action_timeout=ami.action_timeout,
            ping_interval=ami.ping_interval,
            events=ami.events,
        )

    # --- lifecycle ---------------------------------------------------------------------

    async def connect(self, timeout: float | None = None) -> None:
        """Connect and log in; returns once logged in, raises if refused or timed out."""
        loop = asyncio.get_running_loop()
        self._manager.loop = loop
        self._manager.stopped = False
        self._login_waiter = loop.create_future()
        self.health = HealthStatus.CONNECTING
        self._manager.connect()
        try:
            async with asyncio.timeout(timeout or self.action_timeout * 2):  # see _send
                await asyncio.shield(self._login_waiter)
        except TimeoutError:
            reason = self._manager.last_connect_error or "no reply to Login"
            self.last_error = f"no AMI login at {self.host}:{self.port} in time: {reason}"
            log.error("%s", self.last_error)
            await self.close()
            raise AmiTimeout(self.last_error) from None
        except AmiAuthenticationError:
            await self.close()
            raise
        self._spawn(self._health_loop())

    async def close(self) -> None:
        if self.health is HealthStatus.UP:
            try:
                await self._send([("Action", "Logoff")], timeout=0.5, check=False)
            except AmiError:
                pass  # closing anyway
        self._manager.stopped = True
        for task in list(self._tasks):
            task.cancel()
        self._manager.close()
        self._fail_pending(AmiDisconnected("AMI client closed"))
        if self.health is not HealthStatus.AUTH_FAILED:
            self.health = HealthStatus.CLOSED

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("AMI client task failed", exc_info=task.exception())

    def _on_connect(self, manager: Manager) -> None:
        self._spawn(self._login())

    def _on_disconnect(self, manager: Manager, exc: Exception | None) -> None:
        loop = asyncio.get_running_loop()
        if self.health not in (HealthStatus.AUTH_FAILED, HealthStatus.CLOSED):
            self.health = HealthStatus.DISCONNECTED
            log.warning("AMI connection to %s:%s lost; reconnecting", self.host, self.port)
            self._queue.put_nowait(ConnectionLost(loop.time()))
        self._fail_pending(AmiDisconnected("AMI connection lost"))

    def _fail_pending(self, error: AmiError) -> None:
        for future in list(self._pending):
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    async def _login(self) -> None:
        waiter = self._login_waiter
        try:
            replies = await self._send(
                [
                    ("Action", "Login"),
                    ("Username", self.username),
                    ("Secret", self._secret),
                    ("Events", self.event_mask),
                ],
                check=False,
            )
        except AmiError as exc:
            log.warning("AMI login did not complete: %s", exc)
            return
        reply = _as_list(replies)[0]
        if reply.response != "Success":
            self.health = HealthStatus.AUTH_FAILED
            self.last_error = (
                f"AMI login refused for user {self.username!r} at {self.host}:{self.port}: "
                f"{reply.get('Message') or reply.response} (check [ami] username/secret)"
            )
            log.error("%s", self.last_error)
            self._manager.stopped = True
            self._manager.close()
            if waiter is not None and not waiter.done():
                waiter.set_exception(AmiAuthenticationError(self.last_error))
            return
        self.logins += 1
        self.health = HealthStatus.UP
        self.last_error = ""
        log.info("AMI logged in to %s:%s as %s", self.host, self.port, self.username)
        if self.logins > 1:
            self._spawn(self._after_reconnect())
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _after_reconnect(self) -> None:
        try:
            snapshot = await self.core_show_channels()
        except AmiError as exc:
            log.warning("AMI reconciliation skipped: %s", exc)
            return
        self._queue.put_nowait(Reconnected(tuple(snapshot), asyncio.get_running_loop().time()))

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            if self.health is not HealthStatus.UP:
                continue
            try:
                await self._send([("Action", "Ping")], timeout=self.ping_timeout)
            except AmiTimeout:
                self.health = HealthStatus.UNRESPONSIVE
                self.last_error = f"AMI ping unanswered for {self.ping_timeout:g} s"
                log.error("%s: resetting the connection", self.last_error)
                protocol = self._manager.protocol
                if protocol is not None and protocol.transport is not None:
                    protocol.transport.abort()
            except AmiError:
                continue

    # --- events ------------------------------------------------------------------------

    def _sink(self, message: AmiMessage) -> None:
        loop = asyncio.get_running_loop()
        self._queue.put_nowait(ReceivedEvent(message, parse_event(message), loop.time()))
        if self._queue.qsize() > self.max_backlog:
            # The consumer is stalled: rather than grow without bound, drop the link;
            # after the reconnect, reconciliation rebuilds the state of every call.
            self.last_error = f"AMI event backlog over {self.max_backlog}: resetting the link"
            log.error("%s", self.last_error)
            protocol = self._manager.protocol
            if protocol is not None and protocol.transport is not None:
                protocol.transport.abort()

    async def events(self) -> AsyncIterator[StreamItem]:
        """Events in AMI order, plus ConnectionLost/Reconnected markers. One consumer."""
        while True:
            yield await self._queue.get()

    # --- actions -----------------------------------------------------------------------

    def _next_action_id(self, name: str) -> str:
        self._action_seq += 1
        return f"pratica-{name.lower()}-{self._action_seq}"

    async def _send(
        self,
        headers: Sequence[tuple[str, str]],
        *,
        expect_list: bool = False,
        timeout: float | None = None,
        check: bool = True,
    ) -> AmiMessage | list[AmiMessage]:
        encode_message(headers)  # refuses CR/LF in values before anything is sent
        protocol = self._manager.protocol
        name = headers[0][1]
        if (
            protocol is None
            or protocol.closed
            or (self.health is not HealthStatus.UP and name != "Login")
        ):
            raise AmiDisconnected(f"AMI not connected ({self.health.value}); {name} not sent")
        fields: dict[str, Any] = {}
        for key, value in headers:
            previous = fields.get(key)
            if previous is None:
                fields[key] = value
            else:
                fields[key] = (
                    [*previous, value] if isinstance(previous, list) else [previous, value]
                )
        fields.setdefault("ActionID", self._next_action_id(name))
        # For lists, panoramisk must detect the list from the first response: with
        # as_list=True a list action answered by `Response: Error` never resolves.
        as_list = None if expect_list else False
        action = Action(fields, as_list=as_list)
        future = self._manager.send_action(action, as_list=as_list)
        self._pending.add(future)
        try:
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives
            # in the same loop turn as the reply, so the engine's tick task outlived
            # engine.stop() (which then waited for it forever).
            async with asyncio.timeout(timeout or self.action_timeout):
                reply = await asyncio.shield(future)
        except TimeoutError:
            raise AmiTimeout(
                f"no reply to {name} within {timeout or self.action_timeout:g} s"
            ) from None
        finally:
            self._pending.discard(future)
        result: AmiMessage | list[AmiMessage]
        if isinstance(reply, list):
            result = [m.ami for m in reply]
            first = result[0]
        else:
            result = first = reply.ami
        if check and first.response not in ("Success", "Goodbye"):
            raise AmiActionFailed(f"{name}: {first.get('Message') or first.response}")
        if expect_list and not isinstance(result, list):
            result = [result]
        return result

    async def _single(self, headers: Sequence[tuple[str, str]]) -> AmiMessage:
        reply = await self._send(headers)
        if isinstance(reply, list):  # a peer that answered a single action with a list
            raise AmiActionFailed(f"{headers[0][1]}: unexpected list response")
        return reply

    async def originate(self, request: OriginateRequest) -> str:
        """Queue an Originate; returns its ActionID. The outcome arrives as events."""
        action_id = self._next_action_id("originate")
        await self._single(request.headers(action_id))
        return action_id

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1) -> None:
        await self._single([("Action", "Redirect"), ("Channel", channel), ("Context", context),
                            ("Exten", exten), ("Priority", str(priority))])  # fmt: skip

    async def bridge(self, channel1: str, channel2: str, tone: bool = False) -> None:
        await self._single([("Action", "Bridge"), ("Channel1", channel1),
                            ("Channel2", channel2), ("Tone", "yes" if tone else "no")])  # fmt: skip

    async def hangup(self, channel: str, cause: int = 16) -> list[str]:
        """Hang up a channel, or every channel matching `/regex/`; returns those hung up."""
        headers = [("Action", "Hangup"), ("Channel", channel), ("Cause", str(cause))]
        if channel.startswith("/") and channel.endswith("/") and len(channel) > 2:
            replies = await self._send(headers, expect_list=True)
            return [m.get("Channel") for m in _as_list(replies) if m.event == "ChannelHungup"]
        await self._single(headers)
        return [channel]

    async def setvar(self, channel: str, name: str, value: str) -> None:
        await self._single([("Action", "Setvar"), ("Channel", channel), ("Variable", name),
                            ("Value", value)])  # fmt: skip

    async def getvar(self, channel: str, name: str) -> str:
        reply = await self._single([("Action", "Getvar"), ("Channel", channel), ("Variable", name)])
        return reply.get("Value")

    async def core_show_channels(self) -> list[CoreShowChannel]:
        replies = await self._send([("Action", "CoreShowChannels")], expect_list=True)
        out: list[CoreShowChannel] = []
        for message in _as_list(replies):
            event = parse_event(message)
            if isinstance(event, CoreShowChannel):
                out.append(event)
        return out

    async def ping(self) -> float:
        """Round trip of an AMI Ping, in seconds."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self._single([("Action", "Ping")])
        return loop.time() - start


def _as_list(reply: AmiMessage | list[AmiMessage]) -> list[AmiMessage]:
    return reply if isinstance(reply, list) else [reply]
