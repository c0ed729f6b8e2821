"""A background loop that swallows a cancellation still stops (audio_rooms/tasks.py)."""

import asyncio

from audio_rooms.tasks import cancel_and_wait


async def test_a_loop_that_swallows_one_cancel_still_ends() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:  # what a library's own timeout can do on 3.11
                swallowed += 1
                if swallowed > 3:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.01)
    await asyncio.wait_for(cancel_and_wait(task, None), 10)
    assert task.done() and swallowed == 4


async def test_ended_and_missing_tasks_are_fine() -> None:
    async def quick() -> None:
        return None

    done = asyncio.create_task(quick())
    await done
    await cancel_and_wait(done, None)
