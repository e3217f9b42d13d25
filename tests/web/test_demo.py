"""The `make demo` path: `pratica demo` on embedded defaults starts, answers, and stops."""

import asyncio
import re
from pathlib import Path

import aiohttp

from core.embedded_pg import free_port
from tests.support.demo import running_demo


async def test_demo_starts_with_embedded_database_and_demo_logins(tmp_path: Path):
    port = free_port()
    async with running_demo(tmp_path / "var", port) as output:
        assert any(f"http://127.0.0.1:{port}/" in line for line in output)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200
            async with http.get(f"http://127.0.0.1:{port}/") as r:
                assert "Pratica" in await r.text()
            async with http.post(
                f"http://127.0.0.1:{port}/api/login",
                json={"username": "supervisor", "password": "pratica-demo"},
            ) as r:
                assert r.status == 200
                token = (await r.json())["token"]
            # The demo dials: its campaign is running against the simulator.
            headers = {"Authorization": f"Bearer {token}"}
            async with http.get(f"http://127.0.0.1:{port}/api/dialer", headers=headers) as r:
                dialer = await r.json()
            assert dialer["running"] and dialer["link_up"]
        # The status line names what the rate divides by in the demo campaign's profile
        # (Italy: every answered call), with the figure computed over it.
        async with asyncio.timeout(90):
            while not (
                status := [line for line in output if "abandon rate" in line and "% of" in line]
            ):
                await asyncio.sleep(1)
        assert re.search(
            r"abandon rate \d+\.\d\d% of \d+ calls answered \(ended calls; cap 3%\)", status[-1]
        ), status[-1]
    # The embedded cluster was stopped with the demo.
    assert not (tmp_path / "var" / "pg" / "postmaster.pid").exists()
