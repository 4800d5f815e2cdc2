"""Benchmark sending over SMTP: Paperboy's Celery workers against django-newsletter 1.2.1.

    .venv/bin/python bench/bench_smtp.py --messages 20000        (or: make bench-smtp)

Both send one edition to N subscribers through the same `smtp-sink` (Postfix's SMTP server
that accepts and drops mail) in one run: the peer first (`submit_newsletter`, in a
virtualenv of its own), then Paperboy (a real Celery worker on Redis and PostgreSQL).
Each is timed from the start of its sending to the last message accepted. Speed is
printed, not asserted: the bench exits 1 only if messages went missing (fewer reached
the sink than were sent). Progress goes to stderr; the figures to stdout, the summary
line last. See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script, bench/ is on the path but not the root
    sys.path.insert(0, str(ROOT))

from bench.bench_digest import (  # noqa: E402
    RESERVED_DATABASES,
    check_empty,
    edition_date,
    insert_data,
    log,
    log_statuses,
    phase,
)

if TYPE_CHECKING:
    from digest.models import Edition

SMTP_SINK = "/usr/sbin/smtp-sink"
PEER_DIR = ROOT / "bench" / "peer_newsletter"
DEFAULT_PEER_VENV = "/tmp/paperboy-peer-venv"
PEER_NEWSLETTER = "django-newsletter==1.2.1"
# The bench's own databases, dropped and made anew by each run (never the tests' ones).
PAPERBOY_DB = "paperboy_bench_smtp"
PEER_DB = "paperboy_peer"
# Worker processes (`celery worker -c`): one per core of the 2-core machine.
WORKER_PROCESSES = 2
# Digests rendered in this process to measure Paperboy's mean message size.
SIZE_SAMPLE = 100
# Seconds of no progress after which a side is given up on (a stuck worker, retries
# postponed by minutes): what is still owed then is counted as missing.
STALL_SECONDS = 60.0
POLL_SECONDS = 0.2


# --- Arguments ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="subscribers each (20000)")
    parser.add_argument(
        "--port", type=int, default=0, help="smtp-sink's port (default: a free one)"
    )
    parser.add_argument(
        "--peer-venv",
        default=os.environ.get("PAPERBOY_PEER_VENV", DEFAULT_PEER_VENV),
        help=f"the peer's virtualenv, made once and reused (default $PAPERBOY_PEER_VENV, "
        f"else {DEFAULT_PEER_VENV})",
    )
    parser.add_argument("--keep-dbs", action="store_true", help="leave both databases behind")
    parser.add_argument(
        "--rounds", type=int, default=1, help="sends per side, alternating peer/Paperboy (1)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic data")
    parser.add_argument(
        "--paperboy-only",
        action="store_true",
        help="skip the peer (no ratio): for profiling or tuning Paperboy's side",
    )
    parser.add_argument("--papers", type=int, default=50, help="papers in Paperboy's edition")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("PAPERBOY_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"),
        help="the PostgreSQL server, without a database ($PAPERBOY_BENCH_POSTGRES)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        help="Redis for the broker; only keys under a prefix of this run's are written",
    )
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rounds < 1 or args.papers < 1:
        parser.error("--messages, --rounds and --papers must be at least 1")
    if {PAPERBOY_DB, PEER_DB} & RESERVED_DATABASES:  # a guard against a careless rename
        parser.error("the bench's databases must not be the tests' ones")
    if not Path(SMTP_SINK).exists():
        parser.error(f"{SMTP_SINK} is missing: apt-get install postfix (it ships smtp-sink)")
    args.postgres = args.postgres.rstrip("/")
    return args


# --- smtp-sink ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Sink:
    """smtp-sink with `-c`: it writes running counters ("sess=… quit=… mesg=N", one per
    carriage return) unbuffered to a file, whose last `mesg=` is the messages accepted."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.counters = folder / "smtp-sink.out"
        # As root, smtp-sink refuses to run without a user to drop to.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        with self.counters.open("wb") as out:
            self.proc = subprocess.Popen(
                [SMTP_SINK, "-c", *user, f"127.0.0.1:{port}", "1000"],
                stdout=out,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise SystemExit(f"bench: smtp-sink did not start: {err.strip()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"bench: smtp-sink is not listening on 127.0.0.1:{self.port}")

    def messages(self) -> int:
        """Messages accepted so far (the counter updates as each "." is received)."""
        with self.counters.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256))
            tail = f.read().decode("ascii", "replace")
        counters = [c for c in tail.split("\r") if "mesg=" in c]
        return int(counters[-1].rsplit("mesg=", 1)[1].split()[0]) if counters else 0

    def stop(self) -> None:
        stop_group(self.proc, "smtp-sink")


def stop_group(proc: subprocess.Popen[Any], name: str, timeout: float = 30.0) -> None:
    """SIGTERM to the process group that `proc` leads (started with a session of its
    own, so this reaches its children and nothing else), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"{name} did not stop in {timeout:.0f}s: killing it")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


# --- PostgreSQL and Redis -----------------------------------------------------------------


def recreate_database(server: str, name: str) -> str:
    """Drop (left over from a run with --keep-dbs) and create `name`; return its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{server}/{name}"


def drop_database(server: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    log(f"dropped database {name}")


def remove_redis_keys(redis_url: str, prefix: str) -> None:
    """Delete the keys under this run's prefix (queues, cache), nothing else: the Redis
    database is shared, so it is never flushed."""
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    log(f"removed {len(keys)} Redis keys under {prefix}")


# --- Paperboy -------------------------------------------------------------------------------


def setup_django(database_url: str, redis_url: str, prefix: str, port: int, var_dir: Path) -> None:
    """Paperboy's settings as a deployment has them: PostgreSQL, Redis (so tasks go to the
    worker, not inline), SMTP. The worker started later inherits the same environment."""
    # An ESP or DEBUG would change what runs; a send rate limit would time the limit.
    for name in ("PAPERBOY_ESP", "DJANGO_DEBUG", "PAPERBOY_SEND_RATE"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "paperboy.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PAPERBOY_REDIS_PREFIX": prefix,
            "EMAIL_URL": f"smtp://127.0.0.1:{port}",
            "PAPERBOY_VAR_DIR": str(var_dir),
        }
    )
    import django

    django.setup()


@dataclass
class PaperboyEdition:
    edition: Edition
    delivery_ids: list[int]
    mean_bytes: float


def prepare_paperboy(args: argparse.Namespace, timings: dict[str, float]) -> PaperboyEdition:
    """bench_digest's data and steps: migrate, N synthetic subscribers, one edition planned
    and matched, so every matched delivery is owed and ready to send."""
    from django.core.management import call_command

    from bench.synthetic import make_papers, make_subscribers
    from digest.matching import edition_match
    from digest.planning import edition_plan, ready_to_send

    date = edition_date()
    with phase("paperboy migrate", timings):
        call_command("migrate", verbosity=0, interactive=False)
    check_empty()
    with phase("paperboy generate and insert", timings):
        rng = random.Random(args.seed)
        insert_data(make_subscribers(rng, args.messages), make_papers(rng, args.papers, date), date)
    with phase("paperboy plan and match", timings):
        edition = edition_plan(date=date)
        summary = edition_match(edition=edition)
    ids = list(ready_to_send(edition).order_by("id").values_list("id", flat=True))
    log(f"paperboy: {len(ids)} digests owed, {summary.skipped_total} subscribers matched nothing")
    with phase("paperboy message size", timings):
        mean_bytes = mean_digest_bytes(
            random.Random(args.seed).sample(ids, min(SIZE_SAMPLE, len(ids)))
        )
    log(
        f"paperboy: mean digest {mean_bytes / 1024:.1f} KB (sample of {min(SIZE_SAMPLE, len(ids))})"
    )
    return PaperboyEdition(edition, ids, mean_bytes)


def mean_digest_bytes(delivery_ids: Sequence[int]) -> float:
    """The mean size of these digests as sent: the MIME bytes of Paperboy's own message."""
    from digest.mail import digest_message
    from digest.models import Delivery

    deliveries = Delivery.objects.select_related("edition", "subscriber").filter(
        id__in=delivery_ids
    )
    sizes = [len(digest_message(delivery=d).message().as_bytes()) for d in deliveries]
    return statistics.fmean(sizes) if sizes else 0.0


def start_paperboy_sends(edition: Edition, processes: int = WORKER_PROCESSES) -> str:
    """Start the edition's senders, as a run does once its matching is done: one drain
    (`send_owed_task`) per worker process, each taking batches from the database until
    nothing is owed. Returns what it queued, for the log."""
    from django.db import transaction

    from digest.queueing import start_senders

    with transaction.atomic():
        count = start_senders(edition_id=edition.id, count=processes)
    return f"send_owed_task ×{count}"


@contextmanager
def celery_worker(name: str, timings: dict[str, float]) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker process on this run's Redis prefix, ready (it answered a ping) before
    the timer starts; its process group is terminated at the end."""
    from paperboy.celery import app

    command = [
        # The celery beside this interpreter: the project's venv (make bench-smtp uses it).
        str(Path(sys.executable).parent / "celery"),
        *("-A", "paperboy", "--quiet", "worker", "-c", str(WORKER_PROCESSES), "-n", name),
        *("--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"),
    ]
    # stdout to our stderr: stdout carries only the figures.
    # PYTHONPATH: this checkout's code, whichever one the venv was installed from.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sys.stderr, start_new_session=True)
    try:
        with phase("worker start", timings):
            deadline = time.monotonic() + 120
            # Addressed to this worker only, so another worker on the Redis cannot answer.
            while not app.control.ping(destination=[name], timeout=0.5):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("bench: the Celery worker did not start")
        yield proc
    finally:
        with phase("worker stop", timings):
            stop_group(proc, "the Celery worker")


@dataclass
class SideRun:
    owed: int  # messages it had to send
    sent: int  # what the side says it sent (the peer: sends that raised no error)
    accepted: int  # what smtp-sink counted meanwhile
    seconds: float

    @property
    def missing(self) -> int:
        """Owed but not both sent and accepted (the smaller count is the one to trust)."""
        return max(0, self.owed - min(self.sent, self.accepted))

    @property
    def per_s(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


TERMINAL = ("sent", "failed", "skipped", "feed")


def paperboy_send(
    owed: PaperboyEdition, sink: Sink, round_no: int, timings: dict[str, float]
) -> SideRun:
    from django.db.models import Count, Max

    from digest.models import Delivery

    edition = owed.edition
    expected = len(owed.delivery_ids)
    deliveries = Delivery.objects.filter(edition=edition)
    with celery_worker(f"bench-smtp-{os.getpid()}-{round_no}@localhost", timings) as worker:
        before = sink.messages()
        start = time.time()  # wall clock, to compare with the rows' sent_at
        log(f"paperboy: {start_paperboy_sends(edition)}")
        last_progress, last_done, last_log = time.monotonic(), -1, 0.0
        while True:
            counts = dict(deliveries.values_list("status").annotate(n=Count("id")).order_by())
            done = sum(counts.get(status, 0) for status in TERMINAL)
            now = time.monotonic()
            if done != last_done:
                last_progress, last_done = now, done
            if now - last_log >= 5:
                log(f"paperboy: {counts.get('sent', 0)}/{expected} sent")
                last_log = now
            if not set(counts) - set(TERMINAL):  # nothing queued or sending any more
                break
            if worker.poll() is not None:
                log("paperboy: the worker died")
                break
            if now - last_progress > STALL_SECONDS:
                log(f"paperboy: no progress in {STALL_SECONDS:.0f}s; giving up")
                break
            time.sleep(POLL_SECONDS)
        last_sent = deliveries.filter(status="sent").aggregate(last=Max("sent_at"))["last"]
        elapsed = (last_sent.timestamp() - start) if last_sent else time.time() - start
        time.sleep(0.5)  # the sink's counter of the last message, before the worker stops
        accepted = sink.messages() - before
    log_statuses(edition)
    sent = deliveries.filter(status="sent").count()
    log(f"paperboy: {sent}/{expected} sent in {elapsed:.2f}s, smtp-sink accepted {accepted}")
    return SideRun(expected, sent, accepted, elapsed)


def reset_paperboy(owed: PaperboyEdition) -> None:
    """Owe the sent digests again, for another round (only with --rounds > 1)."""
    from digest.models import Delivery

    reset: dict[str, Any] = {
        "status": "queued",
        "sent_at": None,
        "claimed_at": None,
        "message_id": "",
        "attempts": 0,
        "last_error": "",
        "next_attempt_at": None,
    }
    fields = {f.name for f in Delivery._meta.get_fields()}
    reset.update({k: v for k, v in (("lease_owner", ""), ("lease_until", None)) if k in fields})
    Delivery.objects.filter(id__in=owed.delivery_ids).update(**reset)


# --- The peer -----------------------------------------------------------------------------


def peer_requirements() -> list[str]:
    """django-newsletter 1.2.1 (Django>=4.2; it lists 4.2 and 5.2) on the Django and
    psycopg Paperboy runs on, so the framework under both is the same; sorl-thumbnail is
    the image field's thumbnailer it needs to import."""
    django = importlib.metadata.version("django")
    psycopg = importlib.metadata.version("psycopg")
    return [PEER_NEWSLETTER, f"Django=={django}", f"psycopg[binary]=={psycopg}", "sorl-thumbnail"]


def ensure_peer_venv(path: Path) -> Path:
    """The peer's virtualenv, made once and reused while its requirements stay the same."""
    python = path / "bin" / "python"
    stamp = path / ".paperboy-peer-requirements"
    wanted = "\n".join(peer_requirements()) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        log(f"peer: reusing {path}")
        return python
    if not python.exists():
        log(f"peer: making a virtualenv in {path}")
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    log(f"peer: installing {' '.join(peer_requirements())}")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *peer_requirements()],
        check=True,
        stdout=sys.stderr,
    )
    stamp.write_text(wanted)
    return python


def run_peer(python: Path, env: dict[str, str], *step: str) -> dict[str, Any]:
    """One step of bench/peer_newsletter/peer_send.py; its last stdout line is JSON."""
    done = subprocess.run(
        [str(python), str(PEER_DIR / "peer_send.py"), *step],
        env=env,
        cwd=PEER_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: the peer's {step[0]} failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def peer_env(args: argparse.Namespace, port: int) -> dict[str, str]:
    from urllib.parse import urlsplit

    server = urlsplit(args.postgres)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "PAPERBOY_", "DATABASE_URL", "EMAIL_URL", "REDIS_URL"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "peer_settings",
            "PEER_DB_NAME": PEER_DB,
            "PEER_DB_HOST": server.hostname or "127.0.0.1",
            "PEER_DB_PORT": str(server.port or 5432),
            "PEER_DB_USER": server.username or "postgres",
            "PEER_DB_PASSWORD": server.password or "",
            "PEER_EMAIL_HOST": "127.0.0.1",
            "PEER_EMAIL_PORT": str(port),
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
        }
    )
    return env


def peer_send(python: Path, env: dict[str, str], sink: Sink) -> tuple[SideRun, float]:
    """One submission of the peer's message to every subscriber; (the run, mean bytes)."""
    before = sink.messages()
    result = run_peer(python, env, "send")
    time.sleep(0.5)  # as for Paperboy: the counter of the last message
    accepted = sink.messages() - before
    attempted, errors = int(result["attempted"]), int(result["errors"])
    log(
        f"peer: {attempted} messages in {result['seconds']:.2f}s, {result['errors']} errors, "
        f"smtp-sink accepted {accepted}"
    )
    run = SideRun(attempted, attempted - errors, accepted, float(result["seconds"]))
    return run, float(result["mean_bytes"])


# --- The run ------------------------------------------------------------------------------


@dataclass
class Figures:
    n: int
    peer: list[SideRun]
    paperboy: list[SideRun]
    peer_mean_bytes: float
    paperboy_mean_bytes: float
    peer_articles: int
    timings: dict[str, float]

    @property
    def missing(self) -> int:
        return sum(r.missing for r in self.peer + self.paperboy)


def run(args: argparse.Namespace, stack: ExitStack) -> Figures:
    timings: dict[str, float] = {}
    var_dir = Path(tempfile.mkdtemp(prefix="paperboy-bench-smtp-"))
    stack.callback(shutil.rmtree, var_dir, ignore_errors=True)
    prefix = f"paperboy-bench-smtp-{os.getpid()}-{uuid.uuid4().hex[:8]}:"

    sink = Sink(args.port or free_port(), var_dir)
    stack.callback(sink.stop)
    log(f"smtp-sink on 127.0.0.1:{sink.port}")

    database_url = recreate_database(args.postgres, PAPERBOY_DB)
    if not args.keep_dbs:
        stack.callback(drop_database, args.postgres, PAPERBOY_DB)
    stack.callback(remove_redis_keys, args.redis_url, prefix)
    setup_django(database_url, args.redis_url, prefix, sink.port, var_dir)
    stack.callback(close_django_connections)
    owed = prepare_paperboy(args, timings)

    if args.paperboy_only:
        python, env, seeded = Path(), {}, {"articles": 0}
    else:
        with phase("peer venv", timings):
            python = ensure_peer_venv(Path(args.peer_venv))
        recreate_database(args.postgres, PEER_DB)
        if not args.keep_dbs:
            stack.callback(drop_database, args.postgres, PEER_DB)
        env = peer_env(args, sink.port)
        with phase("peer setup", timings):
            seeded = run_peer(
                python,
                env,
                *("setup", "--messages", str(args.messages), "--seed", str(args.seed)),
                *(
                    "--target-bytes",
                    str(round(owed.mean_bytes)),
                    "--date",
                    edition_date().isoformat(),
                ),
            )

    peer_runs: list[SideRun] = []
    paperboy_runs: list[SideRun] = []
    peer_sizes: list[float] = []
    for round_no in range(1, args.rounds + 1):
        before = sink.messages()
        if not args.paperboy_only:
            log(f"round {round_no}/{args.rounds}: the peer")
            peer_run, peer_bytes = peer_send(python, env, sink)
            peer_runs.append(peer_run)
            peer_sizes.append(peer_bytes)
        log(f"round {round_no}/{args.rounds}: Paperboy")
        if round_no > 1:
            reset_paperboy(owed)
        paperboy_runs.append(paperboy_send(owed, sink, round_no, timings))
        log(f"round {round_no}: smtp-sink accepted {sink.messages() - before} in all")
    return Figures(
        n=args.messages,
        peer=peer_runs,
        paperboy=paperboy_runs,
        peer_mean_bytes=statistics.fmean(peer_sizes) if peer_sizes else 0.0,
        paperboy_mean_bytes=owed.mean_bytes,
        peer_articles=int(seeded["articles"]),
        timings=timings,
    )


def close_django_connections() -> None:
    from django.db import connections

    connections.close_all()


def rate(runs: Sequence[SideRun]) -> float:
    """Messages accepted per second over every round (total messages ÷ total seconds)."""
    seconds = sum(r.seconds for r in runs)
    return sum(r.accepted for r in runs) / seconds if seconds else 0.0


def report(figures: Figures) -> None:
    lines = []
    for side, runs in (("peer", figures.peer), ("paperboy", figures.paperboy)):
        for i, r in enumerate(runs, start=1):
            lines.append(
                f"{side} round={i} owed={r.owed} sent={r.sent} accepted={r.accepted} "
                f"missing={r.missing} seconds={r.seconds:.2f} msgs_per_s={r.per_s:.1f}"
            )
    peer, paperboy = rate(figures.peer), rate(figures.paperboy)
    lines.append(
        f"peer_msgs_per_s={peer:.1f} paperboy_msgs_per_s={paperboy:.1f} "
        f"ratio={paperboy / peer if peer else 0.0:.2f} "
        f"peer_mean_kb={figures.peer_mean_bytes / 1024:.1f} "
        f"paperboy_mean_kb={figures.paperboy_mean_bytes / 1024:.1f} "
        f"n={figures.n} paperboy_n={figures.paperboy[0].owed} "
        f"workers={WORKER_PROCESSES} rounds={len(figures.peer)} missing={figures.missing}"
    )
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with ExitStack() as stack:
        figures = run(args, stack)
    report(figures)
    return 0 if figures.missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
