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
from dialer.sim.pbx import Pbx, PendingOriginate, SimChannel
from dialer.sim.queries import Queries, error, list_item, response

__all__ = ["Actions", "error", "response"]

Reply = list[AmiMessage | bytes]  # bytes: sent as they are (Asterisk's odd framings)
MAX_PUBLIC_UNIQUEID = 149  # AST_MAX_PUBLIC_UNIQUEID


@dataclass
class Actions:
    pbx: Pbx
    dialplan: Dialplan
    default_originate_timeout: float = 30.0

    def __post_init__(self) -> None:
        queries = Queries(self.pbx)
        self.handlers: dict[str, Callable[[AmiMessage], Awaitable[Reply]]] = {
            "originate": self.originate,
            "redirect": self.redirect,
            "bridge": self.bridge,
            "hangup": self.hangup,
            "setvar": self.setvar,
            "getvar": queries.getvar,
            "coreshowchannels": queries.core_show_channels,
            "status": queries.status,
            "confbridgelist": queries.confbridge_list,
            "command": queries.command,
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
        if pending.callerid_num or pending.callerid_name:
            number, name = pending.callerid_num, pending.callerid_name
            pbx.set_caller(one, number, name)
            pbx.set_connected(one, number, name)
            two.connected_num, two.connected_name = one.connected_num, one.connected_name
            pbx.set_caller(two, number, name)
            pbx.set_connected(two, number, name)
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
        """Checked in the order of Asterisk's `action_redirect`; the goto itself is async."""
        name, context, exten = action.get("Channel"), action.get("Context"), action.get("Exten")
        priority = action.get("Priority")
        for value, message in ((name, "Channel not specified"), (context, "Context not specified"),
                               (exten, "Exten not specified"),
                               (priority, "Priority not specified")):  # fmt: skip
            if not value:
                return [error(action, message)]
        if _leading_int(priority) is None and EXTENSIONS.find_label(context, exten, priority) < 1:
            return [error(action, "Priority is invalid")]
        extra = action.get("ExtraChannel")
        extra_context = action.get("ExtraContext")
        if extra and extra_context:
            extra_priority = action.get("ExtraPriority")
            if not action.get("ExtraExten"):
                return [error(action, "ExtraExten not specified")]
            if not extra_priority:
                return [error(action, "ExtraPriority not specified")]
            if _leading_int(extra_priority) is None and EXTENSIONS.find_label(
                extra_context, action.get("ExtraExten"), extra_priority) < 1:  # fmt: skip
                return [error(action, "ExtraPriority is invalid")]
        ch = self.pbx.find(name)
        if ch is None:
            return [error(action, f"Channel does not exist: {name}")]
        if not extra:
            self._goto(ch, context, exten)
            return [response(action, "Success", ("Message", "Redirect successful"))]
        second = self.pbx.find(extra)
        if second is None:
            return [error(action, f"ExtraChannel does not exist: {extra}")]
        self._goto(ch, context, exten)
        if extra_context:
            self._goto(second, extra_context, action.get("ExtraExten"))
        else:
            self._goto(second, context, exten)
        return [response(action, "Success", ("Message", "Dual Redirect successful"))]

    def _goto(self, ch: SimChannel, context: str, exten: str) -> None:
        self.pbx.count("redirected")
        if ch.half == 1 and ch.answered is not None and not ch.answered.done():
            # A ringing originate taken away from its dial: the dial fails at once.
            ch.answered.set_result(False)
            self.dialplan.originate_failed(ch, 0)
        self.dialplan.redirect(ch, context, exten)

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
        if not target:
            return [error(action, "No channel specified")]
        cause_text = action.get("Cause")
        # No Cause, or one out of 0..127: the channel keeps no hangup cause (0, "Unknown").
        cause = int(cause_text) if cause_text.isdigit() and int(cause_text) <= 127 else 0
        if target.startswith("/"):
            body = target[1:-1] if len(target) > 1 and target.endswith("/") else ""
            if not body:
                return [error(action, "Regex format invalid, Channel param should be /regex/")]
            try:
                pattern = re.compile(body)
            except re.error:
                return [error(action, f"Regex compile failed on: {target}")]
            matched = [ch for ch in self.pbx.channels.values() if pattern.search(ch.name)]
            out: Reply = [response(action, "Success", ("EventList", "start"),
                                   ("Message", "Channels hung up will follow"))]  # fmt: skip
            for ch in matched:  # here Asterisk puts the ActionID after the channel
                item = [("Event", "ChannelHungup"), ("Channel", ch.name)]
                if action.action_id:
                    item.append(("ActionID", action.action_id))
                out.append(AmiMessage(tuple(item)))
            out.append(list_item(action, "ChannelsHungupListComplete", ("EventList", "Complete"),
                                 ("ListItems", str(len(matched)))))  # fmt: skip
            loop = asyncio.get_running_loop()
            loop.call_soon(self._hangup_all, matched, cause)
            return out
        found = self.pbx.find(target)
        if found is None:
            return [error(action, "No such channel")]
        asyncio.get_running_loop().call_soon(self.dialplan.hangup, found, cause)
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
        ch = None
        if action.get("Channel"):
            ch = self.pbx.find(action.get("Channel"))
            if ch is None:
                return [error(action, "No such channel")]
        if ch is not None:
            ch.variables[name.lstrip("_")] = value
            headers = self.pbx.block(ch)
        else:
            self.pbx.globals[name] = value
            headers = [("Channel", "none"), ("Uniqueid", "none")]
        self.pbx.emit("VarSet", "dialplan", [*headers, ("Variable", name), ("Value", value)])
        return [response(action, "Success", ("Message", "Variable Set"))]


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
