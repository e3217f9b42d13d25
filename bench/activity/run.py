"""Activity stream: sustained append rate and timeline read latency.

Targets (foundation issue): at least 5,000 activities/s appended; the newest 50 of a case
with 10,000 activities read with p99 under 20 ms. Appends go through `core.activity.add`
with a unique external id each (the idempotency check runs) and are announced on the
in-process bus, from 8 concurrent writers, one transaction per activity.

    .venv/bin/python -m bench.activity.run [--activities N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core import activity, db
from core.activity import ActivityKind, Channel, Direction, NewActivity
from core.bus import InProcessBus
from core.embedded_pg import EmbeddedPostgres, free_port

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def run(url: str, total: int, writers: int) -> None:
    conn = await db.connect(url)
    await db.migrate(conn)
    await conn.execute("INSERT INTO creditors (code, name) VALUES ('B', 'B')")
    await conn.execute("INSERT INTO portfolios (creditor_id, code, name) VALUES (1, 'P', 'P')")
    await conn.execute(
        "INSERT INTO debtors (last_name) SELECT 'D' || g FROM generate_series(1, 1001) g"
    )
    await conn.execute(
        "INSERT INTO cases (creditor_id, portfolio_id, debtor_id, reference) "
        "SELECT 1, 1, g, 'R' || g FROM generate_series(1, 1001) g"
    )
    await conn.close()
    pool = await db.create_pool(url, writers, writers)
    bus = InProcessBus(maxlen=10_000)

    async def writer(w: int) -> None:
        for n in range(w, total, writers):
            await activity.add(pool, bus, NewActivity(
                1 + n % 1000, ActivityKind.SMS, Channel.SMS, Direction.INBOUND,
                T0 + timedelta(seconds=n), f"SMS {n}", body="Pagherò venerdì", external_id=f"SM{n}",
            ))  # fmt: skip

    async def batch_writer(w: int, size: int) -> None:
        items = [
            NewActivity(1 + n % 1000, ActivityKind.WHATSAPP, Channel.WHATSAPP, Direction.INBOUND,
                        T0 + timedelta(seconds=n), f"WA {n}", external_id=f"WA{n}")
            for n in range(w, total, writers)
        ]  # fmt: skip
        for i in range(0, len(items), size):
            await activity.add_many(pool, bus, items[i : i + size])

    start = time.perf_counter()
    await asyncio.gather(*(batch_writer(w, 100) for w in range(writers)))
    took = time.perf_counter() - start
    print(f"append in batches of 100: {total:,} activities in {took:.1f} s = {total / took:,.0f}/s "
          f"({writers} writers)")  # fmt: skip

    start = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    took = time.perf_counter() - start
    print(f"append: {total:,} activities in {took:.1f} s = {total / took:,.0f}/s "
          f"({writers} writers, one transaction each)")  # fmt: skip

    async with pool.acquire() as c:
        await c.execute(
            "INSERT INTO activities (case_id, kind, channel, direction, occurred_at, summary) "
            "SELECT 1001, 'note', 'internal', 'internal', $1::timestamptz + g * interval '1 minute', "
            "'note ' || g FROM generate_series(1, 10000) g",
            T0,
        )
        await c.execute("ANALYZE activities")
        timings = []
        for _ in range(2000):
            t = time.perf_counter()
            page = await activity.timeline(c, 1001, 50)
            timings.append((time.perf_counter() - t) * 1000)
        assert len(page.items) == 50
        timings.sort()
        print(f"timeline newest 50 of 10,000: p50 {statistics.median(timings):.2f} ms, "
              f"p99 {timings[1979]:.2f} ms")  # fmt: skip
        deep = []
        cursor = None
        for _ in range(199):
            t = time.perf_counter()
            page = await activity.timeline(c, 1001, 50, cursor)
            deep.append((time.perf_counter() - t) * 1000)
            cursor = page.next_cursor
        deep.sort()
        print(f"paging through all 10,000 by cursor: p50 {statistics.median(deep):.2f} ms, "
              f"p99 {deep[196]:.2f} ms")  # fmt: skip
    await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--activities", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", free_port())
        server.start()
        try:
            asyncio.run(run(server.url, args.activities, args.writers))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
