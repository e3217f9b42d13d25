"""The console during wrap-up, in the real front end: the countdown, more time, "pause
after this call", a form that outlives the wrap-up limit and a pause, and logging out
during a call."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestServer
from playwright.async_api import Dialog, Page, expect

from core.identity import SYSTEM
from dialer.agents import AgentState
from tests.browser.test_console import make_agent
from tests.support.factories import new_case
from web.api_agents import DESK
from web.keys import POOL


async def _connected_call(server: TestServer, agent: int, key: str, reference: str) -> int:
    """A case and the ledger row of a call the agent took (the dialer is not running)."""
    async with server.app[POOL].acquire() as conn:
        case_id = await new_case(conn, reference=reference)
        await conn.execute(
            "INSERT INTO call_attempts (attempt_key, case_id, e164, started_at, answered_at, "
            "connected_at, agent_id, ended_at, outcome) "
            "VALUES ($1, $2, '+393331234567', now(), now(), now(), $3, now(), 'completed')",
            key,
            case_id,
            agent,
        )
    return case_id


async def _log_in(page: Page, server: TestServer, username: str) -> None:
    await page.goto(str(server.make_url("/")))
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill("password1")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("#link-state")).to_have_text("connected")
    # The console has followed the agent's topic and read the state once started.
    await expect(page.locator("#pause-select option")).not_to_have_count(0)


def _put_through(server: TestServer, agent: int, case_id: int, key: str) -> None:
    """What the dialer does when the debtor answers: the agent is reserved, then on call."""
    desk = server.app[DESK]
    desk.change(SYSTEM, agent, AgentState.READY)
    desk.change(SYSTEM, agent, AgentState.RESERVED, case_id=case_id, attempt_key=key)
    desk.change(SYSTEM, agent, AgentState.ON_CALL)


def _wrap_up(server: TestServer, agent: int, seconds: float) -> None:
    desk = server.app[DESK]
    until = desk.clock.monotonic() + seconds
    desk.change(SYSTEM, agent, AgentState.WRAP_UP, wrap_up_until=until)


async def test_countdown_more_time_and_pause_after_this_call(
    live_server: TestServer, page: Page, tmp_path: Path
):
    agent = await make_agent(live_server, "wrap1")
    case_id = await _connected_call(live_server, agent, "bw1", "WRAP-0001")
    await _log_in(page, live_server, "wrap1")
    _put_through(live_server, agent, case_id, "bw1")
    await expect(page.locator("#agent-state")).to_have_text("on call")
    await page.get_by_label("Pause reason").select_option("lunch")
    await page.get_by_role("button", name="Pause after this call").click()
    await expect(page.locator("#pause-after-note")).to_have_text("Pausing after this call (lunch)")
    _wrap_up(live_server, agent, 20.0)
    countdown = page.locator("#wrap-countdown")
    await expect(countdown).to_have_text(_seconds_between(15, 20))
    await expect(page.locator("#disposition-case")).to_have_text("WRAP-0001")
    await page.get_by_label("Note").fill("Will pay on Friday")
    await page.get_by_role("button", name="More time").click()
    await expect(countdown).to_have_text(_seconds_between(45, 50))
    await page.screenshot(path=str(tmp_path / "wrap-up-countdown.png"))
    await page.get_by_label("Outcome").select_option("contact_later")
    await page.get_by_role("button", name="Save disposition").click()
    await expect(page.locator("#status")).to_have_text("Disposition saved")
    await expect(page.locator("#agent-state")).to_have_text("paused")
    await expect(page.locator("#pause-reason")).to_have_text("lunch")
    await expect(page.locator("#disposition")).to_be_hidden()
    await expect(page.locator("#wrap-bar")).to_be_hidden()
    assert (tmp_path / "wrap-up-countdown.png").stat().st_size > 0


async def test_the_form_outlives_a_pause_and_the_wrap_up_limit(live_server: TestServer, page: Page):
    agent = await make_agent(live_server, "wrap2")
    case_id = await _connected_call(live_server, agent, "bw2", "WRAP-0002")
    await _log_in(page, live_server, "wrap2")
    _put_through(live_server, agent, case_id, "bw2")
    _wrap_up(live_server, agent, 30.0)
    await expect(page.locator("#disposition")).to_be_visible()
    await page.get_by_label("Note").fill("Asked for the bank details")
    await page.get_by_label("Pause reason").select_option("break")
    await page.get_by_role("button", name="Pause", exact=True).click()
    await expect(page.locator("#agent-state")).to_have_text("paused")
    # The limit's end made the agent ready elsewhere; what was typed is still there.
    live_server.app[DESK].change(SYSTEM, agent, AgentState.READY)
    await expect(page.locator("#agent-state")).to_have_text("ready")
    await expect(page.get_by_label("Note")).to_have_value("Asked for the bank details")
    await page.get_by_label("Outcome").select_option("contact_later")
    await page.get_by_role("button", name="Save disposition").click()
    await expect(page.locator("#status")).to_have_text("Disposition saved")
    async with live_server.app[POOL].acquire() as conn:
        note = await conn.fetchval(
            "SELECT summary FROM activities WHERE case_id = $1 AND kind = 'note'", case_id
        )
    assert note is not None and "bank details" in note


async def test_logging_out_during_a_call_asks_first(live_server: TestServer, page: Page):
    agent = await make_agent(live_server, "wrap3")
    case_id = await _connected_call(live_server, agent, "bw3", "WRAP-0003")
    await _log_in(page, live_server, "wrap3")
    _put_through(live_server, agent, case_id, "bw3")
    await expect(page.locator("#agent-state")).to_have_text("on call")
    questions: list[str] = []

    async def answer(dialog: Dialog, accept: bool) -> None:
        questions.append(dialog.message)
        await (dialog.accept() if accept else dialog.dismiss())

    page.once("dialog", lambda d: answer(d, False))
    await page.get_by_role("button", name="Log out").click()
    async with asyncio.timeout(5):
        while not questions:
            await asyncio.sleep(0.05)
    await expect(page.locator("#agent-state")).to_have_text("on call")
    assert questions == ["You are on a call; log out anyway?"]
    assert live_server.app[DESK].session(agent).state is AgentState.ON_CALL
    page.once("dialog", lambda d: answer(d, True))
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert live_server.app[DESK].session(agent).state is AgentState.LOGGED_OUT


def _seconds_between(low: int, high: int):  # type: ignore[no-untyped-def]
    import re

    choices = "|".join(str(n) for n in range(low, high + 1))
    return re.compile(rf"Wrap-up: ({choices}) s left")
