"""`GET /healthz`: can this instance serve? For a load balancer or an uptime monitor.

A process that answers HTTP but cannot reach its database (every page fails) or its
Redis (nothing is queued, rate limits fail) should be taken out of rotation and someone
told. The probe asks both, each with a short timeout, so a hung service gives a 503 in
seconds instead of a hung probe; without REDIS_URL (the embedded mode) there is no Redis
to ask and the instance is healthy without one.

200 {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}, or 503 with the
failing check's short error. The answer names only the kind of error: the endpoint is
public, and a driver's message can carry host names and user names, which go to the log.
No login, no session, no cookie, never cached; exempt from the HTTPS redirect
(SECURE_REDIRECT_EXEMPT) so that a plain-HTTP probe behind the proxy gets an answer.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe
from redis.backoff import NoBackoff
from redis.retry import Retry

from .closing import close_quietly

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2
OK = "ok"
NOT_CONFIGURED = "not configured"


def _short_error(check: str, exc: BaseException) -> str:
    logger.warning("health check %s failed: %s: %s", check, type(exc).__name__, exc)
    return f"error: {type(exc).__name__}"


def database_check() -> str:
    """The database's answer: "ok", or the error of a `SELECT 1` on a new connection.

    A new connection of its own, not the request's: the request's may be a kept-alive
    socket (CONN_MAX_AGE) that, with the server gone silent, blocks until TCP gives up,
    minutes later. A new one is bounded by connect_timeout (and, on PostgreSQL, the query
    by statement_timeout); it costs one connection per probe, a few milliseconds.
    """
    live = connections[DEFAULT_DB_ALIAS]
    settings_dict: dict[str, Any] = {**live.settings_dict}
    options: dict[str, Any] = {**settings_dict.get("OPTIONS", {})}
    options.pop("pool", None)  # a pool per probe would be a leak: one plain connection
    timeout_ms = CHECK_TIMEOUT_SECONDS * 1000
    if live.vendor == "postgresql":
        options["connect_timeout"] = CHECK_TIMEOUT_SECONDS
        options["options"] = f"{options.get('options', '')} -c statement_timeout={timeout_ms}"
        options["options"] = options["options"].strip()
    elif live.vendor == "sqlite":
        options["timeout"] = CHECK_TIMEOUT_SECONDS  # waiting for a lock
    settings_dict["OPTIONS"] = options
    probe = type(live)(settings_dict, DEFAULT_DB_ALIAS)
    try:
        with probe.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver's error means the same thing here
        return _short_error("database", exc)
    finally:
        close_quietly(probe, "the probe's database connection")
    return OK


def redis_check() -> str:
    """Redis's answer: "ok", "not configured" (no REDIS_URL), or the error of a PING.

    A client of its own, built from REDIS_URL, not the cache's or Celery's: theirs wait
    for Redis without a socket timeout, and retry a dead connection with backoff, which
    is right for a task and wrong for a probe. This one gives up after
    CHECK_TIMEOUT_SECONDS to connect and as long for the answer, and does not retry; it
    is the same server (and database) the cache and the broker use.
    """
    url = settings.REDIS_URL
    if not url:
        return NOT_CONFIGURED
    client: redis.Redis | None = None
    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
            socket_timeout=CHECK_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        client.ping()
    except Exception as exc:  # connection, timeout, auth, a URL redis-py cannot read
        return _short_error("redis", exc)
    finally:
        if client is not None:
            client.close()
    return OK


def health_checks() -> dict[str, str]:
    """Each check's result by name; healthy when each is "ok" or "not configured"."""
    return {"database": database_check(), "redis": redis_check()}


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    checks = health_checks()
    healthy = all(result in (OK, NOT_CONFIGURED) for result in checks.values())
    response = JsonResponse(
        {"status": OK if healthy else "error", "checks": checks},
        status=200 if healthy else 503,
    )
    response["Cache-Control"] = "no-store"
    return response
