from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from core import cases, users
from core.identity import SYSTEM, Role
from tests.support.factories import new_case
from web.keys import POOL


async def test_agent_marks_a_number_do_not_call_from_the_case_card(
    live_server: TestServer, page: Page
):
    async with live_server.app[POOL].acquire() as conn:
        agent = await users.create_user(conn, SYSTEM, "ui-dnc", "password1", Role.AGENT)
        case_id = await new_case(conn, reference="PH-1", phones=("+393331280001",))
        await cases.assign_case(conn, SYSTEM, case_id, agent.id)
    await page.goto(str(live_server.make_url("/")))
    await page.get_by_label("Username").fill("ui-dnc")
    await page.get_by_label("Password").fill("password1")
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_label("Find a case").fill("PH-1")
    await page.get_by_role("button", name="Find").click()
    await page.locator("#find-results button", has_text="PH-1").click()
    phone = page.locator("#case-card li.phone")
    await expect(phone.locator(".number")).to_have_text("+393331280001")
    await phone.get_by_role("button", name="Do not call").click()
    await expect(phone.locator(".number")).to_have_text("+393331280001 (DNC)")
    # Lifting it is a supervisor's decision: the agent sees why it was refused.
    await page.locator("#case-card li.phone").get_by_role("button", name="Allow calls").click()
    await expect(page.locator("#case-card .phone-message")).to_contain_text("supervisor")
    async with live_server.app[POOL].acquire() as conn:
        dnc = await conn.fetchval("SELECT do_not_call FROM phones WHERE e164 = '+393331280001'")
    assert dnc is True
