"""The autoscaler's policy on made-up readings: each reason to grow, hold or shrink, the
bounds, the hysteresis, and two small "plants" (a CPU-bound and a memory-bound crawl)
that it must settle on without flapping or going over."""

from __future__ import annotations

import pytest

from crawler.policy.autoscale import (
    COOLDOWN_TICKS,
    CPU_TARGET,
    LAG_OVERLOAD_S,
    LAG_TARGET_S,
    MEMORY_HIGH,
    MEMORY_TARGET,
    UP_TICKS,
    Autoscaler,
    Load,
)


def healthy(c: int, **changes) -> Load:
    """A tick where every slot is busy and nothing is strained."""
    return Load(**{"busy": float(c), "cpu": 0.05, "loop_lag_s": 0.001, **changes})


def run(scaler: Autoscaler, ticks: int, load=healthy) -> list[int]:
    return [scaler.step(load(scaler.concurrency)).concurrency for _ in range(ticks)]


def test_it_starts_at_the_minimum_and_doubles_while_healthy_up_to_the_maximum_never_past_it():
    scaler = Autoscaler(1, 16)
    assert scaler.concurrency == 1
    assert run(scaler, 8) == [2, 4, 8, 16, 16, 16, 16, 16]
    step = scaler.step(healthy(16))
    assert (step.concurrency, step.reason, step.held_by) == (16, None, "max")
    assert run(Autoscaler(3, 10), 4) == [6, 10, 10, 10]


def test_bounds_are_checked():
    with pytest.raises(ValueError):
        Autoscaler(5, 4)
    with pytest.raises(ValueError):
        Autoscaler(0, 4)


@pytest.mark.parametrize(
    ("changes", "held_by"),
    [
        ({"cpu": CPU_TARGET}, "cpu"),
        ({"cpu": None}, "cpu"),  # not known yet: the first tick
        ({"loop_lag_s": LAG_TARGET_S}, "loop_lag"),
        ({"pace_waiting": 2.0}, "pace"),  # half of the 4 slots wait for their host's turn
        ({"busy": 3.0, "idle": 1.0}, "idle"),  # one slot of 4 has nothing to do
        ({"memory": 0.5, "memory_fresh": False}, "memory"),  # no reading since the last change
        ({"memory": MEMORY_TARGET - 0.01}, "memory"),  # one more slot would go past the target
    ],
)
def test_each_signal_holds_growth_and_says_so(changes, held_by):
    scaler = Autoscaler(4, 16)
    step = scaler.step(healthy(4, **changes))
    assert (step.concurrency, step.reason, step.held_by) == (4, None, held_by)


def test_a_429_halves_it_at_once_and_is_not_repeated_during_the_cooldown():
    scaler = Autoscaler(1, 16, concurrency=16)
    step = scaler.step(healthy(16, outcomes=40, slow_downs=1))
    assert (step.concurrency, step.reason) == (8, "status_429")
    # The pages already sent answer 429 too: one decrease per cooldown window, no growth.
    for _ in range(COOLDOWN_TICKS):
        step = scaler.step(healthy(8, slow_downs=3))
        assert (step.concurrency, step.reason, step.held_by) == (8, None, "cooldown")
    assert scaler.step(healthy(8, slow_downs=2)).concurrency == 4


def test_loop_lag_overload_scales_down_and_lag_between_the_thresholds_only_holds():
    scaler = Autoscaler(1, 16, concurrency=10)
    between = (LAG_TARGET_S + LAG_OVERLOAD_S) / 2
    assert scaler.step(healthy(10, loop_lag_s=between)).held_by == "loop_lag"
    assert scaler.concurrency == 10
    step = scaler.step(healthy(10, loop_lag_s=LAG_OVERLOAD_S))
    assert (step.concurrency, step.reason) == (7, "loop_lag")


def test_cpu_at_the_target_holds_and_never_scales_down():
    scaler = Autoscaler(1, 16, concurrency=6)
    for _ in range(20):
        step = scaler.step(healthy(6, cpu=0.99))
        assert (step.concurrency, step.held_by) == (6, "cpu")


def test_a_step_stops_where_the_cpu_is_expected_to_reach_its_target():
    """Doubling from 8 at 87% CPU would overshoot: the step stops at 10 (each slot
    counted at a quarter of the mean per slot: 8 + (0.95 - 0.87) / 0.0272, rounded
    down); from 8 at 70% the doubling fits."""
    scaler = Autoscaler(1, 32, concurrency=8)
    assert scaler.step(healthy(8, cpu=0.87)).concurrency == 10
    scaler = Autoscaler(1, 32, concurrency=8)
    assert scaler.step(healthy(8, cpu=0.70)).concurrency == 16
    scaler = Autoscaler(1, 32, concurrency=8)
    assert scaler.step(healthy(8, cpu=CPU_TARGET - 0.01)).concurrency == 9  # just under: one more slot


def test_after_a_decrease_it_grows_additively_after_healthy_ticks_in_a_row():
    scaler = Autoscaler(1, 16, concurrency=16)
    scaler.step(healthy(16, slow_downs=1))  # 8, slow start over
    assert not scaler.slow_start
    steps = run(scaler, COOLDOWN_TICKS + 2 * UP_TICKS)
    assert steps == [8] * COOLDOWN_TICKS + [8, 10, 10, 12]


def test_memory_over_the_high_mark_scales_down_to_the_target_only_on_a_fresh_reading():
    scaler = Autoscaler(1, 16, concurrency=10)
    # 0.95 of the budget at 10 slots: each slot is taken to cost at least 0.0475 (half
    # the mean), so 0.2 over the target is 5 slots.
    step = scaler.step(healthy(10, memory=0.95))
    assert (step.concurrency, step.reason) == (5, "memory")
    # The same reading again (taken before the tabs closed): no second decrease.
    step = scaler.step(healthy(5, memory=0.95, memory_fresh=False))
    assert (step.concurrency, step.reason, step.held_by) == (5, None, "cooldown")


def test_memory_over_the_budget_at_least_halves_and_between_target_and_high_it_only_holds():
    scaler = Autoscaler(1, 16, concurrency=12)
    assert scaler.step(healthy(12, memory=1.02)).concurrency == 5  # 0.27 over the target at 0.0425 a slot
    scaler = Autoscaler(1, 16, concurrency=12)
    scaler.step(healthy(12, memory=0.5, cpu=0.99))  # a reading at 12: the slope is tiny
    scaler.concurrency = 14
    assert scaler.step(healthy(14, memory=1.01)).concurrency == 7  # over the budget: at least halved
    scaler = Autoscaler(1, 16, concurrency=6)
    middle = (MEMORY_TARGET + MEMORY_HIGH) / 2
    for _ in range(10):
        step = scaler.step(healthy(6, memory=middle))
        assert (step.concurrency, step.held_by) == (6, "memory")


def test_memory_growth_follows_the_measured_slope_per_slot():
    """Readings at 2 and 4 slots (0.30 then 0.50: 0.1 a slot, more than half the mean
    per slot, 0.0625) let it grow to where the projection meets the target:
    4 + (0.75 - 0.50) / 0.1 = 6, not the doubling's 8."""
    scaler = Autoscaler(2, 16)
    assert scaler.step(healthy(2, memory=0.55)).concurrency == 3  # 2 + (0.75 - 0.55) / 0.1375, rounded down
    scaler = Autoscaler(2, 16, concurrency=2)
    scaler.step(healthy(2, memory=0.30, cpu=0.99))  # held by CPU: a reading at 2 recorded
    scaler.concurrency = 4
    assert scaler.memory_per_slot(0.50) == pytest.approx(0.1)
    assert scaler.step(healthy(4, memory=0.50)).concurrency == 6


def test_it_never_goes_below_the_minimum():
    scaler = Autoscaler(3, 16, concurrency=4)
    assert scaler.step(healthy(4, slow_downs=5)).concurrency == 3
    for _ in range(COOLDOWN_TICKS + 1):
        scaler.step(healthy(3, slow_downs=5, memory=1.5))
    assert scaler.concurrency == 3


def test_an_outside_cap_brings_it_down_and_counts_as_a_decrease():
    scaler = Autoscaler(1, 16, concurrency=12)
    assert scaler.limit(16, "memory") is None
    step = scaler.limit(6, "memory")
    assert (step.concurrency, step.reason) == (6, "memory")
    assert scaler.step(healthy(6)).held_by == "cooldown"


def test_a_cpu_bound_crawl_settles_near_the_target_without_flapping():
    """A plant where each slot costs 20% of the machine: it settles where the cores are
    full (5 slots, or one past: 4 at 80% projects to 6) within a few ticks and never
    changes again."""
    scaler = Autoscaler(1, 16)
    trace = run(scaler, 40, lambda c: healthy(c, cpu=min(1.0, 0.2 * c)))
    settled = trace[-1]
    assert settled in (5, 6)
    assert trace.index(settled) < 6
    assert set(trace[trace.index(settled) :]) == {settled}


def test_a_memory_bound_crawl_stays_inside_the_budget():
    """A plant where the browser takes 35% of the budget and each tab 6% more, every
    reading fresh: it never passes the high mark, so never the budget, and settles
    with the projection under the target."""
    scaler = Autoscaler(1, 16)
    memory = []
    for _ in range(40):
        share = 0.35 + 0.06 * scaler.concurrency
        memory.append(share)
        scaler.step(healthy(scaler.concurrency, memory=share))
    assert max(memory) < MEMORY_HIGH
    assert scaler.concurrency >= 5  # 0.35 + 0.06 * 6 = 0.71: close to the 0.75 target
