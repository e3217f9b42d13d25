"""One AMI connection of the simulator: Asterisk's manager session rules.

Requests are checked in the order of manager.c's `process_message` (parse errors,
missing action, shutting down, permission, then the action); login, challenge, the
event mask and the security events a session causes live here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dialer.ami_codec import AmiMessage, encode
from dialer.sim.manager_input import ManagerInput, ManagerRequest
from dialer.sim.queries import error, response

if TYPE_CHECKING:
    from dialer.sim.server import AmiSimulator

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
MAX_WRITE_BACKLOG = 32 * 1024 * 1024


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
