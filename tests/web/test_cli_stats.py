import asyncio
import os
import sys
from pathlib import Path

from aiohttp.test_utils import TestServer

from core import users
from core.identity import SYSTEM, Role
from core.settings import load_settings
from web.app import create_app
from web.cli.stats import render
from web.keys import POOL

PRATICA = str(Path(sys.executable).parent / "pratica")


def test_render_flags_a_campaign_over_its_cap():
    stats = {
        "profile": "UK",
        "regulatory_window": "24h",
        "abandon_rate": 0.031,
        "abandon_cap": 0.03,
        "windows": {
            "24h": {
                "dials": 900,
                "live_answers": 200,
                "machines": 50,
                "connects": 193,
                "abandons": 7,
                "promises": 12,
            },
            "hour": {"abandon_rate": 0.02, "live_answers": 50},
        },
    }
    text = render(
        [{"id": 1, "name": "Spring", "mode": "predictive", "stats": stats}],
        [{"state": "on_call"}, {"state": "ready"}, {"state": "logged_out"}],
    )
    assert "abandon rate  3.10% (cap 3%: OVER CAP)" in text
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
