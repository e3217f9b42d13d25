"""`pratica stats`: the supervisor's numbers of a running server, refreshed in place."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections import Counter
from typing import Any

import aiohttp

from dialer.stats import abandon_rate_text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("stats", help="live campaign and agent numbers of a running server")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="the server's URL")
    p.add_argument("--user", default=os.environ.get("PRATICA_USER", "supervisor"))
    p.add_argument("--campaign", type=int, action="append", help="campaign id (default: all)")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--once", action="store_true", help="print once and exit")
    p.set_defaults(func=cmd_stats)


def render(
    campaigns: list[dict[str, Any]],
    agents: list[dict[str, Any]],
    inbound: dict[str, Any] | None = None,
) -> str:
    """The dashboard as text: agents by state, inbound callers, one block per campaign."""
    by_state = Counter(a["state"] for a in agents)
    talking = by_state.get("on_call", 0)
    logged_in = sum(v for k, v in by_state.items() if k != "logged_out")
    lines = [
        "Agents: "
        + "  ".join(
            f"{state.replace('_', ' ')} {count}" for state, count in sorted(by_state.items())
        )
        + f"   (talking {talking}/{logged_in})",
    ]
    if inbound:
        lines.append(
            f"Inbound: offered {inbound['offered']}  connected {inbound['connected']}  "
            f"waiting {inbound['waiting']}  abandoned {inbound['abandoned'] + inbound['timed_out']} "
            f"(timed out {inbound['timed_out']})  unknown callers {inbound['triage']}  "
            f"callbacks {inbound['callbacks']}  longest wait {inbound['longest_wait_seconds']:.0f} s"
        )
    for c in campaigns:
        s = c["stats"]
        reg = s["windows"][s["regulatory_window"]]
        rate = s["abandon_rate"]
        cap = s["abandon_cap"]
        flag = "OVER CAP" if rate > cap else ("near cap" if rate > cap * 0.8 else "ok")
        lines += [
            "",
            f"Campaign {c['id']} {c['name']} [{c['mode']}] profile {s['profile']}",
            f"  {s['regulatory_window']:>4}: dials {reg['dials']:>6}  live {reg['live_answers']:>5}  "
            f"machines {reg['machines']:>5}  connects {reg['connects']:>5}  abandons {reg['abandons']:>4}  "
            f"promises {reg['promises']:>4}",
            f"  abandon rate {abandon_rate_text(s)} (cap {cap * 100:.0f}%: {flag})   "
            f"this hour {abandon_rate_text(s, 'hour')}",
        ]
    return "\n".join(lines)


async def _fetch(session: aiohttp.ClientSession, url: str, campaigns: list[int] | None) -> str:
    async with session.get(f"{url}/api/campaigns") as r:
        r.raise_for_status()
        listed = (await r.json())["campaigns"]
    blocks = []
    for c in listed:
        if campaigns and c["id"] not in campaigns:
            continue
        async with session.get(f"{url}/api/campaigns/{c['id']}/stats") as r:
            r.raise_for_status()
            blocks.append({**c, "stats": await r.json()})
    async with session.get(f"{url}/api/agents") as r:
        r.raise_for_status()
        agents = (await r.json())["agents"]
    async with session.get(f"{url}/api/dialer") as r:
        r.raise_for_status()
        inbound = (await r.json()).get("inbound")
    return render(blocks, agents, inbound)


async def _run(args: argparse.Namespace, password: str) -> int:
    url = args.url.rstrip("/")
    async with aiohttp.ClientSession() as login:
        async with login.post(
            f"{url}/api/login", json={"username": args.user, "password": password}
        ) as r:
            if r.status != 200:
                print(f"pratica: login refused: {(await r.json())['message']}", file=sys.stderr)
                return 2
            token = (await r.json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            text = await _fetch(session, url, args.campaign)
            if args.once:
                print(text)
                return 0
            # Clear the screen and draw from the top: the numbers move in place.
            sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
            sys.stdout.flush()
            await asyncio.sleep(args.interval)


def cmd_stats(args: argparse.Namespace) -> int:
    password = os.environ.get("PRATICA_PASSWORD") or getpass.getpass(f"password for {args.user}: ")
    try:
        return asyncio.run(_run(args, password))
    except aiohttp.ClientError as exc:
        print(f"pratica: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 2
