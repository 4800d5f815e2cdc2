"""Matching an edition a chunk of deliveries at a time: score the chunk, then write it.

Scoring only reads: the chunk's subscribers, their vectors and feedback, ranked by the
edition's shared scorer into rows ready to insert. Writing happens in a transaction that
first locks the chunk's deliveries still queued and unmatched (skipping rows another
matcher holds), and writes only those: two matchers running at once never give anyone
a digest twice, at worst they score a chunk twice.

Because scoring does not hold the lock, the work spreads over the machine's cores:
`ChunkScorer` scores chunks in processes forked from the run (they inherit the edition's
scorer, built once), and `ChunkWriter` writes each scored chunk on a second thread, with
its own database connection, while the next ones are scored. Inside an open transaction
(an evaluation, a test) another connection would not see its rows, so there everything
runs on the caller's connection, in order.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
import multiprocessing
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from subscriptions.models import Subscriber

from ..lookups import ints
from ..models import Delivery, DeliveryPaper, Edition
from .candidates import EditionPapers
from .keywords import Match, Reason
from .readers import LoadedReader, load_readers
from .scorer import EditionScorer, LearnedPhrases, Reader
from .trending import NONE, ONLY, with_trending
from .windows import delivery_window

SKIP_NOTHING_MATCHED = "nothing matched their topics"
SKIP_NO_PAPERS = "no new papers to send"

ItemRow = tuple[int, int, int, float, Any]  # delivery, paper, rank, score, encoded reasons

MATCH_CHUNK = 2000  # readers scored and written together: bigger saves little, costs memory
# An hourly run's few thousand readers are cut finer, so every scoring process gets a
# share (two chunks each at least) rather than one process scoring a last short chunk
# alone; not below this, where a chunk's fixed queries would start to show.
MATCH_CHUNK_MIN = 250


@dataclass
class ScoredChunk:
    """A chunk's outcome, before it is written: item rows and each delivery's fate."""

    deliveries: list[int] = field(default_factory=list)  # those scored
    items: list[ItemRow] = field(default_factory=list)
    matched: list[int] = field(default_factory=list)
    skipped: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    # Not scored here: readers whose vectors must be made first (see ChunkScorer).
    deferred: list[int] = field(default_factory=list)
    asked: int = 0  # deliveries the chunk was made of
    # A forked scorer's phrases new since the fork, by frequency: the run's own scorer
    # takes them, so the next run's processes (forked from it) start knowing them.
    learned: dict[str, LearnedPhrases] = field(default_factory=dict)

    @property
    def settled(self) -> int:
        """Deliveries this chunk is done with (all but the deferred)."""
        return self.asked - len(self.deferred)


@dataclass
class WrittenChunk:
    """What a chunk's write did: the deliveries it matched or skipped (those it held)."""

    matched: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def skip_reason(matches: Sequence[Match], reader: Reader, scorer: EditionScorer) -> str:
    """Why a reader gets no digest, or "" if they get one."""
    if matches:
        return ""
    if reader.trending != NONE or not scorer.inside(reader.window).any():
        return SKIP_NO_PAPERS
    return SKIP_NOTHING_MATCHED


class ReasonsEncoder:
    """Reasons as the database stores them; equal reasons (one shared tuple) encoded once."""

    def __init__(self) -> None:
        self.field = DeliveryPaper._meta.get_field("reasons")
        # By identity: the scorer hands out one shared tuple for equal reasons, and hashing
        # nested tuples of text costs more than the encoding saves. Each entry holds its
        # tuple, so an id is never reused while it is in here.
        self._encoded: dict[int, tuple[Sequence[Reason], Any]] = {}

    def __call__(self, reasons: Sequence[Reason]) -> Any:
        known = self._encoded.get(id(reasons))
        if known is not None:
            return known[1]
        encoded = self.field.get_db_prep_save([r.as_dict() for r in reasons], connection)
        self._encoded[id(reasons)] = (reasons, encoded)
        return encoded


@contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Scoring a chunk allocates hundreds of thousands of small objects that reference
    counting frees (none form cycles); meanwhile Python's cycle collector would walk every
    live object again and again, a fifth of the scoring's time. It resumes after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def score_chunk(
    delivery_ids: Sequence[int],
    queued: Any,
    papers: EditionPapers,
    encode: ReasonsEncoder,
    *,
    embed_stale: bool = True,
) -> ScoredChunk:
    """Rank the readers of these deliveries (those still in `queued`), reading only.

    With `embed_stale=False`, readers whose vectors are stale are not scored but
    `deferred`: only the matching's own process embeds.
    """
    with cycle_collector_paused():
        return _score_chunk(delivery_ids, queued, papers, encode, embed_stale)


def _score_chunk(
    delivery_ids: Sequence[int],
    queued: Any,
    papers: EditionPapers,
    encode: ReasonsEncoder,
    embed_stale: bool,
) -> ScoredChunk:
    chunk = ScoredChunk(asked=len(delivery_ids))
    rows = (
        queued.filter(id__in_ints=ints(delivery_ids))
        .order_by()
        .values_list("subscriber_id", "id", "covers_from", "covers_until")
    )
    by_subscriber: dict[int, int] = {}
    bounds: dict[int, tuple[dt.datetime | None, dt.datetime]] = {}
    for subscriber_id, delivery_id, covers_from, covers_until in rows:
        by_subscriber[subscriber_id] = delivery_id
        if covers_until is not None:  # an hourly run's delivery: it covers a window
            bounds[subscriber_id] = (covers_from, covers_until)
    if not by_subscriber:
        return chunk
    loaded = load_readers(
        list(by_subscriber),
        scorer_for=papers.scorer,
        papers=papers.feedback_papers,
        exclude=papers.sent_before(),
        embed_stale=embed_stale,
    )
    chunk.deliveries = [by_subscriber[one.subscriber_id] for one in loaded]
    if len(loaded) < len(by_subscriber):
        scored = {one.subscriber_id for one in loaded}
        chunk.deferred = [d for s, d in by_subscriber.items() if s not in scored]
    by_frequency: dict[str, list[LoadedReader]] = defaultdict(list)
    for one in loaded:
        if one.subscriber_id in bounds:
            covers_from, covers_until = bounds[one.subscriber_id]
            one.reader.window = delivery_window(
                covers_from=covers_from, covers_until=covers_until, frequency=one.frequency
            )
        by_frequency[one.frequency].append(one)
    for frequency, group in by_frequency.items():
        scorer = papers.scorer(frequency)
        readers = [one.reader for one in group]
        to_rank = [reader for reader in readers if reader.trending != ONLY]
        ranked = iter(scorer.rank_many(to_rank))
        topics = [[] if reader.trending == ONLY else next(ranked) for reader in readers]
        digests = with_trending(papers.trending(frequency), readers, topics)
        for one, matches in zip(group, digests, strict=True):
            delivery_id = by_subscriber[one.subscriber_id]
            reason = skip_reason(matches, one.reader, scorer)
            if reason:
                chunk.skipped[reason].append(delivery_id)
                continue
            chunk.matched.append(delivery_id)
            chunk.items.extend(
                (delivery_id, m.paper_id, rank, m.score, encode(m.reasons))
                for rank, m in enumerate(matches, start=1)
            )
    return chunk


# What forked scorers inherit: the chunk's queryset, the edition's papers, the encoder,
# and how many phrases each frequency's scorer knew. Set just before the processes are
# forked; a fork copies it, nothing is sent.
_FORKED: tuple[Any, EditionPapers, ReasonsEncoder, dict[str, int]] | None = None


def _score_forked(delivery_ids: Sequence[int]) -> ScoredChunk:
    assert _FORKED is not None, "only called in processes forked by ChunkScorer"
    queued, papers, encode, known = _FORKED
    try:
        # No embedding here: the parent's model (an onnxruntime session and its threads)
        # does not survive a fork; readers edited since the last run are deferred.
        scored = score_chunk(delivery_ids, queued, papers, encode, embed_stale=False)
        # Hand back the phrases this process worked out (each once: `known` is this
        # process's own copy, moved on as it hands them back).
        for frequency, start in known.items():
            scorer = papers.scorer(frequency)
            if scorer.phrases_known > start:
                scored.learned[frequency] = scorer.phrases_learned_since(start)
                known[frequency] = scorer.phrases_known
        return scored
    finally:
        # A pool's process ends without running exit handlers; leave no connection open.
        connections.close_all()


def scoring_processes() -> int:
    """How many processes may score at once: the setting, or 1 where forking cannot work.

    Inside a transaction a forked process would not see its rows; a daemonic process (a
    Celery prefork worker) may not have children.
    """
    if connection.in_atomic_block or _daemonic():
        return 1
    return int(settings.PAPERBOY_MATCH_PROCESSES)


def _daemonic() -> bool:
    # Celery's prefork workers are made by billiard (its own copy of multiprocessing).
    from billiard.process import current_process as billiard_process

    return bool(multiprocessing.current_process().daemon or billiard_process().daemon)


class ChunkScorer:
    """Scores chunks in order: here, or in forked processes (see the module docstring)."""

    def __init__(
        self, queued: Any, papers: EditionPapers, encode: ReasonsEncoder, *, processes: int
    ) -> None:
        self.queued, self.papers, self.encode = queued, papers, encode
        self.processes = processes

    def scored(self, chunks: Sequence[Sequence[int]]) -> Iterator[ScoredChunk]:
        if self.processes <= 1 or len(chunks) < 2:
            for chunk in chunks:
                yield score_chunk(chunk, self.queued, self.papers, self.encode)
            return
        global _FORKED
        # Everything the children share is made before they are forked: the scorers, the
        # papers already sent. Connections are closed so that no child inherits one; each
        # opens its own (and so does this process, when it next needs one).
        self.papers.prepare()
        known = {f: self.papers.scorer(f).phrases_known for f in Subscriber.Frequency.values}
        _FORKED = (self.queued, self.papers, self.encode, known)
        connections.close_all()
        workers = min(self.processes, len(chunks))
        context = multiprocessing.get_context("fork")
        try:
            deferred: list[int] = []
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                for scored in pool.map(_score_forked, chunks):
                    deferred.extend(scored.deferred)
                    for frequency, learned in scored.learned.items():
                        self.papers.scorer(frequency).learn_phrases(learned)
                    yield scored
        finally:
            _FORKED = None
        # Readers whose vectors were stale: embedded and scored here, where the model is.
        size = max(len(chunk) for chunk in chunks)
        for start in range(0, len(deferred), size):
            again = deferred[start : start + size]
            yield score_chunk(again, self.queued, self.papers, self.encode)


class _ItemInsert:
    """Item rows written many a statement: model instances would cost more than the
    scoring at hundreds of thousands of rows a day.

    On PostgreSQL through COPY, which skips a statement's parse, plan and executor start
    per row: at 100,000 readers (420,000 rows) the writing thread had become the
    matching's bottleneck. COPY has no ON CONFLICT, and needs none: items are written
    only in the transaction that locks their deliveries still unmatched, so none exist
    yet for them (a conflict would be a bug, and rolls the chunk back whole).
    """

    BATCH = 5000
    NAMES = ("delivery", "paper", "rank", "score", "reasons")

    def __init__(self) -> None:
        meta = DeliveryPaper._meta
        quote = connection.ops.quote_name
        column = {f.name: str(f.column) for f in meta.concrete_fields}
        self.table = quote(meta.db_table)
        self.columns = ", ".join(quote(column[n]) for n in self.NAMES)
        self.sql = (
            f"INSERT INTO {self.table} ({self.columns}) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
        )

    def __call__(self, rows: Sequence[ItemRow]) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {self.table} ({self.columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                return
            for start in range(0, len(rows), self.BATCH):
                cursor.executemany(self.sql, rows[start : start + self.BATCH])


_insert_items = _ItemInsert()


def write_chunk(chunk: ScoredChunk) -> WrittenChunk:
    """Write a scored chunk for the deliveries this transaction can lock still unmatched."""
    written = WrittenChunk()
    if not chunk.deliveries:
        return written
    now = timezone.now()
    with transaction.atomic():
        held = set(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(id__in_ints=ints(chunk.deliveries), status=Delivery.Status.QUEUED)
            .filter(matched_at__isnull=True)
            .order_by()
            .values_list("id", flat=True)
        )
        if not held:
            return written
        everything = len(held) == len(chunk.deliveries)
        items = chunk.items if everything else [r for r in chunk.items if r[0] in held]
        matched = chunk.matched if everything else [d for d in chunk.matched if d in held]
        _insert_items(items)
        # One UPDATE per outcome rather than one per row: the rows share their matched_at,
        # and there are only a few skip reasons.
        if matched:
            Delivery.objects.filter(id__in_ints=ints(matched)).update(matched_at=now)
        written.matched = len(matched)
        for reason, ids in chunk.skipped.items():
            mine = [d for d in ids if d in held]
            if mine:
                Delivery.objects.filter(id__in_ints=ints(mine)).update(
                    matched_at=now, status=Delivery.Status.SKIPPED, skip_reason=reason
                )
                written.skipped[reason] = len(mine)
    return written


class ChunkWriter:
    """Writes chunks in order, on a second thread unless `inline` (see the module doc).

    `write(chunk)` returns what the previous write did (None at first), so at most one
    chunk waits; `finish()` returns the last one's and closes the thread's connection.
    An error in a write comes out of the next `write` or `finish`.
    """

    def __init__(self, *, inline: bool) -> None:
        self._pool = None if inline else ThreadPoolExecutor(1, "paperboy-match-writer")
        self._pending: Future[WrittenChunk] | None = None

    def write(self, chunk: ScoredChunk) -> WrittenChunk | None:
        if self._pool is None:
            return write_chunk(chunk)
        done = self._pending.result() if self._pending is not None else None
        self._pending = self._pool.submit(write_chunk, chunk)
        return done

    def finish(self) -> WrittenChunk | None:
        if self._pool is None:
            return None
        try:
            return self._pending.result() if self._pending is not None else None
        finally:
            self._pending = None
            self._pool.submit(_close_connection).result()
            self._pool.shutdown()


def _close_connection() -> None:
    connection.close()


@dataclass
class MatchSummary:
    """What a matching did: deliveries matched, and skipped by reason."""

    matched: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def _chunks(ids: Sequence[int], processes: int) -> Iterator[Sequence[int]]:
    """`ids` in chunks of at most MATCH_CHUNK, even enough to keep `processes` busy."""
    if not ids:
        return
    pieces = max(math.ceil(len(ids) / MATCH_CHUNK), 2 * processes if processes > 1 else 1)
    size = max(min(MATCH_CHUNK, math.ceil(len(ids) / pieces)), min(MATCH_CHUNK_MIN, len(ids)))
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def edition_match(
    *,
    edition: Edition,
    subscriber_ids: Sequence[int] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> MatchSummary:
    """Choose each queued delivery's papers (with reasons), or skip it with the reason.

    Chunk by chunk: chunks are scored (in parallel processes where it can) and each is
    written by a `ChunkWriter` while the next ones are scored (see the module docstring).
    Inside an open transaction everything stays on this connection. `on_progress` gets
    (readers done, readers in all) after each chunk.
    """
    summary = MatchSummary()
    queued = unmatched(edition)
    if subscriber_ids is not None:
        queued = queued.filter(subscriber_id__in=subscriber_ids)
    pending = list(queued.order_by("id").values_list("id", flat=True))
    papers = EditionPapers(edition)
    encode = ReasonsEncoder()
    processes = scoring_processes()
    scorer = ChunkScorer(queued, papers, encode, processes=processes)
    writer = ChunkWriter(inline=connection.in_atomic_block)

    def count(written: WrittenChunk | None) -> None:
        if written is not None:
            summary.matched += written.matched
            for reason, n in written.skipped.items():
                summary.skipped[reason] += n

    done = 0
    try:
        for scored in scorer.scored(list(_chunks(pending, processes))):
            count(writer.write(scored))
            done += scored.settled
            if on_progress:
                on_progress(done, len(pending))
    finally:
        count(writer.finish())
    return summary


def unmatched(edition: Edition) -> QuerySet[Delivery]:
    """The edition's deliveries still queued and without papers."""
    return Delivery.objects.filter(
        edition=edition, status=Delivery.Status.QUEUED, matched_at__isnull=True
    )


def edition_chunks(edition: Edition, *, processes: int) -> list[list[int]]:
    """The edition's unmatched deliveries, in chunks for `processes` to match together
    (Celery tasks: see digest.tasks.match_chunk_task)."""
    pending = list(unmatched(edition).order_by("id").values_list("id", flat=True))
    return [list(chunk) for chunk in _chunks(pending, processes)]


def chunk_match(*, edition: Edition, delivery_ids: Sequence[int]) -> MatchSummary:
    """Match one chunk of the edition's deliveries here, scoring and writing it.

    A worker process keeps its scorers from chunk to chunk and run to run (they are
    kept by what they are made of: digest.matching.candidates), so only its first chunk of
    the day pays for building them. Papers already sent are looked up for this chunk's
    readers only. Writing locks the chunk's rows still unmatched, so a chunk matched
    twice (a task delivered twice, a sweep's re-run) gives nobody a second digest.
    """
    queued = unmatched(edition)
    readers = list(
        queued.filter(id__in_ints=ints(delivery_ids)).values_list("subscriber_id", flat=True)
    )
    papers = EditionPapers(edition, readers=readers)
    written = write_chunk(score_chunk(delivery_ids, queued, papers, ReasonsEncoder()))
    summary = MatchSummary(matched=written.matched)
    for reason, n in written.skipped.items():
        summary.skipped[reason] += n
    return summary
