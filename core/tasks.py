"""Stopping background tasks without swallowing the stopper's own cancellation."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel `tasks` (None entries are skipped) and wait until each has finished.

    A task ending in the CancelledError it was sent is the expected outcome and is not
    raised; any other exception a task ends with is. When the caller itself is cancelled
    while it waits (a shutdown under a timeout, say), that cancellation propagates: the
    usual `with suppress(CancelledError): await task` cannot tell the two apart and would
    let the stopper carry on as if nothing had happened. A cancellation the caller had
    already received before the call (cleanup in a `finally`) does not count.
    """
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    current = asyncio.current_task()
    # Counted from here: a caller already cancelled before (cleaning up in a `finally`
    # after its own cancellation) still stops every task.
    before = current.cancelling() if current is not None else 0
    for task in running:
        try:
            await task
        except asyncio.CancelledError:
            if current is not None and current.cancelling() > before:
                raise
