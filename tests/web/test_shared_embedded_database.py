"""Several `pratica` commands on one embedded cluster, as real processes: a command run in a
second terminal uses the cluster the running server started and never stops it, while a
cluster left behind by a killed server is still recovered."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from core.embedded_pg import free_port

PRATICA = str(Path(sys.executable).parent / "pratica")
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PRATICA_", "DATABASE_", "REDIS_"))}


@asynccontextmanager
async def serving(data_dir: Path, port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """`pratica serve` on the embedded cluster under `data_dir`, once it answers."""
    proc = await asyncio.create_subprocess_exec(
        PRATICA, "--data-dir", str(data_dir), "serve", "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=ENV,
    )  # fmt: skip
    assert proc.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(120):
            while not any("Pratica is serving" in line for line in output):
                line = (await proc.stdout.readline()).decode()
                assert line, "the server exited early:\n" + "".join(output)
                output.append(line)
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(60):
                await proc.communicate()


async def pratica(data_dir: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        PRATICA, "--data-dir", str(data_dir), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=ENV,
    )  # fmt: skip
    async with asyncio.timeout(120):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def health(port: int) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status


async def test_a_second_command_uses_the_running_cluster_and_leaves_it_running(tmp_path: Path):
    data_dir, port = tmp_path / "var", free_port()
    async with serving(data_dir, port):
        assert await health(port) == 200
        code, out = await pratica(data_dir, "migrate")
        assert code == 0, out
        assert "database is up to date" in out
        # The server still reaches its database, on the same connections.
        assert await health(port) == 200
        assert "restarting" not in out
        code, out = await pratica(data_dir, "export", "-o", str(tmp_path / "out.csv"))
        assert code == 0, out
        assert "wrote 0 cases" in out
        assert await health(port) == 200
    # The last one out stopped the cluster.
    assert not (data_dir / "pg" / "postmaster.pid").exists()


async def test_a_cluster_left_by_a_killed_server_is_recovered(tmp_path: Path):
    data_dir, port = tmp_path / "var", free_port()
    async with serving(data_dir, port) as server:
        server.kill()  # kill -9: no cleanup, the postmaster stays behind
        await server.wait()
    assert (data_dir / "pg" / "postmaster.pid").exists()
    code, out = await pratica(data_dir, "migrate")
    assert code == 0, out
    assert "left running" in out and "database is up to date" in out
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    async with serving(data_dir, port):
        assert await health(port) == 200
