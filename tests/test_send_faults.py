"""Faults in the middle of a send, on the real parts: a prefork Celery worker and a beat in
processes of their own, Redis, PostgreSQL (or the test database) and a loopback SMTP
server that counts what it accepts by Message-ID.

Each fault test owes READERS (2,000) digests. Nobody queues a send task by hand: the
database says what is owed, and the beat's sweep starts the senders. When a fifth of the
digests have arrived, a fault strikes:

- kill -9 of the worker's main process (its pool children die with it); a fresh worker
  is started;
- kill -9 of one pool child (the worker replaces it);
- Redis killed and started again, empty, on the same port (the queued tasks are lost);
- every database connection but the test's killed (pg_terminate_backend);
- the SMTP server answering 421 to every MAIL, RCPT and DATA for 20 s;
- the SMTP server refusing some recipients with 550 from then on.

Each must end with every owed digest accepted exactly once by the server (twice at most
for a delivery a sender held at the fault, claimed and its outcome not yet recorded, and
then with the same Message-ID both times), every delivery recorded sent, and the 550s
recorded failed with the server's answer and never tried again. Each prints one line of
figures (`pytest tests/test_send_faults.py -s`): the fault table.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import NoReturn

import pytest
import redis
from celery import Celery as Producer
from django.conf import settings
from django.db import connection
from django.utils import timezone

from digest.mail.connections import QUEUED_PER_CONNECTION
from digest.models import Delivery, DeliveryPaper, Edition, Paper
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE
from tests.hf_wire import tuesday_papers
from tests.loopback_http import LoopbackServer
from tests.smtp_server import NO_SUCH_USER, Mailbox, _free_port
from tests.test_celery_worker import (
    KEY_PREFIX,
    REDIS_TEST_URL,
    ROOT,
    _database_url,
    _redis_or_skip,
    remove_own_keys,
)

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

READERS = 2000
LEASE_S, SWEEP_S, RECORD_EVERY, CONNECTIONS, CONCURRENCY = 10, 5, 10, 4, 2
# The fault strikes once this many digests have arrived.
FAULT_AT = READERS // 5
# The server takes this long over each message (other sessions go on meanwhile), so a
# run lasts long enough for a fault to land in its middle.
SINK_DELAY_S = 0.01
# Backoff of a transient error: 4, 8, 8, 8 s between the five attempts, so a server
# unavailable for UNAVAILABLE_S costs no delivery its last attempt.
RETRY_FIRST_S, RETRY_MAX_S = 4, 8
UNAVAILABLE_S = 20
# Redis is down from 7 s to 12 s after the first digest arrived: over the moment the
# senders hand over to a fresh task (PAPERBOY_SEND_TASK_SECONDS, at least 10 s; checked
# between batches, small in that test). The server is slower until the restart, so the
# run goes on past the outage.
REDIS_DOWN, HAND_OVER_S, REDIS_BATCH, REDIS_SINK_DELAY_S = (7, 12), 10, 20, 0.08
# What a dead sender can have handed to the server without recording it, per pool process.
IN_FLIGHT_MOST = CONCURRENCY * (RECORD_EVERY + CONNECTIONS * (QUEUED_PER_CONNECTION + 1))
# Subscribers of the test that runs the whole chain (scrape, plan, match, send).
CHAIN_READERS = 400


def _reader(n: int) -> str:
    return f"reader{n}@example.org"


def _owe(papers: list[Paper], readers: int) -> list[Delivery]:
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(email=_reader(n), topics=["diffusion"], status=Subscriber.Status.ACTIVE)
        for n in range(readers)
    )
    edition = Edition.objects.create(date=EDITION_DATE)
    now = timezone.now()
    deliveries = Delivery.objects.bulk_create(
        Delivery(edition=edition, subscriber=s, matched_at=now, topics=["diffusion"])
        for s in subscribers
    )
    DeliveryPaper.objects.bulk_create(
        DeliveryPaper(delivery=d, paper=p, rank=n, reasons=[])
        for d in deliveries
        for n, p in enumerate(papers, start=1)
    )
    return deliveries


@pytest.fixture
def owed(make_paper: Callable[..., Paper], smtp_server: Mailbox) -> list[Delivery]:
    """READERS deliveries matched and owed; the server a little slow."""
    smtp_server.delay_s = SINK_DELAY_S
    papers = [make_paper(f"Paper number {n} on diffusion", "An abstract.") for n in range(3)]
    return _owe(papers, READERS)


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
        "PAPERBOY_RETRY_FIRST_SECONDS": str(RETRY_FIRST_S),
        "PAPERBOY_RETRY_MAX_SECONDS": str(RETRY_MAX_S),
        # The hourly run stays out of the way: half an hour from now.
        "PAPERBOY_RUN_MINUTE": str((dt.datetime.now(dt.UTC).minute + 30) % 60),
    }


class Celery:
    """Worker and beat processes, each in a process group of its own (to kill it whole),
    each writing its output to a log file of its own under the test's tmp_path."""

    def __init__(self, smtp_port: int, tmp: Path) -> None:
        self.env, self.tmp = _env(smtp_port), tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, *args: str, loglevel: str = "WARNING", log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "celery", "-A", "paperboy", *args]
        command += ["--loglevel", os.environ.get("CRASH_LOGLEVEL", loglevel)]
        log = log or self.tmp / f"{args[0]}-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, cwd=ROOT, env=self.env, start_new_session=True, stdout=out, stderr=out
            )
        self.procs.append(proc)
        return proc

    def worker(self, loglevel: str = "WARNING", log: Path | None = None) -> subprocess.Popen[bytes]:
        return self.start(
            "worker", "--pool", "prefork", "--concurrency", str(CONCURRENCY),
            "--without-heartbeat", "--without-gossip", "--without-mingle",
            loglevel=loglevel, log=log,
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


def unavailable(reason: str) -> NoReturn:
    """Skip for want of a part (a developer's machine); .ci/run, which has every part,
    sets PAPERBOY_REQUIRE_FAULT_TESTS so that a fault test never passes by skipping."""
    if os.environ.get("PAPERBOY_REQUIRE_FAULT_TESTS"):
        pytest.fail(f"a fault test cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture
def celery(smtp_server: Mailbox, tmp_path: Path) -> Iterator[Celery]:
    try:
        client = _redis_or_skip()
    except pytest.skip.Exception as skipped:
        unavailable(str(skipped))
    processes = Celery(settings.EMAIL_PORT, tmp_path)
    try:
        yield processes
    finally:
        processes.stop()
        remove_own_keys(client)


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, to kill and start again
    (the shared one on 6379 serves others)."""

    def __init__(self, tmp: Path) -> None:
        self.port, self.tmp = _free_port(), tmp
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
        with (self.tmp / f"redis-{self.starts}.log").open("wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=out)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(answers, timeout=10)
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        unavailable("needs redis-server on PATH, to run a Redis of the test's own")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


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


def running(pid: int) -> bool:
    """Alive and not a zombie (one reparented to a PID 1 that does not reap stays one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def mid_run(mailbox: Mailbox) -> None:
    """Wait until FAULT_AT digests have arrived."""
    wait_for(lambda: len(mailbox.messages) >= FAULT_AT, timeout=90)


def held_now() -> set[int]:
    """Deliveries a sender holds: claimed, outcome not recorded."""
    return set(Delivery.objects.filter(status=Delivery.Status.SENDING).values_list("id", flat=True))


@dataclass
class Fault:
    name: str
    at: float  # time.monotonic() when it struck
    held: set[int]  # deliveries a sender held at the fault: only these may arrive twice
    over_at: float = 0.0  # when it was over, if it lasted: "all done" counts from here

    def __post_init__(self) -> None:
        self.over_at = self.over_at or self.at


def all_delivered(fault: Fault, mailbox: Mailbox, *, twice_allowed: bool = True) -> None:
    """Wait until no delivery is owed or held, then check what the server got (by
    Message-ID) against what the database says, and print the fault's figures: every
    digest accepted once (twice at most if held at the fault and `twice_allowed`) and
    recorded sent, but those to the recipients the server refused for good, failed."""

    def settled() -> bool:
        unsettled = (Delivery.Status.QUEUED, Delivery.Status.SENDING)
        return not Delivery.objects.filter(status__in=unsettled).exists()

    wait_for(settled, timeout=180)
    took = time.monotonic() - fault.over_at
    time.sleep(1)  # a copy still on its way would arrive by now

    failed = set(mailbox.refused)
    rows = list(Delivery.objects.values_list("id", "status", "message_id", "subscriber__email"))
    statuses = Counter(status for _, status, _, _ in rows)
    owed_sent = {Delivery.Status.SENT: READERS - len(failed)}
    assert statuses == {**owed_sent, **({Delivery.Status.FAILED: len(failed)} if failed else {})}
    assert {to for _, status, _, to in rows if status == Delivery.Status.FAILED} == failed

    # Every copy the server accepted carries its delivery's one Message-ID, the one recorded.
    sent = {mid: (i, to) for i, status, mid, to in rows if status == Delivery.Status.SENT}
    assert len(sent) == READERS - len(failed)
    copies = mailbox.by_message_id()
    for received in list(mailbox.messages):
        delivery_id, to = sent[received.message_id]
        assert re.fullmatch(rf"<digest-{delivery_id}@[^>]+>", received.message_id)
        assert received.rcpt_tos == [to]
    assert set(copies) == set(sent), "a digest owed never arrived, or one not owed did"
    twice = {sent[mid][0]: n for mid, n in copies.items() if n > 1}
    if twice_allowed:
        assert max(twice.values(), default=1) <= 2, twice
        assert set(twice) <= fault.held, "a digest recorded sent before the fault came twice"
        assert len(twice) <= IN_FLIGHT_MOST
    else:
        assert not twice, f"{len(twice)} digests arrived twice"
    # The longest the server waited for a digest from the fault on.
    times = [fault.at, *sorted(m.at for m in mailbox.messages if m.at > fault.at)]
    pause = max((b - a for a, b in pairwise(times)), default=0.0)
    print(
        f"\nFAULT | {fault.name} | {READERS} digests | {len(copies)} delivered"
        f" | {len(failed)} failed | {len(twice)} twice | {len(fault.held)} in flight"
        f" | longest pause {pause:.1f} s | all done {took:.1f} s after the fault"
    )


# --- The faults ---------------------------------------------------------------------------


@pytest.mark.faults
def test_kill_9_of_the_worker_main_process(
    owed: list[Delivery], smtp_server: Mailbox, celery: Celery
) -> None:
    celery.beat()
    first = celery.worker()
    mid_run(smtp_server)
    children = pool_children(first.pid)
    assert children, "the prefork worker has no pool processes"
    os.kill(first.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    first.wait(timeout=10)
    # Its pool children die with it: Celery gives them PR_SET_PDEATHSIG = SIGKILL.
    wait_for(lambda: not any(running(pid) for pid in children), timeout=10)
    fault = Fault("kill -9 of the worker's main process", killed_at, held_now())
    assert len(smtp_server.messages) < READERS, "the kill came too late to test anything"
    celery.worker()
    all_delivered(fault, smtp_server)


@pytest.mark.faults
def test_kill_9_of_a_pool_child(owed: list[Delivery], smtp_server: Mailbox, celery: Celery) -> None:
    celery.beat()
    worker = celery.worker()
    mid_run(smtp_server)
    children = pool_children(worker.pid)
    assert children, "the prefork worker has no pool processes"
    os.kill(children[0], signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: not running(children[0]), timeout=10)
    fault = Fault("kill -9 of a pool child", killed_at, held_now())
    assert len(smtp_server.messages) < READERS, "the kill came too late to test anything"
    all_delivered(fault, smtp_server)
    assert worker.poll() is None, "the worker died with its child"


@pytest.mark.faults
def test_redis_restarted(
    private_redis: PrivateRedis,  # first: it outlives the worker and beat
    owed: list[Delivery],
    smtp_server: Mailbox,
    celery: Celery,
    tmp_path: Path,
) -> None:
    """Redis dies mid-run and comes back empty: the queued tasks are lost, PostgreSQL
    still holds what is owed. The senders running go on (they need only the database and
    the server), but their hand-over to a fresh task goes through Redis and falls in the
    outage; worker and beat reconnect by themselves, and the beat's sweep starts senders
    again for the rest."""
    smtp_server.delay_s = REDIS_SINK_DELAY_S
    celery.env.update(
        REDIS_URL=private_redis.url,
        PAPERBOY_SEND_TASK_SECONDS=str(HAND_OVER_S),
        PAPERBOY_SEND_BATCH=str(REDIS_BATCH),
    )
    log = tmp_path / "worker.log"
    beat = celery.beat()
    worker = celery.worker(loglevel="INFO", log=log)
    wait_for(lambda: bool(smtp_server.messages), timeout=90)
    first = smtp_server.messages[0].at  # the senders started a moment before
    time.sleep(max(0.0, first + REDIS_DOWN[0] - time.monotonic()))
    private_redis.kill()
    killed_at, held = time.monotonic(), held_now()
    time.sleep(max(0.0, first + REDIS_DOWN[1] - time.monotonic()))
    assert len(smtp_server.messages) < READERS, "the outage came too late to test anything"
    private_redis.start()
    smtp_server.delay_s = SINK_DELAY_S
    name = f"Redis killed, started again empty {REDIS_DOWN[1] - REDIS_DOWN[0]} s later"
    fault = Fault(name, killed_at, held, over_at=time.monotonic())
    since_restart = log.stat().st_size
    all_delivered(fault, smtp_server, twice_allowed=False)

    # The senders' hand-over was lost with Redis: the beat published a sweep to the new
    # Redis, the worker took it from there, and the senders it started sent the rest.
    with log.open("rb") as f:
        f.seek(since_restart)
        after = f.read()
    assert b"Task digest.tasks.sweep_sends_task[" in after
    assert b"Task digest.tasks.send_owed_task[" in after
    assert any(m.at > fault.over_at for m in smtp_server.messages)
    assert worker.poll() is None and beat.poll() is None


@pytest.mark.faults
def test_database_connections_killed(
    owed: list[Delivery], smtp_server: Mailbox, celery: Celery
) -> None:
    if connection.vendor != "postgresql":
        unavailable("pg_terminate_backend is PostgreSQL's; SQLite has no connection to kill")
    celery.beat()
    celery.worker()
    mid_run(smtp_server)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (killed,) = cursor.fetchone()
    killed_at = time.monotonic()
    assert killed >= 1, "no connection of the worker to kill"
    fault = Fault(f"database connections killed ({killed})", killed_at, held_now())
    assert len(smtp_server.messages) < READERS, "the kill came too late to test anything"
    # Nobody twice: the senders record what they sent on a new connection
    # (leases.reconnecting), rather than dying and leaving it to be sent again.
    all_delivered(fault, smtp_server, twice_allowed=False)


@pytest.mark.faults
def test_smtp_answering_421_for_20_s(
    owed: list[Delivery], smtp_server: Mailbox, celery: Celery
) -> None:
    celery.beat()
    celery.worker()
    mid_run(smtp_server)
    smtp_server.unavailable_for(UNAVAILABLE_S)
    over = smtp_server.unavailable_until
    name = f"SMTP answering 421 for {UNAVAILABLE_S} s"
    fault = Fault(name, over - UNAVAILABLE_S, held_now(), over_at=over)
    assert len(smtp_server.messages) < READERS, "the fault came too late to test anything"
    all_delivered(fault, smtp_server, twice_allowed=False)
    assert smtp_server.unavailable_answers > 0


@pytest.mark.faults
def test_smtp_refusing_some_recipients_with_550(
    owed: list[Delivery], smtp_server: Mailbox, celery: Celery
) -> None:
    celery.beat()
    celery.worker()
    mid_run(smtp_server)
    smtp_server.refuse_rcpt = re.compile(r"^reader\d*7@")
    fault = Fault("SMTP refusing subscriber*7@ with 550", time.monotonic(), held_now())
    assert len(smtp_server.messages) < READERS, "the fault came too late to test anything"
    all_delivered(fault, smtp_server, twice_allowed=False)

    # Every subscriber*7 whose digest had not gone yet was refused, once: never tried again.
    arrived = {to for m in smtp_server.messages for to in m.rcpt_tos}
    refused = Counter(smtp_server.refused)
    assert set(refused) == {_reader(n) for n in range(READERS) if n % 10 == 7} - arrived
    assert refused and set(refused.values()) == {1}
    # Recorded failed with the server's answer.
    errors = Delivery.objects.filter(status=Delivery.Status.FAILED).values_list(
        "last_error", flat=True
    )
    text = NO_SUCH_USER.split(" ", 2)[2]
    assert all(text in error and "550" in error for error in errors), list(errors)[:3]


# --- The chain on a real worker -----------------------------------------------------------


def test_matching_fans_out_over_every_pool_process(
    smtp_server: Mailbox, celery: Celery, loopback: LoopbackServer, tmp_path: Path
) -> None:
    """The run task scrapes and plans; chunk tasks match on both pool processes, each
    chunk's senders follow, and every subscriber gets one digest."""
    loopback.route("/api/daily_papers", query={"p": "0"}, json=tuesday_papers(EDITION_DATE))
    loopback.route("/api/daily_papers", json=[])
    celery.env.update(PAPERBOY_HF_URL=loopback.base_url, PAPERBOY_REFRESH_DAYS="0")
    Subscriber.objects.bulk_create(
        Subscriber(email=_reader(n), topics=["diffusion"], status=Subscriber.Status.ACTIVE)
        for n in range(CHAIN_READERS)
    )
    log = tmp_path / "worker.log"
    worker = celery.worker(loglevel="INFO", log=log)
    # Send once the worker listens: kombu's Redis transport routes a task through its
    # queue's binding, which the previous test's clean-up removed with its keys; a task
    # sent before the worker binds the queue again is dropped.
    wait_for(lambda: log.exists() and " ready." in log.read_text(), 60)
    producer = Producer(
        broker=REDIS_TEST_URL,
        broker_transport_options={"global_keyprefix": KEY_PREFIX},
        set_as_current=False,
    )
    producer.send_task("digest.tasks.run_daily_task", args=[EDITION_DATE.isoformat()])
    readers = {_reader(n) for n in range(CHAIN_READERS)}
    wait_for(lambda: readers <= {t for m in smtp_server.messages for t in m.rcpt_tos}, 120)
    time.sleep(1)
    assert worker.poll() is None
    assert len(smtp_server.messages) == CHAIN_READERS  # nobody twice
    statuses = Counter(Delivery.objects.values_list("status", flat=True))
    assert statuses == {Delivery.Status.SENT: CHAIN_READERS}
    matched_by = set(
        re.findall(r"ForkPoolWorker-(\d+)\] Task digest.tasks.match_chunk_task", log.read_text())
    )
    assert len(matched_by) == CONCURRENCY, f"chunks matched by pool processes {matched_by}"
