"""The agent's disposition of a connected call, applied in one transaction.

It spans the case (status through its workflow, promise, note), the dialer (the lead's
next step: done, a callback, or the next phone after a wrong number) and the attempt
ledger, so it lives here in the composition layer rather than in either package.

A callback is kept whatever the call was (`dialer.callbacks`): on the call's campaign
lead; for a personal callback of a call no campaign carries for that agent (manual,
inbound, preview), on the agent's own list; for a campaign callback of a call without
a campaign, on a lead of the active campaign that holds the case. A disposition saved
after the wrap-up ran out is accepted: it replaces the call's provisional settlement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from core import cases, promises
from core.activity import Activity
from core.bus import EventBus
from core.identity import Actor, PermissionDenied, Role
from core.phone_contact import PhoneChange, change_phone
from crm_bridge.workflow import change_status, workflow_of_case
from dialer.attempts import CALLS_TOPIC
from dialer.callbacks import NewCallback, add_callback, close_callbacks
from dialer.campaigns import Campaign, DialMode, get_campaign
from dialer.leads import (
    NotContactable,
    finish_attempt,
    move_leads_off_phone,
    schedule_callback,
)
from dialer.retry import AttemptOutcome


class DispositionError(ValueError):
    """The disposition cannot be applied; the message says why."""


@dataclass(frozen=True)
class Disposition:
    status: str
    note: str | None = None
    promise_amount: Any = None
    promise_due: date | None = None
    callback_at: datetime | None = None
    callback_personal: bool = True
    wrong_number: bool = False
    # The agent allows campaigns to call the debtor before the callback.
    campaigns_may_call: bool = False


@dataclass(frozen=True)
class Applied:
    case_id: int
    agent_id: int | None
    activities: list[Activity]
    promise_id: int | None


async def apply_disposition(
    pool: asyncpg.Pool,
    bus: EventBus,
    actor: Actor,
    attempt_key: str,
    d: Disposition,
    now: datetime,
    default_zones: tuple[str, ...],
) -> Applied:
    activities: list[Activity] = []
    promise_id = None
    async with pool.acquire() as conn, conn.transaction():
        call = await conn.fetchrow(
            "SELECT campaign_id, lead_id, case_id, agent_id, disposition, connected_at, "
            "started_at, phone_id "
            "FROM call_attempts WHERE attempt_key = $1 FOR UPDATE",
            attempt_key,
        )
        if call is None or call["case_id"] is None:
            raise DispositionError(f"no call {attempt_key}")
        if call["agent_id"] != actor.user_id and not actor.role.at_least(Role.SUPERVISOR):
            raise PermissionDenied("only the agent who took the call records its disposition")
        if call["disposition"] is not None:
            raise DispositionError("this call already has a disposition")
        case_id = call["case_id"]
        _, current = await workflow_of_case(conn, case_id)
        if d.status != current:
            activities.append(await change_status(conn, pool, actor, case_id, d.status, now))
        if d.promise_amount not in (None, ""):
            if d.promise_due is None:
                raise DispositionError("a promise needs its due date")
            promise, act = await promises.add_promise(
                conn, actor, case_id, d.promise_amount, d.promise_due, now.date(), now
            )
            promise_id = promise.id
            activities.append(act)
        if d.note and d.note.strip():
            activities.append(await cases.add_note(conn, actor, case_id, d.note, now))
        # A wrong number (the status, or the flag): THAT call's number, however the call
        # was placed (campaign, preview, by hand); leads waiting on it move to the next one.
        wrong_number = d.wrong_number or d.status == "wrong_number"
        if wrong_number and call["phone_id"] is not None:
            _, marked = await change_phone(
                conn, pool, actor, case_id, call["phone_id"], PhoneChange(wrong_number=True), now
            )
            if marked is not None:
                activities.append(marked)
            await move_leads_off_phone(conn, call["phone_id"], now, default_zones)
        campaign = None
        if call["campaign_id"] is not None:
            campaign = await get_campaign(conn, call["campaign_id"])
        # The debtor was reached: the callbacks set before this call are honoured.
        await close_callbacks(conn, case_id, call["started_at"], attempt_key, now)
        if campaign is not None and call["lead_id"] is not None:
            if d.callback_at is not None:
                await _keep_callback(
                    conn, actor, attempt_key, call, campaign, d, now, default_zones
                )
            else:
                outcome = AttemptOutcome.WRONG_NUMBER if wrong_number else AttemptOutcome.CONNECTED
                await finish_attempt(conn, campaign, call["lead_id"], outcome, now, default_zones)
        elif d.callback_at is not None:
            await _keep_callback(conn, actor, attempt_key, call, None, d, now, default_zones)
        await conn.execute(
            "UPDATE call_attempts SET disposition = $2, promise_id = $3 WHERE attempt_key = $1",
            attempt_key,
            d.status,
            promise_id,
        )
    await bus.publish(
        CALLS_TOPIC,
        {
            "type": "call.disposition",
            "attempt_key": attempt_key,
            "campaign_id": call["campaign_id"],
            "case_id": case_id,
            "status": d.status,
            "promise": promise_id is not None,
            "at": now.isoformat(),
        },
    )
    return Applied(case_id, call["agent_id"], activities, promise_id)


async def _keep_callback(
    conn: asyncpg.Connection,
    actor: Actor,
    attempt_key: str,
    call: asyncpg.Record,
    campaign: Campaign | None,
    d: Disposition,
    now: datetime,
    default_zones: tuple[str, ...],
) -> None:
    """Store the callback where it will be honoured (see the module's docstring)."""
    at = d.callback_at
    if at is None:
        return
    if at <= now:
        raise DispositionError("a callback must be in the future")
    case_id, agent_id = call["case_id"], call["agent_id"]
    personal = d.callback_personal and agent_id is not None
    lead_id = campaign_id = None
    try:
        if campaign is not None and not (personal and campaign.mode is DialMode.PREVIEW):
            campaign_id = campaign.id
            lead_id = await schedule_callback(
                conn, actor, campaign, case_id, at, agent_id if personal else None,
                default_zones, ends_call=True,
            )  # fmt: skip
        elif personal:
            if campaign is not None:  # a preview lead: the contact was made
                await finish_attempt(
                    conn, campaign, call["lead_id"], AttemptOutcome.CONNECTED, now, default_zones
                )
        else:
            target = await _campaign_of_case(conn, case_id)
            if target is None:
                raise DispositionError(
                    "no active campaign holds this case: make the callback personal"
                )
            campaign_id = target.id
            lead_id = await schedule_callback(conn, actor, target, case_id, at, None, default_zones)
    except NotContactable:
        raise  # the case may not be called back at all: the API says so (409)
    except LookupError as exc:
        raise DispositionError(str(exc)) from None
    await add_callback(
        conn, actor,
        NewCallback(case_id, at, agent_id if personal else None, campaign_id, lead_id,
                    d.campaigns_may_call, attempt_key),
        now,
    )  # fmt: skip


async def _campaign_of_case(conn: asyncpg.Connection, case_id: int) -> Campaign | None:
    """The active campaign holding a lead of the case (the most recently dialed one)."""
    campaign_id = await conn.fetchval(
        "SELECT l.campaign_id FROM leads l JOIN campaigns c ON c.id = l.campaign_id "
        "WHERE l.case_id = $1 AND c.active ORDER BY l.last_attempt_at DESC NULLS LAST, l.id DESC "
        "LIMIT 1",
        case_id,
    )
    return None if campaign_id is None else await get_campaign(conn, int(campaign_id))
