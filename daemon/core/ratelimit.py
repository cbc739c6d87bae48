"""A token bucket, pure: the caller passes the time in."""

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    tokens: float
    stamp: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> "TokenBucket":
        return cls(rate=rate, burst=burst, tokens=burst, stamp=now)

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def reserve(self, now: float, max_wait: float) -> tuple[bool, float]:
        """Take one token, on credit if it is earned within `max_wait` seconds.

        Returns (True, wait): the token is taken; use it after `wait` seconds (0 if it was
        there). Returns (False, wait): nothing is taken, because the token would come later
        than `max_wait`; a reservation fits again after `wait` seconds. Several callers
        sharing one bucket are thus paced to `rate` together, each waiting its turn.
        """
        self._refill(now)
        wait = (1.0 - self.tokens) / self.rate
        if wait <= max_wait:
            self.tokens -= 1.0
            return True, max(0.0, wait)
        return False, wait - max_wait

    def charge(self, now: float, amount: float) -> None:
        """Take `amount` after the fact (a cost known only once paid), into debt if need be."""
        self._refill(now)
        self.tokens -= amount

    def debt(self, now: float) -> float:
        """Seconds until the bucket is out of debt; 0 when it is not in debt."""
        self._refill(now)
        return max(0.0, -self.tokens) / self.rate

    def full_at(self) -> float:
        """When the bucket is full again if nobody takes from it (an idle one can be forgotten)."""
        return self.stamp + max(0.0, self.burst - self.tokens) / self.rate
