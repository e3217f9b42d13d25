"""Virtual time for the simulator: a one-hour shift can run in a minute.

Virtual seconds pass `scale` times faster than real ones. The clock satisfies
`core.clock.Clock`, so code that takes a clock can run against simulated time.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class ScaledClock:
    def __init__(self, scale: float = 1.0, start: datetime | None = None):
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self.scale = scale
        self._start = start or datetime.now(UTC)
        self._t0 = time.monotonic()

    def monotonic(self) -> float:
        """Virtual seconds since the clock was made."""
        return (time.monotonic() - self._t0) * self.scale

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)

    def real(self, seconds: float) -> float:
        """Real seconds for a span of virtual seconds."""
        return seconds / self.scale
