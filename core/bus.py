"""The event bus: what happened, carried to whoever listens.

Two kinds of traffic with different guarantees:

- durable *topics* (`publish` / `consume`): an append-only log per topic; each consumer
  group sees every message once, in order; a message stays pending for its group until
  acknowledged, and a consumer that restarts under the same name gets its pending
  messages again. Used for things that must not be lost (activity appended, call ended,
  CRM outbox).
- ephemeral *channels* (`broadcast` / `listen`): live updates delivered to whoever is
  listening right now, nothing kept (agent state for the wallboard, a case's timeline
  followed live in a browser).

`InProcessBus` is the single-node default; `core.bus_redis.RedisBus` implements the same
contract over Redis Streams and pub/sub for several nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Message:
    """One event: `topic` or channel it was sent on, its id, and a JSON-able payload."""

    topic: str
    id: str
    data: Mapping[str, Any]


class Subscription(ABC):
    """Messages arriving on the listened channels, as an async iterator."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[Message]: ...

    @abstractmethod
    async def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None when `timeout` seconds pass without one."""

    @abstractmethod
    async def update(self, *patterns: str) -> None:
        """Listen on these channels from now on, in place of the previous ones: nothing
        already received or still to come on a channel kept is lost (a new listener
        would drop what the old one had queued, and miss what came in between)."""


class EventBus(ABC):
    @abstractmethod
    async def publish(self, topic: str, data: Mapping[str, Any]) -> str:
        """Append to a durable topic; returns the message id (ordered within the topic)."""

    @abstractmethod
    async def read(
        self, topic: str, group: str, consumer: str, count: int = 100, block: float = 0.0
    ) -> list[Message]:
        """Up to `count` messages for this group: first this consumer's pending ones, then
        new ones, waiting up to `block` seconds when there are none."""

    @abstractmethod
    async def join_at_end(self, topic: str, group: str) -> None:
        """Create the group, or move an existing one, to the end of the topic: it will see
        only messages published from now on (for consumers that rebuild their state from
        the database first, like live counters)."""

    @abstractmethod
    async def ack(self, topic: str, group: str, *ids: str) -> None:
        """Mark messages handled for `group`; they will not be delivered to it again."""

    @abstractmethod
    async def broadcast(self, channel: str, data: Mapping[str, Any]) -> None:
        """Deliver to current listeners of `channel`; nothing is kept."""

    @abstractmethod
    def listen(self, *patterns: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """Subscribe to channels; a pattern may end in `*` (e.g. `case:*`)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the bus is unusable afterwards."""

    async def consume(
        self, topic: str, group: str, consumer: str, block: float = 1.0
    ) -> AsyncIterator[Message]:
        """Endless iterator over a group's messages; the caller acks each one it handled."""
        while True:
            for message in await self.read(topic, group, consumer, block=block):
                yield message


@dataclass
class _Group:
    next_index: int = 0  # index in the topic's log of the first never-delivered message
    pending: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    acked: set[str] = field(default_factory=set)


class _QueueSubscription(Subscription):
    def __init__(self, patterns: tuple[str, ...]):
        self.patterns = patterns
        self.queue: asyncio.Queue[Message] = asyncio.Queue()

    def wants(self, channel: str) -> bool:
        return any(fnmatch.fnmatchcase(channel, p) for p in self.patterns)

    async def update(self, *patterns: str) -> None:
        self.patterns = patterns

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            yield await self.queue.get()

    async def get(self, timeout: float | None = None) -> Message | None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result instead
        # of raising when a cancellation arrives as the awaited call completes, so a task
        # cancelled at that instant kept running (and whoever awaited it, forever).
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None


class InProcessBus(EventBus):
    """Single-process bus. A topic keeps what some group has yet to read or acknowledge,
    up to `maxlen` messages like a capped stream, and of what every group has consumed
    only the newest `history` (what a group created later starts from). Every consumer
    lives in this process, so keeping more would only hold memory: a node's topics see a
    few messages per call, each with its activity's body, for months."""

    def __init__(self, maxlen: int = 100_000, history: int = 1_000):
        if history < 0 or maxlen < 1:
            raise ValueError("maxlen must be positive and history not negative")
        self.maxlen = maxlen
        self.history = min(history, maxlen)
        self._logs: dict[str, list[Message]] = defaultdict(list)
        self._offsets: dict[str, int] = defaultdict(int)  # messages trimmed off each log
        self._groups: dict[tuple[str, str], _Group] = {}
        self._since_trim: dict[str, int] = defaultdict(int)
        self._seq = itertools.count(1)
        self._changed = asyncio.Condition()
        self._listeners: list[_QueueSubscription] = []

    async def publish(self, topic: str, data: Mapping[str, Any]) -> str:
        message = Message(topic, f"{next(self._seq)}-0", dict(data))
        log = self._logs[topic]
        log.append(message)
        if len(log) > self.maxlen:
            self._drop(topic, len(log) - self.maxlen)
        self._since_trim[topic] += 1
        # Amortized: the consumed prefix is looked for every `history` messages or so.
        if len(log) > self.history and self._since_trim[topic] > max(self.history, 64):
            self._trim(topic)
        async with self._changed:
            self._changed.notify_all()
        return message.id

    def retained(self, topic: str) -> int:
        """Messages the topic holds now."""
        return len(self._logs.get(topic, ()))

    def _drop(self, topic: str, count: int) -> None:
        del self._logs[topic][:count]
        self._offsets[topic] += count

    def _trim(self, topic: str) -> None:
        """Drop what every group has read and acknowledged, but the newest `history`."""
        self._since_trim[topic] = 0
        offset, log = self._offsets[topic], self._logs[topic]
        end = offset + len(log)
        needed = end  # the first message some group has not consumed
        for (name, _group), state in self._groups.items():
            if name != topic:
                continue
            needed = min(needed, state.next_index)
            for pending in state.pending.values():
                if pending:
                    needed = min(needed, min(pending.values()))
        keep_from = min(needed, end - self.history)
        if keep_from > offset:
            self._drop(topic, keep_from - offset)

    def _take(self, topic: str, group: str, consumer: str, count: int) -> list[Message]:
        state = self._groups.setdefault((topic, group), _Group())
        log = self._logs[topic]
        offset = self._offsets[topic]
        out: list[Message] = []
        mine = state.pending[consumer]
        # Redelivery of this consumer's unacked messages first, like XREADGROUP id 0.
        for message_id, index in list(mine.items()):
            if len(out) >= count:
                return out
            if index - offset >= 0:
                out.append(log[index - offset])
            else:
                del mine[message_id]  # trimmed away before it was acknowledged
        if out:
            return out
        state.next_index = max(state.next_index, offset)
        while state.next_index - offset < len(log) and len(out) < count:
            message = log[state.next_index - offset]
            mine[message.id] = state.next_index
            state.next_index += 1
            out.append(message)
        return out

    async def read(
        self, topic: str, group: str, consumer: str, count: int = 100, block: float = 0.0
    ) -> list[Message]:
        out = self._take(topic, group, consumer, count)
        if out or block <= 0:
            return out
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block
        async with self._changed:
            while not out:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                # Not wait_for (see _QueueSubscription.get): a reader cancelled as a
                # message arrived went on reading, and `LiveStats.stop()` waited forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._changed.wait()
                out = self._take(topic, group, consumer, count)
        return out

    async def join_at_end(self, topic: str, group: str) -> None:
        self._groups[(topic, group)] = _Group(
            next_index=self._offsets[topic] + len(self._logs[topic])
        )

    async def ack(self, topic: str, group: str, *ids: str) -> None:
        state = self._groups.get((topic, group))
        if state is None:
            return
        for pending in state.pending.values():
            for message_id in ids:
                pending.pop(message_id, None)

    async def broadcast(self, channel: str, data: Mapping[str, Any]) -> None:
        message = Message(channel, f"{next(self._seq)}-0", dict(data))
        for listener in self._listeners:
            if listener.wants(channel):
                listener.queue.put_nowait(message)

    @contextlib.asynccontextmanager
    async def listen(self, *patterns: str) -> AsyncIterator[Subscription]:
        listener = _QueueSubscription(patterns)
        self._listeners.append(listener)
        try:
            yield listener
        finally:
            self._listeners.remove(listener)
