import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import TestServer

from core import users
from core.identity import SYSTEM, Role
from core.settings import load_settings
from dialer.compliance import PROFILES
from dialer.stats import CampaignStats, Tally
from web.app import create_app
from web.cli.stats import render
from web.keys import POOL

PRATICA = str(Path(sys.executable).parent / "pratica")


def test_render_flags_a_campaign_over_its_cap():
    stats = CampaignStats(1, PROFILES["UK"], amd_false_positive_rate=0.02)
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    for tally, count in [(Tally.DIAL, 900), (Tally.LIVE, 200), (Tally.MACHINE, 50),
                         (Tally.CONNECT, 193), (Tally.ABANDON, 6), (Tally.PROMISE, 12)]:  # fmt: skip
        stats.add(tally, now, count)
    text = render(
        [{"id": 1, "name": "Spring", "mode": "predictive", "stats": stats.snapshot(now)}],
        [{"state": "on_call"}, {"state": "ready"}, {"state": "logged_out"}],
    )
    # UK: 6 abandons + 1 person taken for a machine, of 200 + 1 live calls.
    assert "abandon rate 3.48% of 201 live calls (cap 3%: OVER CAP)" in text
    assert "this hour 3.48% of 201 live calls" in text
    assert "talking 1/2" in text and "dials    900" in text
    inbound = {"offered": 9, "connected": 6, "waiting": 1, "abandoned": 1, "timed_out": 1,
               "triage": 2, "callbacks": 2, "longest_wait_seconds": 75.4}  # fmt: skip
    text = render([], [{"state": "ready"}], inbound)
    assert "Inbound: offered 9  connected 6  waiting 1  abandoned 2 (timed out 1)" in text
    assert "longest wait 75 s" in text


async def test_stats_command_reads_a_running_server(database_url: str, tmp_path):
    settings = load_settings(
        environ={"DATABASE_URL": database_url, "PRATICA_DATA_DIR": str(tmp_path)}
    )
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        async with server.app[POOL].acquire() as conn:
            await users.create_user(conn, SYSTEM, "sup", "password1", Role.SUPERVISOR)
            await conn.execute("INSERT INTO campaigns (name) VALUES ('Winter')")
        env = {**os.environ, "PRATICA_PASSWORD": "password1"}
        proc = await asyncio.create_subprocess_exec(
            PRATICA,
            "stats",
            "--url",
            str(server.make_url("")),
            "--user",
            "sup",
            "--once",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert "Campaign 1 Winter [progressive] profile IT" in out.decode()
        env["PRATICA_PASSWORD"] = "wrong"
        proc = await asyncio.create_subprocess_exec(
            PRATICA,
            "stats",
            "--url",
            str(server.make_url("")),
            "--user",
            "sup",
            "--once",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2 and "login refused" in err.decode()
    finally:
        await server.close()
