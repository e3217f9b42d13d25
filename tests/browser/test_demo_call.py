"""The newcomer's path in the README: start the demo, log in as an agent, take a
simulated call, and see it in the case's timeline."""

import asyncio
import re
from pathlib import Path

from playwright.async_api import Browser, WebSocket, expect

from core.embedded_pg import free_port
from tests.support.demo import running_demo


async def test_agent_takes_a_simulated_call_and_sees_it_in_the_timeline(
    browser: Browser, tmp_path: Path
):
    port = free_port()
    async with running_demo(tmp_path / "var", port, "--time-scale", "10"):
        context = await browser.new_context()
        page = await context.new_page()
        # What the server tells the console, kept: a short call's "Calling ..." banner can
        # come and go between two looks at the page.
        frames: list[str] = []

        def follow(socket: WebSocket) -> None:
            socket.on("framereceived", lambda payload: frames.append(str(payload)))

        page.on("websocket", follow)
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.get_by_label("Username").fill("agent1")
        await page.get_by_label("Password").fill("pratica-demo")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#link-state")).to_have_text("connected")
        await expect(page.locator("#preview-bar")).to_be_hidden()  # only for preview campaigns
        await page.get_by_role("button", name="Ready").click()
        # The dialer connects a live debtor: the case pops up by itself.
        await expect(page.locator("#case-card h2")).to_be_visible(timeout=90_000)
        await expect(page.locator("#call-banner")).to_contain_text("Connected")
        # The debtor hangs up after talking; the agent is in wrap-up with the disposition form.
        await expect(page.locator("#agent-state")).to_have_text("wrap up", timeout=90_000)
        await expect(page.locator("#disposition")).to_be_visible()
        await page.get_by_label("Outcome").select_option("promise_to_pay")
        await page.get_by_label("Promise amount").fill("150,00".replace(",", "."))
        await page.get_by_label("Promise due").fill("2099-01-31")
        await page.get_by_label("Note").fill("Will pay at the end of the month")
        await page.get_by_role("button", name="Save disposition").click()
        await expect(page.locator("#status")).to_have_text("Disposition saved")
        timeline = page.locator("#timeline")
        # The call is outbound, or a debtor who called in (the demo has both).
        await expect(timeline).to_contain_text("call: connected to an agent")
        await expect(timeline).to_contain_text("Promise to pay 150.00")
        await expect(timeline).to_contain_text("Will pay at the end of the month")
        await expect(page.locator("#agent-state")).to_have_text("ready")
        # A call of the agent's own: pause, find a case, call it.
        await page.get_by_label("Pause reason").select_option("break")
        await page.get_by_role("button", name="Pause").click()
        await expect(page.locator("#agent-state")).to_have_text("paused")
        await page.get_by_label("Find a case").fill("DEMO-00007")
        await page.get_by_role("button", name="Find").click()
        async with page.expect_response(lambda response: "/activities" in response.url):
            await page.locator("#find-results button", has_text="DEMO-00007").click()
        await expect(page.locator("#case-card")).to_contain_text("DEMO-00007")
        calls = page.locator("#timeline li", has_text="Outbound call:")
        before = await calls.count()  # the dialer may have called this case already
        await page.get_by_role("button", name="Call", exact=True).click()
        async with asyncio.timeout(30):
            while not any("Calling +39" in frame for frame in frames):
                await asyncio.sleep(0.1)
        # Answered (wrap-up) or not (back to the pause): either way the call is filed.
        await expect(calls).to_have_count(before + 1, timeout=60_000)
        await expect(page.locator("#agent-state")).to_have_text(
            re.compile("paused|wrap up"), timeout=60_000
        )
        await context.close()
