"""The `make demo` path: `pratica demo` on embedded defaults starts, answers, and stops."""

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from core.embedded_pg import free_port

PRATICA = str(Path(sys.executable).parent / "pratica")


async def test_demo_starts_with_embedded_database_and_demo_logins(tmp_path: Path):
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PRATICA_", "DATABASE_", "REDIS_"))
    }
    proc = await asyncio.create_subprocess_exec(
        PRATICA,
        "--data-dir",
        str(tmp_path / "var"),
        "demo",
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    assert proc.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(90):
            while True:
                line = (await proc.stdout.readline()).decode()
                assert line, "demo exited early:\n" + "".join(output)
                output.append(line)
                if "Pratica demo is running" in line:
                    break
        assert f"http://127.0.0.1:{port}/" in output[-1]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200
            async with http.get(f"http://127.0.0.1:{port}/") as r:
                assert "Pratica" in await r.text()
            async with http.post(
                f"http://127.0.0.1:{port}/api/login",
                json={"username": "agent1", "password": "pratica-demo"},
            ) as r:
                assert r.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(proc.stdout.read(), 60)
        code = await proc.wait()
    assert code == 0, rest.decode()
    # The embedded cluster was stopped with the demo.
    assert not (tmp_path / "var" / "pg" / "postmaster.pid").exists()
