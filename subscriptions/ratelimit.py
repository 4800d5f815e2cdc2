"""Small rate limits on Django's cache (Redis in production, LocMem by default).

A fixed-window counter: each window (say ten minutes) has its own cache key, created
with `cache.add` (set only if absent) and counted with `cache.incr`. Both are atomic on
Redis, so two web processes never lose a count; LocMem is per process, which is enough
for the embedded mode's single process. A fixed window lets a burst straddle two windows
(up to twice the limit in a short time); for sign-up forms that is fine and costs one key
per window instead of a list of timestamps.

Keys are hashed: the things we count (email addresses, IPs) are personal data and do not
belong in cache key names, and a hash keeps keys short and free of characters that some
cache backends refuse.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass

from django.core.cache import cache

KEY_PREFIX = "paperboy:rl"


@dataclass(frozen=True)
class Limit:
    """At most `count` hits per `seconds`, counted separately for every key."""

    name: str
    count: int
    seconds: int


class RateLimited(Exception):
    """Over a limit; `retry_after` is how many seconds until its window ends."""

    def __init__(self, limit: Limit, retry_after: int) -> None:
        super().__init__(f"over the {limit.name} limit ({limit.count} per {limit.seconds} s)")
        self.limit = limit
        self.retry_after = retry_after


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def hit(*, limit: Limit, key: str, now: float | None = None) -> int:
    """Count one hit against `limit` for `key`, and return the count in this window."""
    now = time.time() if now is None else now
    window = int(now // limit.seconds)
    cache_key = f"{KEY_PREFIX}:{limit.name}:{window}:{_digest(key)}"
    # The key outlives its window by a little, never by a whole window: an expired key
    # must not be found again by a later window (it could not be: the window is in the key).
    ttl = math.ceil((window + 1) * limit.seconds - now) + 1
    cache.add(cache_key, 0, timeout=ttl)
    try:
        return int(cache.incr(cache_key))
    except ValueError:
        # Evicted (or expired) between add and incr: this hit starts the window again.
        cache.add(cache_key, 1, timeout=ttl)
        return 1


def check(*, limit: Limit, key: str, now: float | None = None) -> None:
    """Count one hit; raise RateLimited if it goes over the limit.

    Hits over the limit are counted too, so hammering does not reopen the window early.
    """
    now = time.time() if now is None else now
    if hit(limit=limit, key=key, now=now) > limit.count:
        window_end = (int(now // limit.seconds) + 1) * limit.seconds
        raise RateLimited(limit, retry_after=max(1, math.ceil(window_end - now)))


def cooldown(*, name: str, key: str, seconds: int) -> bool:
    """True at most once per `seconds` for `key`: the first caller takes the slot.

    `cache.add` only sets a key that is absent, atomically, so it works as a short lock
    that expires by itself: a sliding "at most one per N seconds", not a fixed window.
    """
    return bool(cache.add(f"{KEY_PREFIX}:{name}:{_digest(key)}", 1, timeout=seconds))


def cooldown_release(*, name: str, key: str) -> None:
    """Hand a cooldown's slot back (the email it was taken for could not be sent)."""
    cache.delete(f"{KEY_PREFIX}:{name}:{_digest(key)}")


def client_key(remote_addr: str) -> str:
    """The part of a client's IP to count by: the address for IPv4, the /64 for IPv6.

    One IPv6 customer usually gets a whole /64, so counting single IPv6 addresses would
    let one person rotate through billions of them.
    """
    try:
        ip = ipaddress.ip_address(remote_addr.strip())
    except ValueError:
        return remote_addr.strip() or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)
