"""The event bus over Redis: Streams with consumer groups for durable topics, pub/sub for
ephemeral channels. Same contract as `core.bus.InProcessBus` (tests run both)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from core.bus import EventBus, Message, Subscription

_PREFIX = "pratica:"


def _encode(data: Mapping[str, Any]) -> str:
    return json.dumps(dict(data), default=str, separators=(",", ":"))


def _split(patterns: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """Redis channel names and glob patterns, prefixed."""
    exact = {_PREFIX + p for p in patterns if "*" not in p and "?" not in p}
    globs = {_PREFIX + p for p in patterns if "*" in p or "?" in p}
    return exact, globs


class _PubSubSubscription(Subscription):
    """One pub/sub connection. Whoever reads it (a get(), or an update() or listen()
    waiting for Redis to confirm new channels) holds `_reader`; what it reads goes to the
    buffer, so a message that arrives while confirmations are awaited is kept, not lost."""

    def __init__(self, pubsub: aioredis.client.PubSub, patterns: tuple[str, ...]):
        self.pubsub = pubsub
        self.exact, self.globs = _split(patterns)
        self.connected = bool(self.exact or self.globs)  # the pubsub has its connection
        self._buffer: deque[Message] = deque()
        self._unconfirmed = len(self.exact) + len(self.globs)
        self._reader = asyncio.Lock()

    async def update(self, *patterns: str) -> None:
        # Same connection: what Redis already sends on channels kept keeps coming. Returns
        # once Redis has confirmed the new channels, so a broadcast sent after it is seen.
        exact, globs = _split(patterns)
        added_exact, added_globs = exact - self.exact, globs - self.globs
        # Counted before sending: a get() in another task may read the confirmation first.
        self._unconfirmed += len(added_exact) + len(added_globs)
        if added_exact:
            await self.pubsub.subscribe(*added_exact)
        if added_globs:
            await self.pubsub.psubscribe(*added_globs)
        if self.exact - exact:
            await self.pubsub.unsubscribe(*(self.exact - exact))
        if self.globs - globs:
            await self.pubsub.punsubscribe(*(self.globs - globs))
        self.connected = self.connected or bool(exact or globs)
        self.exact, self.globs = exact, globs
        await self.confirmed()

    async def confirmed(self, timeout: float = 2.0) -> None:
        """Wait until Redis has confirmed every channel subscribed so far."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._unconfirmed > 0:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConnectionError("Redis did not confirm the subscription")
            async with self._reader:
                if self._unconfirmed > 0:
                    await self._read_one(min(remaining, 0.25))

    async def _read_one(self, timeout: float) -> None:
        raw = await self.pubsub.get_message(timeout=timeout)
        if raw is None:
            return
        if raw.get("type") in {"subscribe", "psubscribe"}:
            # (After a reconnect redis-py subscribes again: those confirmations count for
            # nothing.)
            self._unconfirmed = max(0, self._unconfirmed - 1)
            return
        message = self._to_message(raw)
        if message is not None:
            self._buffer.append(message)

    def _to_message(self, raw: dict[str, Any]) -> Message | None:
        if raw.get("type") not in {"message", "pmessage"}:
            return None
        channel = raw["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        body = json.loads(raw["data"])
        return Message(channel.removeprefix(_PREFIX), str(body.pop("_id", "")), body)

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            message = await self.get(timeout=None)
            if message is not None:
                yield message

    async def get(self, timeout: float | None = None) -> Message | None:
        if self._buffer:
            return self._buffer.popleft()
        if not self.connected:  # listening on nothing yet: nothing can come
            await asyncio.sleep(1.0 if timeout is None else timeout)
            return None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            wait = 1.0 if deadline is None else max(0.0, deadline - loop.time())
            async with self._reader:
                if not self._buffer:
                    await self._read_one(wait)
            if self._buffer:
                return self._buffer.popleft()
            if deadline is not None and loop.time() >= deadline:
                return None


class RedisBus(EventBus):
    def __init__(self, url: str, maxlen: int = 100_000):
        self.redis: aioredis.Redis = aioredis.from_url(url, decode_responses=True)
        self.maxlen = maxlen
        self._groups: set[tuple[str, str]] = set()
        self._seq = 0

    async def publish(self, topic: str, data: Mapping[str, Any]) -> str:
        message_id = await self.redis.xadd(
            _PREFIX + topic, {"d": _encode(data)}, maxlen=self.maxlen, approximate=True
        )
        return str(message_id)

    async def _ensure_group(self, topic: str, group: str) -> None:
        if (topic, group) in self._groups:
            return
        try:
            # A new group starts at the beginning of the retained stream, so nothing
            # published before the first consumer started is lost.
            await self.redis.xgroup_create(_PREFIX + topic, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add((topic, group))

    def _decode(self, topic: str, reply: Any) -> list[Message]:
        # XREADGROUP answers [[stream, entries]] over RESP2 and {stream: entries} over RESP3.
        if not reply:
            return []
        entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
        out = []
        for message_id, fields in entries:
            if fields is None:  # deleted by trimming while pending
                continue
            out.append(Message(topic, str(message_id), json.loads(fields["d"])))
        return out

    async def read(
        self, topic: str, group: str, consumer: str, count: int = 100, block: float = 0.0
    ) -> list[Message]:
        await self._ensure_group(topic, group)
        key = _PREFIX + topic
        pending = self._decode(
            topic, await self.redis.xreadgroup(group, consumer, {key: "0"}, count=count)
        )
        if pending:
            return pending
        fresh = await self.redis.xreadgroup(
            group, consumer, {key: ">"}, count=count, block=int(block * 1000) if block > 0 else None
        )
        return self._decode(topic, fresh)

    async def join_at_end(self, topic: str, group: str) -> None:
        key = _PREFIX + topic
        try:
            await self.redis.xgroup_create(key, group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            # Existing group: forget its pending entries and move it to the end.
            await self.redis.xgroup_destroy(key, group)
            await self.redis.xgroup_create(key, group, id="$", mkstream=True)
        self._groups.add((topic, group))

    async def ack(self, topic: str, group: str, *ids: str) -> None:
        if ids:
            await self.redis.xack(_PREFIX + topic, group, *ids)

    async def broadcast(self, channel: str, data: Mapping[str, Any]) -> None:
        self._seq += 1
        body = dict(data)
        body["_id"] = f"{self._seq}-0"
        await self.redis.publish(_PREFIX + channel, _encode(body))

    @contextlib.asynccontextmanager
    async def listen(self, *patterns: str) -> AsyncIterator[Subscription]:
        pubsub = self.redis.pubsub()
        exact, globs = _split(patterns)
        try:
            if exact:
                await pubsub.subscribe(*exact)
            if globs:
                await pubsub.psubscribe(*globs)
            subscription = _PubSubSubscription(pubsub, patterns)
            # Confirmed before it is handed out, so a broadcast sent right after listen()
            # is seen (and one that arrived meanwhile is kept).
            await subscription.confirmed()
            yield subscription
        finally:
            await pubsub.aclose()

    async def close(self) -> None:
        await self.redis.aclose()
