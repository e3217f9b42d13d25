"""The dialplan the simulator runs: the contexts of `asterisk_conf/extensions.conf`.

Each context is a coroutine run for one channel; `Newexten` is emitted for each
application it models. The `lab-*`, `dialer-amd`, `debtors` and `agents` names are the
lab dialplan of the recorded sessions, kept as aliases so the recordings can be
reproduced; production uses the `pratica-*` contexts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from dialer.sim.debtors import DebtorBehaviour, DebtorOutcome
from dialer.sim.extensions import EXTENSIONS
from dialer.sim.pbx import BUSY, RING, RINGING, UP, ChannelGone, Pbx, PendingOriginate, SimChannel

log = logging.getLogger(__name__)

FOREVER = 10 * 24 * 3600.0
AMD_HUMAN_DELAY = 2.3  # seconds after answer, as measured in amd.jsonl
AMD_MACHINE_DELAY = 2.4
HUMAN_GREETING = 3.5
MACHINE_GREETING = 5.7
ABANDON_MESSAGE = 3.5
INBOUND_WELCOME = 2.0
INBOUND_CALLBACK_MESSAGE = 4.0

Script = Callable[["Dialplan", SimChannel], Awaitable[None]]


class Dialplan:
    def __init__(
        self,
        pbx: Pbx,
        hold_max: float = 30.0,
        amd_accuracy: float = 1.0,
        inbound_max: float = 600.0,
        *,
        missing_apps: frozenset[str] = frozenset(),
    ):
        self.pbx = pbx
        self.missing_apps = missing_apps
        self.hold_max = hold_max
        self.amd_accuracy = amd_accuracy
        self.inbound_max = inbound_max  # the dialplan's safety net (PRATICA_INBOUND_MAX)
        self._trunk_seq = 0

    # --- running scripts ----------------------------------------------------------

    def start(self, ch: SimChannel, context: str, exten: str) -> bool:
        script = CONTEXTS.get(context)
        if script is None:
            return False
        ch.context, ch.exten, ch.priority = context, exten, 1
        ch.task = asyncio.get_running_loop().create_task(self._run(script, ch))
        return True

    async def _run(self, script: Script, ch: SimChannel) -> None:
        try:
            await script(self, ch)
            if not ch.hung_up:
                self.pbx.hangup(ch, 16)  # fell off the end of the dialplan
        except (ChannelGone, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("simulated dialplan failed on %s", ch.name)
            self.pbx.hangup(ch, 16)

    async def wait(self, ch: SimChannel, seconds: float) -> None:
        self.pbx.check(ch)
        await self.pbx.clock.sleep(seconds)
        self.pbx.check(ch)

    def app(self, ch: SimChannel, name: str, data: str = "") -> None:
        self.pbx.check(ch)
        if name in self.missing_apps:
            # pbx.c: "No application 'AMD' for extension": no Newexten, the PBX ends
            # and hangs the channel up with no cause set (0).
            log.warning("No application '%s' for extension (%s, %s, %d)", name, ch.context,
                        ch.exten, ch.priority + 1)  # fmt: skip
            self.pbx.hangup(ch, 0, from_bridge=True)
            raise ChannelGone(ch.name)
        self.pbx.newexten(ch, name, data)

    def goto(self, ch: SimChannel, context: str, exten: str = "s") -> None:
        """`Goto(context,exten,1)`: the channel is in the new context from now on (what
        CoreShowChannels and the next events report)."""
        self.app(ch, "Goto", f"{context},{exten},1")
        ch.context, ch.exten, ch.priority = context, exten, 0

    def drop_agent_phone(self, agent: str) -> bool:
        """The agent's (simulated) phone hangs up: its leg leaves the conference."""
        for ch in list(self.pbx.channels.values()):
            if ch.half == 2 and ch.context in ("sim-agents", "agents") and ch.exten == agent:
                self.pbx.hangup(ch, 16)
                return True
        return False

    def redirect(self, ch: SimChannel, context: str, exten: str) -> None:
        """An async goto: leave what the channel does and run `context`.

        Into an extension that does not exist the channel's PBX finds nothing to run
        and hangs the channel up at once (no cause set, 0).
        """
        if ch.bridge is not None:
            self.pbx.leave_bridge(ch)
        task = ch.task
        if task is not None and not task.done():
            task.cancel()
        if not EXTENSIONS.exists(context, exten) or not self.start(ch, context, exten):
            ch.context, ch.exten, ch.priority = context, exten, 1
            self.pbx.hangup(ch, 0, from_bridge=True)

    # --- inbound calls from the carrier ------------------------------------------------

    def inbound_call(
        self, caller: str, dialed: str = "800", *, patience: float = 120.0, talk: float = 30.0
    ) -> SimChannel:
        """A debtor calls in through the carrier trunk: the channel enters pratica-inbound.

        The caller hangs up after `patience` seconds if no agent took the call by then,
        and `talk` seconds after being connected (unless a simulated agent ends it first).
        """
        self._trunk_seq += 1
        name = f"PJSIP/carrier-{self._trunk_seq:08x}"
        uid = self.pbx.new_uniqueid()
        ch = SimChannel(name, uid, uid, "pratica-inbound", dialed, RING,
                        created=self.pbx.clock.monotonic())  # fmt: skip
        ch.variables["_CALLERID_NUM"] = caller
        self.pbx.add(ch)
        self.pbx.channel_event("Newchannel", ch)
        self.start(ch, "pratica-inbound", dialed)
        task = asyncio.get_running_loop().create_task(self._caller(ch, patience, talk))
        self.pbx.tasks.add(task)
        task.add_done_callback(self.pbx.tasks.discard)
        return ch

    async def _caller(self, ch: SimChannel, patience: float, talk: float) -> None:
        clock = self.pbx.clock
        waited = 0.0
        while not ch.hung_up and ch.bridge is None and waited < patience:
            await clock.sleep(0.25)
            waited += 0.25
        if ch.hung_up:
            return
        if ch.bridge is None:
            self.pbx.count("inbound_caller_gave_up")
            self.pbx.hangup(ch, 16)
            return
        await clock.sleep(talk)
        if not ch.hung_up:
            self.pbx.hangup(ch, 16)

    # --- Local channel calls ----------------------------------------------------------

    def ring(self, two: SimChannel) -> None:
        one = two.peer
        if one is None or one.hung_up:
            return
        self.pbx.set_state(one, RINGING)
        self.pbx.device_state(one.name.rsplit("-", 1)[0], "INUSE")
        self.pbx.dial_event("DialState", one, one.dial_caller, ("DialStatus", "RINGING"))

    def answer(self, two: SimChannel) -> None:
        one = two.peer
        self.pbx.set_state(two, UP)
        if one is None or one.hung_up or one.state == UP:
            return
        self.pbx.set_state(one, UP)
        self.pbx.dial_event("DialEnd", one, one.dial_caller, ("DialStatus", "ANSWER"))
        if one.answered is not None and not one.answered.done():
            one.answered.set_result(True)
        self.pbx.device_state(one.name.rsplit("-", 1)[0], "INUSE")

    def originate_failed(self, one: SimChannel, reason: int) -> None:
        pending = one.originate
        if pending is None or pending.reported:
            return
        pending.reported = True
        self.originate_response(pending, one.uniqueid, pending.dial_string, False, reason)

    def originate_response(
        self, p: PendingOriginate, uniqueid: str, channel: str, success: bool, reason: int
    ) -> None:
        self.pbx.emit(
            "OriginateResponse",
            "call",
            [
                ("ActionID", p.action_id),
                ("Response", "Success" if success else "Failure"),
                ("Channel", channel),
                ("Context", p.context),
                ("Exten", p.exten),
                ("Reason", str(reason)),
                ("Uniqueid", uniqueid),
                ("CallerIDNum", p.callerid_num or "<unknown>"),
                ("CallerIDName", p.callerid_name or "<unknown>"),
            ],
        )

    def reject(self, two: SimChannel, status: str, cause: int, reason: int) -> None:
        """The far end refuses before answering (busy, congestion, invalid number)."""
        pbx, one = self.pbx, two.peer
        if one is None:
            return
        if status == "BUSY":
            pbx.set_state(two, BUSY)
            self.originate_failed(one, reason)
        else:
            self.originate_failed(one, reason)
            pbx.set_state(two, BUSY)
        pbx.dial_event("DialEnd", one, one.dial_caller, ("DialStatus", status))
        pbx.channel_event("HangupRequest", two, ("Cause", "0"))
        pbx.channel_event("SoftHangupRequest", two, ("Cause", "16"))
        pbx.gone(two, cause)
        pbx.gone(one, 0)
        raise ChannelGone(two.name)

    def ring_timeout(self, one: SimChannel, cause: int = 19) -> None:
        """Nobody answered within the Originate timeout."""
        pbx, two = self.pbx, one.peer
        if one.hung_up:
            return
        if two is not None and not two.hung_up:
            pbx.channel_event("HangupRequest", two, ("Cause", str(cause)))
        self.originate_failed(one, 3)
        pbx.gone(one, cause)
        if two is not None and not two.hung_up:
            pbx.channel_event("SoftHangupRequest", two, ("Cause", "16"))
            pbx.gone(two, cause)

    def hangup_pair(self, one: SimChannel, cause: int) -> None:
        """Both halves of an answered Local pair hung up by one AMI Hangup (regex)."""
        pbx, two = self.pbx, one.peer
        pbx.leave_bridge(one)
        if two is None or two.hung_up:
            pbx.hangup(one, 16)
            return
        pbx.channel_event("SoftHangupRequest", two, ("Cause", "16"))
        pbx.channel_event("HangupRequest", one, ("Cause", str(cause)))
        pbx.gone(two, cause)
        pbx.channel_event("SoftHangupRequest", one, ("Cause", "16"))
        pbx.gone(one, 16)

    def hangup(self, ch: SimChannel, cause: int = 16) -> None:
        """AMI Hangup: a ringing outbound leg is cancelled like Asterisk does it."""
        pbx, two = self.pbx, ch.peer
        if ch.half == 1 and ch.answered is not None and not ch.answered.done():
            pbx.dial_event("DialEnd", ch, ch.dial_caller, ("DialStatus", "NOANSWER"))
            if two is not None and not two.hung_up:
                pbx.channel_event("HangupRequest", two, ("Cause", str(cause)))
            pbx.gone(ch, cause)
            self.originate_failed(ch, 0)
            if two is not None and not two.hung_up:
                pbx.channel_event("SoftHangupRequest", two, ("Cause", str(cause)))
                pbx.gone(two, cause)
            return
        pbx.hangup(ch, cause)


# --- contexts --------------------------------------------------------------------------


async def debtor_phone(d: Dialplan, two: SimChannel) -> None:
    """The called party of an outbound call (a carrier in production)."""
    pbx = d.pbx
    hour = pbx.clock.now().hour + pbx.clock.now().minute / 60.0
    behaviour = pbx.debtors.decide(pbx.rng, two.exten, hour, two.variables)
    two.behaviour = behaviour
    pbx.count("dialed")
    if len(pbx.dialed_numbers) >= 1000:
        del pbx.dialed_numbers[:500]
    pbx.dialed_numbers.append(two.exten)
    pbx.count("debtor_" + behaviour.outcome.value.lower())
    d.app(two, "UserEvent", "SimDebtor")
    pbx.user_event(
        two,
        "SimDebtor",
        ("Number", two.exten),
        ("Outcome", behaviour.outcome.value),
        ("Ring", f"{behaviour.ring:g}"),
        ("Talk", f"{behaviour.talk:g}"),
    )
    outcome = behaviour.outcome
    if outcome is DebtorOutcome.BUSY:
        d.app(two, "Busy", "10")
        d.reject(two, "BUSY", 17, 5)
    if outcome is DebtorOutcome.CONGESTION:
        d.app(two, "Congestion", "10")
        d.reject(two, "CONGESTION", 34, 8)
    if outcome is DebtorOutcome.INVALID:
        d.app(two, "Hangup", "1")
        d.reject(two, "CHANUNAVAIL", 1, 8)
    d.app(two, "Ringing")
    d.ring(two)
    d.app(two, "Wait", f"{behaviour.ring:g}")
    await d.wait(two, behaviour.ring)
    if outcome is DebtorOutcome.NOANSWER:
        one = two.peer
        if one is not None:
            d.ring_timeout(one, 19)
        return
    d.app(two, "Answer")
    d.answer(two)
    await d.wait(two, 0.5)
    if outcome is DebtorOutcome.MACHINE:
        d.app(two, "Playback", "sim/machine-greeting")
        await d.wait(two, MACHINE_GREETING)
    else:
        d.app(two, "Playback", "sim/human-hello")
        await d.wait(two, HUMAN_GREETING)
        d.app(two, "Wait", f"{behaviour.talk:g}")
        await d.wait(two, behaviour.talk)
    d.app(two, "Hangup", "16")
    pbx.hangup(two, 16)


async def agent_phone(d: Dialplan, two: SimChannel) -> None:
    """An agent's softphone: answers at once and stays up (the nailed-up leg)."""
    d.app(two, "NoOp", f"SIM agent {two.exten}")
    d.app(two, "Answer")
    d.answer(two)
    d.app(two, "Wait", "3600")
    await d.wait(two, FOREVER)


def _is_human(d: Dialplan, ch: SimChannel) -> bool:
    behaviour = ch.peer.behaviour if ch.peer is not None else None
    human = not (
        isinstance(behaviour, DebtorBehaviour) and behaviour.outcome is DebtorOutcome.MACHINE
    )
    if d.pbx.rng.random() >= d.amd_accuracy:
        human = not human
    return human


async def _amd(d: Dialplan, ch: SimChannel, event: str, *fields: tuple[str, str]) -> bool:
    d.app(ch, "AMD")
    human = _is_human(d, ch)
    await d.wait(ch, AMD_HUMAN_DELAY if human else AMD_MACHINE_DELAY)
    status, cause = ("HUMAN", "HUMAN-800-800") if human else ("MACHINE", "MAXWORDS-3-2")
    body = "".join(f"{k}: {v}," for k, v in fields)
    d.app(ch, "UserEvent", f"{event},{body}Status: {status},Cause: {cause}")
    d.pbx.user_event(ch, event, *fields, ("Status", status), ("Cause", cause))
    d.pbx.count("amd_" + status.lower())
    d.app(ch, "GotoIf", f"{0 if human else 1}?machine")
    if not human:
        d.app(ch, "Hangup", "16")
        d.pbx.hangup(ch, 16)
        raise ChannelGone(ch.name)
    return human


async def pratica_amd(d: Dialplan, ch: SimChannel) -> None:
    attempt = ch.variables.get("ATTEMPT", "")
    d.app(ch, "NoOp", f"Pratica attempt {attempt}")
    await _amd(d, ch, "PraticaAMD", ("Attempt", attempt))
    d.goto(ch, "pratica-hold")
    await hold_for_agent(d, ch, abandon_after=True)


async def lab_amd(d: Dialplan, ch: SimChannel) -> None:
    await _amd(d, ch, "SimAMD")
    agent = ch.exten
    d.app(ch, "Dial", f"Local/{agent}@agents,30")
    one, two = d.pbx.local_pair(agent, "agents", linkedid=ch.linkedid)
    one.dial_caller = ch
    # Dial() gives the callee the caller's number (its extension when it has no caller
    # id), and the far half learns it as its connected line.
    d.pbx.set_caller(one, ch.exten, "")
    d.pbx.set_connected(two, ch.exten, "")
    d.pbx.newexten(one, "AppDial", "(Outgoing Line)")
    d.pbx.local_bridge(one, two)
    d.pbx.dial_event("DialBegin", one, ch, ("DialString", f"{agent}@agents"))
    one.answered = asyncio.get_running_loop().create_future()
    d.start(two, "agents", agent)
    if not await one.answered:
        return
    d.pbx.bridge_pair(one, ch)
    await d.wait(ch, FOREVER)


async def hold_for_agent(d: Dialplan, ch: SimChannel, abandon_after: bool = False) -> None:
    """A live debtor waits here until the dialer redirects it to an agent's conference."""
    attempt = ch.variables.get("ATTEMPT", "")
    d.app(ch, "UserEvent", f"WaitingForAgent,Attempt: {attempt}")
    d.pbx.user_event(ch, "WaitingForAgent", ("Attempt", attempt))
    d.app(ch, "Wait", f"{d.hold_max:g}")
    await d.wait(ch, d.hold_max)
    if abandon_after:
        d.goto(ch, "pratica-abandon")
        await abandon(d, ch)


async def pratica_hold(d: Dialplan, ch: SimChannel) -> None:
    await hold_for_agent(d, ch, abandon_after=True)


async def lab_hold(d: Dialplan, ch: SimChannel) -> None:
    await hold_for_agent(d, ch, abandon_after=False)


async def abandon(d: Dialplan, ch: SimChannel) -> None:
    """No agent in time: the recorded abandonment message, then hang up."""
    if ch.context.startswith("pratica"):
        attempt = ch.variables.get("ATTEMPT", "")
        d.pbx.user_event(ch, "PraticaAbandoned", ("Attempt", attempt))
    d.pbx.count("abandon_message")
    d.app(ch, "Answer")
    d.app(ch, "Playback", "pratica/abandon-message")
    await d.wait(ch, ABANDON_MESSAGE)
    d.app(ch, "Hangup", "16")
    d.pbx.hangup(ch, 16)


async def agent_conf(d: Dialplan, ch: SimChannel) -> None:
    """The agent's nailed-up leg: joins its own conference for the whole shift."""
    d.app(ch, "Answer")
    d.app(ch, "UserEvent", f"AgentInConf,Agent: {ch.exten}")
    d.pbx.user_event(ch, "AgentInConf", ("Agent", ch.exten))
    d.app(ch, "ConfBridge", f"agent-{ch.exten}")
    d.pbx.join_conference(ch, f"agent-{ch.exten}")
    await d.wait(ch, FOREVER)


async def join_agent(d: Dialplan, ch: SimChannel) -> None:
    """A debtor redirected here joins the agent's conference (`exten` is the agent)."""
    agent = ch.exten
    d.app(ch, "MixMonitor", f"{ch.variables.get('ATTEMPT', ch.uniqueid)}.wav,b")
    d.app(ch, "ConfBridge", f"agent-{agent}")
    d.pbx.join_conference(ch, f"agent-{agent}")
    d.pbx.count("connected")
    if not d.pbx.simulated_agents:
        await d.wait(ch, FOREVER)
        return
    talk = d.pbx.agents.talk(d.pbx.rng)
    try:
        await d.wait(ch, talk)
        d.pbx.hangup(ch, 16)  # the simulated agent ends the call
    finally:
        asyncio.get_running_loop().create_task(_wrap_up(d, agent))


async def _wrap_up(d: Dialplan, agent: str) -> None:
    await d.pbx.clock.sleep(d.pbx.agents.wrap(d.pbx.rng))
    bridge = d.pbx.conferences.get(f"agent-{agent}")
    if bridge is None or not bridge.members:
        return
    d.pbx.user_event(bridge.members[0], "SimAgentReady", ("Agent", agent))


async def inbound(d: Dialplan, ch: SimChannel) -> None:
    """A debtor calling in: announced to the dialer, then music on hold until redirected."""
    ch.variables["ATTEMPT"] = f"in-{ch.uniqueid}"
    d.app(ch, "Set", f"__ATTEMPT=in-{ch.uniqueid}")
    d.app(ch, "Answer")
    d.pbx.set_state(ch, UP)
    caller = ch.variables.get("_CALLERID_NUM", "")
    d.app(ch, "UserEvent", f"PraticaInbound,Caller: {caller},Did: {ch.exten}")
    d.pbx.user_event(ch, "PraticaInbound", ("Caller", caller), ("Did", ch.exten))
    d.pbx.count("inbound_offered")
    d.app(ch, "Playback", "pratica/inbound-welcome")
    await d.wait(ch, INBOUND_WELCOME)
    d.app(ch, "MusicOnHold", f"default,{d.inbound_max:g}")
    await d.wait(ch, d.inbound_max)
    d.goto(ch, "pratica-inbound-timeout")
    await inbound_timeout(d, ch)


async def inbound_timeout(d: Dialplan, ch: SimChannel) -> None:
    """No agent within the maximum wait: the callback message, then hang up."""
    d.app(ch, "UserEvent", f"PraticaInboundTimeout,Attempt: {ch.variables.get('ATTEMPT', '')}")
    d.pbx.user_event(ch, "PraticaInboundTimeout", ("Attempt", ch.variables.get("ATTEMPT", "")))
    d.pbx.count("inbound_timeout_message")
    d.app(ch, "Playback", "pratica/inbound-callback-message")
    await d.wait(ch, INBOUND_CALLBACK_MESSAGE)
    d.app(ch, "Hangup", "16")
    d.pbx.hangup(ch, 16)


async def agent_hold(d: Dialplan, ch: SimChannel) -> None:
    """An agent leg parked in Wait() (the AMI Bridge pattern, not used in production)."""
    d.app(ch, "Answer")
    d.app(ch, "UserEvent", f"AgentHolding,Agent: {ch.exten}")
    d.pbx.user_event(ch, "AgentHolding", ("Agent", ch.exten))
    d.app(ch, "Wait", "3600")
    await d.wait(ch, FOREVER)


CONTEXTS: dict[str, Script] = {
    "sim-debtors": debtor_phone,
    "debtors": debtor_phone,
    "sim-agents": agent_phone,
    "agents": agent_phone,
    "pratica-amd": pratica_amd,
    "dialer-amd": lab_amd,
    "pratica-hold": pratica_hold,
    "lab-hold-for-agent": lab_hold,
    "pratica-abandon": abandon,
    "lab-abandon": abandon,
    "pratica-agent-conf": agent_conf,
    "lab-agent-conf": agent_conf,
    "pratica-join-agent": join_agent,
    "lab-join-agent": join_agent,
    "lab-agent-hold": agent_hold,
    "pratica-inbound": inbound,
    "pratica-inbound-timeout": inbound_timeout,
}
