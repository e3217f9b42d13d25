"""The same contract for both bus implementations; Redis runs against a real server."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from core.bus import EventBus, InProcessBus
from core.bus_redis import RedisBus


@pytest.fixture(params=["in-process", "redis"])
async def bus(request, redis_url: str) -> AsyncIterator[EventBus]:
    if request.param == "in-process":
        instance: EventBus = InProcessBus()
    else:
        instance = RedisBus(redis_url)
        await instance.redis.flushdb()
    try:
        yield instance
    finally:
        await instance.close()


async def test_each_group_sees_every_message_in_order(bus: EventBus):
    ids = [await bus.publish("activities", {"n": n}) for n in range(3)]
    a = await bus.read("activities", "ws-hub", "node1")
    b = await bus.read("activities", "stats", "node1")
    assert [m.data["n"] for m in a] == [0, 1, 2]
    assert [m.id for m in a] == ids
    assert [m.data["n"] for m in b] == [0, 1, 2]


async def test_unacked_messages_are_redelivered_to_a_restarted_consumer(bus: EventBus):
    for n in range(3):
        await bus.publish("calls", {"n": n})
    first = await bus.read("calls", "g", "c1", count=10)
    await bus.ack("calls", "g", first[0].id, first[1].id)
    again = await bus.read("calls", "g", "c1", count=10)
    assert [m.data["n"] for m in again] == [2]
    await bus.ack("calls", "g", again[0].id)
    assert await bus.read("calls", "g", "c1", count=10) == []


async def test_consumers_in_one_group_share_the_work(bus: EventBus):
    for n in range(4):
        await bus.publish("work", {"n": n})
    one = await bus.read("work", "g", "c1", count=2)
    two = await bus.read("work", "g", "c2", count=2)
    assert sorted(m.data["n"] for m in one + two) == [0, 1, 2, 3]


async def test_read_blocks_until_a_message_arrives(bus: EventBus):
    async def later() -> None:
        await asyncio.sleep(0.1)
        await bus.publish("late", {"x": 1})

    task = asyncio.create_task(later())
    got = await bus.read("late", "g", "c", block=2.0)
    await task
    assert [m.data for m in got] == [{"x": 1}]
    assert await bus.read("late", "g2", "c", block=0.05) != []  # new group sees history
    assert await bus.read("late", "g", "c", block=0.05) == [got[0]]  # still pending


async def test_broadcast_reaches_current_listeners_by_pattern(bus: EventBus):
    await bus.broadcast("case:1", {"before": True})  # nobody listening: dropped
    async with bus.listen("case:*", "agents") as sub:
        await bus.broadcast("case:7", {"n": 1})
        await bus.broadcast("campaign:1", {"n": 2})
        await bus.broadcast("agents", {"n": 3})
        first = await sub.get(timeout=2)
        second = await sub.get(timeout=2)
        assert first is not None and second is not None
        assert (first.topic, first.data) == ("case:7", {"n": 1})
        assert (second.topic, second.data) == ("agents", {"n": 3})
        assert await sub.get(timeout=0.1) is None


async def test_a_listener_changes_channels_without_losing_what_it_keeps(bus: EventBus):
    async with bus.listen("agent:4") as sub:
        await bus.broadcast("agent:4", {"n": 1})  # queued before the change
        await sub.update("agent:4", "case:7", "campaign:*")
        await asyncio.sleep(0.05)  # Redis takes the new subscriptions from the same connection
        await bus.broadcast("case:7", {"n": 2})
        await bus.broadcast("campaign:3", {"n": 3})
        await bus.broadcast("agent:4", {"n": 4})
        got = [await sub.get(timeout=2) for _ in range(4)]
        assert [(m.topic, m.data["n"]) for m in got if m is not None] == [
            ("agent:4", 1), ("case:7", 2), ("campaign:3", 3), ("agent:4", 4),
        ]  # fmt: skip
        await sub.update("case:7")
        await asyncio.sleep(0.05)
        await bus.broadcast("agent:4", {"n": 5})  # no longer listened to
        await bus.broadcast("case:7", {"n": 6})
        message = await sub.get(timeout=2)
        assert message is not None and (message.topic, message.data["n"]) == ("case:7", 6)
        assert await sub.get(timeout=0.1) is None


async def test_a_listener_changes_channels_while_a_task_waits_on_it(bus: EventBus):
    """The web socket's pump waits in get() while a request changes the topics."""
    async with bus.listen("case:1") as sub:
        waiting = asyncio.ensure_future(sub.get(timeout=3))
        await asyncio.sleep(0.05)
        await sub.update("case:1", "case:2")
        await asyncio.sleep(0.05)
        await bus.broadcast("case:2", {"n": 1})
        message = await waiting
        assert message is not None and (message.topic, message.data) == ("case:2", {"n": 1})


async def test_a_listener_may_start_on_nothing(bus: EventBus):
    async with bus.listen() as sub:
        assert await sub.get(timeout=0.1) is None
        await sub.update("case:1")
        await asyncio.sleep(0.05)
        await bus.broadcast("case:1", {"n": 1})
        message = await sub.get(timeout=2)
        assert message is not None and message.data == {"n": 1}


async def test_joining_at_the_end_skips_history_and_pending(bus: EventBus):
    await bus.publish("calls", {"n": 1})
    await bus.read("calls", "stats", "c")  # delivered, never acked
    await bus.join_at_end("calls", "stats")
    assert await bus.read("calls", "stats", "c") == []
    await bus.publish("calls", {"n": 2})
    assert [m.data["n"] for m in await bus.read("calls", "stats", "c")] == [2]
    await bus.join_at_end("calls", "fresh")
    await bus.publish("calls", {"n": 3})
    assert [m.data["n"] for m in await bus.read("calls", "fresh", "c")] == [3]


async def _cancelled_around_arrival(start, deliver) -> None:
    """Cancel a waiting task at every loop turn around the arrival of what it waits for:
    once cancel() is accepted, the task must end cancelled (Python 3.11's wait_for returned
    the result instead when both happened in the same turn, and the task ran on)."""
    for turns in range(8):
        task = asyncio.ensure_future(start())
        await asyncio.sleep(0.05)  # waiting now
        await deliver(turns)
        for _ in range(turns):
            await asyncio.sleep(0)
        accepted = task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(task), 2)
        except asyncio.CancelledError:
            pass
        if accepted:
            assert task.cancelled(), f"cancelled {turns} loop turns after the arrival, it went on"


async def test_a_reader_cancelled_as_a_message_arrives_stops(bus: EventBus):
    async def read() -> object:
        return await bus.read("race", "g", "c", block=5.0)

    async def deliver(n: int) -> None:
        await bus.publish("race", {"n": n})

    await _cancelled_around_arrival(read, deliver)


async def test_a_listener_cancelled_as_a_message_arrives_stops(bus: EventBus):
    async with bus.listen("race") as sub:

        async def get() -> object:
            return await sub.get(timeout=5.0)

        async def deliver(n: int) -> None:
            await bus.broadcast("race", {"n": n})

        await _cancelled_around_arrival(get, deliver)


async def test_a_channel_added_by_update_hears_a_broadcast_sent_right_after(bus: EventBus):
    """update() returns once the new channel is live (Redis confirms it), whether or not
    another task is waiting in get() on the same listener."""
    async with bus.listen("base") as sub:
        for n in range(60):
            waiting = asyncio.ensure_future(sub.get(timeout=3)) if n % 2 else None
            await asyncio.sleep(0)
            await sub.update("base", f"added-{n}")
            await bus.broadcast(f"added-{n}", {"n": n})
            message = await waiting if waiting is not None else await sub.get(timeout=3)
            assert message is not None and message.data == {"n": n}, n
            await sub.update("base")
