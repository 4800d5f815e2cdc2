"""The send rate limit: one budget for every worker, kept in Redis (digest/mail/rate.py).

Timings are real (the limiter sleeps): small rates over about a second, generous bounds.
Every test's bucket lives under a prefix of its own, deleted when the test ends.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from digest.mail import rate as send_rate
from digest.mail.rate import (
    LocalSendRateLimiter,
    RedisSendRateLimiter,
    SendRateLimiter,
    UnlimitedSendRateLimiter,
    send_rate_key,
    send_rate_limiter,
)
from tests.own_cache import KEY_PREFIX

REDIS_URL = os.environ.get("REDIS_URL", "")
NOWHERE = "redis://127.0.0.1:1/0"  # no Redis listens there: connections are refused


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("REDIS_URL is unset: the shared bucket needs a Redis")
    return REDIS_URL


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test (or run) uses."""
    return f"{KEY_PREFIX}:send-rate-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    """A connection to the test Redis; at the end, the test's keys (and only them) go."""
    conn = redis.Redis.from_url(redis_url, socket_timeout=2)
    yield conn
    for key in conn.scan_iter(match=f"{prefix}:*"):
        conn.delete(key)
    conn.close()


@pytest.fixture
def worker(redis_url: str, prefix: str) -> Iterator[Callable[..., RedisSendRateLimiter]]:
    """Makes limiters on the test's bucket, each with a connection of its own, as a worker."""
    conns: list[redis.Redis] = []

    def make(rate: float, burst: int) -> RedisSendRateLimiter:
        conns.append(redis.Redis.from_url(redis_url, socket_timeout=2))
        return RedisSendRateLimiter(
            rate, burst, client=conns[-1], key=send_rate_key(prefix, "smtp")
        )

    yield make
    for conn in conns:
        conn.close()


def timed(action: Callable[[], Any]) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def acquire_one_by_one(limiter: SendRateLimiter, count: int) -> None:
    for _ in range(count):
        limiter.acquire()


# --- The shared bucket ------------------------------------------------------------------


def test_the_rate_is_kept(worker: Callable[..., RedisSendRateLimiter], client: redis.Redis) -> None:
    """A full bucket lets 5 go at once; the next 20 go at 20 a second: about a second."""
    limiter = worker(rate=20, burst=5)
    assert timed(lambda: acquire_one_by_one(limiter, 5)) < 0.2
    assert 0.85 < timed(lambda: acquire_one_by_one(limiter, 20)) < 1.6


def test_workers_share_one_budget(
    worker: Callable[..., RedisSendRateLimiter], client: redis.Redis
) -> None:
    """Two workers of 12 sends each: 24 at 20/s (burst 4) take a second, not the 0.4 s each
    alone would."""
    limiters = [worker(rate=20, burst=4), worker(rate=20, burst=4)]
    start = threading.Barrier(2)

    def run(limiter: SendRateLimiter) -> None:
        start.wait()
        acquire_one_by_one(limiter, 12)

    threads = [threading.Thread(target=run, args=(limiter,)) for limiter in limiters]

    def both() -> None:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert 0.85 < timed(both) < 1.6


def test_blocks_of_sends(worker: Callable[..., RedisSendRateLimiter], client: redis.Redis) -> None:
    """A batch takes its n tokens at once; one larger than the bucket goes in parts."""
    limiter = worker(rate=40, burst=10)
    assert limiter.acquire(10) == 0.0
    waits: list[float] = []
    elapsed = timed(lambda: waits.append(limiter.acquire(25)))
    assert 0.5 < waits[0] <= elapsed < 1.1  # 25 sends at 40/s
    assert limiter.acquire(0) == 0.0


def test_a_penalty_holds_back_every_worker(
    worker: Callable[..., RedisSendRateLimiter], client: redis.Redis
) -> None:
    """One worker is told to slow down; the other, with a full bucket, still waits."""
    told, other = worker(rate=100, burst=50), worker(rate=100, burst=50)
    told.penalise(0.5)
    assert 0.4 < timed(other.acquire) < 0.9
    # Then sending resumes at the rate, from an empty bucket: 10 more take 0.1 s.
    assert 0.05 < timed(lambda: other.acquire(10)) < 0.4


def test_penalties_overlap_rather_than_add_up(
    worker: Callable[..., RedisSendRateLimiter], client: redis.Redis
) -> None:
    limiters = [worker(rate=100, burst=50) for _ in range(3)]
    for limiter in limiters:
        limiter.penalise(0.4)
    assert 0.3 < timed(limiters[0].acquire) < 0.7


def test_the_bucket_forgets_itself_when_idle(
    worker: Callable[..., RedisSendRateLimiter], client: redis.Redis
) -> None:
    """The key expires once the bucket would be full again: nothing piles up in Redis."""
    limiter = worker(rate=10, burst=5)
    limiter.acquire(3)
    assert 1000 < client.pttl(limiter.key) <= 2000  # refilled in 0.3 s, plus a second
    assert client.get(limiter.key) is not None


# --- The factory: per provider, unlimited, in-process -----------------------------------


def test_the_configured_limiter_is_shared_through_redis(
    settings: Any, redis_url: str, prefix: str, client: redis.Redis
) -> None:
    settings.REDIS_URL = redis_url
    settings.PAPERBOY_REDIS_PREFIX = prefix
    settings.PAPERBOY_ESP = "postmark"
    settings.PAPERBOY_SEND_RATE, settings.PAPERBOY_SEND_BURST = 10, 5

    limiter = send_rate_limiter()

    assert isinstance(limiter, RedisSendRateLimiter)
    assert limiter.key == f"{prefix}:paperboy:send-rate:postmark"
    assert send_rate_limiter() is limiter  # one per process
    limiter.acquire()
    assert client.exists(f"{prefix}:paperboy:send-rate:postmark")
    settings.PAPERBOY_ESP = ""  # plain SMTP
    smtp = send_rate_limiter()
    assert isinstance(smtp, RedisSendRateLimiter)
    assert smtp.key == f"{prefix}:paperboy:send-rate:smtp"


def test_rate_zero_is_no_limit(settings: Any, prefix: str) -> None:
    settings.PAPERBOY_REDIS_PREFIX = prefix
    settings.PAPERBOY_SEND_RATE = 0

    limiter = send_rate_limiter()

    assert isinstance(limiter, UnlimitedSendRateLimiter)
    assert timed(lambda: [limiter.acquire(1000) for _ in range(100)]) < 0.1
    assert limiter.acquire(1000) == 0.0
    limiter.penalise(60)
    assert limiter.acquire() == 0.0


def test_without_redis_the_limit_is_kept_in_the_process(settings: Any, prefix: str) -> None:
    """The embedded mode: no Redis, the threads of the process share one bucket."""
    settings.REDIS_URL = ""
    settings.PAPERBOY_REDIS_PREFIX = prefix
    settings.PAPERBOY_SEND_RATE, settings.PAPERBOY_SEND_BURST = 20, 2

    limiter = send_rate_limiter()
    assert isinstance(limiter, LocalSendRateLimiter)
    assert send_rate_limiter() is limiter

    threads = [threading.Thread(target=acquire_one_by_one, args=(limiter, 6)) for _ in range(2)]

    def both() -> None:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert 0.4 < timed(both) < 0.9  # 12 sends, 2 at once then 10 at 20/s
    limiter.penalise(0.3)
    assert 0.2 < timed(limiter.acquire) < 0.6


def test_a_failing_redis_falls_back_to_the_process(caplog: pytest.LogCaptureFixture) -> None:
    """Redis gone: sends are not refused, the worker keeps the rate itself, and says so once."""
    nowhere = send_rate._redis_client(NOWHERE)
    limiter = RedisSendRateLimiter(20, 2, client=nowhere, key="unused")

    with caplog.at_level(logging.WARNING, logger="digest.mail.rate"):
        assert 0.3 < timed(lambda: acquire_one_by_one(limiter, 10)) < 0.8  # 8 at 20/s
        limiter.penalise(0.2)
        assert 0.1 < timed(limiter.acquire) < 0.5

    warnings = [r for r in caplog.records if r.name == "digest.mail.rate"]
    assert len(warnings) == 1
    assert "Redis failed" in warnings[0].getMessage()


def test_redis_is_tried_again_after_a_while(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(send_rate, "REDIS_RETRY_AFTER_S", 0.0)
    nowhere = send_rate._redis_client(NOWHERE)
    limiter = RedisSendRateLimiter(1000, 10, client=nowhere, key="unused")

    with caplog.at_level(logging.WARNING, logger="digest.mail.rate"):
        limiter.acquire()
        limiter.acquire()

    assert len([r for r in caplog.records if r.name == "digest.mail.rate"]) == 2


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        LocalSendRateLimiter(0, 5)
    with pytest.raises(ValueError):
        LocalSendRateLimiter(5, 0)
    with pytest.raises(ValueError):
        LocalSendRateLimiter(5, 5).acquire(-1)
