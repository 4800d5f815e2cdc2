"""Benchmark matching alone: N daily subscribers with sentences and feedback, one edition.

    .venv/bin/python bench/bench_matching.py --subscribers 100000     (make bench MATCH_N=…)

Every subscriber has 3–8 phrases, an intent sentence and stored vectors (keyed as the
product keys them, so nothing is re-embedded); a fifth have feedback on recent papers.
The edition's papers are embedded for real in the set-up; the background papers mostly
get synthetic vectors (see bench/README.md). It then times the product's path,
`edition_plan` and `edition_match`, and, apart, the scoring alone (`EditionScorer.rank`
for every subscriber). Like bench_digest.py it runs on a fresh temporary SQLite file unless
--database-url is given. Progress goes to stderr; the figures to stdout, summary last.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import io
import multiprocessing
import os
import pstats
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script, bench/ is on the path but not the root
    sys.path.insert(0, str(ROOT))

from bench.bench_digest import (  # noqa: E402
    RESERVED_DATABASES,
    check_empty,
    log,
    phase,
    run_on_database,
)

if TYPE_CHECKING:
    import numpy as np

    from bench.synthetic import SyntheticPaper

# The edition's date; the background papers are spread over the days before it.
EDITION_DATE = dt.date(2026, 3, 10)
BACKGROUND_DAYS = 29  # within digest.matching.candidates.BACKGROUND_DAYS (30)
# A synthetic background vector: a real one plus isotropic noise of this norm, normalised.
# 0.3 keeps its similarity to unrelated papers near the real 0.49 ± 0.08 (0.47 ± 0.08)
# and its similarity to the paper it copies at about 0.96.
NOISE_NORM = 0.3
LIKE_RATE = 0.7  # of feedback rows, "more like this"
INSERT_BATCH = 5000
MATCH_TARGET_S = 10.0


# --- Set-up ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000, help="default 100000")
    parser.add_argument("--papers", type=int, default=50, help="papers in the edition (50)")
    parser.add_argument(
        "--background", type=int, default=300, help="recent papers before the edition (300)"
    )
    parser.add_argument(
        "--anchors",
        type=int,
        default=24,
        help="background papers embedded for real; the others copy one with noise (24)",
    )
    parser.add_argument(
        "--real-background",
        action="store_true",
        help="embed every background paper for real (slower set-up: ~0.1-0.2 s a paper)",
    )
    parser.add_argument("--intents", type=int, default=300, help="pool of sentences (300)")
    parser.add_argument(
        "--feedback-rate", type=float, default=0.2, help="share with feedback (0.2)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic data")
    parser.add_argument(
        "--profile",
        metavar="PATH",
        default="",
        help="run edition_match under cProfile, save the stats to PATH and print the top "
        "functions on stderr (the profiler slows the many small calls: match_s swells)",
    )
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=0,
        help="threads of numpy's BLAS (OPENBLAS/OMP/MKL_NUM_THREADS); default: as installed",
    )
    parser.add_argument(
        "--no-scoring", action="store_true", help="skip the separate scoring-only timing"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the data in --database-url when done, to send its edition again with "
        "bench/send_process.py (after setting its deliveries back to queued)",
    )
    parser.add_argument(
        "--send",
        type=int,
        default=0,
        metavar="PROCESSES",
        help="after matching, send every digest to the null backend from this many fresh "
        "sender processes (as Celery's would), and report digests/s and their peak RSS",
    )
    parser.add_argument(
        "--hours",
        type=int,
        default=24,
        help="then match the same subscribers in hourly runs, all due in one hour and then "
        "spread over this many send hours, and compare (default 24; 0 skips it)",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="run on this database instead of a temporary SQLite file, e.g. "
        "postgres://postgres@127.0.0.1:5432/paperboy_bench",
    )
    args = parser.parse_args(argv)
    if args.subscribers < 1 or args.papers < 1 or args.intents < 1:
        parser.error("--subscribers, --papers and --intents must be at least 1")
    if args.background < 0 or args.anchors < 1:
        parser.error("--background must be at least 0 and --anchors at least 1")
    if not 0.0 <= args.feedback_rate <= 1.0:
        parser.error("--feedback-rate is a share, between 0 and 1")
    if args.database_url:
        name = Path(urlsplit(args.database_url).path).name
        if name in RESERVED_DATABASES:
            parser.error(f"the database {name!r} belongs to the tests; use another one")
    return args


def unit_noise(gen: np.random.Generator, rows: int, dims: int) -> np.ndarray[Any, Any]:
    import numpy as np

    noise = gen.standard_normal((rows, dims)).astype(np.float32)
    return noise / np.linalg.norm(noise, axis=1, keepdims=True)


def background_papers(rng: random.Random, n: int) -> list[tuple[SyntheticPaper, dt.date]]:
    """n papers from the days before the edition, a few a day, with their own arXiv ids."""
    from bench.synthetic import make_papers

    made = make_papers(rng, n, EDITION_DATE - dt.timedelta(days=1))
    dated: list[tuple[SyntheticPaper, dt.date]] = []
    for i, paper in enumerate(made):
        day = EDITION_DATE - dt.timedelta(days=1 + i % BACKGROUND_DAYS)
        # make_papers numbers ids from 10000 per call; these start at 20000, so stay unique.
        arxiv_id = f"{day:%y%m}.{20000 + i:05d}"
        published = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(17), tzinfo=dt.UTC)
        dated.append((replace(paper, arxiv_id=arxiv_id, published_at=published), day))
    return dated


def insert_papers(args: argparse.Namespace, rng: random.Random) -> tuple[list[int], list[int]]:
    """The edition's papers and the background; returns both id lists.

    The edition's papers and `--anchors` background papers are embedded for real by the
    product's own `papers_embed` (whatever rows it stores: today the whole text, the title
    and each sentence). Every other background paper copies a random anchor's rows, each
    row plus isotropic noise of norm NOISE_NORM, normalised.
    """
    import numpy as np

    from bench.synthetic import longer_sentences, make_papers
    from digest.matching.embedding import from_bytes, normalise, to_bytes
    from digest.matching.vectors import papers_embed
    from digest.models import Paper

    def as_paper(synthetic: SyntheticPaper, day: dt.date) -> Paper:
        made = Paper(batch_date=day, first_seen_at=now, **vars(synthetic))
        made.abstract = longer_sentences(made.abstract)  # as many sentences as real ones
        return made

    now = dt.datetime.now(dt.UTC)
    edition = [as_paper(p, EDITION_DATE) for p in make_papers(rng, args.papers, EDITION_DATE)]
    background = [as_paper(p, day) for p, day in background_papers(rng, args.background)]
    Paper.objects.bulk_create(edition + background, batch_size=500)
    real = len(background) if args.real_background else min(args.anchors, len(background))
    anchors, copies = background[:real], background[real:]
    log(
        f"embedding {len(edition) + real} papers for real "
        f"({len(edition)} edition, {real} background)…"
    )
    papers_embed(edition + anchors)
    if copies:
        gen = np.random.default_rng(args.seed)
        for paper, which in zip(copies, gen.integers(0, real, len(copies)), strict=True):
            rows = from_bytes(anchors[which].embedding)
            noise = unit_noise(gen, len(rows), rows.shape[1])
            paper.embedding = to_bytes(normalise(rows + NOISE_NORM * noise))
        Paper.objects.bulk_update(copies, ["embedding"], batch_size=200)
    stored = sum(len(from_bytes(p.embedding)) for p in edition)
    log(f"edition papers: {stored} stored vectors ({stored / max(len(edition), 1):.1f} a paper)")
    return [p.id for p in edition], [p.id for p in background]


@dataclass
class Population:
    subscribers: int = 0
    phrases: int = 0  # distinct phrase texts embedded
    intents: int = 0
    with_feedback: int = 0
    feedback_rows: int = 0
    vector_rows: int = 0  # stored vectors, over all subscribers


def insert_subscribers(args: argparse.Namespace, rng: random.Random, pop: Population) -> None:
    """Subscribers with their sentence's and phrases' vectors, stored as the product would.

    Sentences come from a pool and phrases from the vocabulary, so each distinct text is
    embedded once; a subscriber's `intent_vector` is its sentence's row and `embedding` its
    phrases' (digest.matching.vectors.subscribers_embed's layout), under the key the product
    computes, with the sentence's stored words.
    """
    from bench.synthetic import IntentPicker, make_intents, make_subscribers
    from digest.matching.embedding import embed_texts, text_key, to_bytes
    from digest.matching.vectors import subscriber_texts
    from digest.matching.words import intent_words
    from subscriptions.models import Subscriber

    people = make_subscribers(rng, args.subscribers, weekly_rate=0.0)
    pool = make_intents(rng, args.intents)
    picker = IntentPicker(pool)
    intents = [picker.pick(rng, p.topics).sentence for p in people]
    now = dt.datetime.now(dt.UTC)

    def subscriber(i: int) -> Subscriber:
        return Subscriber(
            status=Subscriber.Status.ACTIVE, confirmed_at=now, intent=intents[i], **vars(people[i])
        )

    phrases: set[str] = set()
    for i in range(len(people)):
        phrases.update(subscriber_texts(subscriber(i))[1])
    texts = sorted(phrases | {i.sentence for i in pool})
    log(f"embedding {len(pool)} sentences and {len(phrases)} distinct phrases for real…")
    row_bytes = {t: to_bytes(row) for t, row in zip(texts, embed_texts(texts), strict=True)}
    pop.phrases, pop.intents = len(phrases), len(pool)

    for start in range(0, len(people), INSERT_BATCH):
        batch = [subscriber(i) for i in range(start, min(start + INSERT_BATCH, len(people)))]
        for s in batch:
            intent, wanted = subscriber_texts(s)
            s.intent_vector = row_bytes[intent] if intent else b""
            s.embedding = b"".join(row_bytes[t] for t in wanted)
            s.embedding_key = text_key(intent, *wanted)
            s.intent_words = intent_words(intent)
            pop.vector_rows += len(wanted) + bool(intent)
        Subscriber.objects.bulk_create(batch, batch_size=1000)
        pop.subscribers += len(batch)
        if (start // INSERT_BATCH) % 5 == 4:
            log(f"inserted {pop.subscribers} subscribers")


def insert_feedback(
    args: argparse.Namespace, rng: random.Random, paper_ids: Sequence[int], pop: Population
) -> None:
    """A share of subscribers said "more / less like this" to 1–5 recent papers."""
    from digest.models import Feedback
    from subscriptions.models import Subscriber

    if not paper_ids:
        return
    now = dt.datetime.now(dt.UTC)
    rows: list[Feedback] = []
    ids = Subscriber.objects.order_by("id").values_list("id", flat=True)
    for subscriber_id in ids.iterator(chunk_size=5000):
        if rng.random() >= args.feedback_rate:
            continue
        pop.with_feedback += 1
        for paper_id in rng.sample(list(paper_ids), min(rng.randint(1, 5), len(paper_ids))):
            value = 1 if rng.random() < LIKE_RATE else -1
            rows.append(
                Feedback(
                    subscriber_id=subscriber_id, paper_id=paper_id, value=value, created_at=now
                )
            )
    Feedback.objects.bulk_create(rows, batch_size=2000)
    pop.feedback_rows = len(rows)


def settle_database() -> None:
    """Bring the database to how a live one reaches a run after the set-up's bulk writes.

    SQLite: fold the write-ahead log into the database (a live one has a small log; right
    after a gigabyte of inserts every read would look through a large one). PostgreSQL:
    gather the planner's statistics, which autovacuum keeps on a live database; a table
    just filled has none, and the planner would guess.
    """
    from django.db import connection

    from digest.models import Feedback, Paper
    from subscriptions.models import Subscriber

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        elif connection.vendor == "postgresql":
            # Only the tables the set-up filled: statistics of the empty delivery tables
            # would tell the planner they stay empty, and it would plan their joins so.
            for model in (Subscriber, Paper, Feedback):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def delete_data() -> None:
    """Leave an explicit --database-url as empty as it was found (leaves first)."""
    from digest.models import Delivery, DeliveryPaper, Edition, Feedback, Paper
    from subscriptions.models import Subscriber

    for model in (DeliveryPaper, Delivery, Edition, Feedback, Subscriber, Paper):
        model.objects.all()._raw_delete(model.objects.db)


# --- Measuring ------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Start VmHWM afresh (Linux), so the peak of one phase excludes the set-up's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb(*, since_reset: bool) -> float:
    if since_reset:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    # ru_maxrss is in KiB on Linux (bytes on macOS); it never resets.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


class EmbedCounter:
    """Counts texts the product embeds while it runs (there should be none: all stored)."""

    def __init__(self) -> None:
        import digest.matching.vectors

        self.module = digest.matching.vectors
        self.original: Callable[[Sequence[str]], Any] = self.module.embed_texts
        self.texts = 0

    def __enter__(self) -> EmbedCounter:
        def counting(texts: Sequence[str]) -> Any:
            self.texts += len(texts)
            return self.original(texts)

        self.module.embed_texts = counting  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        self.module.embed_texts = self.original  # type: ignore[assignment]


class MatchClock:
    """Where edition_match's time goes, without a profiler: the product's steps, timed.

    Wraps, for the duration, the functions edition_match calls by name (module globals of
    digest.matching's candidates, chunks and batching, the scorer's and the item INSERT's
    methods). Items are written on a second thread while the next chunk is scored, so
    `write_items` overlaps the others; `other` is what the scoring thread spends besides
    (reading the chunk's deliveries, turning matches into rows, waiting for the writer).
    """

    STEPS = ("already_sent", "load_readers", "rank", "write_items")

    def __init__(self) -> None:
        import digest.matching.batching
        import digest.matching.candidates
        import digest.matching.chunks
        from digest.matching.scorer import EditionScorer

        self.seconds = dict.fromkeys(self.STEPS, 0.0)
        self.targets: list[tuple[Any, str]] = [
            (digest.matching.candidates, "already_sent_papers"),
            (digest.matching.chunks, "load_readers"),
            (EditionScorer, "rank_many"),
            (digest.matching.batching, "write_chunk"),
        ]
        self.originals = [getattr(owner, name) for owner, name in self.targets]

    def _timed(self, step: str, call: Callable[..., Any]) -> Callable[..., Any]:
        seconds = self.seconds

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                seconds[step] += time.perf_counter() - start

        return timed

    def __enter__(self) -> MatchClock:
        for step, (owner, name), original in zip(
            self.STEPS, self.targets, self.originals, strict=True
        ):
            setattr(owner, name, self._timed(step, original))
        return self

    def __exit__(self, *exc: object) -> None:
        for (owner, name), original in zip(self.targets, self.originals, strict=True):
            setattr(owner, name, original)


def profiled(path: str, call: Callable[[], Any]) -> Any:
    profile = cProfile.Profile()
    result = profile.runcall(call)
    profile.dump_stats(path)
    for sort in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(sort).print_stats(25)
        log(f"edition_match profile, by {sort} (saved in {path}):\n{out.getvalue()}")
    return result


# --- The run ------------------------------------------------------------------------------


@dataclass
class Figures:
    pop: Population
    papers: int
    background: int
    timings: dict[str, float] = field(default_factory=dict)
    deliveries: int = 0
    matched: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    items: int = 0
    embedded_during_match: int = 0
    peak_rss_mb: float = 0.0
    process_peak_rss_mb: float = 0.0
    scored: int = 0
    scored_matched: int = 0
    scored_items: int = 0
    profiled: bool = False
    one_hour: HourlyDay | None = None  # every subscriber due in one hourly run
    spread: HourlyDay | None = None  # the same subscribers over --hours send hours
    one_hour_in_run: HourlyDay | None = None  # the same, matched in the run's process
    spread_in_run: HourlyDay | None = None
    match_steps: dict[str, float] = field(default_factory=dict)
    processes: int = 1  # that scored the chunks
    children_peak_rss_mb: float = 0.0  # the largest scoring process's
    sent: int = 0
    owed: int = 0
    sender_peak_rss_mb: float = 0.0
    send_processes: int = 0


def run(args: argparse.Namespace) -> Figures:
    from django.core.management import call_command

    figures = Figures(Population(), args.papers, args.background, profiled=bool(args.profile))
    with phase("migrate", figures.timings):
        call_command("migrate", verbosity=0, interactive=False)
    check_empty()
    try:
        _run_on_empty_database(args, figures)
    finally:
        if args.database_url and not args.keep:
            with phase("clean up", figures.timings):
                delete_data()
    return figures


def _run_on_empty_database(args: argparse.Namespace, figures: Figures) -> None:
    from digest.matching import edition_match
    from digest.models import Delivery, DeliveryPaper
    from digest.planning import edition_plan

    timings, pop = figures.timings, figures.pop
    rng = random.Random(args.seed)
    with phase("papers", timings):
        _, background_ids = insert_papers(args, rng)
    with phase("subscribers", timings):
        insert_subscribers(args, rng, pop)
    with phase("feedback", timings):
        insert_feedback(args, rng, background_ids, pop)
    log(
        f"{pop.subscribers} subscribers, {pop.vector_rows} stored vectors, "
        f"{pop.feedback_rows} feedback rows from {pop.with_feedback} of them"
    )

    # The matcher embeds nothing here, so it would not load the model: drop the set-up's.
    from digest.matching.embedding import release_model

    release_model()
    gc.collect()
    settle_database()
    setup_peak = peak_rss_mb(since_reset=False)
    fresh_peak = reset_peak_rss()  # on Linux this resets ru_maxrss too
    with EmbedCounter() as embedded:
        with phase("plan", timings):
            edition = edition_plan(date=EDITION_DATE)
        figures.deliveries = Delivery.objects.filter(edition=edition).count()
        log(f"planned {figures.deliveries} deliveries for {EDITION_DATE}")
        from digest.matching.batching import scoring_processes

        figures.processes = scoring_processes()
        if args.profile and figures.processes > 1:
            log("--profile sees only this process: scoring runs in forked ones")
        with phase("match", timings):
            if args.profile:
                summary = profiled(args.profile, lambda: edition_match(edition=edition))
            else:
                with MatchClock() as clock:
                    summary = edition_match(edition=edition)
                figures.match_steps = clock.seconds
    figures.peak_rss_mb = peak_rss_mb(since_reset=fresh_peak)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    figures.children_peak_rss_mb = children / (1024 * 1024 if sys.platform == "darwin" else 1024)
    figures.embedded_during_match = embedded.texts
    figures.matched = summary.matched
    figures.skipped = dict(summary.skipped)
    figures.items = DeliveryPaper.objects.filter(delivery__edition=edition).count()
    log(f"matched {summary.matched}, skipped {summary.skipped_total}")

    if args.send:
        send_all(edition, args.send, figures)
    if not args.no_scoring:
        score_only(edition, figures)
    if args.hours:
        spread_over_hours(args.hours, figures)
    figures.process_peak_rss_mb = max(setup_peak, peak_rss_mb(since_reset=False))


@dataclass
class HourlyDay:
    """A day of hourly runs over the same subscribers: their plan and match time in all."""

    hours: int
    plan_s: float = 0.0
    match_s: float = 0.0
    matched: int = 0
    items: int = 0

    @property
    def total_s(self) -> float:
        return self.plan_s + self.match_s


def spread_over_hours(hours: int, figures: Figures) -> None:
    """The same subscribers through the hourly runs beat makes: first all of them due in one
    hour, then each at one of `hours` send hours, one run per hour planning and matching
    only the subscribers whose hour it is. The day's matching should cost about what one hour
    of everyone does: the papers' work (vectors, indexes, each phrase's signals) is shared
    by the day's runs, the subscribers' is per reader.

    Twice: as production runs it, Celery chunk tasks on long-lived worker processes
    (`workers`), and as `run_daily` does in one command, forking scorers per run (`run`).
    """
    figures.one_hour = hourly_day(1, figures, ChunkWorkers(figures.processes))
    figures.spread = hourly_day(hours, figures, ChunkWorkers(figures.processes))
    figures.one_hour_in_run = hourly_day(1, figures, None)
    figures.spread_in_run = hourly_day(hours, figures, None)


class ChunkWorkers:
    """Long-lived processes that match chunk tasks, as Celery's prefork workers do
    (`match_chunk_task`): forked once, before the day's first run, each keeps its
    scorers from chunk to chunk and run to run."""

    def __init__(self, processes: int) -> None:
        self.processes = max(processes, 1)
        self.pool: ProcessPoolExecutor | None = None

    def match(self, edition: Any) -> int:
        from django.conf import settings
        from django.db import connections

        from digest.matching import edition_chunks

        chunks = edition_chunks(edition, processes=settings.PAPERBOY_MATCH_TASK_PROCESSES)
        if self.pool is None:
            connections.close_all()  # no child inherits a connection
            context = multiprocessing.get_context("fork")
            self.pool = ProcessPoolExecutor(self.processes, mp_context=context)
        return sum(self.pool.map(_match_chunk, [edition.id] * len(chunks), chunks))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _match_chunk(edition_id: int, delivery_ids: list[int]) -> int:
    from digest.matching import chunk_match
    from digest.models import Edition

    edition = Edition.objects.get(id=edition_id)
    return chunk_match(edition=edition, delivery_ids=delivery_ids).matched


def hourly_day(hours: int, figures: Figures, workers: ChunkWorkers | None) -> HourlyDay:
    from django.db import connection

    from digest.matching import edition_match, forget_scorers
    from digest.models import Delivery, DeliveryPaper, Paper
    from digest.planning import run_plan
    from subscriptions.models import Subscriber

    with phase(f"forget the last match ({hours} h next)", figures.timings):
        DeliveryPaper.objects.all().delete()
        Delivery.objects.all().delete()
    # And what the last match left in this process: each day starts cold.
    forget_scorers()
    # The runs happen the day after the edition's, when its papers had been seen; subscriber i
    # is due at hour i mod `hours`, a first digest: the papers of the last listing day.
    seen = dt.datetime.combine(EDITION_DATE, dt.time(12), tzinfo=dt.UTC)
    Paper.objects.update(first_seen_at=seen)
    start = seen.replace(hour=0) + dt.timedelta(days=1)
    table = connection.ops.quote_name(Subscriber._meta.db_table)
    with connection.cursor() as cursor:
        for hour in range(hours):
            cursor.execute(
                f"UPDATE {table} SET next_due_at = %s WHERE id %% %s = %s",
                [start + dt.timedelta(hours=hour, minutes=5), hours, hour],
            )
    settle_database()
    day = HourlyDay(hours)
    for hour in range(hours):
        now = start + dt.timedelta(hours=hour, minutes=10)
        began = time.perf_counter()
        edition = run_plan(now=now)
        planned = time.perf_counter()
        if edition is not None and workers is not None:
            day.matched += workers.match(edition)
        elif edition is not None:
            day.matched += edition_match(edition=edition).matched
        day.plan_s += planned - began
        day.match_s += time.perf_counter() - planned
    if workers is not None:
        workers.close()
    day.items = DeliveryPaper.objects.count()
    how = "chunk tasks on worker processes" if workers else "matched in the run"
    log(f"{hours} hourly run(s), {how}: plan {day.plan_s:.2f}s, match {day.match_s:.2f}s")
    return day


def send_all(edition: Any, processes: int, figures: Figures) -> None:
    """Every matched digest rendered and handed to the null backend by fresh sender
    processes (bench/send_process.py), as worker processes would after matching."""
    from bench.bench_digest import send_in_processes
    from digest.planning import ready_to_send

    figures.owed = ready_to_send(edition).count()
    figures.send_processes = processes
    with phase("send", figures.timings):
        senders = send_in_processes(edition.id, figures.owed, processes)
    figures.sent = sum(s["sent"] for s in senders)
    figures.sender_peak_rss_mb = max(s["peak_rss_mb"] for s in senders)
    rendered = sum(s["cards_rendered"] for s in senders)
    reused = sum(s["cards_reused"] for s in senders)
    log(f"sent {figures.sent} of {figures.owed}; cards rendered {rendered}, reused {reused}")
    for error in [e for s in senders for e in s["errors"]][:5]:
        log(f"not sent: {error}")


def _id_chunks(ids: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def score_only(edition: Any, figures: Figures) -> None:
    """The scoring alone: the same scorer and subscribers as edition_match, rank timed apart.

    Subscribers are loaded as the product loads them, MATCH_CHUNK at a time (`load_s`: their
    rows, vectors and feedback); only the rank_many() calls count as `rank_s`. No other
    edition exists, so nothing was sent before: the already-sent query, timed within the
    match, is left out here.
    """
    from digest.matching.batching import MATCH_CHUNK
    from digest.matching.candidates import EditionPapers
    from digest.matching.chunks import cycle_collector_paused
    from digest.matching.readers import load_readers
    from subscriptions.models import Subscriber

    timings = figures.timings
    with phase("scorer", timings):
        papers = EditionPapers(edition)
        scorer = papers.scorer(Subscriber.Frequency.DAILY)
    ids = list(
        Subscriber.objects.filter(status=Subscriber.Status.ACTIVE)
        .order_by("id")
        .values_list("id", flat=True)
    )
    for name in ("load", "rank"):
        timings[name] = 0.0
    log(f"scoring {len(ids)} subscribers alone…")
    step = max(1, len(ids) // MATCH_CHUNK // 10)
    for n, chunk in enumerate(_id_chunks(ids, MATCH_CHUNK), start=1):
        with cycle_collector_paused():  # as the product scores a chunk
            t0 = time.perf_counter()
            loaded = load_readers(
                chunk, scorer_for=papers.scorer, papers=papers.feedback_papers, exclude={}
            )
            t1 = time.perf_counter()
            for found in scorer.rank_many(loaded):
                figures.scored_items += len(found)
                figures.scored_matched += bool(found)
            t2 = time.perf_counter()
        timings["load"] += t1 - t0
        timings["rank"] += t2 - t1
        figures.scored += len(loaded)
        if n % step == 0:
            log(f"scored {figures.scored}: rank {timings['rank']:.1f}s")
    log(f"load {timings['load']:.2f}s, rank {timings['rank']:.2f}s")


def report(figures: Figures) -> bool:
    """Print the figures; False when the run was not what it should be."""
    t, pop = figures.timings, figures.pop
    n = max(figures.deliveries, 1)
    setup = t["migrate"] + t["papers"] + t["subscribers"] + t["feedback"]
    reasons = ", ".join(f"{r}: {k}" for r, k in sorted(figures.skipped.items()))
    per_digest = figures.items / figures.matched if figures.matched else 0.0
    profiled = " (under cProfile)" if figures.profiled else ""
    verdict = "met" if t["match"] < MATCH_TARGET_S else "missed"
    lines = [
        f"setup_s={setup:.2f} (migrate {t['migrate']:.2f}, papers {t['papers']:.2f}, "
        f"subscribers {t['subscribers']:.2f}, feedback {t['feedback']:.2f})",
        f"data: subscribers={pop.subscribers} sentences={pop.intents} "
        f"distinct_phrases={pop.phrases} vector_rows={pop.vector_rows} "
        f"with_feedback={pop.with_feedback} feedback_rows={pop.feedback_rows} "
        f"edition_papers={figures.papers} background_papers={figures.background}",
        f"plan_s={t['plan']:.2f} deliveries={figures.deliveries}",
        f"match_s={t['match']:.2f}{profiled} matched={figures.matched} "
        f"skipped={sum(figures.skipped.values())}"
        + (f" ({reasons})" if reasons else "")
        + f" papers_per_digest={per_digest:.1f} embedded_during_match="
        f"{figures.embedded_during_match} target_s={MATCH_TARGET_S:.0f} ({verdict})",
    ]
    if figures.match_steps and figures.processes > 1:
        lines.append(
            f"match steps: scored in {figures.processes} forked processes (where their time "
            "goes: 'scoring alone' below, in one process); "
            f"write_items_s={figures.match_steps['write_items']:.2f} on the writing thread"
        )
    elif figures.match_steps:
        steps = figures.match_steps
        rest = t["match"] - sum(v for k, v in steps.items() if k != "write_items")
        lines.append(
            "match steps: "
            + " ".join(f"{name}_s={took:.2f}" for name, took in steps.items())
            + f" other_s={rest:.2f} (write_items runs beside the rest, on a second thread)"
        )
    ok = figures.embedded_during_match == 0
    if figures.scored:
        rank_us = t["rank"] / figures.scored * 1e6
        lines.append(
            f"scoring alone: scorer_s={t['scorer']:.2f} load_s={t['load']:.2f} "
            f"rank_s={t['rank']:.2f} rank_per_subscriber_us={rank_us:.0f} "
            f"matched={figures.scored_matched} items={figures.scored_items}"
        )
        same = (figures.scored_matched, figures.scored_items) == (figures.matched, figures.items)
        ok = ok and same
    lines.append(
        f"subscribers={pop.subscribers} papers={figures.papers} plan_s={t['plan']:.2f} "
        f"match_s={t['match']:.2f} per_subscriber_us={t['match'] / n * 1e6:.0f} "
        f"processes={figures.processes} peak_rss_mb={figures.peak_rss_mb:.0f}"
        + (
            f" scoring_process_peak_rss_mb={figures.children_peak_rss_mb:.0f}"
            if figures.processes > 1
            else ""
        )
    )
    if figures.send_processes:
        send_s = t["send"]
        through = t["plan"] + t["match"] + send_s
        lines.insert(
            -1,
            f"send: send_s={send_s:.2f} sent={figures.sent} of {figures.owed} "
            f"processes={figures.send_processes} "
            f"digests_per_s={figures.sent / send_s if send_s else 0:.0f} "
            f"sender_peak_rss_mb={figures.sender_peak_rss_mb:.0f} "
            f"plan_match_send_s={through:.1f}",
        )
        ok = ok and figures.sent == figures.owed
    days = [
        ("chunk tasks on long-lived worker processes (Celery)", figures.one_hour, figures.spread),
        ("in the run's process (run_daily)", figures.one_hour_in_run, figures.spread_in_run),
    ]
    for how, one, spread in days:
        if one is None or spread is None:
            continue
        lines.insert(-1, f"{how}, all in one hourly run: {_day_figures(one)}")
        lines.insert(
            -1,
            f"{how}, spread over {spread.hours} send hours: {_day_figures(spread)} "
            f"ratio_match={_ratio(spread.match_s, one.match_s)} "
            f"ratio_total={_ratio(spread.total_s, one.total_s)} "
            f"ratio_match_to_replay={_ratio(spread.match_s, t['match'])} (target ≤ 1.5)",
        )
        ok = ok and spread.matched == one.matched == figures.matched
    print("\n".join(lines), flush=True)
    log(f"process peak RSS, set-up included: {figures.process_peak_rss_mb:.0f} MB")
    if figures.embedded_during_match:
        log("the product re-embedded texts: stored vectors or keys are not what it expects")
    if figures.scored and not ok:
        log("scoring alone chose other papers than edition_match did")
    return ok


def _day_figures(day: HourlyDay) -> str:
    return (
        f"plan_s={day.plan_s:.2f} match_s={day.match_s:.2f} total_s={day.total_s:.2f} "
        f"matched={day.matched} items={day.items}"
    )


def _ratio(part: float, whole: float) -> str:
    return f"{part / whole:.2f}" if whole else "n/a"


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.blas_threads:
        if "numpy" in sys.modules:
            log("numpy is already loaded: --blas-threads may not take effect")
        for name in BLAS_THREAD_VARIABLES:
            os.environ[name] = str(args.blas_threads)
    threads = {n: os.environ[n] for n in BLAS_THREAD_VARIABLES if n in os.environ}
    log(f"BLAS threads: {threads or 'as installed'}")
    figures = run_on_database(args.database_url, lambda: run(args))
    return 0 if report(figures) else 1


if __name__ == "__main__":
    sys.exit(main())
