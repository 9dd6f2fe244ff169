"""Deadline: a tool's timeout, as asyncio.timeout, that can be paused and restarted.

No wall clock: a deadline of 0 s expires at the loop's next turn, one of 3 600 s never within
a test; what runs in between is ordered by events.
"""

from __future__ import annotations

import asyncio

import pytest

from handoff.deadline import Deadline, in_agent_code

NEVER = 3600.0


async def test_an_expired_deadline_raises_timeout_error_in_place_of_its_cancellation() -> None:
    with pytest.raises(TimeoutError), Deadline(0):
        await asyncio.Event().wait()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the cancellation it made is undone


async def test_async_with_behaves_as_with() -> None:
    with pytest.raises(TimeoutError):
        async with Deadline(0):
            await asyncio.Event().wait()


async def test_a_call_that_ends_in_time_leaves_no_timer_behind() -> None:
    deadline = Deadline(0)
    with deadline:
        pass
    assert deadline._handle is None
    await asyncio.sleep(0)  # the loop's next turn: nothing fires into this task any more
    await asyncio.sleep(0)


async def test_a_cancellation_from_elsewhere_goes_through_untouched() -> None:
    entered = asyncio.Event()

    async def tool() -> None:
        with Deadline(NEVER):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.get_running_loop().create_task(tool())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_outer_cancellation_at_the_deadline_stays_a_cancellation() -> None:
    entered = asyncio.Event()

    async def tool() -> None:
        with Deadline(0):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.get_running_loop().create_task(tool())
    await entered.wait()
    task.cancel()  # the caller hangs up as the deadline expires: not a timeout
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_paused_deadline_does_not_expire_until_restarted() -> None:
    turns = 0
    with pytest.raises(TimeoutError), Deadline(0) as deadline:
        deadline.pause()  # a sub-task talks with the caller
        for _ in range(5):
            await asyncio.sleep(0)  # the loop turns: nothing expires
            turns += 1
        deadline.restart()  # the state's agent is back: a full period (0 s) from now
        await asyncio.Event().wait()
    assert turns == 5


async def test_the_running_deadline_is_current_inside_and_gone_after() -> None:
    assert Deadline.current() is None and not in_agent_code()
    with Deadline(NEVER) as deadline:
        assert Deadline.current() is deadline and in_agent_code()
    assert Deadline.current() is None and not in_agent_code()


async def test_a_deadline_outside_a_task_is_refused() -> None:
    loop = asyncio.get_running_loop()
    refused: asyncio.Future[str] = loop.create_future()

    def callback() -> None:  # a loop callback runs outside any task
        try:
            Deadline(NEVER).__enter__()
        except RuntimeError as exc:
            refused.set_result(str(exc))

    loop.call_soon(callback)
    assert "inside a task" in await refused
