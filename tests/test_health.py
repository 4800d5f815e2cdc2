"""GET /healthz: 200 when the database and Redis answer, 503 (quickly) when one does not."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.db import connections
from django.test import Client

from paperboy.health import CHECK_TIMEOUT_SECONDS

pytestmark = pytest.mark.django_db

REDIS_TEST_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def closed_port() -> int:
    """A port of 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


@pytest.fixture
def redis_up(settings: Any) -> None:
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"needs Redis at {REDIS_TEST_URL} ({exc})")
    finally:
        client.close()
    settings.REDIS_URL = REDIS_TEST_URL


def test_healthy_when_the_database_and_redis_answer(client: Client, redis_up: None) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
    assert response["Cache-Control"] == "no-store"
    # No session or CSRF cookie set, and nothing that varies with the client's cookies.
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")


def test_a_head_probe_gets_the_status_without_a_body(client: Client, redis_up: None) -> None:
    response = client.head("/healthz")
    assert response.status_code == 200
    assert response.content == b""
    assert client.post("/healthz").status_code == 405


def test_without_redis_configured_it_says_so_and_stays_healthy(
    client: Client, settings: Any
) -> None:
    settings.REDIS_URL = ""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "not configured"},
    }


def test_unavailable_when_redis_refuses(client: Client, settings: Any) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "status": "error",
        "checks": {"database": "ok", "redis": "error: ConnectionError"},
    }


def test_a_hung_redis_gives_503_within_the_timeout(
    client: Client, settings: Any, silent_server: int
) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{silent_server}/0"
    started = time.monotonic()
    response = client.get("/healthz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "error: TimeoutError"
    # Not retried: one timeout, not several.
    assert CHECK_TIMEOUT_SECONDS <= elapsed < CHECK_TIMEOUT_SECONDS + 1.5


def test_unavailable_when_the_database_refuses(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.REDIS_URL = ""
    live = connections["default"]
    if live.vendor == "sqlite":
        pytest.skip("an SQLite file has no server to be unreachable")
    # The probe opens a connection of its own from these settings; the test's connection,
    # already open, carries on.
    monkeypatch.setitem(live.settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(live.settings_dict, "PORT", str(closed_port()))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "checks": {"database": "error: OperationalError", "redis": "not configured"},
    }


def test_the_https_redirect_leaves_the_probe_alone(
    client: Client, settings: Any, redis_up: None
) -> None:
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/papers/").status_code == 301  # everything else goes to HTTPS
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
