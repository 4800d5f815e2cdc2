"""Matching an edition a chunk of deliveries at a time: score the chunk, then write it.

Scoring only reads: the chunk's subscribers, their vectors and feedback, ranked by the
edition's shared scorer into rows ready to insert. Writing happens in a transaction that
first locks the chunk's deliveries still queued and unmatched (skipping rows another
matcher holds), and writes only those: two matchers running at once never give anyone
a digest twice, at worst they score a chunk twice.

Because scoring does not hold the lock, the two can overlap: `ChunkWriter` writes a chunk
on a second thread, with its own database connection, while the next chunk is scored.
A day's hundreds of thousands of item rows then cost little more than the scoring. Inside
an open transaction (an evaluation, a test) a second connection would not see its rows,
so there everything is written on the caller's connection, in order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from .edition_papers import EditionPapers
from .lookups import ints
from .matching import Match, Reason
from .models import Delivery, DeliveryPaper
from .readers import LoadedReader, load_readers

SKIP_NO_TOPICS = "no topics to match"
SKIP_NOTHING_MATCHED = "nothing matched their topics"
SKIP_NO_PAPERS = "no papers in this edition"

ItemRow = tuple[int, int, int, float, Any]  # delivery, paper, rank, score, encoded reasons


@dataclass
class ScoredChunk:
    """A chunk's outcome, before it is written: item rows and each delivery's fate."""

    deliveries: list[int] = field(default_factory=list)
    items: list[ItemRow] = field(default_factory=list)
    matched: list[int] = field(default_factory=list)
    skipped: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class WrittenChunk:
    """What a chunk's write did: the deliveries it matched or skipped (those it held)."""

    matched: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def skip_reason(interests: Sequence[str], paper_ids: Sequence[int]) -> str:
    """Why a subscriber gets no digest before anything is scored, or ""."""
    if not any(not p.strip().startswith("-") for p in interests):
        return SKIP_NO_TOPICS
    if not paper_ids:
        return SKIP_NO_PAPERS
    return ""


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


def score_chunk(
    delivery_ids: Sequence[int], queued: Any, papers: EditionPapers, encode: ReasonsEncoder
) -> ScoredChunk:
    """Rank the readers of these deliveries (those still in `queued`), reading only."""
    chunk = ScoredChunk()
    by_subscriber = dict(
        queued.filter(id__in_ints=ints(delivery_ids)).order_by().values_list("subscriber_id", "id")
    )
    if not by_subscriber:
        return chunk
    chunk.deliveries = list(by_subscriber.values())
    loaded = load_readers(
        list(by_subscriber),
        scorer_for=papers.scorer,
        papers=papers.feedback_papers,
        exclude=papers.sent_before(),
    )
    by_frequency: dict[str, list[LoadedReader]] = defaultdict(list)
    for one in loaded:
        by_frequency[one.frequency].append(one)
    for frequency, group in by_frequency.items():
        scorer, paper_ids = papers.for_frequency(frequency)
        reasons = {one.subscriber_id: skip_reason(one.reader.interests, paper_ids) for one in group}
        to_rank = [one for one in group if not reasons[one.subscriber_id]]
        ranked = scorer.rank_many([one.reader for one in to_rank])
        found: dict[int, list[Match]] = {
            one.subscriber_id: matches for one, matches in zip(to_rank, ranked, strict=True)
        }
        for one in group:
            delivery_id = by_subscriber[one.subscriber_id]
            matches = found.get(one.subscriber_id, [])
            reason = reasons[one.subscriber_id] or ("" if matches else SKIP_NOTHING_MATCHED)
            if reason:
                chunk.skipped[reason].append(delivery_id)
                continue
            chunk.matched.append(delivery_id)
            chunk.items.extend(
                (delivery_id, m.paper_id, rank, m.score, encode(m.reasons))
                for rank, m in enumerate(matches, start=1)
            )
    return chunk


class _ItemInsert:
    """The INSERT of item rows, many rows a statement: model instances would cost more
    than the scoring at hundreds of thousands of rows a day."""

    BATCH = 5000

    def __init__(self) -> None:
        meta = DeliveryPaper._meta
        quote = connection.ops.quote_name
        column = {f.name: str(f.column) for f in meta.concrete_fields}
        names = ("delivery", "paper", "rank", "score", "reasons")
        columns = ", ".join(quote(column[n]) for n in names)
        self.sql = (
            f"INSERT INTO {quote(meta.db_table)} ({columns}) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
        )

    def __call__(self, rows: Sequence[ItemRow]) -> None:
        with connection.cursor() as cursor:
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
