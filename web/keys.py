"""Typed keys for the objects the application shares between handlers."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from core.bus import EventBus
from core.clock import Clock
from core.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
BUS = web.AppKey("bus", EventBus)
CLOCK = web.AppKey("clock", Clock)
DATABASE_URL = web.AppKey("database_url", str)
