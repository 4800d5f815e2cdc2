"""Spreading an edition's matching over processes, or over Celery tasks.

An edition's deliveries are matched a chunk at a time (chunks.py: score, then write),
MATCH_CHUNK readers at most. Two ways run the chunks:

- **Celery chunk tasks** (the hourly run in production): `edition_chunks` cuts the
  unmatched deliveries into chunks, one `match_chunk_task` each, and `chunk_match`
  scores and writes a chunk in whichever worker process takes it. A worker process keeps
  its scorers from chunk to chunk and run to run (candidates.py); the parallelism is the
  workers' processes, and nothing here forks (a prefork worker's processes are daemonic
  and may not have children).
- **In one process** (`edition_match`: `run_daily`, a replay, an evaluation): chunks are
  scored in processes forked from the run (`ChunkScorer`; they inherit the edition's
  scorer, built once, and hand back the phrases they learned), while a second thread
  (`ChunkWriter`), with its own database connection, writes each scored chunk as the
  next ones are scored.

Either way a chunk is scored with Python's cycle collector paused
(chunks.cycle_collector_paused): scoring allocates hundreds of thousands of small
objects, none in cycles, and the collector walked every live object over and over.

What that costs and saves, measured at 100,000 readers against 50 papers on a 2-core
machine (bench/README.md): scored in one process, matching took about 13 s; with the
forked scorers and the writing thread, 8–9 s, so they save about 4–5 s. Pausing the
collector saved a further 2–6 s (15–19 s before). Their costs: a fork per run, whose
children touch their working memory afresh (about 280 MB each at their peak); no
embedding in a child (the parent's onnxruntime session does not survive a fork, so a
reader whose vectors are stale is deferred and scored in the parent); a second database
connection for the writer; and inside an open transaction (an evaluation, a test),
where another connection would not see its rows, none of it: everything runs on the
caller's connection, in order. If every matching moves to Celery tasks, the fork and
the thread can go with `edition_match`; the paused collector stays with the chunk.
"""

from __future__ import annotations

import math
import multiprocessing
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, connections
from django.db.models import QuerySet

from subscriptions.models import Subscriber

from ..lookups import ints
from ..models import Delivery, DeliveryPaper, Edition
from ..statistics import statistics_refresh
from .candidates import EditionPapers
from .chunks import ReasonsEncoder, ScoredChunk, WrittenChunk, score_chunk, write_chunk

MATCH_CHUNK = 2000  # readers scored and written together: bigger saves little, costs memory
# An hourly run's few thousand readers are cut finer, so every scoring process gets a
# share (two chunks each at least) rather than one process scoring a last short chunk
# alone; not below this, where a chunk's fixed queries would start to show.
MATCH_CHUNK_MIN = 250


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
            if scorer.phrases.count > start:
                scored.learned[frequency] = scorer.phrases.learned_since(start)
                known[frequency] = scorer.phrases.count
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
        known = {f: self.papers.scorer(f).phrases.count for f in Subscriber.Frequency.values}
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
                        self.papers.scorer(frequency).phrases.learn(learned)
                    yield scored
        finally:
            _FORKED = None
        # Readers whose vectors were stale: embedded and scored here, where the model is.
        size = max(len(chunk) for chunk in chunks)
        for start in range(0, len(deferred), size):
            again = deferred[start : start + size]
            yield score_chunk(again, self.queued, self.papers, self.encode)


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
    statistics_refresh(DeliveryPaper)  # the senders read these rows next
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
    statistics_refresh(DeliveryPaper)  # the senders read these rows next
    summary = MatchSummary(matched=written.matched)
    for reason, n in written.skipped.items():
        summary.skipped[reason] += n
    return summary
