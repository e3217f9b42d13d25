"""What the in-process bus keeps: a node runs for months on it without Redis."""

from core.bus import InProcessBus


async def test_what_every_group_consumed_is_kept_only_as_recent_history():
    bus = InProcessBus(maxlen=100_000, history=100)
    await bus.read("calls", "stats", "c")  # the group exists before the traffic
    for n in range(5_000):
        await bus.publish("calls", {"n": n, "body": "x" * 200})
        for message in await bus.read("calls", "stats", "c"):
            await bus.ack("calls", "stats", message.id)
    assert bus.retained("calls") <= 2 * 100 + 64
    # A group created now starts from the recent history, in order, up to the newest.
    got = [m.data["n"] for m in await bus.read("calls", "late", "c", count=1_000)]
    assert got and got == list(range(got[0], 5_000)) and len(got) >= 100


async def test_a_topic_nobody_reads_keeps_only_its_history():
    bus = InProcessBus(history=50)
    for n in range(3_000):
        await bus.publish("activities", {"n": n})
    assert bus.retained("activities") <= 2 * 64 + 50
    got = [m.data["n"] for m in await bus.read("activities", "new", "c", count=500)]
    assert got[-1] == 2_999 and got == list(range(got[0], 3_000))


async def test_a_group_behind_keeps_everything_it_has_not_read_or_acknowledged():
    bus = InProcessBus(history=10)
    await bus.read("calls", "slow", "c")
    await bus.read("calls", "fast", "c")
    unacked = await bus.publish("calls", {"n": -1})
    assert [m.id for m in await bus.read("calls", "slow", "c", count=1)] == [unacked]
    for n in range(2_000):
        await bus.publish("calls", {"n": n})
        for message in await bus.read("calls", "fast", "c"):
            await bus.ack("calls", "fast", message.id)
    # "slow" read one message without acknowledging it and read nothing else: all kept.
    assert bus.retained("calls") == 2_001
    pending = await bus.read("calls", "slow", "c", count=1)
    assert [m.data["n"] for m in pending] == [-1]  # redelivered
    await bus.ack("calls", "slow", unacked)
    rest = []
    while batch := await bus.read("calls", "slow", "c", count=500):
        rest.extend(m.data["n"] for m in batch)
        await bus.ack("calls", "slow", *(m.id for m in batch))
    assert rest == list(range(2_000))
    for n in range(200):
        await bus.publish("calls", {"n": n})
    assert bus.retained("calls") < 2_001  # caught up: trimmed again


async def test_maxlen_still_caps_a_topic_a_group_never_reads():
    bus = InProcessBus(maxlen=500, history=10)
    await bus.read("calls", "stuck", "c")
    for n in range(2_000):
        await bus.publish("calls", {"n": n})
    assert bus.retained("calls") == 500
    got = [m.data["n"] for m in await bus.read("calls", "stuck", "c", count=1_000)]
    assert got == list(range(1_500, 2_000))
