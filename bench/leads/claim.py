"""Lead claim over a 1,000,000-lead campaign: latency of `claim_leads` (target p99 < 5 ms).

Builds the data set in a private PostgreSQL cluster (or PRATICA_BENCH_DATABASE_URL), then
times claims of 10 leads in three situations: every lead due; 90% of leads scheduled for
later with the highest priorities (the claim must skip them); leads spread over zones
where only some are inside the call window.

    .venv/bin/python -m bench.leads.claim [--leads N] [--claims N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path

import asyncpg

from core import db
from core.embedded_pg import EmbeddedPostgres, free_port
from core.identity import SYSTEM
from dialer.campaigns import create_campaign
from dialer.leads import claim_leads, load_leads, promote_due, zone_sets

NOW = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
ZONES = ["Europe/Rome", "Europe/London", "America/New_York", "America/Los_Angeles"]


async def build(conn: asyncpg.Connection, leads: int) -> None:
    await conn.execute("INSERT INTO creditors (code, name) VALUES ('bank', 'Bank')")
    await conn.execute("INSERT INTO portfolios (creditor_id, code, name) VALUES (1, 'p', 'P')")
    await conn.execute(
        "INSERT INTO debtors (last_name) SELECT 'D' || g FROM generate_series(1, $1) g", leads
    )
    await conn.execute(
        "INSERT INTO phones (debtor_id, e164, time_zones) "
        "SELECT g, '+1212' || lpad(g::text, 7, '0'), ARRAY[($2::text[])[1 + g % 4]] "
        "FROM generate_series(1, $1) g",
        leads,
        ZONES,
    )
    await conn.execute(
        "INSERT INTO cases (creditor_id, portfolio_id, debtor_id, reference, total_due) "
        "SELECT 1, 1, g, 'R' || g, (g::bigint * 7919) % 100000 FROM generate_series(1, $1) g",
        leads,
    )
    await conn.execute("ANALYZE")


async def time_claims(conn, campaign, claims: int, sets) -> tuple[float, float, int]:
    samples = []
    got = 0
    for n in range(claims):
        start = time.perf_counter()
        batch = await claim_leads(
            conn, campaign, NOW, 10, f"bench-{n % 2}", date(2026, 11, 24), sets
        )
        samples.append((time.perf_counter() - start) * 1000)
        got += len(batch)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1], got


async def run(url: str, leads: int, claims: int) -> None:
    conn = await db.connect(url)
    await db.migrate(conn)
    t0 = time.perf_counter()
    await build(conn, leads)
    print(f"data set: {leads:,} cases with phones in {time.perf_counter() - t0:.1f} s")
    campaign = await create_campaign(
        conn, SYSTEM, "bench", window_start=dtime(8), window_end=dtime(21)
    )
    t0 = time.perf_counter()
    loaded = await load_leads(conn, campaign, NOW, ["Europe/Rome"])
    print(f"load_leads: {loaded:,} leads in {time.perf_counter() - t0:.1f} s")
    await conn.execute("ANALYZE leads")
    sets = await zone_sets(conn)
    open_sets = [s for s in sets if campaign.window.open_in(s[1], NOW)]
    print(f"zone sets: {len(sets)}, open now: {len(open_sets)} ({[z for _, z in open_sets]})")

    p50, p99, got = await time_claims(conn, campaign, claims, sets)
    print(f"claims with all leads due:           p50 {p50:.2f} ms  p99 {p99:.2f} ms  ({got} leads)")

    # 90% of the remaining leads, the highest-priority ones, waiting for a retry tomorrow.
    await conn.execute(
        "UPDATE leads SET state = 'scheduled', next_attempt_at = $1::timestamptz + interval '1 day' "
        "WHERE state = 'ready' AND priority >= 10000",
        NOW,
    )
    await conn.execute("VACUUM ANALYZE leads")
    p50, p99, got = await time_claims(conn, campaign, claims, sets)
    print(f"claims with 90% of leads not due:    p50 {p50:.2f} ms  p99 {p99:.2f} ms  ({got} leads)")
    # Two dialer processes claiming from the same campaign at once.
    other = await db.connect(url)
    (a50, a99, got_a), (b50, b99, got_b) = await asyncio.gather(
        time_claims(conn, campaign, claims // 2, sets),
        time_claims(other, campaign, claims // 2, sets),
    )
    await other.close()
    dialing = await conn.fetchval("SELECT count(*) FROM leads WHERE state = 'dialing'")
    print(
        f"two concurrent claimers:             p50 {max(a50, b50):.2f} ms  p99 {max(a99, b99):.2f} ms  "
        f"({got_a + got_b} leads; {dialing:,} dialing in all, none twice)"
    )
    promote = []
    for _ in range(200):
        start = time.perf_counter()
        await promote_due(conn, campaign.id, NOW)
        promote.append((time.perf_counter() - start) * 1000)
    promote.sort()
    print(
        f"promote_due with nothing due:        p50 {statistics.median(promote):.2f} ms  "
        f"p99 {promote[197]:.2f} ms"
    )
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=2000)
    args = parser.parse_args()
    url = os.environ.get("PRATICA_BENCH_DATABASE_URL")
    if url:
        asyncio.run(run(url, args.leads, args.claims))
        return
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", free_port(), fast=True)
        server.start()
        try:
            asyncio.run(run(server.url, args.leads, args.claims))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
