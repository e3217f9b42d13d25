"""Browser tests: the real front end in Debian's headless Chromium, driven by Playwright
against the real server on a loopback port. Playwright never downloads a browser here."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright

from core.settings import load_settings
from web.app import create_app

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("PRATICA_CHROMIUM") or shutil.which("chromium")
    if not path:
        raise RuntimeError("Chromium not found: install the Debian package 'chromium'")
    return path


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_FLAGS
        )
        yield instance
        await instance.close()


@pytest.fixture
async def live_server(database_url: str, tmp_path) -> AsyncIterator[TestServer]:
    settings = load_settings(
        environ={"DATABASE_URL": database_url, "PRATICA_DATA_DIR": str(tmp_path)}
    )
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    p = await context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    await context.close()
    assert errors == [], f"JavaScript errors in the page: {errors}"
