"""AMI wire format: bytes to messages and back, with no I/O.

Shared by the client adapter (`dialer.ami_client`) and the simulator (`dialer.sim`).
An AMI message is a block of `Name: value` lines ended by an empty line; names may
repeat (`ChanVariable`, `Variable`). The decoder is incremental (feed it whatever the
socket returned), tolerates bare `\\n` line ends and garbage lines, and enforces a clear
limit on line length and header count so that a misbehaving peer cannot grow memory
without bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

BANNER_PREFIX = "Asterisk Call Manager/"
MAX_LINE_BYTES = 64 * 1024
MAX_HEADERS = 1024


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


@dataclass
class AmiDecoder:
    """Incremental decoder. `feed(bytes)` returns the complete messages so far.

    With `expect_banner`, the first line is the protocol banner (kept in `banner`).
    Oversized lines are skipped up to their line end; a message with more than
    `max_headers` headers is dropped whole. Both are counted in `stats`.
    """

    expect_banner: bool = False
    max_line: int = MAX_LINE_BYTES
    max_headers: int = MAX_HEADERS
    banner: str | None = None
    stats: DecoderStats = field(default_factory=DecoderStats)
    _buffer: bytearray = field(default_factory=bytearray)
    _headers: list[tuple[str, str]] = field(default_factory=list)
    _skipping_line: bool = False
    _overflow: bool = False

    def feed(self, data: bytes) -> list[AmiMessage]:
        self._buffer += data
        out: list[AmiMessage] = []
        buf = self._buffer
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buf[start:end])
            start = end + 1
            if self._skipping_line:
                self._skipping_line = False
                continue
            if len(line) > self.max_line:
                self._oversized()
                continue
            message = self._line(line.rstrip(b"\r").decode("utf-8", "replace"))
            if message is not None:
                out.append(message)
        del buf[:start]
        if len(buf) > self.max_line:
            # A line that never ends: forget it and ignore the rest until its newline.
            buf.clear()
            self._skipping_line = True
            self._oversized()
        return out

    def _oversized(self) -> None:
        self.stats.oversized_lines += 1
        self.stats.last_error = f"AMI line longer than {self.max_line} bytes skipped"
        self._overflow = True

    def _line(self, line: str) -> AmiMessage | None:
        if self.expect_banner and self.banner is None:
            if line.startswith(BANNER_PREFIX):
                self.banner = line
                return None
            self.banner = ""
        if not line:
            if not self._headers:
                if self._overflow:
                    self._overflow = False
                    self.stats.dropped_messages += 1
                return None
            headers = tuple(self._headers)
            self._headers = []
            if self._overflow:
                # Part of it was lost: a message with missing headers could mislead
                # the state machines, so it is dropped whole.
                self._overflow = False
                self.stats.dropped_messages += 1
                return None
            self.stats.messages += 1
            return AmiMessage(headers)
        name, sep, value = line.partition(":")
        if not sep or not name or " " in name:
            self.stats.garbage_lines += 1
            self.stats.last_error = "AMI line without a header name ignored"
            return None
        if len(self._headers) >= self.max_headers:
            self._overflow = True
            self.stats.last_error = f"AMI message with more than {self.max_headers} headers"
            return None
        self._headers.append((name, value[1:] if value.startswith(" ") else value))
        return None


def decode_all(data: bytes, expect_banner: bool = False) -> list[AmiMessage]:
    """Decode a complete byte string (for fixtures and tests)."""
    return AmiDecoder(expect_banner=expect_banner).feed(data)


def iter_headers(messages: Sequence[AmiMessage]) -> Iterator[dict[str, str]]:
    for message in messages:
        yield message.as_dict()
