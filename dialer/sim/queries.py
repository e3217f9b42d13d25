"""AMI actions that read the PBX: Getvar, Status, CoreShowChannels, ConfbridgeList, Command.

Each answers the requesting session only, with the headers and framing of Asterisk 22
(manager.c, app_confbridge.c, cli.c).
"""

from __future__ import annotations

from dataclasses import dataclass

from dialer.ami_codec import AmiMessage
from dialer.sim.pbx import STATE_DESC, Pbx, SimChannel

Reply = list[AmiMessage | bytes]
VERSION = "22.10.1"


def response(action: AmiMessage, status: str, *headers: tuple[str, str]) -> AmiMessage:
    pairs: list[tuple[str, str]] = [("Response", status)]
    if action.action_id:
        pairs.append(("ActionID", action.action_id))
    return AmiMessage((*pairs, *headers))


def error(action: AmiMessage, message: str) -> AmiMessage:
    return response(action, "Error", ("Message", message))


def list_item(action: AmiMessage, event: str, *headers: tuple[str, str]) -> AmiMessage:
    pairs: list[tuple[str, str]] = [("Event", event)]
    if action.action_id:
        pairs.append(("ActionID", action.action_id))
    return AmiMessage((*pairs, *headers))


def _duration(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Queries:
    pbx: Pbx

    def read(self, ch: SimChannel | None, name: str) -> str:
        """A variable or dialplan function as the dialplan would read it on `ch`."""
        if name.endswith(")"):
            function, _, argument = name[:-1].partition("(")
            return self._function(ch, function.upper(), argument)
        if ch is not None:
            builtin = {"CHANNEL": ch.name, "UNIQUEID": ch.uniqueid, "CONTEXT": ch.context,
                       "EXTEN": ch.exten, "PRIORITY": str(ch.priority)}  # fmt: skip
            if name in builtin:
                return builtin[name]
            if name in ch.variables:
                return ch.variables[name]
        return self.pbx.globals.get(name, "")

    def _function(self, ch: SimChannel | None, function: str, argument: str) -> str:
        if function == "GLOBAL":
            return self.pbx.globals.get(argument, "")
        if ch is None:
            return ""
        if function == "CHANNEL":
            values = {"state": STATE_DESC.get(ch.state, "Unknown"), "name": ch.name,
                      "uniqueid": ch.uniqueid, "linkedid": ch.linkedid, "language": "en",
                      "channeltype": ch.name.split("/", 1)[0]}  # fmt: skip
            return values.get(argument.lower(), "")
        if function == "CALLERID":
            field = "_CALLERID_NAME" if argument.lower() == "name" else "_CALLERID_NUM"
            value = ch.variables.get(field, "")
            return "" if value == "<unknown>" else value
        return ""

    async def getvar(self, action: AmiMessage) -> Reply:
        name = action.get("Variable")
        if not name:
            return [error(action, "No variable specified")]
        ch = None
        if action.get("Channel"):
            ch = self.pbx.find(action.get("Channel"))
            if ch is None:
                return [error(action, "No such channel")]
        return [response(action, "Success", ("Variable", name), ("Value", self.read(ch, name)))]

    async def status(self, action: AmiMessage) -> Reply:
        wanted = action.get("Channel")
        if wanted:
            found = self.pbx.find(wanted)
            if found is None:
                return [error(action, "No such channel")]
            channels = [found]
        else:
            channels = list(self.pbx.channels.values())
        names = [v for v in action.get("Variables").split(",") if v]
        out: Reply = [response(action, "Success", ("EventList", "start"),
                               ("Message", "Channel status will follow"))]  # fmt: skip
        now = self.pbx.clock.monotonic()
        for ch in channels:
            headers: list[tuple[str, str]] = [
                ("Event", "Status"), ("Privilege", "Call"), *self.pbx.block(ch),
                ("Type", ch.name.split("/", 1)[0]), ("DNID", ""),
                ("EffectiveConnectedLineNum", ch.connected_num),
                ("EffectiveConnectedLineName", ch.connected_name), ("TimeToHangup", "0"),
                ("BridgeID", ch.bridge.uniqueid if ch.bridge else ""),
                ("Application", ch.application), ("Data", ch.app_data),
                ("Nativeformats", "(slin)"), ("Readformat", "slin"), ("Readtrans", ""),
                ("Writeformat", "slin"), ("Writetrans", ""), ("Callgroup", "0"),
                ("Pickupgroup", "0"), ("Seconds", str(int(now - ch.created))),
            ]  # fmt: skip
            headers += [("Variable", f"{n}={self.read(ch, n)}") for n in names]
            if action.action_id:
                headers.append(("ActionID", action.action_id))
            out.append(AmiMessage(tuple(headers)))
        out.append(list_item(action, "StatusComplete", ("EventList", "Complete"),
                             ("ListItems", str(len(channels))), ("Items", str(len(channels)))))  # fmt: skip
        return out

    async def core_show_channels(self, action: AmiMessage) -> Reply:
        out: Reply = [response(action, "Success", ("EventList", "start"),
                               ("Message", "Channels will follow"))]  # fmt: skip
        now = self.pbx.clock.monotonic()
        channels = sorted(self.pbx.channels.values(), key=lambda c: (c.created, c.name))
        for ch in channels:
            out.append(
                list_item(
                    action,
                    "CoreShowChannel",
                    *self.pbx.block(ch),
                    ("Application", ch.application),
                    ("ApplicationData", ch.app_data),
                    ("Duration", _duration(int(now - ch.created))),
                    ("BridgeId", ch.bridge.uniqueid if ch.bridge else ""),
                )
            )
        out.append(list_item(action, "CoreShowChannelsComplete", ("EventList", "Complete"),
                             ("ListItems", str(len(channels)))))  # fmt: skip
        return out

    async def confbridge_list(self, action: AmiMessage) -> Reply:
        name = action.get("Conference")
        if not name:
            return [error(action, "No Conference name provided.")]
        if not self.pbx.conferences:
            return [error(action, "No active conferences.")]
        bridge = self.pbx.conferences.get(name)
        if bridge is None:
            return [error(action, "No Conference by that name found.")]
        out: Reply = [response(action, "Success", ("EventList", "start"),
                               ("Message", "Confbridge user list will follow"))]  # fmt: skip
        now = self.pbx.clock.monotonic()
        for ch in bridge.members:
            out.append(list_item(action, "ConfbridgeList", ("Conference", name),
                                 ("Admin", "No"), ("MarkedUser", "No"), ("WaitMarked", "No"),
                                 ("EndMarked", "No"), ("EndMarkedAny", "No"), ("Waiting", "No"),
                                 ("Muted", "No"), ("Talking", "No"),
                                 ("AnsweredTime", str(int(now - ch.created))),
                                 *self.pbx.block(ch)))  # fmt: skip
        out.append(list_item(action, "ConfbridgeListComplete", ("EventList", "Complete"),
                             ("ListItems", str(len(bridge.members)))))  # fmt: skip
        return out

    async def command(self, action: AmiMessage) -> Reply:
        """`Command`: the CLI's output as `Output:` lines (a few commands are known)."""
        command = " ".join(action.get("Command").split())
        if not command:
            return [error(action, "No command provided")]
        lines = self._cli(command)
        status = "Success"
        if lines is None:
            status = "Error"
            lines = [f"No such command '{command}' (type 'core show help {command}' for other "
                     "possible commands)"]  # fmt: skip
        headers = [("Message", "Command output follows"), *(("Output", line) for line in lines)]
        return [response(action, status, *headers)]

    def _cli(self, command: str) -> list[str] | None:
        if command == "core show version":
            return [f"Asterisk {VERSION} built by pratica @ sim-pbx on a x86_64 running Linux"]
        if command in ("core show channels", "core show channels concise"):
            channels = sorted(self.pbx.channels.values(), key=lambda c: (c.created, c.name))
            if command.endswith("concise"):
                return [f"{c.name}!{c.context}!{c.exten}!{c.priority}!"
                        f"{STATE_DESC.get(c.state, 'Unknown')}!{c.application}!{c.app_data}!"
                        f"!!!3!0!{c.bridge.uniqueid if c.bridge else ''}!{c.uniqueid}"
                        for c in channels]  # fmt: skip
            row = "{:<20.20} {:<20.20} {:<7.7} {:<30.30}"
            out = [row.format("Channel", "Location", "State", "Application(Data)")]
            for c in channels:
                location = f"{c.exten}@{c.context}:{c.priority}"
                app = f"{c.application}({c.app_data})"
                out.append(row.format(c.name, location, STATE_DESC.get(c.state, "Unknown"), app))
            calls = len({c.linkedid for c in channels})
            out.append(f"{len(channels)} active channel{'' if len(channels) == 1 else 's'}")
            out.append(f"{calls} active call{'' if calls == 1 else 's'}")
            processed = self.pbx.truth.get("originate", 0)
            out.append(f"{processed} call{'' if processed == 1 else 's'} processed")
            return out
        return None
