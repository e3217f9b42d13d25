"""The crash soak: a predictive campaign against the AMI simulator in its own process, the
dialer node killed with SIGKILL at random moments and started again, and the AMI link cut
at random moments (a TCP proxy between the node and the simulator drops every connection).

At the end the campaign is stopped, the node is started once more to follow what is left,
and stopped cleanly; then the database is checked: no attempt without an end, no lead left
dialing, no lead or number in two calls at once, every connected call on its case's
timeline, the node's live counters equal to a recount of the ledger, and the abandon rate
(sampled before every kill and at the end) never over the cap.

`tests/dialer/test_soak.py` runs a short soak; `bench/dialer/soak.py` the long one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any

import aiohttp
import asyncpg

from core import db
from core.embedded_pg import free_port
from core.identity import SYSTEM, Role
from core.users import hash_password
from dialer.campaigns import DialMode, create_campaign
from dialer.leads import load_leads

ROME = ["Europe/Rome"]
PASSWORD = "soak-password"


@dataclass(frozen=True)
class SoakPlan:
    virtual_hours: float = 1.0
    scale: float = 40.0
    kills: int = 10
    link_drops: int = 10
    agents: int = 12
    cases: int = 3000
    seed: int = 1
    restart_delay: tuple[float, float] = (0.2, 1.5)  # real seconds before the node is back


@dataclass
class SoakReport:
    plan: dict[str, Any]
    real_seconds: float = 0.0
    kills: int = 0
    link_drops: int = 0
    attempts: int = 0
    connected: int = 0
    abandoned: int = 0
    answered: int = 0
    unended: int = 0
    stuck_leads: int = 0
    overlapping_leads: int = 0
    overlapping_numbers: int = 0
    connected_off_timeline: int = 0
    recovered: int = 0
    # (answered calls, abandon rate), sampled before each kill and at the end.
    abandon_rates: list[tuple[int, float]] = field(default_factory=list)
    late_connects: int = 0  # connected more than the profile's limit after the AMD decision
    counters: dict[str, int] = field(default_factory=dict)  # the node's campaign-window tallies
    recount: dict[str, int] = field(default_factory=dict)  # the same from the ledger
    node_starts: list[float] = field(default_factory=list)  # real seconds each start took
    abandons_by_source: dict[str, int] = field(default_factory=dict)  # events/reconciled/recovered
    stuck_detail: list[dict[str, Any]] = field(default_factory=list)
    unended_detail: list[dict[str, Any]] = field(default_factory=list)
    overlap_detail: list[dict[str, Any]] = field(default_factory=list)
    # When things happened, in virtual seconds since the start: for reading a failure.
    fault_times: list[tuple[float, str]] = field(default_factory=list)
    abandon_times: list[tuple[float, str, float]] = field(default_factory=list)  # at, source, wait
    abandon_detail: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class LinkCutter:
    """A TCP proxy between the node and the simulator; `cut()` drops every connection."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = 0
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.append(pair)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        with contextlib.suppress(ValueError):
            self._pairs.remove(pair)

    def cut(self) -> int:
        pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            a.transport.abort()
            b.transport.abort()
        return len(pairs)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def seed(url: str, plan: SoakPlan, now: datetime) -> tuple[int, list[int]]:
    """Cases with one Italian mobile each, a predictive Italian campaign over them (open
    around the clock, short retry delays so leads come back within the soak), the agents
    and a supervisor."""
    conn = await db.connect(url)
    try:
        await db.migrate(conn)
        await conn.execute("INSERT INTO creditors (code, name) VALUES ('soak', 'Soak')")
        await conn.execute("INSERT INTO portfolios (creditor_id, code, name) VALUES (1, 'p', 'P')")
        await conn.execute(
            "INSERT INTO debtors (last_name) SELECT 'D' || g FROM generate_series(1, $1) g",
            plan.cases,
        )
        await conn.execute(
            "INSERT INTO phones (debtor_id, e164, time_zones) "
            "SELECT g, '+39333' || lpad(g::text, 7, '0'), $2::text[] FROM generate_series(1, $1) g",
            plan.cases,
            ROME,
        )
        await conn.execute(
            "INSERT INTO cases (creditor_id, portfolio_id, debtor_id, reference, total_due) "
            "SELECT 1, 1, g, 'S' || g, (g::bigint * 7919) % 100000 FROM generate_series(1, $1) g",
            plan.cases,
        )
        minutes = 20 * 60
        campaign = await create_campaign(
            conn, SYSTEM, "soak", mode=DialMode.PREDICTIVE, compliance_profile="IT",
            window_start=dtime(0), window_end=dtime(23, 59, 59),
            days_of_week=(1, 2, 3, 4, 5, 6, 7), max_attempts_per_day=10,
            max_attempts_total=10, active=True,
            retry_delays={k: minutes for k in ("busy", "failed", "no_answer", "machine")},
        )  # fmt: skip
        await load_leads(conn, campaign, now, ROME)
        password = hash_password(PASSWORD)
        agents = [
            await conn.fetchval(
                "INSERT INTO users (username, display_name, role, password_hash) "
                "VALUES ($1, $1, $2, $3) RETURNING id",
                f"soak{n}",
                Role.AGENT.value,
                password,
            )  # fmt: skip
            for n in range(plan.agents)
        ]
        await conn.execute(
            "INSERT INTO users (username, display_name, role, password_hash) "
            "VALUES ('soak-supervisor', 'Supervisor', $1, $2)",
            Role.SUPERVISOR.value,
            password,
        )
    finally:
        await conn.close()
    return campaign.id, agents


class Node:
    """The dialer node's process: started, killed, started again."""

    def __init__(self, url: str, ami_port: int, plan: SoakPlan, epoch: float, agents: list[int]):
        self.url, self.ami_port, self.plan, self.epoch = url, ami_port, plan, epoch
        self.agents = agents
        self.http_port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.starts: list[float] = []

    async def start(self) -> None:
        began = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.soak_node", "--database-url", self.url,
            "--ami-port", str(self.ami_port), "--http-port", str(self.http_port),
            "--scale", str(self.plan.scale), "--epoch", str(self.epoch),
            "--agents", ",".join(map(str, self.agents)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdout is not None
        async with asyncio.timeout(60):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    err = await self.proc.stderr.read() if self.proc.stderr else b""
                    raise RuntimeError(f"soak node exited at start:\n{err.decode()[-3000:]}")
                if line.startswith(b"node ready"):
                    break
        # Keep its pipes drained so it never blocks on a full pipe.
        self._drain = asyncio.gather(self._read(self.proc.stdout), self._read(self.proc.stderr))
        self.starts.append(time.monotonic() - began)

    @staticmethod
    async def _read(stream: asyncio.StreamReader | None) -> None:
        if stream is not None:
            while await stream.read(65536):
                pass

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        """A clean stop (SIGTERM), as an operator's `systemctl stop`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await self.proc.wait()

    async def stats(self, campaign_id: int) -> dict[str, Any]:
        base = f"http://127.0.0.1:{self.http_port}"
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/api/login", json={"username": "soak-supervisor", "password": PASSWORD}
            ) as r:
                token = (await r.json())["token"]
            async with http.get(
                f"{base}/api/campaigns/{campaign_id}/stats",
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                result: dict[str, Any] = await r.json()
                return result


async def abandon_rate(conn: asyncpg.Connection, campaign_id: int) -> tuple[int, float]:
    """The Italian figure over the campaign: abandoned calls per 100 answered (every ended
    attempt that was answered, machines included), with its denominator."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned, "
        "count(*) FILTER (WHERE outcome IN ('completed', 'abandoned', 'live_answer', 'machine')) "
        "AS answered FROM call_attempts WHERE campaign_id = $1 AND ended_at IS NOT NULL",
        campaign_id,
    )
    answered = int(row["answered"])
    return answered, row["abandoned"] / answered if answered else 0.0


_RECOUNT = """
SELECT count(*) AS dials,
       count(*) FILTER (WHERE outcome = 'machine' OR amd_result = 'MACHINE') AS machines,
       count(*) FILTER (WHERE outcome IN ('completed', 'abandoned', 'live_answer')
                        AND amd_result IS DISTINCT FROM 'MACHINE') AS live_answers,
       count(*) FILTER (WHERE outcome = 'abandoned'
                        AND amd_result IS DISTINCT FROM 'MACHINE') AS abandons,
       count(*) FILTER (WHERE outcome = 'completed'
                        AND amd_result IS DISTINCT FROM 'MACHINE') AS connects
FROM call_attempts WHERE campaign_id = $1 AND ended_at IS NOT NULL
"""


async def run_soak(admin_url: str, plan: SoakPlan, log: Any = print) -> SoakReport:
    """Run a soak on a fresh database of the server at `admin_url`."""
    rng = random.Random(plan.seed)
    name = f"pratica_soak_{os.getpid()}_{plan.seed}"
    base, _, _ = admin_url.rpartition("/")
    url = f"{base}/{name}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    report = SoakReport(asdict(plan))
    sim = proxy = node = None
    epoch = time.time()
    try:
        campaign_id, agents = await seed(url, plan, datetime.fromtimestamp(epoch, UTC))
        sim_port = free_port()
        sim = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; from web.cli import main; sys.exit(main())",
            "sim-pbx", "--port", str(sim_port), "--time-scale", str(plan.scale),
            "--seed", str(plan.seed), "--simulated-agents", "--secret", "pratica-sim",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert sim.stdout is not None
        await sim.stdout.readline()
        proxy = LinkCutter(sim_port)
        await proxy.start()
        node = Node(url, proxy.port, plan, epoch, agents)
        began = time.monotonic()
        await node.start()
        duration = plan.virtual_hours * 3600 / plan.scale
        events = sorted(
            [(rng.uniform(0.05, 0.95) * duration, "kill") for _ in range(plan.kills)]
            + [(rng.uniform(0.05, 0.95) * duration, "drop") for _ in range(plan.link_drops)]
        )
        check = await asyncpg.connect(url)
        try:
            for at, what in events:
                wait = began + at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                report.fault_times.append((round(at * plan.scale, 1), what))
                if what == "drop":
                    proxy.cut()
                    report.link_drops += 1
                    continue
                report.abandon_rates.append(await abandon_rate(check, campaign_id))
                await node.kill()
                report.kills += 1
                await asyncio.sleep(rng.uniform(*plan.restart_delay))
                await node.start()
                log(f"soak: kill {report.kills}/{plan.kills} at {at:.0f} s, "
                    f"rate {report.abandon_rates[-1][1]:.2%}")  # fmt: skip
            await asyncio.sleep(max(0.0, began + duration - time.monotonic()))
            # The end: no more dialing; one more kill mid-calls, then a node that only
            # follows what is left, stopped cleanly once nothing is open.
            await check.execute("UPDATE campaigns SET active = false WHERE id = $1", campaign_id)
            await node.kill()
            await node.start()
            # Bounded: what is still open after that is reported (and fails the soak).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(30.0, 1200 / plan.scale)):
                    while await check.fetchval(
                        "SELECT count(*) FROM call_attempts WHERE ended_at IS NULL"
                    ):
                        await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # the last events reach the node's counters
            stats = await node.stats(campaign_id)
            await node.stop()
            report.real_seconds = round(time.monotonic() - began, 1)
            await _inspect(check, campaign_id, stats, report)
        finally:
            await check.close()
        report.node_starts = [round(s, 2) for s in node.starts]
    finally:
        if node is not None and node.proc is not None and node.proc.returncode is None:
            node.proc.kill()
            await node.proc.wait()
        if proxy is not None:
            await proxy.close()
        if sim is not None and sim.returncode is None:
            sim.terminate()
            await sim.wait()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return report


async def _inspect(
    conn: asyncpg.Connection, campaign_id: int, stats: dict[str, Any], report: SoakReport
) -> None:
    report.abandon_rates.append(await abandon_rate(conn, campaign_id))
    totals = await conn.fetchrow(
        "SELECT count(*) AS attempts, count(connected_at) AS connected, "
        "count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned, "
        "count(answered_at) AS answered, "
        "count(*) FILTER (WHERE end_source = 'recovered') AS recovered FROM call_attempts"
    )
    report.attempts, report.connected = totals["attempts"], totals["connected"]
    report.abandoned, report.answered = totals["abandoned"], totals["answered"]
    report.recovered = totals["recovered"]
    report.unended = await conn.fetchval(
        "SELECT count(*) FROM call_attempts WHERE ended_at IS NULL"
    )
    report.late_connects = await conn.fetchval(
        "SELECT count(*) FROM call_attempts WHERE connected_at - amd_at > interval '2 seconds'"
    )
    report.unended_detail = [
        {k: str(v) for k, v in r.items()}
        for r in await conn.fetch(
            "SELECT attempt_key, direction, agent_id, answered_at, amd_at, connected_at, "
            "abandoned_at FROM call_attempts WHERE ended_at IS NULL"
        )
    ]
    report.stuck_leads = await conn.fetchval("SELECT count(*) FROM leads WHERE state = 'dialing'")
    report.stuck_detail = [
        {k: str(v) for k, v in r.items()}
        for r in await conn.fetch(
            "SELECT l.id, l.claimed_by, l.attempts_total, a.attempt_key, a.outcome, a.end_source, "
            "a.disposition, a.agent_id, a.connected_at IS NOT NULL AS connected "
            "FROM leads l LEFT JOIN LATERAL (SELECT * FROM call_attempts a WHERE a.lead_id = l.id "
            "ORDER BY a.id DESC LIMIT 1) a ON true WHERE l.state = 'dialing'"
        )
    ]
    epoch = await conn.fetchval("SELECT min(started_at) FROM call_attempts")

    def since(at: Any) -> float | None:
        return None if at is None else round((at - epoch).total_seconds(), 1)

    report.abandon_times = [
        (since(r["abandoned_at"]) or 0.0, r["end_source"],
         round((r["abandoned_at"] - (r["amd_at"] or r["answered_at"] or r["abandoned_at"])).total_seconds(), 1))
        for r in await conn.fetch(
            "SELECT abandoned_at, amd_at, answered_at, end_source FROM call_attempts "
            "WHERE outcome = 'abandoned' ORDER BY abandoned_at"
        )
    ]  # fmt: skip
    report.abandon_detail = [
        {k: (since(v) if k.endswith("_at") else v) for k, v in r.items()}
        for r in await conn.fetch(
            "SELECT attempt_key, started_at, answered_at, amd_at, abandoned_at, ended_at, "
            "agent_id, end_source FROM call_attempts WHERE outcome = 'abandoned' "
            "ORDER BY abandoned_at"
        )
    ]
    report.abandons_by_source = {
        r["end_source"]: r["n"]
        for r in await conn.fetch(
            "SELECT end_source, count(*) AS n FROM call_attempts WHERE outcome = 'abandoned' "
            "GROUP BY 1"
        )
    }
    overlap = (
        "SELECT count(*) FROM call_attempts a JOIN call_attempts b ON a.{col} = b.{col} "
        "AND a.id < b.id AND tstzrange(a.started_at, a.ended_at) && "
        "tstzrange(b.started_at, b.ended_at)"
    )
    report.overlapping_leads = await conn.fetchval(overlap.format(col="lead_id"))
    report.overlapping_numbers = await conn.fetchval(overlap.format(col="e164"))
    report.overlap_detail = [
        {k: str(v) for k, v in r.items()}
        for r in await conn.fetch(
            "SELECT a.lead_id, a.attempt_key AS a_key, a.started_at AS a_start, "
            "a.ended_at AS a_end, a.outcome AS a_outcome, a.end_source AS a_source, "
            "b.attempt_key AS b_key, b.started_at AS b_start, b.ended_at AS b_end, "
            "b.outcome AS b_outcome, b.end_source AS b_source FROM call_attempts a "
            "JOIN call_attempts b ON a.lead_id = b.lead_id AND a.id < b.id "
            "AND tstzrange(a.started_at, a.ended_at) && tstzrange(b.started_at, b.ended_at) "
            "LIMIT 20"
        )
    ]
    report.connected_off_timeline = await conn.fetchval(
        "SELECT count(*) FROM call_attempts a WHERE a.connected_at IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM activities v WHERE v.case_id = a.case_id AND v.external_id = a.attempt_key)"
    )
    window = stats["windows"]["campaign"]
    recount = await conn.fetchrow(_RECOUNT, campaign_id)
    names = ("dials", "machines", "live_answers", "abandons", "connects")
    report.counters = {n: int(window.get(n, -1)) for n in names}
    report.recount = {n: int(recount[n]) for n in names}
