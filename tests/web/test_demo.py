"""The `make demo` path: `pratica demo` on embedded defaults starts, answers, and stops."""

import asyncio
import re
from pathlib import Path

import aiohttp

from core.embedded_pg import free_port
from dialer.sim.server import AmiSimulator, SimOptions
from tests.support.demo import PRATICA, running_demo


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
            # Nothing held the dialing back (a fresh start is not a fault).
            assert dialer["dialing"]["allowed"], dialer["dialing"]
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


async def test_demo_uses_the_ami_it_is_pointed_at_instead_of_its_simulator(tmp_path: Path):
    pbx = AmiSimulator(
        SimOptions(port=0, username="desk", secret="not-the-default", time_scale=5.0)
    )
    await pbx.start()
    try:
        port = free_port()
        async with running_demo(
            tmp_path / "var", port, "--ami", f"127.0.0.1:{pbx.port}", "--time-scale", "5",
            settings={"PRATICA_AMI_USERNAME": "desk", "PRATICA_AMI_SECRET": "not-the-default"},
        ) as output:  # fmt: skip
            assert pbx.logins >= 1, "the demo did not log in to the given AMI"
            async with asyncio.timeout(30):
                # Its campaign dials through it: the simulated agents' legs, the first calls.
                while len(pbx.pbx.channels) < 10 or "Campaign" not in "".join(output):
                    await asyncio.sleep(0.2)
            banner = "".join(output)
            assert f"AMI at 127.0.0.1:{pbx.port} (user desk)" in banner
            assert "AMI simulator on" not in banner
    finally:
        await pbx.close()


async def test_demo_refuses_an_ami_it_cannot_reach(tmp_path: Path):
    unused = free_port()  # nothing listens there
    proc = await asyncio.create_subprocess_exec(
        PRATICA, "--data-dir", str(tmp_path / "var"), "demo", "--ami", f"127.0.0.1:{unused}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert f"pratica: --ami 127.0.0.1:{unused}: cannot connect" in err.decode()
    assert not (tmp_path / "var" / "pg").exists()  # refused before anything started
