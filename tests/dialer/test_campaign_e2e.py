"""A whole predictive campaign end to end: 1,000 leads, 20 agents, the AMI simulator over
TCP, real PostgreSQL, virtual time.

The desk's agents go ready and their legs are nailed up through `Local/<agent>@sim-agents`;
the simulated debtors answer, talk and hang up; wrap-up ends at the engine's wrap limit.
The virtual day starts when Los Angeles is still closed (07:50 local) and it opens during
the run. Afterwards the run is checked two ways, from the database (the attempt ledger,
the leads) and from the simulator's own ground truth (what it was asked to dial and when,
what it played the abandonment message to): retry delays and attempt limits, no lead or
number ever in two calls at once, no attempt key twice, call windows in each number's
own zones, do-not-call, and the abandon accounting.
"""

from __future__ import annotations

import asyncio
import time as wallclock
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from core import users
from core.bus import InProcessBus
from core.identity import SYSTEM, Role
from core.phones import time_zones
from dialer.agent_desk import AgentDesk
from dialer.agents import AgentSession, AgentState
from dialer.ami_client import AmiClient
from dialer.ami_codec import AmiMessage
from dialer.call_control import CallControl
from dialer.call_window import CallWindow
from dialer.campaigns import DialMode, create_campaign
from dialer.engine import CampaignEngine, EngineSettings
from dialer.leads import load_leads
from dialer.pacing_bridge import CampaignPacer
from dialer.sim.debtors import DebtorModel
from dialer.sim.server import AmiSimulator, SimOptions
from tests.dialer.test_leads import make_cases

# 60 virtual seconds per real second: the 40-55 virtual minutes the campaign takes run in
# under a minute; the 2 s connect limit is still 33 ms of real time, many event-loop turns.
SCALE = 60.0
# Tuesday 2026-11-24 15:50 UTC: 16:50 in Rome, 10:50 in New York, 07:50 in Los Angeles.
START = datetime(2026, 11, 24, 15, 50, tzinfo=UTC)
LA_OPENS = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
WINDOW = CallWindow(time(8), time(21), frozenset(range(1, 8)))
AGENTS = 20
WRAP_LIMIT = 5.0
HOLD_MAX = 30.0  # the dialplan's own limit on holding a live debtor (then: abandon message)
CONNECT_LIMIT = 2.0  # the US profile's
STALL_ALLOWANCE = 4.0  # virtual seconds (67 ms real) for the shared event loop's stalls
MAX_PER_DAY = 2
MAX_TOTAL = 3
# Seconds before a lead may be dialed again, by how the attempt ended (the campaign's
# retry_delays; the US profile has no redial embargo after an abandoned call).
RETRY_DELAYS = {"busy": 60, "failed": 90, "no_answer": 180, "machine": 240, "abandoned": 300}
# The ledger's call outcomes and the retry delay each one counts under.
DELAY_AFTER = {
    "busy": RETRY_DELAYS["busy"],
    "failed": RETRY_DELAYS["failed"],
    "lost": RETRY_DELAYS["failed"],
    "no_answer": RETRY_DELAYS["no_answer"],
    "live_answer": RETRY_DELAYS["no_answer"],
    "machine": RETRY_DELAYS["machine"],
    "abandoned": RETRY_DELAYS["abandoned"],
}
# After these, the phone is wrong: the lead moves to the debtor's next phone after a minute.
WRONG_PHONE = {"invalid_number": 60}

ITALY, NEW_YORK, LOS_ANGELES = 500, 250, 250
DNC_AFTER_LOAD = 30  # debtors who asked not to be called after the campaign was loaded
DNC_FIRST_PHONE = 20  # debtors whose first phone is do-not-call, their second one is not
SEEDED = 100  # leads with two attempts from yesterday (one left before the total limit)
# After this many dials, 15 of the 20 agents leave for a two-minute meeting: the calls
# already in flight were placed for them, and some of their live answers find no agent.
MEETING_AFTER_DIALS, MEETING_SECONDS, MEETING_SIZE = 400, 120.0, 15


@dataclass
class Ring:
    """One call the simulator was asked to put through to a debtor's phone."""

    attempt: str
    number: str  # E.164
    channel: str
    started: datetime
    ended: datetime | None = None


class SimulatorWitness:
    """Listens to the simulator's PBX in-process and writes down what it did, independently
    of anything the engine records."""

    def __init__(self, sim: AmiSimulator):
        self.sim = sim
        self.rings: list[Ring] = []
        self._up: dict[str, Ring] = {}
        # Live debtors on hold since the AMD decision, and how long each one was held
        # before it joined an agent's conference, heard the abandonment message or hung up.
        self._held_since: dict[str, datetime] = {}
        self.held: list[tuple[float, str]] = []  # (seconds, 'agent' | 'abandon' | 'hangup')

    def __call__(self, message: AmiMessage) -> None:
        event = message.get("Event")
        if event == "UserEvent" and message.get("UserEvent") == "SimDebtor":
            ring = Ring(
                message.channel_vars().get("ATTEMPT", ""),
                "+" + message.get("Number"),
                message.get("Channel"),
                self.sim.clock.now(),
            )
            self.rings.append(ring)
            self._up[ring.channel] = ring
        elif event == "UserEvent" and message.get("UserEvent") == "PraticaAMD":
            if message.get("Status") == "HUMAN":
                self._held_since[message.get("Channel")] = self.sim.clock.now()
        elif event == "ConfbridgeJoin" or (
            event == "UserEvent" and message.get("UserEvent") == "PraticaAbandoned"
        ):
            self._left_hold(message, "agent" if event == "ConfbridgeJoin" else "abandon")
        elif event == "Hangup":
            ring = self._up.pop(message.get("Channel"), None)
            if ring is not None:
                ring.ended = self.sim.clock.now()
            self._left_hold(message, "hangup")  # when the debtor hung up while on hold

    def _left_hold(self, message: AmiMessage, how: str) -> None:
        since = self._held_since.pop(message.get("Channel"), None)
        if since is not None:
            self.held.append(((self.sim.clock.now() - since).total_seconds(), how))


class TeamMeeting:
    """A supervisor sends part of the team to a meeting: each member who is ready, or
    becomes ready, pauses with reason 'meeting' until the meeting ends. (Agents in wrap-up
    are not pulled out of it: they leave when it ends.)"""

    def __init__(self, desk: AgentDesk, members: list[int]):
        self.desk = desk
        self.members = set(members)
        self.active = False
        desk.listeners.append(self._changed)

    def start(self) -> None:
        self.active = True
        for agent_id in self.members:
            if self.desk.session(agent_id).state is AgentState.READY:
                self.desk.change(SYSTEM, agent_id, AgentState.PAUSED, pause_reason="meeting")

    def end(self) -> None:
        self.active = False
        for agent_id in self.members:
            if self.desk.session(agent_id).state is AgentState.PAUSED:
                self.desk.change(SYSTEM, agent_id, AgentState.READY)

    def _changed(self, before: AgentSession, after: AgentSession) -> None:
        if self.active and after.agent_id in self.members and after.state is AgentState.READY:
            self.desk.change(SYSTEM, after.agent_id, AgentState.PAUSED, pause_reason="meeting")


def italian(n: int) -> str:
    return f"+39333{n:07d}"


def new_york(n: int) -> str:
    return f"+1212555{n:04d}"


def los_angeles(n: int) -> str:
    return f"+1310555{n:04d}"


async def make_campaign_cases(conn: asyncpg.Connection) -> tuple[set[str], set[str]]:
    """1,050 debtors in three countries/zones; returns (do-not-call numbers flagged after
    loading, do-not-call first phones)."""
    numbers = (
        [italian(n) for n in range(ITALY)]
        + [new_york(n) for n in range(NEW_YORK)]
        + [los_angeles(n) for n in range(LOS_ANGELES)]
    )
    phones: list[list[tuple[str, list[str]]]] = [[(e, list(time_zones(e)))] for e in numbers]
    # The numbers are placed where the test means them to be (Rome's numbers may also be in
    # the Vatican: both zones must be open).
    assert {tuple(p[0][1]) for p in phones} == {
        ("Europe/Rome", "Europe/Vatican"),
        ("America/New_York",),
        ("America/Los_Angeles",),
    }
    blocked_first = {italian(5_000_000 + n) for n in range(DNC_FIRST_PHONE)}
    for index, e164 in enumerate(sorted(blocked_first)):
        # The debtor's first phone is do-not-call; every 52nd debtor, across the zones.
        phones[52 * index].insert(0, (e164, list(time_zones(e164))))
    await make_cases(
        conn, phones, balances=[1_000 + (n * 7919) % 5_000 for n in range(len(phones))]
    )
    await conn.execute(
        "UPDATE phones SET do_not_call = true WHERE e164 = ANY($1::text[])", sorted(blocked_first)
    )
    late = sorted(numbers[3 + 31 * n] for n in range(DNC_AFTER_LOAD))
    return set(late), blocked_first


@pytest.mark.timeout(150)
async def test_a_predictive_campaign_follows_every_dialing_rule_end_to_end(pool):
    async with pool.acquire() as conn:
        dnc_late, dnc_first = await make_campaign_cases(conn)
        campaign = await create_campaign(
            conn,
            SYSTEM,
            "e2e",
            mode=DialMode.PREDICTIVE,
            pacing={"target_abandon": 0.03},
            compliance_profile="US",
            window_start=WINDOW.start,
            window_end=WINDOW.end,
            days_of_week=tuple(sorted(WINDOW.days)),
            no_answer_timeout=20,
            max_attempts_per_day=MAX_PER_DAY,
            max_attempts_total=MAX_TOTAL,
            retry_delays=RETRY_DELAYS,
        )
        loaded = await load_leads(conn, campaign, START, ["Europe/Rome"])
        # Only now do these debtors ask not to be called: their leads exist and are due.
        await conn.execute(
            "UPDATE phones SET do_not_call = true WHERE e164 = ANY($1::text[])", sorted(dnc_late)
        )
        seeded = await conn.fetch(
            "UPDATE leads SET attempts_total = 2, attempts_today = 1, attempts_day = $1, "
            "last_attempt_at = $2 WHERE id IN (SELECT id FROM leads ORDER BY id DESC LIMIT $3) "
            "RETURNING id",
            START.date() - timedelta(days=1),
            START - timedelta(hours=20),
            SEEDED,
        )
        seeded_ids = {r["id"] for r in seeded}
        agent_ids = [
            (await users.create_user(conn, SYSTEM, f"e2e{n}", "password1", Role.AGENT)).id
            for n in range(AGENTS)
        ]
    assert loaded == 1_000

    # The virtual clock starts with the simulator, after the database is set up.
    sim = AmiSimulator(
        SimOptions(
            port=0,
            time_scale=SCALE,
            start=START,
            auth_fail_delay=0.05,
            seed=5,
            debtors=DebtorModel(ring_median=5.0, talk_median=20.0, no_answer_ring=25.0),
            hold_max=HOLD_MAX,
        )
    )
    witness = SimulatorWitness(sim)
    sim.pbx.listeners.append(witness)
    clock = sim.clock  # the engine and the simulator share one virtual clock
    await sim.start()
    client = AmiClient(
        "127.0.0.1", sim.port, "pratica", "pratica-sim", action_timeout=5.0, reconnect_delay=0.05
    )
    await client.connect()
    calls = CallControl(client)
    calls.start()
    desk = AgentDesk(pool, InProcessBus(), clock, wrap_up_max=WRAP_LIMIT)
    await desk.start()
    engine = CampaignEngine(
        pool,
        InProcessBus(),
        clock,
        desk,
        calls,
        CampaignPacer(),
        EngineSettings(
            dial_template="Local/{number}@sim-debtors",
            agent_dial_template="Local/{agent_id}@sim-agents",
            default_zones=("Europe/Rome",),
            node="e2e",
            tick=1.0,
            promote_every=5.0,
            wrap_up_max=WRAP_LIMIT,
        ),
    )
    await engine.start()
    await engine.add_campaign(campaign.id)
    for agent_id in agent_ids:
        desk.change(SYSTEM, agent_id, AgentState.READY)
    began = wallclock.monotonic()
    meeting = TeamMeeting(desk, agent_ids[:MEETING_SIZE])
    meeting_ends: float | None = None
    try:
        async with asyncio.timeout(120):
            while True:
                await asyncio.sleep(0.5)
                if meeting_ends is None and engine.counters.dialed >= MEETING_AFTER_DIALS:
                    meeting.start()
                    meeting_ends = clock.monotonic() + MEETING_SECONDS
                elif meeting.active and meeting_ends and clock.monotonic() >= meeting_ends:
                    meeting.end()
                async with pool.acquire() as conn:
                    # Done when nothing is due before tomorrow's windows and no call is open.
                    pending = await conn.fetchval(
                        "SELECT count(*) FROM leads l JOIN phones p ON p.id = l.phone_id "
                        "WHERE NOT p.do_not_call AND (l.state IN ('ready', 'dialing') OR "
                        "(l.state = 'scheduled' AND l.next_attempt_at < $1::timestamptz "
                        "+ interval '1 hour'))",
                        clock.now(),
                    )
                    open_calls = await conn.fetchval(
                        "SELECT count(*) FROM call_attempts WHERE ended_at IS NULL"
                    )
                if pending == 0 and open_calls == 0 and not engine.live:
                    break
        await engine.ledger.drain()
    finally:
        virtual_minutes = clock.monotonic() / 60
        real_seconds = wallclock.monotonic() - began
        await engine.stop()
        await desk.stop()
        await calls.stop()
        await client.close()
        await sim.close()
    counters = engine.counters
    print(
        f"\ncampaign: {virtual_minutes:.1f} virtual minutes in {real_seconds:.1f} s; dialed "
        f"{counters.dialed}, live {counters.live}, connected {counters.connected}, abandoned "
        f"{counters.abandoned}, machines {counters.machines}; simulator {sim.pbx.truth}"
    )

    async with pool.acquire() as conn:
        attempts = await conn.fetch(
            "SELECT a.attempt_key, a.lead_id, a.phone_id, a.e164, a.started_at, a.ended_at, "
            "a.outcome, a.abandoned_at FROM call_attempts a ORDER BY a.lead_id, a.started_at"
        )
        leads = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT l.id, l.state, l.attempts_total, l.next_attempt_at, z.zones "
                "FROM leads l JOIN zone_sets z ON z.id = l.zone_set_id"
            )
        }
        dnc_lead_states = await conn.fetch(
            "SELECT l.id, l.state, l.attempts_total FROM leads l JOIN phones p ON p.id = l.phone_id "
            "WHERE p.e164 = ANY($1::text[])",
            sorted(dnc_late),
        )
    truth = sim.pbx.truth
    rings = witness.rings

    # Every originate is in the ledger once, under a key never used twice; the simulator's
    # count of originates is the ledger's rows plus the agents' nailed-up legs.
    keys = [a["attempt_key"] for a in attempts]
    assert len(keys) == len(set(keys))
    assert truth["originate"] == len(attempts) + AGENTS
    assert truth["dialed"] == len(rings) == len(attempts) == engine.counters.dialed
    ring_keys = Counter(r.attempt for r in rings)
    assert set(ring_keys) == set(keys) and max(ring_keys.values()) == 1
    assert all(a["ended_at"] is not None for a in attempts)
    assert all(r.ended is not None for r in rings)
    # The campaign got through its leads: every dialable lead was called at least once.
    assert len({a["lead_id"] for a in attempts}) == 1_000 - DNC_AFTER_LOAD

    # No lead, and no number, is ever in two calls at once: by the ledger and by the
    # simulator's own record of when each debtor's phone rang and hung up.
    by_lead: dict[int, list[asyncpg.Record]] = defaultdict(list)
    for a in attempts:
        by_lead[a["lead_id"]].append(a)
    for rows in by_lead.values():
        for before, after in zip(rows, rows[1:], strict=False):
            assert before["ended_at"] <= after["started_at"], (before, after)
    by_number: dict[str, list[Ring]] = defaultdict(list)
    for ring in rings:
        by_number[ring.number].append(ring)
    for number_rings in by_number.values():
        number_rings.sort(key=lambda r: r.started)
        for first, second in zip(number_rings, number_rings[1:], strict=False):
            assert first.ended is not None and first.ended <= second.started, (first, second)

    # Retry rules: each gap between a lead's consecutive attempts is at least the campaign's
    # delay for how the earlier one ended; nothing follows a connected call; limits hold.
    today = START.date()
    gaps: Counter[str] = Counter()
    for lead_id, rows in by_lead.items():
        lead = leads[lead_id]
        for before, after in zip(rows, rows[1:], strict=False):
            outcome = before["outcome"]
            assert outcome != "completed", f"lead {lead_id} dialed again after a connect"
            wait = (after["started_at"] - before["ended_at"]).total_seconds()
            if outcome in WRONG_PHONE:
                assert after["phone_id"] != before["phone_id"]
                assert wait >= WRONG_PHONE[outcome], (lead_id, outcome, wait)
            else:
                assert after["phone_id"] == before["phone_id"]
                assert wait >= DELAY_AFTER[outcome], (lead_id, outcome, wait)
            gaps[outcome] += 1
        history = 2 if lead_id in seeded_ids else 0
        today_count = sum(1 for a in rows if a["started_at"].date() == today)
        assert today_count <= MAX_PER_DAY
        assert history + len(rows) <= MAX_TOTAL
        assert lead["attempts_total"] == history + len(rows)
        last = rows[-1]["outcome"]
        if last == "completed":
            assert lead["state"] == "done"
        elif last in DELAY_AFTER and history + len(rows) == MAX_TOTAL:
            assert lead["state"] == "exhausted"
        elif last in DELAY_AFTER:
            # Retries left, none allowed today: the next one waits for the lead's own next
            # calling day, at a moment the window is open in all of its zones.
            assert today_count == MAX_PER_DAY, (lead_id, [r["outcome"] for r in rows])
            assert lead["state"] == "scheduled"
            nxt = lead["next_attempt_at"]
            for zone in lead["zones"]:
                local_last = rows[-1]["ended_at"].astimezone(ZoneInfo(zone)).date()
                assert nxt.astimezone(ZoneInfo(zone)).date() > local_last
            assert WINDOW.open_in(lead["zones"], nxt)
        else:
            assert last in WRONG_PHONE and lead["state"] == "exhausted"
    # The rules were exercised, not vacuously true.
    assert gaps["no_answer"] > 0 and gaps["busy"] > 0 and gaps["machine"] > 0
    assert sum(1 for lid, rows in by_lead.items() if lid in seeded_ids) > 0
    assert sum(1 for lead in leads.values() if lead["state"] == "exhausted") > 0
    assert any(
        sum(1 for a in rows if a["started_at"].date() == today) == MAX_PER_DAY
        for rows in by_lead.values()
    )

    # Call windows in each number's own zones: no call started outside 08:00-21:00 local.
    for ring in rings:
        zones = time_zones(ring.number)
        assert WINDOW.open_in(zones, ring.started), (ring.number, ring.started)
    for a in attempts:
        assert WINDOW.open_in(time_zones(a["e164"]), a["started_at"]), a
    la_rings = [r.started for r in rings if r.number.startswith("+1310")]
    others_before_la = [r for r in rings if r.started < LA_OPENS]
    assert others_before_la, "the campaign should have been dialing before Los Angeles opened"
    assert la_rings and min(la_rings) >= LA_OPENS

    # Do-not-call: those numbers never rang, and their leads were never claimed.
    dialed_numbers = {r.number for r in rings} | {a["e164"] for a in attempts}
    assert not dialed_numbers & (dnc_late | dnc_first)
    assert len(dnc_lead_states) == DNC_AFTER_LOAD
    for r in dnc_lead_states:
        assert r["state"] == "ready", r
        assert r["attempts_total"] == (2 if r["id"] in seeded_ids else 0), r

    # Every live debtor was taken off hold by the engine (into a conference or to the
    # abandonment message), none forgotten until the dialplan's own 30 s hold timeout or
    # until it hung up. At 60x a 100 ms stall of the shared event loop is 6 virtual
    # seconds, so the 2 s connect limit is checked with an allowance for such stalls;
    # a call dropped from the switchboard holds far longer.
    assert len(witness.held) == truth["amd_human"] == counters.live
    redirected = [seconds for seconds, how in witness.held if how != "hangup"]
    assert max(redirected) < HOLD_MAX / 2, sorted(redirected)[-5:]
    hung_up_on_hold = [seconds for seconds, how in witness.held if how == "hangup"]
    assert all(s < CONNECT_LIMIT + STALL_ALLOWANCE for s in hung_up_on_hold), hung_up_on_hold

    # Abandons: what the ledger counts is what the simulator played the message to.
    outcomes = Counter(a["outcome"] for a in attempts)
    abandoned_rows = [a for a in attempts if a["outcome"] == "abandoned"]
    assert outcomes["abandoned"] == truth.get("abandon_message", 0) == engine.counters.abandoned
    assert outcomes["abandoned"] > 0, "the meeting should have left live answers without agents"
    assert all(a["abandoned_at"] is not None for a in abandoned_rows)
    assert outcomes["completed"] == truth.get("connected", 0) > 0
