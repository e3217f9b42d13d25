"""How Asterisk's manager reads a client's actions: lines into requests, with its limits.

Asterisk reads a session into a 1025-byte buffer (1024 bytes and a NUL), so a line with
its line end longer than 1024 bytes cannot be read whole: it is discarded and the
message that holds it is answered "Failed to parse message: line too long". A message
keeps at most 128 lines (AST_MAX_MANHEADERS); a longer one is answered "Too many lines
in message or allocation failure". In both cases the action is not run. Every empty
line ends a message, even one with no lines at all (Asterisk then answers "Missing
action in request").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dialer.ami_codec import AmiMessage

MAX_LINE_BYTES = 1024  # a line and its line end
MAX_LINES = 128

LINE_TOO_LONG = "Failed to parse message: line too long"
TOO_MANY_LINES = "Too many lines in message or allocation failure"


@dataclass(frozen=True, slots=True)
class ManagerRequest:
    """One message from the client; `error` set when Asterisk refuses to run it."""

    message: AmiMessage
    error: str = ""


@dataclass
class ManagerInput:
    """Incremental reader: `feed(bytes)` returns the complete requests so far."""

    _buffer: bytearray = field(default_factory=bytearray)
    _lines: list[tuple[str, str]] = field(default_factory=list)
    _count: int = 0
    _too_long: bool = False
    _too_many: bool = False
    _skipping_line: bool = False  # inside a line already found too long

    def feed(self, data: bytes) -> list[ManagerRequest]:
        buf = self._buffer
        buf += data
        out: list[ManagerRequest] = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            raw = bytes(buf[start:end])
            start = end + 1
            if self._skipping_line:
                self._skipping_line = False
                continue
            if len(raw) + 1 > MAX_LINE_BYTES:
                self._too_long = True
                continue
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                out.append(self._finish())
                continue
            self._add(line.decode("utf-8", "replace"))
        del buf[:start]
        if len(buf) >= MAX_LINE_BYTES:
            # No line end within the buffer: Asterisk drops what it holds.
            self._too_long = True
            self._skipping_line = True
            buf.clear()
        return out

    def _add(self, line: str) -> None:
        if self._count >= MAX_LINES:
            self._too_many = True
            return
        self._count += 1
        name, sep, value = line.partition(":")
        if sep:
            self._lines.append((name, value.lstrip(" \t")))

    def _finish(self) -> ManagerRequest:
        message = AmiMessage(tuple(self._lines))
        error = TOO_MANY_LINES if self._too_many else LINE_TOO_LONG if self._too_long else ""
        self._lines, self._count = [], 0
        self._too_long = self._too_many = False
        return ManagerRequest(message, error)
