"""Replays a recording's client actions against the simulator and normalizes both sides.

Asterisk guarantees the order of events per channel, not across channels, so the
comparison is per channel (keyed by Uniqueid, with Asterisk-made ids renamed by first
appearance), plus the ordered responses of the session and the OriginateResponses.
Ids, timestamps and dialplan-internal events (Newexten, VarSet, ...) are ignored.
"""

from __future__ import annotations

import asyncio
import re

from dialer.ami_codec import AmiDecoder, AmiMessage, encode
from tests.dialer.recordings import load

PER_CHANNEL = frozenset(
    {
        "Newchannel",
        "Newstate",
        "DialBegin",
        "DialState",
        "DialEnd",
        "UserEvent",
        "BridgeEnter",
        "BridgeLeave",
        "ConfbridgeJoin",
        "ConfbridgeLeave",
        "Hangup",
        "NewCallerid",
        "NewConnectedLine",
    }
)
BRIDGE_EVENTS = frozenset({"BridgeCreate", "BridgeDestroy", "ConfbridgeStart", "ConfbridgeEnd"})
LIST_ITEMS = frozenset(
    {
        "CoreShowChannel",
        "CoreShowChannelsComplete",
        "ChannelHungup",
        "ChannelsHungupListComplete",
    }
)
COMPARED = PER_CHANNEL | BRIDGE_EVENTS | LIST_ITEMS | {"OriginateResponse"}


def _channel_name(name: str) -> str:
    return re.sub(r"-[0-9a-f]{8};", ";", name)


class Normalizer:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def uid(self, uniqueid: str) -> str:
        if uniqueid.startswith(("att-", "agent-")) or not uniqueid:
            return uniqueid
        return self.ids.setdefault(uniqueid, f"asterisk-{len(self.ids) + 1}")

    def groups(self, messages: list[AmiMessage]) -> dict[str, list[tuple[str, ...]]]:
        out: dict[str, list[tuple[str, ...]]] = {}
        for m in messages:
            event = m.event
            item: tuple[str, ...]
            if m.response and not event:
                key, item = "responses", (m.response, m.get("Message"), m.get("EventList"))
            elif event in PER_CHANNEL:
                prefix = "Dest" if event.startswith("Dial") else ""
                key = "channel " + self.uid(m.get(prefix + "Uniqueid"))
                item = (
                    event,
                    m.get(prefix + "ChannelStateDesc"),
                    m.get("Cause"),
                    m.get("DialStatus"),
                    m.get("UserEvent"),
                    m.get("Status"),
                    m.get("Context") if event == "Newchannel" else "",
                    m.get("BridgeNumChannels"),
                    m.get("Admin"),
                    m.get("CallerIDNum") if event.startswith("New") else "",
                    m.get("ConnectedLineNum") if event.startswith("New") else "",
                )
            elif event == "OriginateResponse":
                key = "originate " + m.get("ActionID")
                item = (m.get("Response"), m.get("Reason"), _channel_name(m.get("Channel")),
                        self.uid(m.get("Uniqueid")))  # fmt: skip
            elif event in BRIDGE_EVENTS:
                key, item = "bridges", (event, m.get("BridgeType"), m.get("Conference"),
                                        m.get("BridgeNumChannels"))  # fmt: skip
            elif event in LIST_ITEMS:
                key = "list " + m.get("ActionID")
                item = (event, _channel_name(m.get("Channel")), m.get("ChannelStateDesc"),
                        m.get("ListItems"))  # fmt: skip
            else:
                continue
            out.setdefault(key, []).append(item)
        for items in out.values():
            _conf_leave_first(items)
        return out


def _conf_leave_first(items: list[tuple[str, ...]]) -> None:
    """ConfbridgeLeave comes from the conference thread: put it before the BridgeLeave."""
    if not any(i[0] == "ConfbridgeLeave" for i in items):
        return
    leaves = [i for i in items if i[0] == "ConfbridgeLeave"]
    rest = [i for i in items if i[0] != "ConfbridgeLeave"]
    out: list[tuple[str, ...]] = []
    for item in rest:
        if item[0] == "BridgeLeave" and leaves:
            out.append(leaves.pop(0))
        out.append(item)
    items[:] = out + leaves


def recorded_inbound(name: str) -> list[AmiMessage]:
    return [r.message for r in load(name) if r.direction == "in"]


def is_compared(m: AmiMessage) -> bool:
    return bool(m.response) or m.event in COMPARED


async def replay_against(
    name: str, host: str, port: int, secret: str, step_timeout: float = 3.0
) -> list[AmiMessage]:
    """Send the recording's actions to the simulator, pacing them on the events seen."""
    recording = load(name)
    reader, writer = await asyncio.open_connection(host, port)
    decoder = AmiDecoder(expect_banner=True)
    received: list[AmiMessage] = []
    closed = asyncio.Event()
    progress = asyncio.Event()

    async def read() -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                closed.set()
                progress.set()
                return
            received.extend(decoder.feed(data))
            progress.set()

    reader_task = asyncio.create_task(read())

    async def wait_for_count(count: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + step_timeout
        while sum(map(is_compared, received)) < count and not closed.is_set():
            progress.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(progress.wait(), remaining)
            except TimeoutError:
                return

    recorded_uid = {
        r.message.get("Channel"): r.message.get("Uniqueid")
        for r in recording
        if r.direction == "in" and r.message.get("Uniqueid")
    }

    def rename(action: AmiMessage) -> AmiMessage:
        """Recorded channel names carry Asterisk's counters: use the simulator's."""
        names = {m.get("Uniqueid"): m.get("Channel") for m in received if m.get("Uniqueid")}
        headers = []
        for key, value in action.headers:
            if key in ("Channel", "Channel1", "Channel2") and value in recorded_uid:
                value = names.get(recorded_uid[value], value)
            headers.append((key, value))
        return AmiMessage(tuple(headers))

    seen = 0
    for item in recording:
        if item.direction == "in":
            seen += is_compared(item.message)
            continue
        await wait_for_count(seen)
        action = item.message
        if action.action == "Login" and action.get("Secret") == "dialer-secret":
            action = AmiMessage(
                tuple(
                    (k, secret if k == "Secret" else ("pratica" if k == "Username" else v))
                    for k, v in action.headers
                )  # fmt: skip
            )
        writer.write(encode(rename(action)))
        await writer.drain()
    await wait_for_count(seen)
    writer.close()
    reader_task.cancel()
    return received
