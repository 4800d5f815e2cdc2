"""Workers killed mid-send lose nothing: a real prefork worker, a real beat, Redis, PostgreSQL
(or the test database) and a loopback SMTP server.

The beat's sweep starts the senders (nobody queues a send task by hand: the database says
what is owed). Partway through, the worker is killed with SIGKILL — its main process and
pool, or one pool child — and a fresh worker is started. Every reader must get their
digest within two minutes of the kill, no delivery may be marked failed, and a digest
that did arrive twice must carry its delivery's one Message-ID both times.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery as Producer
from django.conf import settings
from django.utils import timezone

from digest.models import Delivery, DeliveryPaper, Edition, Paper
from digest.send_connections import QUEUED_PER_CONNECTION
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE
from tests.hf_wire import tuesday_papers
from tests.loopback_http import LoopbackServer
from tests.smtp_server import Mailbox
from tests.test_celery_worker import (
    KEY_PREFIX,
    REDIS_TEST_URL,
    ROOT,
    _database_url,
    _redis_or_skip,
    remove_own_keys,
)

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

READERS = 400
LEASE_S, SWEEP_S, RECORD_EVERY, CONNECTIONS, CONCURRENCY = 10, 5, 10, 4, 2


@pytest.fixture
def owed(make_paper: Callable[..., Paper]) -> list[Delivery]:
    papers = [make_paper(f"Paper number {n} on diffusion", "An abstract.") for n in range(3)]
    readers = Subscriber.objects.bulk_create(
        Subscriber(
            email=f"reader{n}@example.org", interests=["diffusion"], status=Subscriber.Status.ACTIVE
        )
        for n in range(READERS)
    )
    edition = Edition.objects.create(date=EDITION_DATE)
    now = timezone.now()
    deliveries = Delivery.objects.bulk_create(
        Delivery(edition=edition, subscriber=r, matched_at=now, interests=["diffusion"])
        for r in readers
    )
    DeliveryPaper.objects.bulk_create(
        DeliveryPaper(delivery=d, paper=p, rank=n, reasons=[])
        for d in deliveries
        for n, p in enumerate(papers, start=1)
    )
    return deliveries


def _env(smtp_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": REDIS_TEST_URL,
        "PAPERBOY_REDIS_PREFIX": KEY_PREFIX,
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "PAPERBOY_SITE_URL": "https://paperboy.example",
        "PAPERBOY_SEND_LEASE_SECONDS": str(LEASE_S),
        "PAPERBOY_SEND_SWEEP_SECONDS": str(SWEEP_S),
        "PAPERBOY_SEND_BATCH": "50",
        "PAPERBOY_SEND_RECORD_EVERY": str(RECORD_EVERY),
        "PAPERBOY_SEND_CONNECTIONS": str(CONNECTIONS),
        "PAPERBOY_SEND_TASKS": str(CONCURRENCY),
        # The hourly run stays out of the way: half an hour from now.
        "PAPERBOY_RUN_MINUTE": str((dt.datetime.now(dt.UTC).minute + 30) % 60),
    }


class Celery:
    """Worker and beat processes, each in a process group of its own (to kill it whole)."""

    def __init__(self, smtp_port: int, tmp: Path) -> None:
        self.env, self.tmp = _env(smtp_port), tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, *args: str, loglevel: str = "WARNING", log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "celery", "-A", "paperboy", *args]
        command += ["--loglevel", os.environ.get("CRASH_LOGLEVEL", loglevel)]
        stderr = log.open("wb") if log else None
        proc = subprocess.Popen(
            command, cwd=ROOT, env=self.env, start_new_session=True, stderr=stderr
        )
        self.procs.append(proc)
        return proc

    def worker(self) -> subprocess.Popen[bytes]:
        return self.start(
            "worker", "--pool", "prefork", "--concurrency", str(CONCURRENCY),
            "--without-heartbeat", "--without-gossip", "--without-mingle",
        )  # fmt: skip

    def beat(self) -> subprocess.Popen[bytes]:
        return self.start("beat", "--schedule", str(self.tmp / "beat-schedule"))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def celery(smtp_server: Mailbox, tmp_path: Path) -> Iterator[Celery]:
    client = _redis_or_skip()
    processes = Celery(settings.EMAIL_PORT, tmp_path)
    try:
        yield processes
    finally:
        processes.stop()
        remove_own_keys(client)


def wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"not done within {timeout} s")


def pool_children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(line) for line in found.split()]


@pytest.mark.parametrize("kill", ["the whole worker", "one pool child"])
def test_a_worker_killed_mid_send_loses_no_digest(
    kill: str, owed: list[Delivery], smtp_server: Mailbox, celery: Celery
) -> None:
    smtp_server.delay_s = 0.02  # slow enough that the kill lands mid-send
    celery.beat()
    first = celery.worker()
    wait_for(lambda: len(smtp_server.messages) >= READERS // 5, timeout=90)

    if kill == "the whole worker":
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = time.monotonic()
        celery.worker()
    else:
        children = pool_children(first.pid)
        assert children, "the prefork worker has no pool processes"
        os.kill(children[0], signal.SIGKILL)
        killed_at = time.monotonic()
    arrived_at_kill = len(smtp_server.messages)
    assert arrived_at_kill < READERS, "the kill came too late to test anything"

    readers = {f"reader{n}@example.org" for n in range(READERS)}

    def everyone_has_theirs() -> bool:
        return readers <= {to for m in smtp_server.messages for to in m.rcpt_tos}

    wait_for(everyone_has_theirs, timeout=120)
    took = time.monotonic() - killed_at

    # Digests the dead worker sent but never recorded are sent again (and recorded) by
    # the new one: wait for the database to say every delivery is sent.
    def all_recorded() -> bool:
        return not Delivery.objects.exclude(status=Delivery.Status.SENT).exists()

    wait_for(all_recorded, timeout=60)
    statuses = Counter(Delivery.objects.values_list("status", flat=True))
    assert statuses == {Delivery.Status.SENT: READERS}, statuses
    # Every copy of a digest carries its delivery's Message-ID, the one recorded.
    recorded = dict(Delivery.objects.values_list("subscriber__email", "message_id"))
    copies = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
    for received in smtp_server.messages:
        assert received.message["Message-ID"] == recorded[received.rcpt_tos[0]]
    duplicates = sum(n - 1 for n in copies.values())
    # At most what was handed to the server but not yet recorded, per pool process.
    in_flight = CONCURRENCY * (RECORD_EVERY + CONNECTIONS * (QUEUED_PER_CONNECTION + 1))
    assert duplicates <= in_flight
    print(f"{kill}: all {READERS} delivered {took:.1f} s after the kill; {duplicates} twice")
    assert took < 120


def test_matching_fans_out_over_every_pool_process(
    smtp_server: Mailbox, celery: Celery, loopback: LoopbackServer, tmp_path: Path
) -> None:
    """The run task scrapes and plans; chunk tasks match on both pool processes, each
    chunk's senders follow, and every reader gets one digest."""
    loopback.route("/api/daily_papers", query={"p": "0"}, json=tuesday_papers(EDITION_DATE))
    loopback.route("/api/daily_papers", json=[])
    celery.env.update(PAPERBOY_HF_URL=loopback.base_url, PAPERBOY_REFRESH_DAYS="0")
    Subscriber.objects.bulk_create(
        Subscriber(
            email=f"reader{n}@example.org", interests=["diffusion"], status=Subscriber.Status.ACTIVE
        )
        for n in range(READERS)
    )
    log = tmp_path / "worker.log"
    worker = celery.start(
        "worker", "--pool", "prefork", "--concurrency", str(CONCURRENCY),
        "--without-heartbeat", "--without-gossip", "--without-mingle",
        loglevel="INFO", log=log,
    )  # fmt: skip
    producer = Producer(
        broker=REDIS_TEST_URL,
        broker_transport_options={"global_keyprefix": KEY_PREFIX},
        set_as_current=False,
    )
    producer.send_task("digest.tasks.run_daily_task", args=[EDITION_DATE.isoformat()])
    readers = {f"reader{n}@example.org" for n in range(READERS)}
    wait_for(lambda: readers <= {t for m in smtp_server.messages for t in m.rcpt_tos}, 120)
    time.sleep(1)
    assert worker.poll() is None
    assert len(smtp_server.messages) == READERS  # nobody twice
    statuses = Counter(Delivery.objects.values_list("status", flat=True))
    assert statuses == {Delivery.Status.SENT: READERS}
    matched_by = set(
        re.findall(r"ForkPoolWorker-(\d+)\] Task digest.tasks.match_chunk_task", log.read_text())
    )
    assert len(matched_by) == CONCURRENCY, f"chunks matched by pool processes {matched_by}"
