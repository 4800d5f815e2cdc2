"""The daily task chain on a real Celery worker process, with Redis as the broker.

The test publishes `run_daily_task` to Redis; a worker started here scrapes a loopback
Hugging Face, plans and matches, fans the sends out to itself, and delivers to a loopback
SMTP server. The database (committed rows) is shared with the worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.db import connection

from digest.models import Delivery, Edition
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE
from tests.hf_wire import tuesday_papers
from tests.loopback_http import LoopbackServer
from tests.mail import text_of
from tests.smtp_server import Mailbox

ROOT = Path(__file__).resolve().parent.parent
# The Redis the environment names; the test's keys (queues, cache) carry a prefix of this
# run's own, so it never meets another run's tasks and removes only what it wrote.
REDIS_TEST_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
KEY_PREFIX = f"paperboy-test-{os.getpid()}-{uuid.uuid4().hex[:8]}:"

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def _redis_or_skip() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"needs Redis on 127.0.0.1:6379 ({exc})")
    return client


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or "postgres"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(loopback: LoopbackServer, smtp_server: Mailbox) -> Iterator[subprocess.Popen[bytes]]:
    client = _redis_or_skip()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": REDIS_TEST_URL,
        "PAPERBOY_REDIS_PREFIX": KEY_PREFIX,
        "EMAIL_URL": f"smtp://127.0.0.1:{settings.EMAIL_PORT}",
        "PAPERBOY_HF_URL": loopback.base_url,
        "PAPERBOY_SITE_URL": "https://paperboy.example",
        "PAPERBOY_REFRESH_DAYS": "0",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "paperboy",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        remove_own_keys(client)


def remove_own_keys(client: redis.Redis) -> None:
    """Delete the keys this run wrote (its prefix), and nothing else in the database."""
    for key in client.scan_iter(match=f"{KEY_PREFIX}*", count=1000):
        client.delete(key)


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError("timed out waiting for the worker")


def test_the_daily_task_chain_runs_on_a_real_worker(
    loopback: LoopbackServer,
    smtp_server: Mailbox,
    worker: subprocess.Popen[bytes],
    alice: Subscriber,
    bob: Subscriber,
    carol: Subscriber,
) -> None:
    day = EDITION_DATE.isoformat()
    loopback.route("/api/daily_papers", query={"p": "0"}, json=tuesday_papers(EDITION_DATE))
    loopback.route("/api/daily_papers", json=[])

    # Not the current app: tasks queued later in this process (by other tests) must keep
    # going to the project's app, which runs them inline in tests.
    producer = Celery(
        broker=REDIS_TEST_URL,
        broker_transport_options={"global_keyprefix": KEY_PREFIX},
        set_as_current=False,
    )
    producer.send_task("digest.tasks.run_daily_task", args=[day])
    # Beat firing twice (two schedulers) must not send twice.
    producer.send_task("digest.tasks.run_daily_task", args=[day])

    wait_for(lambda: len(smtp_server.messages) >= 3)
    time.sleep(2)  # anything that would be sent twice would arrive by now
    assert worker.poll() is None, "the worker died"

    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == [
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
    ]
    edition = Edition.objects.get(date=EDITION_DATE)
    assert set(edition.deliveries.values_list("status", flat=True)) == {Delivery.Status.SENT}
    [to_carol] = smtp_server.to("carol@example.org")
    assert "Streaming Text-to-Speech on a Phone" in text_of(to_carol)
