"""AMI actions of the simulator: Originate, Redirect, Bridge, Hangup, Setvar/Getvar, lists.

Each handler takes the action message and returns the messages to send back to the
requesting session (responses and list items, which are not broadcast). Call events
are broadcast by the PBX as the channels move.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dialer.ami_codec import AmiMessage
from dialer.sim.dialplan import CONTEXTS, Dialplan
from dialer.sim.extensions import EXTENSIONS
from dialer.sim.pbx import STATE_DESC, Pbx, PendingOriginate, SimChannel

Reply = list[AmiMessage | bytes]  # bytes: sent as they are (Asterisk's odd framings)
MAX_PUBLIC_UNIQUEID = 149  # AST_MAX_PUBLIC_UNIQUEID


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


@dataclass
class Actions:
    pbx: Pbx
    dialplan: Dialplan
    default_originate_timeout: float = 30.0

    def __post_init__(self) -> None:
        self.handlers: dict[str, Callable[[AmiMessage], Awaitable[Reply]]] = {
            "originate": self.originate,
            "redirect": self.redirect,
            "bridge": self.bridge,
            "hangup": self.hangup,
            "setvar": self.setvar,
            "getvar": self.getvar,
            "coreshowchannels": self.core_show_channels,
            "status": self.status,
        }

    # --- Originate ----------------------------------------------------------------

    async def originate(self, action: AmiMessage) -> Reply:
        """Checked in the order of Asterisk's `action_originate`, then queued or run."""
        self.pbx.count("originate")
        dial = action.get("Channel")
        channel_id, other_id = action.get("ChannelId"), action.get("OtherChannelId")
        if len(channel_id) > MAX_PUBLIC_UNIQUEID or len(other_id) > MAX_PUBLIC_UNIQUEID:
            # Asterisk's message ends with a newline of its own: sent as it is.
            return [_raw_error(action, f"Uniqueid length exceeds maximum of "
                                       f"{MAX_PUBLIC_UNIQUEID}\n")]  # fmt: skip
        if not dial:
            return [error(action, "Channel not specified")]
        context, exten, priority_text = (action.get("Context"), action.get("Exten"),
                                         action.get("Priority"))  # fmt: skip
        priority = 0
        if priority_text:
            number = _leading_int(priority_text)
            priority = (number if number is not None
                        else EXTENSIONS.find_label(context, exten, priority_text))  # fmt: skip
            if number is None and priority < 1:
                return [error(action, "Invalid priority")]
        timeout_text = action.get("Timeout")
        timeout_ms = _leading_int(timeout_text) if timeout_text else 30000
        if timeout_ms is None:
            return [error(action, "Invalid timeout")]
        if "/" not in dial:
            return [error(action, "Invalid channel")]
        if priority and not EXTENSIONS.exists(context, exten, priority):
            return [error(action, "Extension does not exist.")]
        is_async = _true(action.get("Async"))
        if not is_async and not action.get("Application") and not priority:
            return [error(action, "Originate with 'Exten' requires 'Context' and 'Priority'")]
        tech, _, resource = dial.partition("/")
        local_exten, _, local_context = resource.partition("@")
        pending = PendingOriginate(
            action.action_id, dial, context, exten, *_callerid(action.get("CallerID"))
        )
        # A synchronous Originate is answered by its Response only, no OriginateResponse.
        pending.reported = not is_async
        pending.uniqueid = channel_id
        if tech != "Local" or self._in_use(channel_id, other_id):
            # No channel can be made (an unknown technology, or "Channel Unique ID
            # already in use"): the dial fails before any channel exists.
            return self._failed_at_once(action, pending, is_async)
        if not EXTENSIONS.exists(local_context, local_exten) or local_context not in CONTEXTS:
            # Local's call() finds no such extension: both halves made, then hung up.
            one, two = self.pbx.local_pair(local_exten, local_context, channel_id, other_id)
            self.pbx.gone(one, 0)
            self.pbx.gone(two, 0)
            return self._failed_at_once(action, pending, is_async)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        task = asyncio.get_running_loop().create_task(
            self._run_originate(action, pending, local_exten, local_context, timeout_ms, done)
        )
        self.pbx.tasks.add(task)
        task.add_done_callback(self.pbx.tasks.discard)
        if is_async:
            return [response(action, "Success", ("Message", "Originate successfully queued"))]
        if await done:
            return [response(action, "Success", ("Message", "Originate successfully queued"))]
        return [error(action, "Originate failed")]

    def _in_use(self, *ids: str) -> bool:
        return any(i and i in self.pbx.by_uniqueid for i in ids)

    def _failed_at_once(
        self, action: AmiMessage, pending: PendingOriginate, is_async: bool
    ) -> Reply:
        if not is_async:
            return [error(action, "Originate failed")]
        pending.reported = True
        asyncio.get_running_loop().call_soon(
            self.dialplan.originate_response, pending, pending.uniqueid or "<unknown>",
            pending.dial_string, False, 0,
        )  # fmt: skip
        return [response(action, "Success", ("Message", "Originate successfully queued"))]

    async def _run_originate(
        self,
        action: AmiMessage,
        pending: PendingOriginate,
        exten: str,
        context: str,
        timeout_ms: int,
        done: asyncio.Future[bool],
    ) -> None:
        pbx, dialplan = self.pbx, self.dialplan
        one, two = pbx.local_pair(
            exten, context, action.get("ChannelId"), action.get("OtherChannelId")
        )
        one.originate = pending
        for raw in action.get_all("Variable"):
            for item in raw.split(","):
                name, _, value = item.partition("=")
                name = name.lstrip("_")
                if name:
                    one.variables[name] = value
                    two.variables[name] = value
        if pending.callerid_num:
            one.variables["_CALLERID_NUM"] = pending.callerid_num
            one.variables["_CALLERID_NAME"] = pending.callerid_name or "<unknown>"
        pbx.newexten(one, "AppDial2", "(Outgoing Line)")
        pbx.local_bridge(one, two)
        pbx.dial_event("DialBegin", one, None, ("DialString", f"{exten}@{context}"))
        one.answered = asyncio.get_running_loop().create_future()
        dialplan.start(two, context, exten)
        timeout = timeout_ms / 1000
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            async with asyncio.timeout(pbx.clock.real(timeout)):
                answered = await asyncio.shield(one.answered)
        except TimeoutError:
            dialplan.ring_timeout(one, 19)
            answered = False
        if not answered:
            dialplan.originate_failed(one, 0)
            done.set_result(False)
            return
        target_context = action.get("Context")
        application = action.get("Application")
        if application:
            one.context, one.exten = "", ""
            pbx.newexten(one, application, action.get("Data"))
        elif not dialplan.start(one, target_context, action.get("Exten")):
            pbx.newexten(one, "Hangup", "")
        if not pending.reported:
            pending.reported = True
            # After the first dialplan steps have run, as Asterisk reports it.
            asyncio.get_running_loop().call_soon(
                dialplan.originate_response, pending, one.uniqueid, one.name, True, 4
            )
        done.set_result(True)
        if application:
            await pbx.clock.sleep(float(action.get("Data") or 0) if _number(action.get("Data"))
                                  else 0.0)  # fmt: skip
            dialplan.hangup(one, 16)

    # --- call control ---------------------------------------------------------------

    async def redirect(self, action: AmiMessage) -> Reply:
        ch = self.pbx.find(action.get("Channel"))
        if ch is None:
            return [error(action, f"Channel does not exist: {action.get('Channel')}")]
        if not self.dialplan.redirect(ch, action.get("Context"), action.get("Exten")):
            return [error(action, "Redirect failed")]
        self.pbx.count("redirected")
        return [response(action, "Success", ("Message", "Redirect successful"))]

    async def bridge(self, action: AmiMessage) -> Reply:
        first = self.pbx.find(action.get("Channel1"))
        second = self.pbx.find(action.get("Channel2"))
        if first is None or second is None:
            missing = action.get("Channel1") if first is None else action.get("Channel2")
            return [error(action, f"Channel does not exist: {missing}")]
        for ch in (first, second):
            if ch.task is not None and not ch.task.done():
                ch.task.cancel()
        self.pbx.bridge_pair(first, second)
        return [response(action, "Success", ("Message", "Channels have been bridged"))]

    async def hangup(self, action: AmiMessage) -> Reply:
        target = action.get("Channel")
        cause = int(action.get("Cause")) if action.get("Cause").isdigit() else 0
        if len(target) > 2 and target.startswith("/") and target.endswith("/"):
            try:
                pattern = re.compile(target[1:-1])
            except re.error:
                return [error(action, "Invalid regex")]
            matched = [ch for ch in self.pbx.channels.values() if pattern.search(ch.name)]
            out: Reply = [response(action, "Success", ("EventList", "start"),
                            ("Message", "Channels hung up will follow"))]  # fmt: skip
            out += [list_item(action, "ChannelHungup", ("Channel", ch.name)) for ch in matched]
            out.append(list_item(action, "ChannelsHungupListComplete", ("EventList", "Complete"),
                                 ("ListItems", str(len(matched)))))  # fmt: skip
            loop = asyncio.get_running_loop()
            loop.call_soon(self._hangup_all, matched, cause)
            return out
        ch = self.pbx.find(target)
        if ch is None:
            return [error(action, "No such channel")]
        asyncio.get_running_loop().call_soon(self.dialplan.hangup, ch, cause or 16)
        return [response(action, "Success", ("Message", "Channel Hungup"))]

    def _hangup_all(self, channels: list[SimChannel], cause: int) -> None:
        for ch in channels:
            if ch.half == 1 and ch.peer in channels and (ch.answered is None or ch.answered.done()):
                self.dialplan.hangup_pair(ch, cause)
            else:
                self.dialplan.hangup(ch, cause)

    async def setvar(self, action: AmiMessage) -> Reply:
        name, value = action.get("Variable"), action.get("Value")
        if not name:
            return [error(action, "No variable specified")]
        ch = self.pbx.find(action.get("Channel")) if action.get("Channel") else None
        if action.get("Channel") and ch is None:
            return [error(action, "Channel does not exist")]
        if ch is not None:
            ch.variables[name] = value
            self.pbx.emit(
                "VarSet", "dialplan", [*self.pbx.block(ch), ("Variable", name), ("Value", value)]
            )
        else:
            self.pbx.globals[name] = value
        return [response(action, "Success", ("Message", "Variable Set"))]

    async def getvar(self, action: AmiMessage) -> Reply:
        name = action.get("Variable")
        if not name:
            return [error(action, "No variable specified")]
        if action.get("Channel"):
            ch = self.pbx.find(action.get("Channel"))
            if ch is None:
                return [error(action, "No such channel")]
            value = ch.variables.get(name, "")
        else:
            value = self.pbx.globals.get(name, "")
        return [response(action, "Success", ("Variable", name), ("Value", value))]

    # --- lists -----------------------------------------------------------------------

    async def core_show_channels(self, action: AmiMessage) -> Reply:
        out: Reply = [response(action, "Success", ("EventList", "start"),
                        ("Message", "Channels will follow"))]  # fmt: skip
        now = self.pbx.clock.monotonic()
        channels = sorted(self.pbx.channels.values(), key=lambda c: (c.created, c.name))
        for ch in channels:
            seconds = int(now - ch.created)
            duration = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            out.append(
                list_item(
                    action,
                    "CoreShowChannel",
                    *self.pbx.block(ch),
                    ("Application", ch.application),
                    ("ApplicationData", ch.app_data),
                    ("Duration", duration),
                    ("BridgeId", ch.bridge.uniqueid if ch.bridge else ""),
                )
            )
        out.append(list_item(action, "CoreShowChannelsComplete", ("EventList", "Complete"),
                             ("ListItems", str(len(channels)))))  # fmt: skip
        return out

    async def status(self, action: AmiMessage) -> Reply:
        wanted = action.get("Channel")
        channels = [c for c in self.pbx.channels.values() if not wanted or c.name == wanted]
        if wanted and not channels:
            return [error(action, "No such channel")]
        out: Reply = [response(action, "Success", ("EventList", "start"),
                        ("Message", "Channel status will follow"))]  # fmt: skip
        for ch in channels:
            out.append(list_item(action, "Status", *self.pbx.block(ch),
                                 ("Application", ch.application), ("Data", ch.app_data),
                                 ("State", STATE_DESC.get(ch.state, "Unknown"))))  # fmt: skip
        out.append(list_item(action, "StatusComplete", ("EventList", "Complete"),
                             ("ListItems", str(len(channels))), ("Items", str(len(channels)))))  # fmt: skip
        return out


def _callerid(text: str) -> tuple[str, str]:
    """`"Name" <number>` -> (number, name)."""
    match = re.match(r'\s*"?([^"<]*)"?\s*<([^>]*)>', text)
    if match:
        return match.group(2), match.group(1).strip()
    return text.strip(), ""


def _raw_error(action: AmiMessage, message: str) -> bytes:
    action_id = f"ActionID: {action.action_id}\r\n" if action.action_id else ""
    return f"Response: Error\r\n{action_id}Message: {message}\r\n\r\n".encode()


def _leading_int(text: str) -> int | None:
    """sscanf("%d"): the integer a value starts with, or None."""
    match = re.match(r"\s*([-+]?\d+)", text)
    return int(match.group(1)) if match else None


def _true(text: str) -> bool:
    return text.strip().lower() in ("yes", "true", "y", "t", "1", "on")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
