"""Delivery of one batch: rate limit, retries with exponential backoff and jitter, bisection of rejects."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from orchestration.activation.config import RetryConfig
from orchestration.activation.destinations import (
    Batch,
    BatchRejected,
    BatchResult,
    Destination,
    Operation,
    Row,
    TransientError,
)

MAX_RETRY_AFTER_SECONDS = 900.0
T = TypeVar("T")


class DestinationUnavailable(Exception):
    """The destination kept failing (throttling, server errors, timeouts) past the retry budget."""


class RateLimiter:
    """At most `per_second` requests per second (None: unlimited)."""

    def __init__(self, per_second: float | None, sleep: Callable[[float], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.sleep = sleep
        self.clock = clock
        self.next_at = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        now = self.clock()
        if now < self.next_at:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


def backoff_seconds(attempt: int, retry: RetryConfig, rng: random.Random) -> float:
    """Exponential backoff with jitter: 50-100% of initial * 2^(attempt-1), capped."""
    ceiling = min(retry.max_backoff_seconds, retry.initial_backoff_seconds * 2 ** (attempt - 1))
    return ceiling * rng.uniform(0.5, 1.0)


@dataclass
class Deliverer:
    destination: Destination
    sync: str
    retry: RetryConfig
    limiter: RateLimiter
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    requests: int = 0
    retries: int = 0
    idempotency: Callable[[Operation, list[Row]], str] = lambda op, rows: ""

    def deliver(self, operation: Operation, rows: list[Row]) -> BatchResult:
        """Send rows; a batch refused as a whole is split in halves until the bad rows stand alone."""
        batch = Batch(self.sync, operation, rows, self.idempotency(operation, rows))
        try:
            return self._send_with_retries(batch)
        except BatchRejected as exc:
            if len(rows) == 1:
                return BatchResult(rejected={rows[0].key: str(exc) or "rejected"})
            middle = len(rows) // 2
            left = self.deliver(operation, rows[:middle])
            right = self.deliver(operation, rows[middle:])
            return BatchResult(rejected={**left.rejected, **right.rejected},
                               warnings={**left.warnings, **right.warnings})

    def _send_with_retries(self, batch: Batch) -> BatchResult:
        what = f"a batch of {len(batch.rows)} rows ({batch.operation})"
        return self.with_retries(lambda: self.destination.write(batch), what)

    def with_retries(self, call: Callable[[], T], what: str) -> T:
        """Call, retrying TransientError with backoff (or Retry-After) up to max_attempts."""
        last: TransientError | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            self.limiter.wait()
            self.requests += 1
            try:
                return call()
            except TransientError as exc:
                last = exc
                if attempt == self.retry.max_attempts:
                    break
                self.retries += 1
                if exc.retry_after is not None:
                    delay = min(max(exc.retry_after, 0.0), MAX_RETRY_AFTER_SECONDS)
                else:
                    delay = backoff_seconds(attempt, self.retry, self.rng)
                self.sleep(delay)
        raise DestinationUnavailable(
            f"destination still failing after {self.retry.max_attempts} attempts for {what}; "
            f"last error: {last}"
        )
