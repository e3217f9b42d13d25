"""Running `pratica demo` as a subprocess, the way a newcomer does."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

PRATICA = str(Path(sys.executable).parent / "pratica")


@asynccontextmanager
async def running_demo(
    data_dir: Path, port: int, *extra: str, settings: dict[str, str] | None = None
) -> AsyncIterator[list[str]]:
    """Start the demo on embedded defaults (plus `settings`, environment variables) and
    yield its output up to the ready banner; on exit stop it with Ctrl-C and check that it
    stopped cleanly."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PRATICA_", "DATABASE_", "REDIS_"))
    } | (settings or {})
    proc = await asyncio.create_subprocess_exec(
        PRATICA, "--data-dir", str(data_dir), "demo", "--port", str(port), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    output: list[str] = []
    drainer: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(120):
            while not any("Pratica demo is running" in line for line in output):
                line = (await proc.stdout.readline()).decode()
                assert line, "demo exited early:\n" + "".join(output)
                output.append(line)

        async def drain() -> None:
            assert proc.stdout is not None
            while line := await proc.stdout.readline():
                output.append(line.decode())

        drainer = asyncio.create_task(drain())
        yield output
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(
                "the demo did not stop within 60 s of Ctrl-C:\n" + "".join(output[-40:])
            ) from None
        if drainer is not None:
            await asyncio.wait_for(drainer, 10)
    assert code == 0, "".join(output[-40:])
