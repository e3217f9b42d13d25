from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from core import users
from core.identity import SYSTEM, Role
from web.keys import POOL


async def make_agent(server: TestServer, username: str) -> int:
    async with server.app[POOL].acquire() as conn:
        user = await users.create_user(conn, SYSTEM, username, "password1", Role.AGENT)
    return user.id


async def test_agent_logs_in_goes_ready_and_pauses(live_server: TestServer, page: Page):
    await make_agent(live_server, "ui1")
    await page.goto(str(live_server.make_url("/")))
    await page.get_by_label("Username").fill("ui1")
    await page.get_by_label("Password").fill("password1")
    await page.get_by_role("button", name="Log in").click()
    state = page.locator("#agent-state")
    await expect(state).to_have_text("logged out")
    await expect(page.locator("#link-state")).to_have_text("connected")
    await expect(page.locator("#softphone-state")).to_contain_text("simulated")
    await page.get_by_role("button", name="Ready").click()
    await expect(state).to_have_text("ready")
    await page.get_by_label("Pause reason").select_option("lunch")
    await page.get_by_role("button", name="Pause").click()
    await expect(state).to_have_text("paused")
    await expect(page.locator("#pause-reason")).to_have_text("lunch")
    # A reload keeps the session and the state.
    await page.reload()
    await expect(state).to_have_text("paused")


async def test_wrong_password_shows_the_reason(live_server: TestServer, page: Page):
    await make_agent(live_server, "ui2")
    await page.goto(str(live_server.make_url("/")))
    await page.get_by_label("Username").fill("ui2")
    await page.get_by_label("Password").fill("nope")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("#status")).to_have_text("wrong username or password")
