"""The tests' cache keys carry a prefix of this run's own, and are cleared by it.

With REDIS_URL set (CI) the cache is a Redis database others may use too; Django's
`cache.clear()` would flush all of it. Tests clear their own keys only.
"""

from __future__ import annotations

import os

from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache

KEY_PREFIX = f"paperboy-test-{os.getpid()}"


def clear_test_cache() -> None:
    """Forget what this test run put in the cache, and nothing else."""
    if not isinstance(cache, RedisCache):
        cache.clear()  # in memory: this process's own
        return
    client = cache._cache.get_client(None, write=True)
    for key in client.scan_iter(match=f"{cache.key_prefix}:*", count=1000):
        client.delete(key)
