"""The lean queue and gate every WebSocket holds behave as the asyncio classes they replace, for
the calls uvicorn makes: order kept, nothing lost to a cancelled wait, every waiter woken."""

from __future__ import annotations

import asyncio

from audio_rooms.lean import ReceiveQueue, WriteGate


async def test_the_queue_hands_items_out_in_order_to_a_waiting_getter() -> None:
    queue = ReceiveQueue()
    assert queue.empty()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()
    queue.put_nowait("a")
    queue.put_nowait("b")
    assert await asyncio.wait_for(getter, 1) == "a"
    assert not queue.empty()
    assert await asyncio.wait_for(queue.get(), 1) == "b"
    assert queue.empty()


async def test_a_cancelled_get_loses_nothing() -> None:
    queue = ReceiveQueue()
    cancelled = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("kept")
    cancelled.cancel()  # woken, but cancelled before it ran
    await asyncio.gather(cancelled, return_exceptions=True)
    assert await asyncio.wait_for(queue.get(), 1) == "kept"


async def test_two_getters_each_get_one() -> None:
    queue = ReceiveQueue()
    getters = [asyncio.create_task(queue.get()) for _ in range(2)]
    await asyncio.sleep(0)
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert sorted(await asyncio.wait_for(asyncio.gather(*getters), 1)) == [1, 2]


async def test_the_gate_wakes_every_waiter_and_stays_open_until_cleared() -> None:
    gate = WriteGate()
    assert not gate.is_set()
    waiters = [asyncio.create_task(gate.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True] * 3
    assert await asyncio.wait_for(gate.wait(), 1) is True
    gate.clear()
    late = asyncio.create_task(gate.wait())
    await asyncio.sleep(0.01)
    assert not late.done()
    late.cancel()
    await asyncio.gather(late, return_exceptions=True)
    gate.set()  # no waiter left behind to trip over
    assert gate.is_set()
