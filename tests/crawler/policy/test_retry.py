"""The retry policy, without a browser: pure decisions from an injected generator."""

from __future__ import annotations

import random

import pytest

from crawler.policy.retry import RetryDecision, RetryPolicy

SLOW_DOWN = (429, 503)


def policy(seed: int = 0, *, max_attempts: int = 3, backoff_s: tuple[float, float] = (1.0, 60.0)) -> RetryPolicy:
    return RetryPolicy(max_attempts, backoff_s, SLOW_DOWN, random.Random(seed))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backoff_is_a_full_jitter_draw_under_the_doubling_cap(seed):
    """Attempt n waits uniform(0, min(cap, base * 2^(n-1))): the same draws as the
    generator's own, one per failure."""
    expected = random.Random(seed)
    p = policy(seed, max_attempts=99, backoff_s=(0.5, 3.0))
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (5, 3.0), (9, 3.0)]:
        decision = p.decide(attempt, retryable=True)
        assert decision.delay_s == expected.uniform(0, ceiling)
        assert 0 <= decision.delay_s <= ceiling


def test_draws_spread_over_the_whole_window():
    """Full jitter: 1000 first-attempt delays with base 10 s fill [0, 10] evenly (each
    second holds 100 of them, give or take 40), not clustered at the ceiling."""
    p = policy(4, backoff_s=(10.0, 60.0))
    delays = [p.draw_backoff_s(1) for _ in range(1000)]
    assert 0 <= min(delays) < 0.1 and 9.9 < max(delays) <= 10.0
    per_second = [sum(1 for d in delays if s <= d < s + 1) for s in range(10)]
    assert all(60 <= n <= 140 for n in per_second), per_second


def test_a_retryable_failure_is_retried_while_attempts_are_left_then_final():
    """With max_attempts 3: attempts 1 and 2 are retried, attempt 3 is final."""
    p = policy(max_attempts=3)
    assert [p.decide(n, retryable=True).retry for n in (1, 2, 3, 4)] == [True, True, False, False]


def test_a_final_failure_is_never_retried_but_still_draws_once():
    """A failure that is not retryable (a 404) is final at its first attempt, and draws
    its backoff all the same: the generator's sequence does not depend on outcomes."""
    p, twin = policy(7), policy(7)
    final = p.decide(1, retryable=False, status=404)
    assert final == RetryDecision(retry=False, delay_s=twin.draw_backoff_s(1), host_pause_s=None)
    assert p.decide(1, retryable=True).delay_s == twin.draw_backoff_s(1)


def test_retry_after_is_a_floor_on_the_delay():
    """Retry-After longer than the backoff replaces it; shorter, the backoff stands."""
    p = policy(1, backoff_s=(1.0, 60.0))
    assert p.decide(1, retryable=True, status=503, retry_after_s=30.0).delay_s == 30.0
    twin = policy(1, backoff_s=(1.0, 60.0))
    draw = twin.draw_backoff_s(1)
    assert policy(1).decide(1, retryable=True, status=503, retry_after_s=0.0).delay_s == draw


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_pause_the_host_for_retry_after_or_the_backoff(status):
    """The host pause lasts the Retry-After when the response gave one, this URL's
    backoff draw otherwise, and applies whether the URL is retried or failed for good."""
    with_header = policy(2).decide(1, retryable=True, status=status, retry_after_s=7.0)
    assert with_header.host_pause_s == 7.0 and with_header.retry
    draw = policy(2).draw_backoff_s(3)
    without = policy(2).decide(3, retryable=True, status=status)
    assert without == RetryDecision(retry=False, delay_s=draw, host_pause_s=draw)


@pytest.mark.parametrize("status", [None, 404, 500, 502, 504])
def test_other_failures_do_not_pause_the_host(status):
    assert policy().decide(1, retryable=True, status=status, retry_after_s=None).host_pause_s is None


def test_the_decision_is_frozen():
    decision = policy().decide(1, retryable=True)
    with pytest.raises(AttributeError):
        decision.retry = False  # type: ignore[misc]
