"""One chunk of an edition's deliveries: its readers scored, then their digests written.

Scoring only reads: the chunk's readers (readers.py), ranked by the edition's shared
scorer (candidates.py, scorer.py) with their trending picks (trending.py), into item rows
ready to insert, and each delivery's fate (matched, or skipped with the reason). Writing
happens in a transaction that first locks the chunk's deliveries still queued and
unmatched (skipping rows another matcher holds), and writes only those: two matchers
running at once never give anyone a digest twice, at worst they score a chunk twice.
Where chunks are scored and written, and how many at once, is batching.py's.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from ..lookups import ints
from ..models import Delivery, DeliveryPaper
from .candidates import EditionPapers
from .phrases import LearnedPhrases
from .readers import Reader, load_readers
from .reasons import Match, Reason
from .scorer import EditionScorer
from .trending import NONE, ONLY, with_trending
from .windows import delivery_window

SKIP_NOTHING_MATCHED = "nothing matched their topics"
SKIP_NO_PAPERS = "no new papers to send"

ItemRow = tuple[int, int, int, float, str]  # delivery, paper, rank, score, reasons (JSON)


@dataclass
class ScoredChunk:
    """A chunk's outcome, before it is written: item rows and each delivery's fate."""

    deliveries: list[int] = field(default_factory=list)  # those scored
    items: list[ItemRow] = field(default_factory=list)
    matched: list[int] = field(default_factory=list)
    skipped: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    # Not scored here: readers whose vectors must be made first (see batching.ChunkScorer).
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
    """Reasons as the database stores them, JSON text; equal reasons (one shared tuple)
    encoded once. Text rather than the field's own database value: on PostgreSQL that is
    a Jsonb wrapper, which psycopg serialises again for every row it writes (about half
    the COPY's time, at millions of rows a day)."""

    def __init__(self) -> None:
        # By identity: the scorer hands out one shared tuple for equal reasons, and hashing
        # nested tuples of text costs more than the encoding saves. Each entry holds its
        # tuple, so an id is never reused while it is in here.
        self._encoded: dict[int, tuple[Sequence[Reason], str]] = {}

    def __call__(self, reasons: Sequence[Reason]) -> str:
        known = self._encoded.get(id(reasons))
        if known is not None:
            return known[1]
        # What JSONField writes: json.dumps with its encoder (none: the standard one).
        encoded = json.dumps([r.as_dict() for r in reasons])
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
    chunk.deliveries = [by_subscriber[reader.key] for reader in loaded]
    if len(loaded) < len(by_subscriber):
        scored = {reader.key for reader in loaded}
        chunk.deferred = [d for s, d in by_subscriber.items() if s not in scored]
    by_frequency: dict[str, list[Reader]] = defaultdict(list)
    for reader in loaded:
        if reader.key in bounds:
            covers_from, covers_until = bounds[reader.key]
            reader.window = delivery_window(
                covers_from=covers_from, covers_until=covers_until, frequency=reader.frequency
            )
        by_frequency[reader.frequency].append(reader)
    for frequency, readers in by_frequency.items():
        scorer = papers.scorer(frequency)
        to_rank = [reader for reader in readers if reader.trending != ONLY]
        ranked = iter(scorer.rank_many(to_rank))
        topics = [[] if reader.trending == ONLY else next(ranked) for reader in readers]
        digests = with_trending(papers.trending(frequency), readers, topics)
        for reader, matches in zip(readers, digests, strict=True):
            delivery_id = by_subscriber[reader.key]
            reason = skip_reason(matches, reader, scorer)
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
