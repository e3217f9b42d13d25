"""The simulated PBX: channels, Local channel pairs, bridges, and the AMI events they emit.

Event names, header names and ordering follow the Asterisk 22 recordings in the test
fixtures (see the simulator comparison test). Dialplan behaviour lives in
`dialer.sim.dialplan`; this module only knows channel mechanics.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from dialer.ami_codec import AmiMessage
from dialer.sim.clock import ScaledClock
from dialer.sim.debtors import AgentModel, DebtorBehaviour, DebtorModel

log = logging.getLogger(__name__)

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
DOWN, RING, RINGING, UP, BUSY = 0, 4, 5, 6, 7
CAUSE_TEXT = {  # Asterisk's ast_cause2str; a cause not listed is "Unknown"
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    27: "Destination out of order",
    28: "Invalid number format",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
}


class ChannelGone(Exception):
    """Raised inside a dialplan script when its channel was hung up or redirected away."""


@dataclass
class PendingOriginate:
    """An Originate whose OriginateResponse is still to be sent."""

    action_id: str
    dial_string: str
    context: str
    exten: str
    callerid_num: str
    callerid_name: str
    reported: bool = False
    uniqueid: str = ""  # the ChannelId asked for


@dataclass(eq=False)
class SimChannel:
    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    state: int = DOWN
    priority: int = 1
    variables: dict[str, str] = field(default_factory=dict)
    peer: SimChannel | None = None  # the other half of a Local pair
    half: int = 0
    bridge: SimBridge | None = None
    task: asyncio.Task[None] | None = None
    application: str = ""
    app_data: str = ""
    hung_up: bool = False
    created: float = 0.0
    answered: asyncio.Future[bool] | None = None  # ;1 of an originate: resolved on answer
    behaviour: DebtorBehaviour | None = None  # drawn for a debtor's ;2 leg
    dial_string: str = ""
    dial_caller: SimChannel | None = None  # the channel that Dial()ed this one
    originate: PendingOriginate | None = None  # for the ;1 leg of an Originate
    connected_num: str = "<unknown>"
    connected_name: str = "<unknown>"


@dataclass(eq=False)
class SimBridge:
    uniqueid: str
    bridge_type: str  # "basic" (two-party) or "base" (ConfBridge)
    technology: str
    creator: str
    name: str
    members: list[SimChannel] = field(default_factory=list)
    conference: str = ""
    destroyed: bool = False
    # ConfBridge's announcer channel is in the bridge while the conference lives: it is
    # counted in BridgeNumChannels though it never has a BridgeEnter of its own.
    announcer: bool = False

    def headers(self, count: int | None = None) -> list[tuple[str, str]]:
        if count is None:
            count = len(self.members) + self.announcer
        return [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", self.bridge_type),
            ("BridgeTechnology", self.technology),
            ("BridgeCreator", self.creator),
            ("BridgeName", self.name),
            ("BridgeNumChannels", str(count)),
            ("BridgeVideoSourceMode", "none"),
        ]


@dataclass
class Pbx:
    clock: ScaledClock
    debtors: DebtorModel = field(default_factory=DebtorModel)
    agents: AgentModel = field(default_factory=AgentModel)
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    channelvars: tuple[str, ...] = ("ATTEMPT",)
    simulated_agents: bool = False
    channels: dict[str, SimChannel] = field(default_factory=dict)
    by_uniqueid: dict[str, SimChannel] = field(default_factory=dict)
    conferences: dict[str, SimBridge] = field(default_factory=dict)
    listeners: list[Callable[[AmiMessage], None]] = field(default_factory=list)
    _local_seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _uid_seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # Ground truth for tests and load tests: counts of what the simulated parties did.
    truth: dict[str, int] = field(default_factory=dict)
    # The last numbers dialed (simulated debtors call some of them back).
    dialed_numbers: list[str] = field(default_factory=list)
    globals: dict[str, str] = field(default_factory=dict)
    # Event classes no connected session wants: not even built (saves CPU under load).
    muted: frozenset[str] = frozenset()
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    emptied: asyncio.Event = field(default_factory=asyncio.Event)  # set when the last goes

    # --- events -----------------------------------------------------------------

    def emit(self, event: str, privilege: str, headers: list[tuple[str, str]]) -> None:
        if privilege in self.muted:
            return
        message = AmiMessage((("Event", event), ("Privilege", f"{privilege},all"), *headers))
        for listener in list(self.listeners):
            listener(message)

    def block(self, ch: SimChannel, prefix: str = "") -> list[tuple[str, str]]:
        out = [
            (prefix + "Channel", ch.name),
            (prefix + "ChannelState", str(ch.state)),
            (prefix + "ChannelStateDesc", STATE_DESC.get(ch.state, "Unknown")),
            (prefix + "CallerIDNum", ch.variables.get("_CALLERID_NUM", "<unknown>")),
            (prefix + "CallerIDName", ch.variables.get("_CALLERID_NAME", "<unknown>")),
            (prefix + "ConnectedLineNum", ch.connected_num),
            (prefix + "ConnectedLineName", ch.connected_name),
            (prefix + "Language", "en"),
            (prefix + "AccountCode", ""),
            (prefix + "Context", ch.context),
            (prefix + "Exten", ch.exten),
            (prefix + "Priority", str(ch.priority)),
            (prefix + "Uniqueid", ch.uniqueid),
            (prefix + "Linkedid", ch.linkedid),
        ]
        for name in self.channelvars:
            out.append((prefix + "ChanVariable", f"{name}={ch.variables.get(name, '')}"))
        return out

    def channel_event(self, event: str, ch: SimChannel, *extra: tuple[str, str]) -> None:
        self.emit(event, "call", [*self.block(ch), *extra])

    def count(self, key: str) -> None:
        self.truth[key] = self.truth.get(key, 0) + 1

    # --- channels ---------------------------------------------------------------

    def new_uniqueid(self) -> str:
        return f"{int(self.clock.now().timestamp())}.{next(self._uid_seq)}"

    def local_pair(
        self, exten: str, context: str, uid1: str = "", uid2: str = "", linkedid: str = ""
    ) -> tuple[SimChannel, SimChannel]:
        seq = next(self._local_seq)
        base = f"Local/{exten}@{context}-{seq:08x}"
        uid1 = uid1 or self.new_uniqueid()
        uid2 = uid2 or self.new_uniqueid()
        linked = linkedid or uid1
        now = self.clock.monotonic()
        one = SimChannel(base + ";1", uid1, linked, context, exten, DOWN, half=1, created=now)
        two = SimChannel(base + ";2", uid2, linked, context, exten, RING, half=2, created=now)
        one.peer, two.peer = two, one
        one.dial_string = f"Local/{exten}@{context}"
        self.add(one)
        self.add(two)
        self.channel_event("Newchannel", one)
        self.channel_event("Newchannel", two)
        return one, two

    def add(self, ch: SimChannel) -> None:
        self.channels[ch.name] = ch
        self.by_uniqueid[ch.uniqueid] = ch

    def find(self, name: str) -> SimChannel | None:
        """By name or Uniqueid, as Asterisk's ast_channel_get_by_name."""
        return self.channels.get(name) or self.by_uniqueid.get(name)

    def set_state(self, ch: SimChannel, state: int) -> None:
        if ch.state != state and not ch.hung_up:
            ch.state = state
            self.channel_event("Newstate", ch)

    def newexten(self, ch: SimChannel, app: str, data: str = "") -> None:
        ch.application, ch.app_data = app, data
        ch.priority += 1
        if "dialplan" in self.muted:
            return
        self.emit(
            "Newexten",
            "dialplan",
            [*self.block(ch), ("Extension", ch.exten), ("Application", app), ("AppData", data)],
        )

    def set_caller(self, ch: SimChannel, number: str, name: str) -> None:
        ch.variables["_CALLERID_NUM"] = number or "<unknown>"
        ch.variables["_CALLERID_NAME"] = name or "<unknown>"
        self.channel_event(
            "NewCallerid", ch, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")
        )

    def set_connected(self, ch: SimChannel, number: str, name: str) -> None:
        ch.connected_num, ch.connected_name = number or "<unknown>", name or "<unknown>"
        self.channel_event("NewConnectedLine", ch)

    def device_state(self, device: str, state: str) -> None:
        if "call" not in self.muted:
            self.emit("DeviceStateChange", "call", [("Device", device), ("State", state)])

    def user_event(self, ch: SimChannel, name: str, *fields: tuple[str, str]) -> None:
        self.emit("UserEvent", "user", [*self.block(ch), ("UserEvent", name), *fields])

    def local_bridge(self, one: SimChannel, two: SimChannel) -> None:
        headers: list[tuple[str, str]] = []
        for prefix, ch in (("LocalOne", one), ("LocalTwo", two)):
            headers += [(prefix + k, v) for k, v in self.block(ch)]
        headers += [("Context", one.context), ("Exten", one.exten), ("LocalOptimization", "Yes")]
        self.emit("LocalBridge", "call", headers)

    def dial_event(
        self, event: str, dest: SimChannel, caller: SimChannel | None, *extra: tuple[str, str]
    ) -> None:
        headers = self.block(caller) if caller is not None else []
        self.emit(event, "call", [*headers, *self.block(dest, "Dest"), *extra])

    # --- bridges ----------------------------------------------------------------

    def new_bridge(self, bridge_type: str, creator: str, name: str) -> SimBridge:
        technology = "softmix" if bridge_type == "base" else "simple_bridge"
        bridge = SimBridge(str(uuid.UUID(int=self.rng.getrandbits(128))), bridge_type, technology,
                           creator, name)  # fmt: skip
        self.emit("BridgeCreate", "call", bridge.headers())
        return bridge

    def enter_bridge(self, bridge: SimBridge, ch: SimChannel) -> None:
        if ch.bridge is not None:
            self.leave_bridge(ch)
        bridge.members.append(ch)
        ch.bridge = bridge
        self.emit("BridgeEnter", "call", [*bridge.headers(), *self.block(ch)])

    def leave_bridge(self, ch: SimChannel, hanging_up: bool = False) -> None:
        bridge = ch.bridge
        if bridge is None:
            return
        if bridge.conference:
            # ConfbridgeLeave is sent before the channel is out: it counts it.
            self.emit("ConfbridgeLeave", "call", [("Conference", bridge.conference),
                                                  *bridge.headers(), *self.block(ch),
                                                  ("Admin", "No")])  # fmt: skip
        bridge.members.remove(ch)
        ch.bridge = None
        if bridge.conference and not bridge.members:
            self.emit("ConfbridgeEnd", "call", [("Conference", bridge.conference),
                                                 *bridge.headers()])  # fmt: skip
            self.conferences.pop(bridge.conference, None)
            self.device_state(f"confbridge:{bridge.conference}", "NOT_INUSE")
        self.emit("BridgeLeave", "call", [*bridge.headers(), *self.block(ch)])
        if bridge.conference and not bridge.members:
            bridge.announcer = False
        if not bridge.conference and hanging_up:
            # A two-party bridge does not outlive a party that hangs up: the others go too
            # (this is why the dialer uses ConfBridge for nailed-up agents).
            for other in list(bridge.members):
                self.hangup(other, 16, from_bridge=True)
        if not bridge.members and not bridge.destroyed:
            bridge.destroyed = True
            self.emit("BridgeDestroy", "call", bridge.headers())

    def join_conference(self, ch: SimChannel, conference: str) -> SimBridge:
        bridge = self.conferences.get(conference)
        if bridge is None:
            bridge = self.new_bridge("base", "ConfBridge", conference)
            bridge.conference = conference
            bridge.announcer = True
            self.conferences[conference] = bridge
            self.emit("ConfbridgeStart", "call", [("Conference", conference), *bridge.headers()])
            self.device_state(f"confbridge:{conference}", "INUSE")
        self.enter_bridge(bridge, ch)
        self.emit(
            "ConfbridgeJoin",
            "call",
            [("Conference", conference), *bridge.headers(), *self.block(ch),
             ("Admin", "No"), ("Muted", "No")],
        )  # fmt: skip
        return bridge

    def bridge_pair(self, first: SimChannel, second: SimChannel) -> SimBridge:
        """A two-party basic bridge (AMI Bridge action, Dial); linkedids merge to the older."""
        older = first if first.created <= second.created else second
        for ch in (first, second):
            ch.linkedid = older.linkedid
        bridge = self.new_bridge("basic", "", "")
        self.enter_bridge(bridge, first)
        self.enter_bridge(bridge, second)
        return bridge

    # --- hangup -----------------------------------------------------------------

    def hangup(self, ch: SimChannel, cause: int = 16, from_bridge: bool = False) -> None:
        """Hang up `ch` (and, for a Local pair, its other half) with Asterisk's events."""
        if ch.hung_up:
            return
        peer = ch.peer if ch.peer is not None and not ch.peer.hung_up else None
        if ch.half == 2 and peer is not None:
            self.channel_event("SoftHangupRequest", ch, ("Cause", "16"))
            self.channel_event("HangupRequest", peer, ("Cause", str(cause)))
            self.gone(ch, cause)
            self.leave_bridge(peer, hanging_up=True)
            self.channel_event("SoftHangupRequest", peer, ("Cause", str(cause)))
            self.gone(peer, cause)
            return
        if not from_bridge:
            self.channel_event("SoftHangupRequest", ch, ("Cause", "16"))
        if peer is not None:
            self.channel_event("HangupRequest", peer, ("Cause", str(cause)))
        self.leave_bridge(ch, hanging_up=True)
        self.gone(ch, cause)
        if peer is not None:
            self.channel_event("SoftHangupRequest", peer, ("Cause", str(cause)))
            self.gone(peer, cause)

    def gone(self, ch: SimChannel, cause: int) -> None:
        """The channel is hung up: its Hangup event, and it leaves every structure."""
        if ch.hung_up:
            return
        if ch.bridge is not None:
            self.leave_bridge(ch, hanging_up=True)
        ch.hung_up = True
        self.channel_event(
            "Hangup", ch, ("Cause", str(cause)), ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown"))
        )
        if ch.half:
            self.device_state(ch.name.rsplit("-", 1)[0], "NOT_INUSE")
        self.channels.pop(ch.name, None)
        self.by_uniqueid.pop(ch.uniqueid, None)
        if not self.channels:
            self.emptied.set()
        if ch.answered is not None and not ch.answered.done():
            ch.answered.set_result(False)
        task = ch.task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()

    def shutdown_hangup(self) -> list[SimChannel]:
        """`core stop now`: every channel soft-hung-up (cause flag 4, shutdown), then gone.

        Returns the `;1` halves of originates still unanswered (their OriginateResponse
        is still owed).
        """
        channels = list(self.channels.values())
        for ch in channels:
            self.channel_event("SoftHangupRequest", ch, ("Cause", "4"))
        pending = [ch for ch in channels if ch.originate is not None and not ch.originate.reported]
        for ch in channels:
            if ch.task is not None and not ch.task.done():
                ch.task.cancel()
            self.leave_bridge(ch)
            self.gone(ch, 0)
        return pending

    def check(self, ch: SimChannel) -> None:
        if ch.hung_up:
            raise ChannelGone(ch.name)
