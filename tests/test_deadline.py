"""Deadline: a tool's timeout, as asyncio.timeout, that can be paused and restarted.

No wall clock: a deadline of 0 s expires at the loop's next turn, one of 3 600 s never within
a test; what runs in between is ordered by events.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from contextvars import ContextVar

import pytest

from handoff.deadline import Deadline, _Keeper, in_agent_code, keeper_of

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
    assert not deadline.armed
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


async def test_a_shorter_deadline_entered_after_a_longer_one_expires_first() -> None:
    async def waits(seconds: float) -> None:
        with Deadline(seconds):
            await asyncio.Event().wait()

    longer = asyncio.create_task(waits(NEVER))
    await asyncio.sleep(0)  # its deadline holds the loop's timer, an hour away
    shorter = asyncio.create_task(waits(0))  # earlier: the timer is re-armed for it
    for _ in range(5):  # a few turns of the loop, not an hour
        await asyncio.sleep(0)
    assert shorter.done() and isinstance(shorter.exception(), TimeoutError)
    assert not longer.done()
    longer.cancel()


async def test_deadlines_left_in_time_do_not_pile_up_in_the_loops_timer() -> None:
    for _ in range(3 * _Keeper.COMPACT_AT):
        with Deadline(NEVER):
            pass
    keeper = keeper_of(asyncio.get_running_loop())
    assert len(keeper.heap) <= _Keeper.COMPACT_AT
    assert not any(deadline.armed for _, _, deadline in keeper.heap)


async def test_a_keeper_with_nothing_left_to_time_arms_no_timer() -> None:
    with Deadline(0):
        pass
    keeper = keeper_of(asyncio.get_running_loop())
    assert keeper.handle is not None  # armed for the deadline, which has left in time
    await asyncio.sleep(0)  # the timer fires, finds only a deadline left in time
    await asyncio.sleep(0)
    assert keeper.handle is None
    assert keeper.heap == []


class _ClockLoop(asyncio.SelectorEventLoop):
    """A loop whose clock moves only when the test moves it."""

    now = 0.0

    def time(self) -> float:
        return self.now


def test_a_deadline_expires_on_its_own_loop_after_another_loop_ran_one() -> None:
    here, other = _ClockLoop(), _ClockLoop()

    async def waits() -> None:
        with Deadline(5):
            await asyncio.Event().wait()

    async def brief() -> None:
        with Deadline(NEVER):  # this thread's keeper is now the other loop's
            pass

    try:
        task = here.create_task(waits())
        here.run_until_complete(asyncio.sleep(0))  # armed on this loop's keeper, at 5
        other.run_until_complete(brief())
        here.now = 6.0  # past the deadline: the timer armed on this loop still fires
        with pytest.raises(TimeoutError):
            here.run_until_complete(task)
    finally:
        here.close()
        other.close()


async def test_the_loops_timer_keeps_nothing_of_the_call_that_armed_it_alive() -> None:
    class Call:
        pass

    current: ContextVar[Call | None] = ContextVar("current_call", default=None)

    async def tool_call() -> weakref.ref[Call]:
        call = Call()
        current.set(call)  # as LiveKit sets its speech and activity for a tool call
        with Deadline(NEVER):  # arms the loop's timer, an hour away, from this context
            pass
        current.set(None)  # the call is over (and the variable's own cache lets go of it)
        return weakref.ref(call)

    ended = await asyncio.create_task(tool_call())
    gc.collect()
    assert ended() is None


async def test_many_deadlines_running_at_once_do_not_make_each_new_one_clear_the_heap() -> None:
    async def waits() -> None:
        with Deadline(NEVER):
            await asyncio.Event().wait()

    running = [asyncio.create_task(waits()) for _ in range(2 * _Keeper.COMPACT_AT)]
    await asyncio.sleep(0)  # all entered: as many live entries, none to clear out
    keeper = keeper_of(asyncio.get_running_loop())
    assert len(keeper.heap) == len(running)
    assert keeper.compact_at >= len(keeper.heap)  # cleared out once at 256, then not again
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    for _ in range(3 * _Keeper.COMPACT_AT):  # now all dead: they go as new ones come
        with Deadline(NEVER):
            pass
    assert len(keeper.heap) <= keeper.compact_at
