"""The SQLite store's calls (``crawler.store.sqlite.calls.Calls``): in order, those made
while a trip is under way together on the next one, each atomic with respect to
cancellation (it ran, or it did not start)."""

from __future__ import annotations

import threading

import pytest
import trio

from crawler.store.sqlite.calls import Calls


async def test_calls_made_during_a_trip_go_together_on_the_next_in_order():
    calls, ran = Calls(), []
    gate = threading.Event()

    def slow(name):
        gate.wait(5)
        ran.append(name)
        return name

    async with trio.open_nursery() as nursery:
        results = {}

        order = []

        async def call(fn, name):
            order.append(name)  # the same step as the call is queued
            results[name] = await calls.run(fn, name)

        nursery.start_soon(call, slow, "first")
        await trio.sleep(0.05)  # the first trip is under way, blocked in the thread
        for i in range(10):
            nursery.start_soon(call, ran.append, i)
        await trio.sleep(0.05)
        gate.set()
    assert ran == order and sorted(ran[1:]) == list(range(10))
    assert calls.trips == 2  # the first call's trip, then the ten together
    assert results["first"] == "first"


async def test_a_call_cancelled_before_its_trip_never_runs_and_one_taken_still_returns():
    calls, ran = Calls(), []
    gate = threading.Event()

    def blocked():
        gate.wait(5)
        ran.append("blocked")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(calls.run, blocked)
        await trio.sleep(0.05)
        with trio.move_on_after(0.05):  # queued behind the trip: cancelled before it starts
            await calls.run(ran.append, "never")
        gate.set()
    assert ran == ["blocked"]
    assert await calls.run(lambda: 42) == 42


async def test_each_calls_failure_reaches_only_its_caller():
    calls = Calls()

    def broken():
        raise ValueError("no")

    async with trio.open_nursery() as nursery:
        outcomes = {}

        async def call(name, fn):
            try:
                outcomes[name] = await calls.run(fn)
            except ValueError as exc:
                outcomes[name] = f"error {exc}"

        nursery.start_soon(call, "a", broken)
        nursery.start_soon(call, "b", lambda: "fine")
    assert outcomes == {"a": "error no", "b": "fine"}


@pytest.mark.parametrize("n", [1, 16])
async def test_a_taken_call_returns_its_value_to_a_cancelled_caller(n):
    """A caller cancelled while its call rides on another's trip gets the value (a claim
    must reach its in-flight table); the Cancelled comes at its next checkpoint.  The
    riders are cancelled once their trip has started on them (no timing guesses: a
    loaded machine failed a version with sleeps)."""
    calls = Calls()
    first_trip, riding, release = threading.Event(), threading.Event(), threading.Event()
    got = []

    def ride():
        riding.set()
        release.wait(5)
        return "value"

    async def rider(cancel_scope_box):
        with trio.CancelScope() as scope:
            cancel_scope_box.append(scope)
            got.append(await calls.run(ride))
            await trio.lowlevel.checkpoint()
            got.append("not cancelled")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(calls.run, lambda: first_trip.wait(5))
        await trio.testing.wait_all_tasks_blocked()
        boxes = [[] for _ in range(n)]
        for box in boxes:
            nursery.start_soon(rider, box)
        await trio.testing.wait_all_tasks_blocked()  # all queued behind the first trip
        first_trip.set()
        await trio.to_thread.run_sync(riding.wait, 5)  # the next trip took them all
        for box in boxes:
            box[0].cancel()
        release.set()
    assert got.count("value") == n and "not cancelled" not in got
