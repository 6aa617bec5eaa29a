"""The timing helper of the cost chapters: what it calls, what it returns, what it refuses.

The clock is a fake: ``backprop.timing``'s ``time.perf_counter`` reads a counter that
each call of the timed function advances by a duration chosen in advance, so the
result is known exactly and a wrong statistic (the mean, the minimum, a timed warm-up
call) fails.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from backprop import timing
from backprop.timing import median_time


def fake_clock(monkeypatch, durations):
    """Make each call of the returned function take the next of ``durations`` seconds."""
    now, steps = [0.0], iter(durations)
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: now[0]))

    def f(*args):
        now[0] += next(steps)

    return f


def test_median_time_calls_warmup_plus_repeats_times():
    calls = []
    seconds = median_time(calls.append, "x", repeats=4, warmup=2)
    assert calls == ["x"] * 6
    assert seconds >= 0.0


@pytest.mark.parametrize(
    ("durations", "repeats", "warmup", "median"),
    [
        ([100.0, 3.0, 1.0, 7.0, 2.0, 5.0], 5, 1, 3.0),  # mean 3.6, min 1; warm-up 100
        ([50.0, 60.0, 4.0, 1.0, 9.0, 2.0], 4, 2, 3.0),  # even count: (2 + 4) / 2
        ([8.0], 1, 0, 8.0),
    ],
)
def test_median_time_is_the_median_of_the_timed_calls(
    monkeypatch, durations, repeats, warmup, median
):
    f = fake_clock(monkeypatch, durations)
    assert median_time(f, repeats=repeats, warmup=warmup) == median


@pytest.mark.parametrize("bad", [{"repeats": 0}, {"repeats": 1.5}, {"warmup": -1}])
def test_median_time_refuses_bad_counts(bad):
    with pytest.raises(ValueError):
        median_time(lambda: None, **bad)
