import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from core import activity
from core.activity import ActivityError, ActivityKind, Channel, Direction, NewActivity
from core.bus import InProcessBus
from tests.support.factories import new_case

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def sms(
    case_id: int, n: int, external_id: str | None = None, at: datetime | None = None
) -> NewActivity:
    return NewActivity(
        case_id,
        ActivityKind.SMS,
        Channel.SMS,
        Direction.INBOUND,
        at or T0 + timedelta(minutes=n),
        f"SMS {n}",
        body=f"text {n}",
        external_id=external_id,
    )


async def test_append_is_idempotent_by_external_id_and_announced_once(pool):
    async with pool.acquire() as conn:
        case_id = await new_case(conn)
    bus = InProcessBus()
    async with bus.listen(f"case:{case_id}") as sub:
        first = await activity.add(pool, bus, sms(case_id, 1, "SM123"))
        again = await activity.add(pool, bus, sms(case_id, 1, "SM123"))
        assert first.created and not again.created
        assert again.activity.id == first.activity.id
        event = await sub.get(timeout=1)
        assert event is not None and event.data["activity"]["external_id"] == "SM123"
        assert await sub.get(timeout=0.1) is None
    durable = await bus.read(activity.ACTIVITIES_TOPIC, "crm", "c1")
    assert len(durable) == 1


async def test_timeline_is_newest_first_with_a_stable_cursor(pool):
    async with pool.acquire() as conn:
        case_id = await new_case(conn)
        other = await new_case(conn, last_name="Bianchi")
        for n in range(25):
            await activity.append(conn, sms(case_id, n))
        await activity.append(conn, sms(other, 99))
        # Two activities at the same instant are ordered by id, never lost between pages.
        same = T0 + timedelta(hours=5)
        await activity.append(conn, sms(case_id, 100, at=same))
        await activity.append(conn, sms(case_id, 101, at=same))
        seen: list[str] = []
        page = await activity.timeline(conn, case_id, limit=10)
        while True:
            seen += [a.summary for a in page.items]
            if page.next_cursor is None:
                break
            # New activities arriving meanwhile do not shift the older pages.
            await activity.append(conn, sms(case_id, 200 + len(seen), at=T0 + timedelta(days=1)))
            page = await activity.timeline(conn, case_id, limit=10, cursor=page.next_cursor)
    assert seen[:2] == ["SMS 101", "SMS 100"]
    assert seen[2:] == [f"SMS {n}" for n in range(24, -1, -1)]


async def test_bad_cursor_and_limits_are_refused(conn):
    case_id = await new_case(conn)
    with pytest.raises(ActivityError, match="invalid cursor"):
        await activity.timeline(conn, case_id, cursor="garbage!")
    with pytest.raises(ActivityError, match="limit"):
        await activity.timeline(conn, case_id, limit=1000)
    with pytest.raises(ActivityError, match="time zone"):
        NewActivity(
            case_id,
            ActivityKind.NOTE,
            Channel.INTERNAL,
            Direction.INTERNAL,
            datetime(2026, 1, 1),
            "x",
        )


async def test_delivery_receipts_update_by_external_id(conn):
    case_id = await new_case(conn)
    await activity.append(
        conn,
        NewActivity(
            case_id,
            ActivityKind.WHATSAPP,
            Channel.WHATSAPP,
            Direction.OUTBOUND,
            T0,
            "Reminder",
            external_id="WA1",
            delivery_status="sent",
        ),
    )
    updated = await activity.update_delivery(conn, Channel.WHATSAPP, "WA1", "read")
    assert updated is not None and updated.delivery_status == "read"
    assert await activity.update_delivery(conn, Channel.SMS, "WA1", "read") is None


async def test_concurrent_retries_of_one_webhook_file_one_activity(pool):
    async with pool.acquire() as conn:
        case_id = await new_case(conn)
    bus = InProcessBus()
    results = await asyncio.gather(
        *(activity.add(pool, bus, sms(case_id, 1, "SMdup")) for _ in range(5))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.activity.id for r in results}) == 1


async def test_batches_keep_idempotency_and_announce_only_new_ones(pool):
    async with pool.acquire() as conn:
        case_id = await new_case(conn)
    bus = InProcessBus()
    await activity.add(pool, bus, sms(case_id, 1, "B1"))
    batch = [
        sms(case_id, 1, "B1"),
        sms(case_id, 2, "B2"),
        sms(case_id, 3, None),
        sms(case_id, 2, "B2"),
    ]
    results = await activity.add_many(pool, bus, batch)
    assert [r.created for r in results] == [False, True, True, False]
    assert results[1].activity.id == results[3].activity.id
    announced = await bus.read(activity.ACTIVITIES_TOPIC, "g", "c", count=100)
    assert [m.data["activity"]["summary"] for m in announced] == ["SMS 1", "SMS 2", "SMS 3"]
