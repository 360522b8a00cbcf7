"""The embedded rate-limit store: fixed windows that expire lazily, with no timer thread."""

from __future__ import annotations

import threading

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from infomediary.web import limit_store
from infomediary.web.limit_store import ProcessMemoryStorage, storage_uri


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(ProcessMemoryStorage, "clock", staticmethod(clock))
    return clock


def test_memory_uri_names_this_store_and_redis_is_unchanged() -> None:
    assert storage_uri("memory://") == "infomediary-memory://"
    assert storage_uri("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert isinstance(storage_from_string(storage_uri("memory://")), ProcessMemoryStorage)


def test_a_window_counts_to_its_limit_and_starts_again_after_its_end(clock) -> None:
    limiter = FixedWindowRateLimiter(ProcessMemoryStorage())
    limit = parse("3/minute")
    assert [limiter.hit(limit, "k") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(limit, "other")  # keys count apart
    reset_at, remaining = limiter.get_window_stats(limit, "k")
    assert remaining == 0
    assert reset_at == pytest.approx(clock.now + 60, abs=1)
    clock.now += 59
    assert not limiter.hit(limit, "k")
    clock.now += 1
    assert limiter.hit(limit, "k")
    assert limiter.get_window_stats(limit, "k")[1] == 2


def test_expired_keys_are_dropped_by_a_later_call_and_no_thread_is_started(clock) -> None:
    store = ProcessMemoryStorage()
    threads = threading.active_count()
    for n in range(100):
        store.incr(f"address:{n}", 1)
    assert threading.active_count() == threads
    assert len(store._windows) == 100
    clock.now += limit_store.SWEEP_SECONDS + 1
    assert store.incr("fresh", 60) == 1
    assert list(store._windows) == ["fresh"]


def test_clear_and_reset(clock) -> None:
    store = ProcessMemoryStorage()
    store.incr("a", 60, 2)
    store.incr("b", 60)
    store.clear("a")
    assert store.get("a") == 0
    assert store.get("b") == 1
    assert store.reset() == 1
    assert store.get("b") == 0
    assert store.check()
