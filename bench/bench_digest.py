"""Benchmark one digest edition: plan, match, render and send for N synthetic subscribers.

    .venv/bin/python bench/bench_digest.py --subscribers 10000      (or: make bench N=10000)

By default it runs on a fresh SQLite file in a temporary folder, deleted at the end; it
never opens the developer's database. --database-url runs it on another database (which
must hold no subscribers, papers or editions; the bench deletes its rows afterwards).
Email goes to a null backend that builds each MIME message, as a real backend would, and
drops it. Progress goes to stderr; the figures to stdout, the summary line last.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

if TYPE_CHECKING:
    from bench.synthetic import SyntheticPaper, SyntheticSubscriber
    from digest.mail import BatchResult
    from digest.models import Edition

ROOT = Path(__file__).resolve().parent.parent
NULL_BACKEND = "bench.null_backend.NullBackend"
# Databases the test suite uses; a benchmark must never write there.
RESERVED_DATABASES = {"test", "test_test"}
# Environment that would point the bench at real services (it runs without them), or slow
# it down (DEBUG keeps every query).
UNSET_ENV = ("EMAIL_URL", "PAPERBOY_ESP", "REDIS_URL", "DJANGO_DEBUG")

T0 = time.perf_counter()
PROGRESS_EVERY_S = 10.0
# How soon a finished sender is noticed (the send's time was rounded up to the progress
# period before: up to 10 s, a fifth of a 100,000-digest send).
EXIT_POLL_S = 0.1


def log(message: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {message}", file=sys.stderr, flush=True)


@contextmanager
def phase(name: str, timings: dict[str, float]) -> Iterator[None]:
    log(f"{name}…")
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start
    log(f"{name}: {timings[name]:.2f}s")


# --- Set-up ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000, help="default 10000")
    parser.add_argument("--papers", type=int, default=50, help="papers in the edition")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic data")
    parser.add_argument(
        "--send-processes",
        type=int,
        default=os.cpu_count() or 1,
        help="fresh sender processes draining the edition together (default: one per "
        "core); 0 sends in the bench's own process",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="run on this database instead of a temporary SQLite file, e.g. "
        "postgres://postgres@127.0.0.1:5432/paperboy_bench",
    )
    args = parser.parse_args(argv)
    if args.subscribers < 1 or args.papers < 1:
        parser.error("--subscribers and --papers must be at least 1")
    if args.database_url:
        name = Path(urlsplit(args.database_url).path).name
        if name in RESERVED_DATABASES:
            parser.error(f"the database {name!r} belongs to the tests; use another one")
    return args


def setup_django(database_url: str, var_dir: Path) -> None:
    for name in UNSET_ENV:
        os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "paperboy.settings"
    os.environ["PAPERBOY_VAR_DIR"] = str(var_dir)
    os.environ["DATABASE_URL"] = database_url
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def edition_date() -> dt.date:
    """A date on which weekly subscribers are due too, so every subscriber is planned."""
    from django.conf import settings

    monday = dt.date(2026, 3, 2)
    return monday + dt.timedelta(days=settings.PAPERBOY_WEEKLY_WEEKDAY - 1)


def check_empty() -> None:
    from digest.models import Edition, Paper
    from subscriptions.models import Subscriber

    for model in (Subscriber, Paper, Edition):
        if model.objects.exists():
            raise SystemExit(
                f"bench: the database already holds {model._meta.verbose_name_plural}; "
                "give --database-url an empty database"
            )


def insert_data(
    subscribers: Sequence[SyntheticSubscriber], papers: Sequence[SyntheticPaper], date: dt.date
) -> None:
    from django.db import transaction

    from digest.models import Paper
    from subscriptions.models import Subscriber

    now = dt.datetime.now(dt.UTC)
    with transaction.atomic():
        Paper.objects.bulk_create(
            [Paper(batch_date=date, first_seen_at=now, **vars(p)) for p in papers],
            batch_size=500,
        )
        Subscriber.objects.bulk_create(
            [
                Subscriber(status=Subscriber.Status.ACTIVE, confirmed_at=now, **vars(s))
                for s in subscribers
            ],
            batch_size=2000,
        )


def delete_data() -> None:
    """Leave an explicit --database-url as empty as it was found (leaves first)."""
    from digest.models import Delivery, DeliveryPaper, Edition, Paper
    from subscriptions.models import Subscriber

    for model in (DeliveryPaper, Delivery, Edition, Subscriber, Paper):
        model.objects.all()._raw_delete(model.objects.db)


# --- The run ------------------------------------------------------------------------------


@dataclass
class Figures:
    subscribers: int
    papers: int
    timings: dict[str, float]
    deliveries: int = 0
    matched: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] | None = None
    papers_per_digest: float = 0.0
    sent: int = 0
    not_sent: int = 0
    mean_message_kb: float = 0.0
    rss_before_send_mb: float = 0.0
    send_peak_rss_mb: float = 0.0


def run(args: argparse.Namespace) -> Figures:
    from django.core.management import call_command

    timings: dict[str, float] = {}
    figures = Figures(args.subscribers, args.papers, timings)
    date = edition_date()

    with phase("migrate", timings):
        call_command("migrate", verbosity=0, interactive=False)
    check_empty()
    try:
        return _run_on_empty_database(args, figures, date)
    finally:
        if args.database_url:
            with phase("clean up", timings):
                delete_data()


def _run_on_empty_database(args: argparse.Namespace, figures: Figures, date: dt.date) -> Figures:
    from bench import null_backend
    from bench.synthetic import make_papers, make_subscribers
    from digest.mail import Outcome
    from digest.matching import edition_match
    from digest.models import Delivery, DeliveryPaper
    from digest.planning import edition_plan, ready_to_send

    timings = figures.timings
    with phase("generate", timings):
        rng = random.Random(args.seed)
        papers = make_papers(rng, args.papers, date)
        subscribers = make_subscribers(rng, args.subscribers)
    with phase("insert", timings):
        insert_data(subscribers, papers, date)
    del papers, subscribers

    with phase("plan", timings):
        edition = edition_plan(date=date)
    figures.deliveries = Delivery.objects.filter(edition=edition).count()
    log(f"planned {figures.deliveries} deliveries for {date}")

    with phase("match", timings):
        summary = edition_match(edition=edition)
    figures.matched = summary.matched
    figures.skipped = summary.skipped_total
    figures.skipped_by_reason = dict(summary.skipped)
    items = DeliveryPaper.objects.filter(delivery__edition=edition).count()
    figures.papers_per_digest = items / summary.matched if summary.matched else 0.0
    log(f"matched {summary.matched}, skipped {summary.skipped_total}")

    owed = ready_to_send(edition).count()
    if args.send_processes:
        with phase("send", timings):
            senders = send_in_processes(edition.id, owed, args.send_processes)
        figures.sent = sum(s["sent"] for s in senders)
        figures.send_peak_rss_mb = max(s["peak_rss_mb"] for s in senders)
        sent_bytes = sum(s["bytes"] for s in senders)
        rendered = sum(s["cards_rendered"] for s in senders)
        reused = sum(s["cards_reused"] for s in senders)
        errors = [e for s in senders for e in s["errors"]]
    else:
        batch = send_here(edition.id, owed, figures)
        figures.sent = batch.count(Outcome.SENT)
        sent_bytes, errors = null_backend.STATS.bytes, batch.errors
        rendered, reused = batch.cards_rendered, batch.cards_reused
    figures.not_sent = owed - figures.sent
    if figures.sent:
        figures.mean_message_kb = sent_bytes / figures.sent / 1024
    log(f"cards rendered {rendered}, reused {reused}")
    for error in errors[:5]:
        log(f"not sent: {error}")
    log_statuses(edition)
    return figures


def send_here(edition_id: int, owed: int, figures: Figures) -> BatchResult:
    """Send in this process (--send-processes 0: for a profiler)."""
    from django.test import override_settings

    from digest.mail import SendResult, owed_send

    step = max(1, owed // 20)
    done = 0
    send_start = time.perf_counter()

    def progress(result: SendResult) -> None:
        nonlocal done
        done += 1
        if done % step == 0 or done == owed:
            rate = done / (time.perf_counter() - send_start)
            log(f"send {done}/{owed} ({rate:.0f}/s)")

    figures.rss_before_send_mb = rss_now_mb()
    peak_rss_reset()
    with phase("send", figures.timings), override_settings(EMAIL_BACKEND=NULL_BACKEND):
        batch = owed_send(edition_id=edition_id, on_progress=progress)
    figures.send_peak_rss_mb = peak_rss_mb()
    return batch


def send_in_processes(edition_id: int, owed: int, count: int) -> list[dict[str, Any]]:
    """`count` fresh sender processes drain the edition together, as Celery's would; the
    progress is read from the database meanwhile."""
    from django.db import connection

    from digest.models import Delivery

    database = os.environ["DATABASE_URL"]
    command = [sys.executable, str(ROOT / "bench" / "send_process.py"), str(edition_id)]
    command += [database, os.environ["PAPERBOY_VAR_DIR"]]
    connection.close()  # SQLite: no open transaction of ours in the senders' way
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE) for _ in range(count)]
    start = time.perf_counter()
    next_count = start + PROGRESS_EVERY_S
    while any(p.poll() is None for p in procs):
        # The senders' end is seen within EXIT_POLL_S, so the send's time is theirs; the
        # progress is counted only every PROGRESS_EVERY_S: counting a million rows is work
        # for the database the senders share (a count a second cost a tenth of the rate).
        time.sleep(EXIT_POLL_S)
        if time.perf_counter() < next_count:
            continue
        next_count += PROGRESS_EVERY_S
        sent = Delivery.objects.filter(edition_id=edition_id, status=Delivery.Status.SENT).count()
        connection.close()
        log(f"send {sent}/{owed} ({sent / (time.perf_counter() - start):.0f}/s)")
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"bench: a sender process failed ({proc.returncode})")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def rss_now_mb() -> float:
    return _proc_status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    return _proc_status_kb("VmHWM") / 1024


def peak_rss_reset() -> None:
    """Start the peak-RSS count afresh (Linux: "5" to clear_refs resets VmHWM), so the
    send's own peak is measured, not the data generation's before it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        log("could not reset the peak RSS: send_peak_rss_mb includes the set-up")


def _proc_status_kb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform != "darwin" else rss / 1024


def log_statuses(edition: Edition) -> None:
    from digest.models import Delivery

    counts = dict.fromkeys(Delivery.Status.values, 0)
    for row in edition.deliveries.values("status").order_by():
        counts[row["status"]] += 1
    log("delivery statuses: " + ", ".join(f"{k}={n}" for k, n in counts.items() if n))


def report(figures: Figures) -> None:
    t = figures.timings
    total = t["plan"] + t["match"] + t["send"]
    render_per_s = figures.sent / t["send"] if t["send"] else 0.0
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_rss_mb = rss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    reasons = ", ".join(f"{r}: {n}" for r, n in sorted((figures.skipped_by_reason or {}).items()))
    lines = [
        f"setup_s={t['migrate'] + t['generate'] + t['insert']:.2f} "
        f"(migrate {t['migrate']:.2f}, generate {t['generate']:.2f}, insert {t['insert']:.2f})",
        f"plan_s={t['plan']:.2f} deliveries={figures.deliveries}",
        f"match_s={t['match']:.2f} matched={figures.matched} skipped={figures.skipped}"
        + (f" ({reasons})" if reasons else "")
        + f" papers_per_digest={figures.papers_per_digest:.1f}",
        f"send_s={t['send']:.2f} sent={figures.sent} not_sent={figures.not_sent} "
        f"mean_message_kb={figures.mean_message_kb:.1f} "
        f"rss_before_send_mb={figures.rss_before_send_mb:.0f} "
        f"send_peak_rss_mb={figures.send_peak_rss_mb:.0f}",
        f"subscribers={figures.subscribers} papers={figures.papers} match_s={t['match']:.2f} "
        f"digests_per_s={render_per_s:.1f} total_s={total:.2f} "
        f"send_peak_rss_mb={figures.send_peak_rss_mb:.0f} peak_rss_mb={peak_rss_mb:.0f}",
    ]
    print("\n".join(lines), flush=True)


def _shown(url: str) -> str:
    """The URL without its password, for the log."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def run_on_database(database_url: str, run: Callable[[], T]) -> T:
    """Set Django up on `database_url`, or on a fresh temporary SQLite file when it is
    empty, call `run`, and leave nothing behind (the temporary folder is removed)."""
    var_dir = Path(tempfile.mkdtemp(prefix="paperboy-bench-"))
    url = database_url or f"sqlite:///{var_dir / 'bench.sqlite3'}"
    log(f"database: {_shown(database_url) or 'temporary SQLite in ' + str(var_dir)}")
    try:
        setup_django(url, var_dir)
        return run()
    finally:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(var_dir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    figures = run_on_database(args.database_url, lambda: run(args))
    report(figures)
    return 0 if figures.not_sent == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
