"""Rows kept in this process for a few seconds: what nearly every request on a hot path reads and almost
never changes (the channel every customer message and ESP request names, the standard response every
InviteToChat of a strategy sends). One query each, per request, was a sizeable share of those requests.

A change saved in this process empties the kept rows at once (signals, connected in `apps.py`); one saved in
another process is seen within the configured seconds. What a caller gets is a copy, so an attribute a
request sets never reaches the row kept for the next ones; the values inside (JSON, prefetched rows) are
shared and must be treated as read-only, as a campaign already treats the one response it renders for every
recipient of a batch."""

import copy
import threading
import time
from collections.abc import Callable, Hashable

from django.db.models import Model

# Keys that do not exist are kept too (a client probing ids): the number of entries is bounded.
KEPT_ENTRIES_MAX = 10_000


def _copied(value):
    """copy.copy(value); a model instance copied from its own `__getstate__` (its attributes, and its state with
    the related objects it holds), which is what copy.copy does through pickling's `__reduce__` without the model's
    look-up by name and the version check: 17 against 41 µs for a kept channel, two of them a request."""
    if isinstance(value, Model):
        duplicate = type(value).__new__(type(value))
        duplicate.__dict__.update(value.__getstate__())
        return duplicate
    return copy.copy(value)


class KeptRows:
    """`load(key)` (a row or None), kept for `seconds()` (0: not kept, every call loads)."""

    def __init__(self, load: Callable[[Hashable], object | None], *, seconds: Callable[[], float]):
        self._load = load
        self._seconds = seconds
        self._entries: dict[Hashable, tuple[float, object | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable):
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            value = self._load(key)
            seconds = self._seconds()
            if seconds > 0:
                with self._lock:
                    if len(self._entries) >= KEPT_ENTRIES_MAX:
                        self._entries = {}
                    self._entries[key] = (time.monotonic() + seconds, value)
        else:
            value = entry[1]
        return _copied(value)

    def clear(self, *args, **kwargs) -> None:
        """Every entry (also a signal receiver, hence the arguments)."""
        with self._lock:
            self._entries = {}
