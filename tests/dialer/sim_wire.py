"""A bare AMI connection for checking the simulator's wire format in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dialer.ami_codec import AmiDecoder, AmiMessage, encode


class RawAmi:
    """Sends actions as raw bytes and keeps everything received, in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.decoder = AmiDecoder(expect_banner=True)
        self.inbox: list[AmiMessage] = []
        self.seen: list[AmiMessage] = []  # every message received, never cleared

    @classmethod
    async def open(cls, port: int) -> RawAmi:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, *headers: tuple[str, str]) -> None:
        self.writer.write(encode(AmiMessage(headers)))
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _read(self) -> None:
        data = await self.reader.read(65536)
        if not data:
            raise ConnectionError("closed")
        messages = self.decoder.feed(data)
        self.inbox.extend(messages)
        self.seen.extend(messages)

    async def reply(self, action_id: str, timeout: float = 2.0) -> AmiMessage:
        async def find() -> AmiMessage:
            while True:
                for m in self.inbox:
                    if m.action_id == action_id and m.response:
                        self.inbox.remove(m)
                        return m
                await self._read()

        return await asyncio.wait_for(find(), timeout)

    async def next_response(self, timeout: float = 2.0) -> AmiMessage:
        """The first response not yet taken (for actions sent without an ActionID)."""

        async def find() -> AmiMessage:
            while True:
                for m in self.inbox:
                    if m.response:
                        self.inbox.remove(m)
                        return m
                await self._read()

        return await asyncio.wait_for(find(), timeout)

    async def event(
        self, predicate: Callable[[AmiMessage], bool], timeout: float = 3.0
    ) -> AmiMessage:
        """The first received message (kept or new) matching `predicate`."""

        async def find() -> AmiMessage:
            checked = 0
            while True:
                for m in self.seen[checked:]:
                    if predicate(m):
                        return m
                checked = len(self.seen)
                await self._read()

        return await asyncio.wait_for(find(), timeout)

    async def sync(self) -> None:
        """Wait until everything the simulator sent before a Ping has arrived."""
        await self.send(("Action", "Ping"), ("ActionID", "sync"))
        await self.reply("sync")

    async def until_closed(self, timeout: float = 2.0) -> bytes:
        return await asyncio.wait_for(self.reader.read(), timeout)

    def events(self, name: str) -> list[AmiMessage]:
        return [m for m in self.seen if m.event == name]

    def close(self) -> None:
        self.writer.close()


async def login(ami: RawAmi, secret: str, events: str = "on") -> AmiMessage:
    await ami.send(("Action", "Login"), ("ActionID", "l"), ("Username", "pratica"),
                   ("Secret", secret), ("Events", events))  # fmt: skip
    reply = await ami.reply("l")
    assert reply.get("Message") == "Authentication accepted"
    return reply
