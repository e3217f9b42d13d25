"""`cancel_and_wait`: the stopped tasks' cancellation is absorbed, the stopper's is not."""

from __future__ import annotations

import asyncio

import pytest

from core.tasks import cancel_and_wait


async def _slow_to_stop(stopped: asyncio.Event) -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(0.2)  # cleanup that takes a while, as a real writer's does
        stopped.set()
        raise


async def test_the_tasks_are_cancelled_and_awaited() -> None:
    stopped = asyncio.Event()
    task = asyncio.create_task(_slow_to_stop(stopped))
    other = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await cancel_and_wait(task, None, other)
    assert task.cancelled() and other.cancelled() and stopped.is_set()


async def test_a_task_that_already_finished_is_fine() -> None:
    task = asyncio.create_task(asyncio.sleep(0))
    await task
    await cancel_and_wait(task)


async def test_a_task_failing_as_it_stops_raises_its_error() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("flush failed") from None

    task = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="flush failed"):
        await cancel_and_wait(task)


async def test_the_stoppers_own_cancellation_propagates() -> None:
    stopped = asyncio.Event()
    task = asyncio.create_task(_slow_to_stop(stopped))
    await asyncio.sleep(0)
    reached_the_end = False

    async def stopper() -> None:
        nonlocal reached_the_end
        await cancel_and_wait(task)
        reached_the_end = True

    stopping = asyncio.create_task(stopper())
    await asyncio.sleep(0.05)  # the stopper is waiting for the task's cleanup
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert not reached_the_end


async def test_a_timeout_around_a_stop_fires() -> None:
    stopped = asyncio.Event()
    task = asyncio.create_task(_slow_to_stop(stopped))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await cancel_and_wait(task)


async def test_cleanup_after_the_callers_own_cancellation_stops_every_task() -> None:
    first, second = asyncio.Event(), asyncio.Event()
    tasks = [
        asyncio.create_task(_slow_to_stop(first)),
        asyncio.create_task(_slow_to_stop(second)),
    ]
    await asyncio.sleep(0)
    cleaned_up = False

    async def service() -> None:
        nonlocal cleaned_up
        try:
            await asyncio.sleep(3600)
        finally:  # cancelled: the shutdown path of a server task
            await cancel_and_wait(*tasks)
            cleaned_up = True

    running = asyncio.create_task(service())
    await asyncio.sleep(0)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert cleaned_up and first.is_set() and second.is_set()
