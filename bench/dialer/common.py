"""What the dialer benchmarks share: a private PostgreSQL with a campaign and its agents,
the AMI simulator in its own process (as Asterisk would be), and the engine wired to them
the way `web.dialer_runtime` wires it in the server.

The engine runs in the benchmark's process, so that process's CPU time and memory are the
engine's (plus the few bookkeeping lines of the benchmark itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from datetime import time as dtime

import asyncpg

from core import db
from core.bus import InProcessBus
from core.identity import SYSTEM, Role
from core.users import hash_password
from dialer.agent_desk import AgentDesk
from dialer.agents import AgentState
from dialer.ami_client import AmiClient
from dialer.call_control import CallControl
from dialer.campaigns import Campaign, DialMode, create_campaign
from dialer.engine import CampaignEngine, EngineSettings, Pacer
from dialer.leads import load_leads
from dialer.sim.clock import ScaledClock

ROME = ["Europe/Rome", "Europe/Vatican"]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: list[float]) -> dict[str, float | int]:
    """count, p50, p99 and max of a list of seconds, in milliseconds."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50": round(percentile(values, 0.5) * 1000, 3),
        "p99": round(percentile(values, 0.99) * 1000, 3),
        "max": round(max(values) * 1000, 3),
    }


async def build_campaign(
    url: str, leads: int, agents: int, mode: DialMode, pacing: dict[str, float], now: datetime
) -> tuple[Campaign, list[int]]:
    """`leads` Italian debtors with one mobile each, one campaign over all of them (open
    around the clock, each lead dialed at most once in the run), and `agents` agents."""
    conn = await db.connect(url)
    try:
        await db.migrate(conn)
        await conn.execute("INSERT INTO creditors (code, name) VALUES ('bank', 'Bank')")
        await conn.execute("INSERT INTO portfolios (creditor_id, code, name) VALUES (1, 'p', 'P')")
        await conn.execute(
            "INSERT INTO debtors (last_name) SELECT 'D' || g FROM generate_series(1, $1) g", leads
        )
        await conn.execute(
            "INSERT INTO phones (debtor_id, e164, time_zones) "
            "SELECT g, '+39333' || lpad(g::text, 7, '0'), $2::text[] FROM generate_series(1, $1) g",
            leads,
            ROME,
        )
        await conn.execute(
            "INSERT INTO cases (creditor_id, portfolio_id, debtor_id, reference, total_due) "
            "SELECT 1, 1, g, 'R' || g, (g::bigint * 7919) % 100000 FROM generate_series(1, $1) g",
            leads,
        )
        day = 86_400
        campaign = await create_campaign(
            conn,
            SYSTEM,
            "bench",
            mode=mode,
            pacing=pacing,
            compliance_profile="US",
            window_start=dtime(0),
            window_end=dtime(23, 59, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7),
            max_attempts_per_day=1,
            max_attempts_total=1,
            retry_delays={k: day for k in ("busy", "failed", "no_answer", "machine", "abandoned")},
        )
        await load_leads(conn, campaign, now, ROME)
        # One password hash for all (argon2 takes ~0.1 s each); the rows are ordinary users.
        password = hash_password("bench-password")
        agent_ids = [
            await conn.fetchval(
                "INSERT INTO users (username, display_name, role, password_hash) "
                "VALUES ($1, $1, $2, $3) RETURNING id",
                f"agent{n}",
                Role.AGENT.value,
                password,
            )
            for n in range(agents)
        ]
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return campaign, agent_ids


async def start_simulator(
    port: int, scale: float, start_hour: float, extra: list[str]
) -> asyncio.subprocess.Process:
    """`pratica sim-pbx` in its own process, as a user runs it; returns once it listens."""
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from web.cli import main; sys.exit(main())",
        "sim-pbx", "--port", str(port), "--time-scale", str(scale),
        "--start-hour", str(start_hour), "--seed", "7", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert sim.stdout is not None
    await sim.stdout.readline()
    return sim


@dataclass
class Dialer:
    client: AmiClient
    calls: CallControl
    desk: AgentDesk
    engine: CampaignEngine
    pool: asyncpg.Pool


@contextlib.asynccontextmanager
async def running_engine(
    url: str,
    sim_port: int,
    clock: ScaledClock,
    pacer: Pacer,
    campaign: Campaign,
    agent_ids: list[int],
    wrap_up_max: float,
    before_start: list[object] | None = None,
) -> AsyncIterator[Dialer]:
    """The engine on its campaign with every agent ready (legs nailed up in the simulator).
    Settings as in production: `call,user,system` events, 0.5 s ticks."""
    pool = await db.create_pool(url, 2, 10)
    client = AmiClient("127.0.0.1", sim_port, "pratica", "pratica-sim", action_timeout=10.0,
                       events="call,user,system")  # fmt: skip
    await client.connect()
    calls = CallControl(client)
    desk = AgentDesk(pool, InProcessBus(), clock, wrap_up_max=wrap_up_max)
    engine = CampaignEngine(
        pool,
        InProcessBus(),
        clock,
        desk,
        calls,
        pacer,
        EngineSettings(
            dial_template="Local/{number}@sim-debtors",
            agent_dial_template="Local/{agent_id}@sim-agents",
            default_zones=tuple(ROME),
            node="bench",
            wrap_up_max=wrap_up_max,
        ),
    )
    dialer = Dialer(client, calls, desk, engine, pool)
    for hook in before_start or []:
        hook(dialer)  # type: ignore[operator]
    calls.start()
    await desk.start()
    await engine.start()
    await engine.add_campaign(campaign.id)
    for agent_id in agent_ids:
        desk.change(SYSTEM, agent_id, AgentState.READY)
    try:
        yield dialer
    finally:
        # Bounded, so a stop that never returns fails the benchmark instead of hanging it.
        async with asyncio.timeout(120):
            await engine.stop()
        await desk.stop()
        await calls.stop()
        await client.close()
        await pool.close()
