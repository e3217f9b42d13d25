"""`serve` (production) and `demo` (everything embedded, seeded, for a first look)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from core.clock import SystemClock
from core.settings import Settings, load_settings
from web.app import create_app
from web.demo import DEMO_PASSWORD, DEMO_USERS, seed_demo
from web.keys import POOL


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the server (settings from file and environment)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="run everything embedded with demo users and data")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_demo)


def _with_overrides(args: argparse.Namespace) -> Settings:
    base: Settings = args.settings
    return load_settings(
        None if not args.config else __import__("pathlib").Path(args.config),
        data_dir=str(base.data_dir),
        server__host=args.host,
        server__port=args.port,
    )


async def run_server(
    settings: Settings,
    on_started: Callable[[web.Application, str], Awaitable[None]] | None = None,
) -> None:
    app = create_app(settings, SystemClock())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        url = f"http://{settings.server.host}:{settings.server.port}/"
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_started is not None:
            await on_started(app, url)
        else:
            print(f"Pratica is serving on {url}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def cmd_serve(args: argparse.Namespace) -> int:
    asyncio.run(run_server(_with_overrides(args)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _with_overrides(args)

    async def started(app: web.Application, url: str) -> None:
        await seed_demo(app[POOL])
        lines = [
            "",
            f"Pratica demo is running: {url}",
            "Demo logins (password for all: " + DEMO_PASSWORD + "):",
            *(f"  {username:<12} {role}" for username, role in DEMO_USERS),
            "Stop with Ctrl-C.",
            "",
        ]
        print("\n".join(lines), flush=True)

    asyncio.run(run_server(settings, started))
    return 0
