"""The simulator's TCP server: the PBX's lifetime, its sessions and fault injection.

`AmiSimulator(options)` listens like Asterisk's manager port; `start()`/`close()` or
`async with`. Each connection gets the banner, must log in (plain or MD5 challenge),
and then receives the PBX's events according to its `Events` setting. `restart()`
behaves like `core restart now|gracefully` on Asterisk 22 (see `shutdown()`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime

from dialer.sim.actions import Actions
from dialer.sim.clock import ScaledClock
from dialer.sim.debtors import AgentModel, DebtorModel
from dialer.sim.dialplan import Dialplan
from dialer.sim.extensions import EXTENSIONS
from dialer.sim.pbx import Pbx
from dialer.sim.session import AmiSession

__all__ = ["AmiSession", "AmiSimulator", "SimFaults", "SimOptions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimFaults:
    """Faults injected into every session (tests flip them at run time as well)."""

    drop_after_events: int = 0  # close the connection after this many events (0: never)
    event_delay: float = 0.0  # real seconds each event is held back
    reorder: bool = False  # swap adjacent events of different channels (allowed by Asterisk)
    garbage_every: int = 0  # a garbage line before every Nth event
    huge_header_every: int = 0  # an event with a huge header every Nth event
    huge_header_bytes: int = 200_000


@dataclass(frozen=True)
class SimOptions:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "pratica"
    secret: str = "pratica-sim"
    time_scale: float = 1.0
    start: datetime | None = None  # virtual wall clock start (drives hour-of-day drift)
    seed: int = 1
    debtors: DebtorModel = field(default_factory=DebtorModel)
    agents: AgentModel = field(default_factory=AgentModel)
    simulated_agents: bool = False
    hold_max: float = 30.0
    inbound_max: float = 600.0  # the inbound dialplan's own safety net
    amd_accuracy: float = 1.0
    auth_fail_delay: float = 1.0  # real seconds, as Asterisk's
    channelvars: tuple[str, ...] = ("ATTEMPT",)
    faults: SimFaults = field(default_factory=SimFaults)
    # Debtors calling in (per virtual hour): most call back a number that dialed them,
    # the rest are unknown to us; each waits up to a drawn patience, then hangs up.
    inbound_per_hour: float = 0.0
    inbound_known_share: float = 0.8
    inbound_patience_median: float = 60.0
    # Dialplan applications whose module did not load (e.g. "AMD" without amd.conf): a
    # channel reaching one is hung up, as Asterisk does ("No application 'AMD'").
    missing_apps: frozenset[str] = frozenset()


class AmiSimulator:
    def __init__(self, options: SimOptions = SimOptions()):
        self.options = options
        self.clock = ScaledClock(options.time_scale, options.start)
        self.faults = options.faults
        self.sessions: set[AmiSession] = set()
        self._server: asyncio.Server | None = None
        self.port = options.port
        self.logins = 0
        self.connections = 0
        self.boots = 0
        self.shutting_down = False
        self._inbound: asyncio.Task[None] | None = None
        self._boot()

    def _boot(self) -> None:
        """A fresh PBX: no channels, counters and Uniqueid sequence from the start."""
        options = self.options
        self.pbx = Pbx(
            self.clock,
            options.debtors,
            options.agents,
            random.Random(options.seed + self.boots),
            options.channelvars,
            options.simulated_agents,
        )
        self.dialplan = Dialplan(
            self.pbx,
            options.hold_max,
            options.amd_accuracy,
            options.inbound_max,
            missing_apps=options.missing_apps,
        )
        self.pbx.globals.update(EXTENSIONS.globals)  # the dialplan's [globals]
        self.actions = Actions(self.pbx, self.dialplan)
        self.started = time.time()
        self.boots += 1
        self.shutting_down = False

    async def start(self) -> None:
        if self.options.inbound_per_hour > 0:
            task = asyncio.get_running_loop().create_task(self._inbound_callers())
            self.pbx.tasks.add(task)
            task.add_done_callback(self.pbx.tasks.discard)
            self._inbound = task
        # After a restart the port is the one clients know, not a new free one.
        port = self.port if self.boots > 1 else self.options.port
        self._server = await asyncio.start_server(self._serve, self.options.host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("AMI simulator listening on %s:%s", self.options.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.drop()
        self._stop_pbx()
        if self._server is not None:
            await self._server.wait_closed()

    def _stop_pbx(self) -> None:
        for task in list(self.pbx.tasks):
            task.cancel()
        for ch in list(self.pbx.channels.values()):
            if ch.task is not None:
                ch.task.cancel()

    async def shutdown(
        self, *, gracefully: bool = False, restart: bool = False, shutting_down_for: float = 1.0
    ) -> None:
        """`core stop|restart now|gracefully`: the PBX goes away, the port is closed.

        From the first moment every action (Login and Logoff too) is answered
        `Message: Asterisk is shutting down`. `now` soft-hangs-up every channel
        (`SoftHangupRequest` `Cause: 4`, then `Hangup` `Cause: 0`); `gracefully` waits
        for the calls to end by themselves. After `shutting_down_for` real seconds
        (Asterisk sleeps 1 s when it had channels to wait for), the `Shutdown` event
        (`Shutdown: Cleanly|Uncleanly`, `Restart: True|False`) goes to every session,
        the connections are closed and the port refuses connections until `boot()`.
        """
        self.shutting_down = True
        pbx = self.pbx
        if self._inbound is not None:
            self._inbound.cancel()  # no new channels from now on
        if gracefully:
            while pbx.channels:
                pbx.emptied.clear()
                await pbx.emptied.wait()
        else:
            for one in pbx.shutdown_hangup():
                self.dialplan.originate_failed(one, 0)
        await asyncio.sleep(shutting_down_for)
        pbx.emit("Shutdown", "system", [("Shutdown", "Uncleanly" if pbx.channels else "Cleanly"),
                                        ("Restart", "True" if restart else "False")])  # fmt: skip
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            await session.close()
        self._stop_pbx()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def boot(self) -> None:
        """Start a fresh PBX on the same port (after `shutdown()`)."""
        self._boot()
        await self.start()

    async def restart(
        self, down_for: float = 15.0, *, gracefully: bool = False, shutting_down_for: float = 1.0
    ) -> None:
        """`core restart now|gracefully`, down `down_for` real seconds, then up again."""
        await self.shutdown(
            gracefully=gracefully, restart=True, shutting_down_for=shutting_down_for
        )
        await asyncio.sleep(down_for)
        await self.boot()

    async def _inbound_callers(self) -> None:
        """Debtors calling in at random (a Poisson process in virtual time)."""
        o, rng = self.options, self.pbx.rng
        while True:
            await self.clock.sleep(rng.expovariate(o.inbound_per_hour / 3600.0))
            dialed = self.pbx.dialed_numbers
            if dialed and rng.random() < o.inbound_known_share:
                caller = "+" + rng.choice(dialed)
            else:
                caller = f"+39347{rng.randint(1_000_000, 9_999_999)}"
            patience = o.inbound_patience_median * rng.lognormvariate(0.0, 0.5)
            talk = o.debtors.talk_median * rng.lognormvariate(0.0, o.debtors.talk_sigma)
            self.dialplan.inbound_call(caller, "800", patience=patience, talk=talk)

    async def __aenter__(self) -> AmiSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        if self._server is not None:
            await self._server.serve_forever()

    def drop_agent_phone(self, agent: str) -> bool:
        """Fault: the agent's simulated phone (`Local/<agent>@sim-agents`) hangs up."""
        return self.dialplan.drop_agent_phone(agent)

    def freeze(self) -> None:
        """Fault: current connections go silent (half-open link): no replies, no events."""
        for session in self.sessions:
            session.frozen = True

    def drop_connections(self) -> None:
        """Fault: close every AMI connection at once (calls keep going)."""
        for session in list(self.sessions):
            session.drop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = AmiSession(self, reader, writer)
        self.connections += 1
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            self.pbx.listeners[:] = [x for x in self.pbx.listeners if x != session.on_event]
            self.update_interest()

    def update_interest(self) -> None:
        """Mute the event classes that no logged-in session receives."""
        wanted: set[str] = set()
        for session in self.sessions:
            if not session.authenticated:
                continue
            if session.events is None:
                self.pbx.muted = frozenset()
                return
            wanted |= session.events
        self.pbx.muted = frozenset({"call", "dialplan", "user", "system", "agent"} - wanted)
