"""AMI wire format: bytes to messages and back, with no I/O.

Shared by the client adapter (`dialer.ami_client`) and the simulator (`dialer.sim`).
An AMI message is a block of `Name: value` lines ended by an empty line; names may
repeat (`ChanVariable`, `Variable`). The decoder is incremental (feed it whatever the
socket returned), tolerates bare `\\n` line ends and garbage lines, and enforces a clear
limit on line length and header count so that a misbehaving peer cannot grow memory
without bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

BANNER_PREFIX = "Asterisk Call Manager/"
MAX_LINE_BYTES = 64 * 1024
MAX_HEADERS = 1024
MAX_MESSAGE_BYTES = 1024 * 1024


class AmiEncodeError(ValueError):
    """A header name or value that would break the AMI framing (CR/LF, empty name)."""


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message: ordered headers, names compared case-insensitively."""

    headers: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, *pairs: tuple[str, str], **named: str) -> AmiMessage:
        return cls(tuple(pairs) + tuple(named.items()))

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.headers:
            if key == name:  # Asterisk's own spelling: the fast path
                return value
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [value for key, value in self.headers if key.lower() == lname]

    def has(self, name: str) -> bool:
        lname = name.lower()
        return any(key.lower() == lname for key, _ in self.headers)

    def as_dict(self) -> dict[str, str]:
        """First value of each header, keyed by the header's own spelling."""
        out: dict[str, str] = {}
        for key, value in self.headers:
            out.setdefault(key, value)
        return out

    @property
    def event(self) -> str:
        """The event name, or '' for responses and actions."""
        return self.get("Event")

    @property
    def response(self) -> str:
        return self.get("Response")

    @property
    def action(self) -> str:
        return self.get("Action")

    @property
    def action_id(self) -> str:
        return self.get("ActionID")

    def channel_vars(self, prefix: str = "") -> dict[str, str]:
        """`ChanVariable: NAME=value` headers (with an optional prefix such as `Dest`)."""
        out: dict[str, str] = {}
        for raw in self.get_all(prefix + "ChanVariable"):
            name, _, value = raw.partition("=")
            out[name] = value
        return out


def encode_message(headers: Iterable[tuple[str, str]]) -> bytes:
    """Serialize headers as one AMI message; refuses CR/LF inside names or values."""
    parts: list[str] = []
    for name, value in headers:
        if not name or any(c in name for c in "\r\n:"):
            raise AmiEncodeError(f"bad AMI header name {name!r}")
        text = str(value)
        if "\r" in text or "\n" in text:
            raise AmiEncodeError(f"AMI header {name} has a line break in its value")
        parts.append(f"{name}: {text}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def encode(message: AmiMessage) -> bytes:
    return encode_message(message.headers)


@dataclass
class DecoderStats:
    messages: int = 0
    garbage_lines: int = 0
    oversized_lines: int = 0
    dropped_messages: int = 0
    last_error: str = ""


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


@dataclass
class AmiDecoder:
    """Incremental decoder. `feed(bytes)` returns the complete messages so far.

    With `expect_banner`, the first line is the protocol banner (kept in `banner`).
    A message with a line longer than `max_line`, more than `max_headers` headers, or
    more than `max_message` bytes is dropped whole (a message with missing headers could
    mislead the state machines); the stream resumes at the next message. All of it is
    counted in `stats`, and memory stays bounded by `max_message`.
    """

    expect_banner: bool = False
    max_line: int = MAX_LINE_BYTES
    max_headers: int = MAX_HEADERS
    max_message: int = MAX_MESSAGE_BYTES
    banner: str | None = None
    stats: DecoderStats = field(default_factory=DecoderStats)
    _buffer: bytearray = field(default_factory=bytearray)
    _skipping: bool = False  # dropping an oversized message up to its blank line

    def feed(self, data: bytes) -> list[AmiMessage]:
        buf = self._buffer
        buf += data
        if self.expect_banner and self.banner is None and not self._take_banner():
            return []
        out: list[AmiMessage] = []
        pos = 0
        for match in _BLANK_LINE.finditer(buf):
            block = bytes(buf[pos : match.start()])
            pos = match.end()
            if self._skipping:
                self._skipping = False
                continue
            if block:
                message = self._block(block)
                if message is not None:
                    out.append(message)
        del buf[:pos]
        if len(buf) > self.max_message:
            # Keep the tail so a blank line split across reads is still found.
            tail = bytes(buf[-3:])
            buf.clear()
            buf += tail
            if not self._skipping:
                self._skipping = True
                self._drop(f"AMI message longer than {self.max_message} bytes skipped")
                self.stats.oversized_lines += 1
        return out

    def _take_banner(self) -> bool:
        end = self._buffer.find(b"\n")
        if end < 0:
            return len(self._buffer) > self.max_line and self._no_banner()
        line = bytes(self._buffer[:end]).rstrip(b"\r").decode("utf-8", "replace")
        if line.startswith(BANNER_PREFIX):
            self.banner = line
            del self._buffer[: end + 1]
        else:
            self.banner = ""
        return True

    def _no_banner(self) -> bool:
        self.banner = ""
        return True

    def _drop(self, reason: str) -> None:
        self.stats.dropped_messages += 1
        self.stats.last_error = reason

    def _block(self, block: bytes) -> AmiMessage | None:
        lines = block.decode("utf-8", "replace").splitlines()
        if len(lines) > self.max_headers:
            self._drop(f"AMI message with more than {self.max_headers} headers dropped")
            return None
        headers: list[tuple[str, str]] = []
        check_length = len(block) > self.max_line
        for line in lines:
            if check_length and len(line) > self.max_line:
                self.stats.oversized_lines += 1
                self._drop(f"AMI line longer than {self.max_line} bytes: message dropped")
                return None
            name, sep, value = line.partition(":")
            if not sep or not name or " " in name:
                if line:
                    self.stats.garbage_lines += 1
                    self.stats.last_error = "AMI line without a header name ignored"
                continue
            headers.append((name, value[1:] if value[:1] == " " else value))
        if not headers:
            return None
        self.stats.messages += 1
        return AmiMessage(tuple(headers))


def decode_all(data: bytes, expect_banner: bool = False) -> list[AmiMessage]:
    """Decode a complete byte string (for fixtures and tests)."""
    return AmiDecoder(expect_banner=expect_banner).feed(data)
