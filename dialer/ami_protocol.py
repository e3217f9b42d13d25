"""panoramisk's AMI protocol with our codec: bounded framing and an in-order event sink."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from dialer.ami_codec import AmiDecoder, AmiMessage

log = logging.getLogger(__name__)


class PraticaProtocol(AMIProtocol):
    """panoramisk's protocol with our decoder and an in-order event sink."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.decoder = AmiDecoder(expect_banner=True)

    def data_received(self, data: bytes) -> None:
        reported = self.decoder.stats.oversized_lines + self.decoder.stats.garbage_lines
        messages = self.decoder.feed(data)
        stats = self.decoder.stats
        if stats.oversized_lines + stats.garbage_lines != reported:
            log.warning("AMI input problem: %s", stats.last_error)
        if getattr(self, "version", None) is None and self.decoder.banner:
            self.version = self.decoder.banner.partition("/")[2]
        for ami in messages:
            message = to_panoramisk(ami)
            factory = self.factory
            if ami.event and (not ami.action_id or ami.event == "OriginateResponse"):
                factory.pratica_sink(ami)
            self.handle_message(message)


def to_panoramisk(ami: AmiMessage) -> Message:
    headers: dict[str, Any] = {}
    for key, value in ami.headers:
        if key in headers:
            previous = headers[key]
            headers[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            headers[key] = value
    message = Message(headers)
    message.ami = ami
    return message
