"""The simulator's TCP server: AMI sessions, login, event filtering and fault injection.

`AmiSimulator(options)` listens like Asterisk's manager port; `start()`/`close()` or
`async with`. Each connection gets the banner, must log in (plain or MD5 challenge),
and then receives the PBX's events according to its `Events` setting. `restart()`
behaves like `core restart now|gracefully` on Asterisk 22 (see `shutdown()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dialer.ami_codec import AmiMessage, encode
from dialer.sim.actions import Actions, error, response
from dialer.sim.clock import ScaledClock
from dialer.sim.debtors import AgentModel, DebtorModel
from dialer.sim.dialplan import Dialplan
from dialer.sim.extensions import EXTENSIONS
from dialer.sim.manager_input import ManagerInput, ManagerRequest
from dialer.sim.pbx import Pbx

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
MAX_WRITE_BACKLOG = 32 * 1024 * 1024


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


class AmiSession:
    def __init__(
        self, sim: AmiSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.input = ManagerInput()
        self.authenticated = False
        self.events: frozenset[str] | None = None  # None: all classes; empty: off
        self.challenge = ""
        self.session_start = datetime.now(UTC)
        self.sent_events = 0
        self._held: AmiMessage | None = None
        self.closed = False
        self.frozen = False

    def send(self, message: AmiMessage | bytes) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(message if isinstance(message, bytes) else encode(message))
        if self.writer.transport.get_write_buffer_size() > MAX_WRITE_BACKLOG:
            # A client that does not read: Asterisk drops it after `writetimeout`.
            log.warning("AMI simulator: client not reading, dropping its connection")
            self.drop()

    def drop(self) -> None:
        self.closed = True
        transport = self.writer.transport
        transport.abort()

    async def close(self) -> None:
        """Close after what was written has gone out (the PBX is going away)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()
        self.writer.close()

    def on_event(self, message: AmiMessage) -> None:
        if self.events is not None:
            classes = set(message.get("Privilege").split(","))
            if not classes & self.events:
                return
        faults = self.sim.faults
        self.sent_events += 1
        n = self.sent_events
        if self.closed or self.frozen:
            return
        if faults.garbage_every and n % faults.garbage_every == 0:
            self.writer.write(b"this is not an AMI header\r\n")
        if faults.huge_header_every and n % faults.huge_header_every == 0:
            self.writer.write(
                b"Event: Junk\r\nData: " + b"x" * faults.huge_header_bytes + b"\r\n\r\n"
            )
        if faults.reorder:
            ready = self._reorder(message)
            if ready is None:
                return
            message = ready
        if faults.event_delay > 0:
            loop = asyncio.get_running_loop()
            loop.call_later(faults.event_delay, self.send, message)
        else:
            self.send(message)
        if faults.drop_after_events and n >= faults.drop_after_events:
            self.drop()

    def _reorder(self, message: AmiMessage) -> AmiMessage | None:
        held, self._held = self._held, None
        if held is None:
            if message.get("Uniqueid"):
                self._held = message
                asyncio.get_running_loop().call_later(0.01, self._flush)
                return None
            return message
        if held.get("Uniqueid") != message.get("Uniqueid") and message.get("Uniqueid"):
            self.send(message)  # a different channel may overtake: Asterisk allows it
            return held
        self.send(held)
        return message

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self.send(held)

    async def run(self) -> None:
        self.writer.write(BANNER)
        try:
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                for request in self.input.feed(data):
                    if self.frozen:
                        continue
                    await self.handle(request)
                    if self.closed:
                        break
                await self.writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.closed = True
            self.writer.close()

    async def handle(self, request: ManagerRequest) -> None:
        """One request, checked in the order of Asterisk's `process_message`."""
        action = request.message
        if request.error:
            self.send(error(action, request.error))
            return
        name = action.action.lower()
        if not name:
            self.send(error(action, "Missing action in request"))
            self._security_event("RequestBadFormat", "Error", ("RequestType", "Action: NONE"))
            return
        if self.sim.shutting_down:
            self.send(error(action, "Asterisk is shutting down"))
            return
        if not self.authenticated and name not in ("login", "logoff", "challenge"):
            self.send(error(action, "Permission denied"))
            return
        if name == "login":
            await self.login(action)
            return
        if name == "challenge":
            if action.get("AuthType").lower() != "md5":
                self.send(error(action, "Must specify AuthType"))
                return
            # Decimal, as Asterisk's ast_random(); the same for the whole session.
            self.challenge = self.challenge or str(secrets.randbelow(2**31))
            self.send(response(action, "Success", ("Challenge", self.challenge)))
            return
        if name == "logoff":
            self.send(response(action, "Goodbye", ("Message", "Thanks for all the fish.")))
            await self.writer.drain()
            self.closed = True
            return
        if name == "ping":
            self.send(response(action, "Success", ("Ping", "Pong"),
                               ("Timestamp", f"{time.time():.6f}")))  # fmt: skip
            return
        if name == "events":
            mask = action.get("EventMask")
            if not mask.strip():
                self.send(error(action, "Invalid event mask"))
                return
            self.events = event_mask(mask)
            self.sim.update_interest()
            state = "Off" if self.events == frozenset() else "On"
            self.send(response(action, "Success", ("Events", state)))
            return
        handler = self.sim.actions.handlers.get(name)
        if handler is None:
            self.send(error(action, f"Invalid/unknown command: {action.action}. "
                                    "Use Action: ListCommands to show available commands."))  # fmt: skip
            self._security_event("RequestBadFormat", "Error",
                                 ("RequestType", f"Action: {action.action}"))  # fmt: skip
            return
        for message in await handler(action):
            self.send(message)

    async def login(self, action: AmiMessage) -> None:
        if self.authenticated:
            self.send(response(action, "Success", ("Message", "Already authenticated")))
            return
        options = self.sim.options
        secret_ok = _same(action.get("Username"), options.username) and (
            _same(action.get("Secret"), options.secret)
            if action.get("AuthType").lower() != "md5"
            else bool(self.challenge)
            and _same(action.get("Key"), _md5_key(self.challenge, options.secret))
        )
        if not secret_ok:
            log.info("AMI simulator: authentication failed for %r", action.get("Username"))
            await asyncio.sleep(options.auth_fail_delay)
            self.send(error(action, "Authentication failed"))
            await self.writer.drain()
            self.closed = True
            return
        self.authenticated = True
        self.sim.logins += 1
        self.events = event_mask(action.get("Events") or "on")
        self.session_start = datetime.now(UTC)
        self.send(response(action, "Success", ("Message", "Authentication accepted")))
        booted = AmiMessage((("Event", "FullyBooted"), ("Privilege", "system,all"),
                             ("Uptime", str(int(time.time() - self.sim.started))),
                             ("LastReload", str(int(time.time() - self.sim.started))),
                             ("Status", "Fully Booted")))  # fmt: skip
        if self.events is None or "system" in self.events:
            self.send(booted)
        self.sim.pbx.listeners.append(self.on_event)
        self.sim.update_interest()
        self._security_event("SuccessfulAuth", "Informational", ("UsingPassword", "0"))

    def _security_event(self, event: str, severity: str, *extra: tuple[str, str]) -> None:
        """A security event, sent to every session that receives the `security` class."""
        now = _event_tv(datetime.now(UTC))
        local = _address(self.writer.get_extra_info("sockname"))
        remote = _address(self.writer.get_extra_info("peername"))
        common = [("EventTV", now), ("Severity", severity), ("Service", "AMI"),
                  ("EventVersion", "1")]  # fmt: skip
        session = [("SessionID", f"0x{id(self):x}"), ("LocalAddress", local),
                   ("RemoteAddress", remote)]  # fmt: skip
        started = ("SessionTV", _event_tv(self.session_start))
        account = ("AccountID", self.sim.options.username)
        if event == "SuccessfulAuth":
            headers = [*common, account, *session, *extra, started]
        else:
            headers = [*common, *session, *extra, started, account]
        self.sim.pbx.emit(event, "security", headers)


def _event_tv(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def _address(sockname: object) -> str:
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return f"IPV4/TCP/{sockname[0]}/{sockname[1]}"
    return "IPV4/TCP/0.0.0.0/0"


# Asterisk's event classes and their bits (manager.h); `all` is every bit.
EVENT_CLASSES = {
    "system": 1 << 0, "call": 1 << 1, "log": 1 << 2, "verbose": 1 << 3, "command": 1 << 4,
    "agent": 1 << 5, "user": 1 << 6, "config": 1 << 7, "dtmf": 1 << 8, "reporting": 1 << 9,
    "cdr": 1 << 10, "dialplan": 1 << 11, "originate": 1 << 12, "agi": 1 << 13, "cc": 1 << 15,
    "aoc": 1 << 16, "test": 1 << 17, "security": 1 << 18, "message": 1 << 30,
}  # fmt: skip
_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})
_FALSE = frozenset({"no", "false", "n", "f", "0", "off"})


def event_mask(text: str) -> frozenset[str] | None:
    """The event classes a `Events`/`EventMask` value asks for (None: all; empty: off).

    As Asterisk's `strings_to_mask`: a number is a bit mask, a false word is off, a
    true word is all, else the comma-separated class names; a value naming no class
    (a typo) is off, not all.
    """
    value = text.strip()
    if value.isdigit():
        bits = int(value)
        if bits & 0x7FFFFFFF == 0x7FFFFFFF:
            return None
        return frozenset(name for name, bit in EVENT_CLASSES.items() if bits & bit)
    if value.lower() in _FALSE:
        return frozenset()
    if value.lower() in _TRUE:
        return None
    parts = value.split(",")
    wanted: set[str] = set()
    for label in [*EVENT_CLASSES, "all"]:
        # Asterisk's ast_instring: every part but the last matches as a prefix of the
        # label, the last one exactly (case-sensitive).
        if any(label.startswith(p) for p in parts[:-1] if p) or parts[-1] == label:
            if label == "all":
                return None
            wanted.add(label)
    return frozenset(wanted)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _md5_key(challenge: str, secret: str) -> str:
    """Asterisk's MD5 login: md5(challenge + secret), hex."""
    return hashlib.md5((challenge + secret).encode(), usedforsecurity=False).hexdigest()
