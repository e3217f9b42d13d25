from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from core.settings import load_settings
from web.app import create_app


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[TestClient]:
    settings = load_settings(environ={"DATABASE_URL": database_url})
    app = create_app(settings)
    async with TestClient(TestServer(app)) as c:
        yield c
