"""The embedded rate-limit store: fixed windows in the process's memory, without a timer thread.

``limits``' own ``memory://`` store starts a ``threading.Timer`` every 10 ms while any key
is live, to expire keys and moving-window events: under load that is a thread started for
every few requests, each scanning every key. The app counts in fixed windows only, and a
fixed window can expire lazily (a key read past its end counts from zero, as ``memory://``
does), so this store keeps a counter and an end per key under one lock and drops expired
keys in a sweep at most once every :data:`SWEEP_SECONDS`, inside the call that finds the
sweep due. ``memory://`` in ``INFOMEDIARY_RATELIMIT_STORAGE_URI`` means this store; Redis is
unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from limits.storage import Storage

#: The scheme the app gives ``memory://`` as.
SCHEME = "infomediary-memory"
#: How often expired keys are dropped (keys of addresses seen once stay at most this long).
SWEEP_SECONDS = 10.0


class ProcessMemoryStorage(Storage):
    """Fixed-window counters of one process (each gunicorn worker counts on its own, as with
    ``memory://``; Redis shares them)."""

    STORAGE_SCHEME = [SCHEME]
    #: The time in seconds since the epoch (a test sets its own clock).
    clock: Callable[[], float] = staticmethod(time.time)

    def __init__(
        self, uri: str | None = None, wrap_exceptions: bool = False, **options: float | str | bool
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._lock = threading.Lock()
        self._windows: dict[str, list[float]] = {}  # key -> [count, end]
        self._next_sweep = self.clock() + SWEEP_SECONDS

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self.clock()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            window = self._windows.get(key)
            if window is None or window[1] <= now:
                window = self._windows[key] = [0, now + expiry]
            window[0] += amount
            return int(window[0])

    def get(self, key: str) -> int:
        window = self._windows.get(key)
        return 0 if window is None or window[1] <= self.clock() else int(window[0])

    def get_expiry(self, key: str) -> float:
        window = self._windows.get(key)
        return self.clock() if window is None else window[1]

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            count = len(self._windows)
            self._windows.clear()
        return count

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_SECONDS
        for key in [k for k, (_count, end) in self._windows.items() if end <= now]:
            del self._windows[key]


def storage_uri(uri: str) -> str:
    """The store the limiter opens for ``uri``: this one for ``memory://``."""
    return SCHEME + uri[len("memory") :] if uri.startswith("memory://") else uri
