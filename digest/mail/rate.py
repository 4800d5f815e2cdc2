"""How fast the whole installation may hand email to its provider (ESP).

Why: every ESP caps the sending rate of an account (SES: so many per second, others per
minute), and over it they answer 429 / "slow down" and the message fails. Several Celery
workers send at once, each unaware of the others, so a per-worker limit cannot keep the
account under its cap. Instead all of them draw from one token bucket kept in Redis: a
throttled provider then makes a run slower, never makes messages fail.

The bucket is GCRA (the "generic cell rate algorithm", a token bucket in one number): the
key holds the theoretical arrival time (TAT) of the next send, in microseconds of Redis
server time. One Lua script reads it, decides and writes it back atomically, on the
clock of the Redis server (`TIME`), so workers on machines with skewed clocks agree. A
request that may not go yet takes nothing and is told how long to wait; the worker sleeps
that long and asks again, so a `penalise()` meanwhile holds back the sleepers too.

Without Redis (the embedded mode) the same algorithm runs in the process; if Redis fails
while sending, the limiter falls back to it (logging a warning) rather than failing the
send: each worker then keeps the rate on its own until Redis is back.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from typing import Any

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

# Seconds a Redis call may take: a send waits for the limiter, so a hung Redis must not
# hang the send for long.
REDIS_TIMEOUT_S = 2.0
# After Redis failed, the in-process bucket serves this long before Redis is tried again,
# so an unreachable Redis costs one timeout per half minute, not one per send.
REDIS_RETRY_AFTER_S = 30.0

# KEYS[1]: the bucket. ARGV: interval (µs per send), tolerance (µs: burst × interval),
# n (sends wanted; 0 with a penalty), penalty (µs nobody may send from now; 0 = none).
# Returns the µs to wait before asking again, 0 when the n sends were granted.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local penalty = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
if penalty > 0 then
  tat = math.max(tat, now + penalty + tolerance - interval)
else
  local new_tat = tat + n * interval
  local allow_at = new_tat - tolerance
  if allow_at > now then return math.ceil(allow_at - now) end
  tat = new_tat
end
local ttl_ms = math.ceil((tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', ttl_ms)
return 0
"""


class SendRateLimiter:
    """Hands out permission to send, `rate` messages a second with bursts up to `burst`.

    `acquire(n)` blocks until n sends are allowed and returns the seconds it slept.
    `penalise(seconds)` is for the provider's 429: nobody sends for that long.
    """

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate={rate} and burst={burst} must be positive")
        self.rate = rate
        self.burst = burst

    def acquire(self, n: int = 1) -> float:
        """Block until n sends are allowed; the seconds slept. A block larger than the
        bucket is granted in bucket-sized parts."""
        if n < 0:
            raise ValueError(f"n={n} must not be negative")
        waited = 0.0
        while n > 0:
            part = min(n, self.burst)
            while (wait := self._take(part)) > 0:
                time.sleep(wait)
                waited += wait
            n -= part
        return waited

    def penalise(self, seconds: float) -> None:
        """Nobody sends for `seconds` from now (then the bucket refills at the rate).

        Penalties overlap rather than add up: five workers told "retry after 10 s" at
        once hold sending back 10 seconds, not 50."""
        if seconds > 0:
            self._push(seconds)

    def _take(self, n: int) -> float:
        """Take n ≤ burst sends: 0.0 if granted, else the seconds to wait before asking again."""
        raise NotImplementedError

    def _push(self, seconds: float) -> None:
        raise NotImplementedError


class UnlimitedSendRateLimiter(SendRateLimiter):
    """PAPERBOY_SEND_RATE=0: every send may go at once."""

    def __init__(self) -> None:
        self.rate = math.inf
        self.burst = 1

    def acquire(self, n: int = 1) -> float:
        return 0.0

    def penalise(self, seconds: float) -> None:
        return None


class LocalSendRateLimiter(SendRateLimiter):
    """The bucket in this process (threads share it), on the monotonic clock."""

    def __init__(self, rate: float, burst: int) -> None:
        super().__init__(rate, burst)
        self._interval = 1.0 / rate
        self._tolerance = burst * self._interval
        self._tat = 0.0
        self._lock = threading.Lock()

    def _take(self, n: int) -> float:
        with self._lock:
            now = time.monotonic()
            new_tat = max(self._tat, now) + n * self._interval
            allow_at = new_tat - self._tolerance
            if allow_at > now:
                return allow_at - now
            self._tat = new_tat
            return 0.0

    def _push(self, seconds: float) -> None:
        with self._lock:
            now = time.monotonic()
            self._tat = max(self._tat, now + seconds + self._tolerance - self._interval)


class RedisSendRateLimiter(SendRateLimiter):
    """The bucket under `key` in Redis, shared by every worker that uses the key."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        client: redis.Redis,
        key: str,
        fallback: LocalSendRateLimiter | None = None,
    ) -> None:
        super().__init__(rate, burst)
        self.key = key
        self._client = client
        self._script = client.register_script(_GCRA_LUA)
        self._interval_us = 1_000_000 / rate
        self._tolerance_us = burst * self._interval_us
        self._fallback = fallback or LocalSendRateLimiter(rate, burst)
        self._redis_down_until = 0.0  # monotonic; while ahead, the fallback serves

    def _call(self, n: int, penalty_us: float) -> Any:
        args: list[str | int] = [
            repr(self._interval_us),
            repr(self._tolerance_us),
            n,
            repr(penalty_us),
        ]
        return self._script(keys=[self.key], args=args)

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: redis.RedisError) -> None:
        logger.warning(
            "Send rate: Redis failed (%s); this worker limits its own sends for %.0f s",
            exc,
            REDIS_RETRY_AFTER_S,
        )
        self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_S

    def _take(self, n: int) -> float:
        if self._redis_usable():
            try:
                return int(self._call(n, 0)) / 1_000_000
            except redis.RedisError as exc:
                self._redis_failed(exc)
        return self._fallback._take(n)

    def _push(self, seconds: float) -> None:
        self._fallback._push(seconds)  # also here, should Redis fail before it is over
        if self._redis_usable():
            try:
                self._call(0, seconds * 1_000_000)
            except redis.RedisError as exc:
                self._redis_failed(exc)


def send_rate_key(prefix: str, provider: str) -> str:
    """The bucket's Redis key: a deployment's (or test run's) prefix, then the provider."""
    key = f"paperboy:send-rate:{provider}"
    return f"{prefix}:{key}" if prefix else key


@functools.cache
def _redis_client(url: str) -> redis.Redis:
    """This process's connection to `url`: one retry at once (a connection dropped by a
    Redis restart), not redis-py's default backoff, as a send waits on it."""
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1),
    )


@functools.cache
def _limiter(redis_url: str, key: str, rate: int, burst: int) -> SendRateLimiter:
    """One limiter per process and configuration: the in-process bucket is only a limit if
    every send of the process draws from the same one."""
    if rate <= 0:
        return UnlimitedSendRateLimiter()
    local = LocalSendRateLimiter(rate, burst)
    if not redis_url:
        return local
    return RedisSendRateLimiter(
        rate, burst, client=_redis_client(redis_url), key=key, fallback=local
    )


def send_rate_limiter() -> SendRateLimiter:
    """The limiter for the configured provider: shared through Redis when REDIS_URL is
    set, in this process without it, a no-op when PAPERBOY_SEND_RATE is 0."""
    provider = settings.PAPERBOY_ESP or "smtp"
    key = send_rate_key(settings.PAPERBOY_REDIS_PREFIX, provider)
    return _limiter(
        settings.REDIS_URL, key, settings.PAPERBOY_SEND_RATE, settings.PAPERBOY_SEND_BURST
    )
