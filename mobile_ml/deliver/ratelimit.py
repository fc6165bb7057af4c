"""A token bucket per client address for the telemetry endpoint, in bounded memory.

Each address may send ``burst`` requests at once and ``rate`` per second after that. Buckets live in an LRU map of
at most ``max_clients`` entries: an attacker cycling through addresses evicts the oldest buckets (whose owners then
start again with a full bucket) instead of growing the server's memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.max_clients = rate, burst, max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address → (tokens, last refill)
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Take one token from ``client``'s bucket; False (answer 429) when it is empty."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return allowed

    def retry_after(self) -> int:
        """Seconds until one token is back (for the ``Retry-After`` header)."""
        return max(1, int(1.0 / self.rate + 0.999)) if self.rate > 0 else 60

    def __len__(self) -> int:
        return len(self._buckets)
