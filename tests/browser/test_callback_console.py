"""A personal callback pops on the agent's console when its time comes."""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from core.identity import Actor, Role
from dialer import callbacks
from tests.browser.test_console import make_agent
from tests.browser.test_wrap_up_console import _connected_call, _log_in
from web.keys import BUS, CLOCK, POOL


async def test_a_due_callback_pops_and_opens_its_case(live_server: TestServer, page: Page):
    agent = await make_agent(live_server, "caller1")
    now = live_server.app[CLOCK].now()
    case_id = await _connected_call(live_server, agent, "cb1", "CALLBACK-01")  # set it
    async with live_server.app[POOL].acquire() as conn:
        await callbacks.add_callback(
            conn,
            Actor(agent, "caller1", Role.AGENT),
            callbacks.NewCallback(case_id, now + timedelta(hours=1), agent),
            now - timedelta(minutes=5),
        )
    await _log_in(page, live_server, "caller1")
    await expect(page.locator("#callback-bar")).to_be_hidden()
    later = now + timedelta(hours=1, seconds=1)
    assert await callbacks.announce_due(live_server.app[POOL], live_server.app[BUS], later) == 1
    await expect(page.locator("#callback-text")).to_have_text("Callback due: CALLBACK-01")
    await page.get_by_role("button", name="Open case").click()
    await expect(page.locator("#case-card")).to_contain_text("CALLBACK-01")
    await expect(page.locator("#callback-bar")).to_be_hidden()
    # After a reload, a callback already due is still shown.
    await page.reload()
    await expect(page.locator("#callback-text")).to_have_text("Callback due: CALLBACK-01")
