"""Plan an edition: who is owed a digest today, and which papers each one gets.

Both steps are idempotent. Planning inserts one Delivery per (edition, subscriber) and
ignores rows that exist; matching only touches queued deliveries that have no papers yet.
Running them twice, or from two schedulers at once, owes nobody a second digest.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import DateTimeField, F, Max, Q, QuerySet, Value
from django.utils import timezone

from subscriptions.models import Subscriber

from .emails import DigestItem
from .lookups import ints
from .matching import Match, Reason
from .models import Delivery, DeliveryPaper, Edition, Paper
from .readers import FeedbackPapers, LoadedReader, load_readers, readers_for
from .relevance import EditionScorer
from .vectors import background_papers, edition_scorer

logger = logging.getLogger(__name__)

MATCH_CHUNK = 2000

SKIP_NO_TOPICS = "no topics to match"
SKIP_NOTHING_MATCHED = "nothing matched their topics"
SKIP_NO_PAPERS = "no papers in this edition"


def latest_paper_date() -> dt.date | None:
    """The latest day that has papers: the edition a preview is most like."""
    latest: dt.date | None = Paper.objects.aggregate(latest=Max("batch_date"))["latest"]
    return latest


def due_frequencies(date: dt.date) -> list[str]:
    """Daily subscribers are due every day; weekly ones on the configured weekday."""
    due = [Subscriber.Frequency.DAILY.value]
    if date.isoweekday() == settings.PAPERBOY_WEEKLY_WEEKDAY:
        due.append(Subscriber.Frequency.WEEKLY.value)
    return due


def candidate_papers(date: dt.date, frequency: str) -> QuerySet[Paper]:
    """A daily digest draws on the day's papers; a weekly one on the last seven days'."""
    if frequency == Subscriber.Frequency.WEEKLY:
        return Paper.objects.filter(batch_date__range=(date - dt.timedelta(days=6), date))
    return Paper.objects.filter(batch_date=date)


def edition_plan(*, date: dt.date, subscriber_ids: Sequence[int] | None = None) -> Edition:
    """Create the edition and a queued delivery for every active subscriber due today.

    `subscriber_ids` narrows it to some subscribers (an evaluation runs its own readers
    through the same path without touching anyone else's digest).
    """
    edition, _ = Edition.objects.get_or_create(date=date)
    now = timezone.now()
    due = Subscriber.objects.filter(
        status=Subscriber.Status.ACTIVE, frequency__in=due_frequencies(date)
    )
    if subscriber_ids is not None:
        due = due.filter(id__in=subscriber_ids)
    _insert_deliveries(edition, due, now)
    if edition.planned_at is None:
        Edition.objects.filter(pk=edition.pk, planned_at__isnull=True).update(planned_at=now)
        edition.refresh_from_db()
    return edition


def _insert_deliveries(edition: Edition, due: QuerySet[Subscriber], now: dt.datetime) -> None:
    """One queued delivery per due subscriber, in a single INSERT … SELECT in the database.

    A hundred thousand subscribers would otherwise travel to Python and back as model
    instances. Rows that exist already (a second run, a second scheduler) are left alone.
    """
    meta = Delivery._meta
    quote = connection.ops.quote_name
    column = {f.name: str(f.column) for f in meta.concrete_fields}
    values = {
        "edition": Value(edition.pk),
        "subscriber": F("id"),
        "interests": F("interests"),
        "status": Value(Delivery.Status.QUEUED.value),
        "skip_reason": Value(""),
        "message_id": Value(""),
        "attempts": Value(0),
        "last_error": Value(""),
        "created_at": Value(now, output_field=DateTimeField()),
    }
    source = due.order_by().annotate(**{f"new_{n}": v for n, v in values.items()})
    select, params = source.values_list(*(f"new_{n}" for n in values)).query.sql_with_params()
    columns = ", ".join(quote(column[n]) for n in values)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({columns}) {select} ON CONFLICT DO NOTHING",
            params,
        )


@dataclass
class MatchSummary:
    matched: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def _chunks(ids: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def already_sent_papers(
    subscriber_ids: Sequence[int] | None, paper_ids: Sequence[int], edition: Edition
) -> dict[int, set[int]]:
    """Of these papers, which were already given to each subscriber by another edition.

    `subscriber_ids=None` asks for everyone: the query is driven by the papers (a day's
    few dozen, indexed), and only readers who were given one of them appear.
    """
    rows = DeliveryPaper.objects.filter(paper_id__in=paper_ids).exclude(
        delivery__status__in=[Delivery.Status.FAILED, Delivery.Status.SKIPPED]
    )
    if subscriber_ids is not None:
        rows = rows.filter(delivery__subscriber_id__in=subscriber_ids)
    if edition.pk is not None:  # a preview's edition may not be saved yet
        rows = rows.exclude(delivery__edition=edition)
    sent: dict[int, set[int]] = defaultdict(set)
    for subscriber_id, paper_id in rows.values_list("delivery__subscriber_id", "paper_id"):
        sent[subscriber_id].add(paper_id)
    return sent


class EditionPapers:
    """The candidate papers of one edition per frequency, scored by one shared scorer.

    The papers (and the recent ones that serve as background) are embedded and indexed
    once per run, however many readers are matched against them; so are the papers that
    other editions already gave to someone, and the vectors of papers readers gave
    feedback on.
    """

    def __init__(self, edition: Edition) -> None:
        self.edition = edition
        self._built: dict[str, tuple[EditionScorer, list[int]]] = {}
        self._background: list[Paper] | None = None
        self._sent_before: dict[int, set[int]] | None = None
        self.feedback_papers = FeedbackPapers()

    def for_frequency(self, frequency: str) -> tuple[EditionScorer, list[int]]:
        if frequency not in self._built:
            if self._background is None:
                self._background = background_papers(self.edition.date)
            papers = list(candidate_papers(self.edition.date, frequency).order_by("id"))
            scorer = edition_scorer(papers, self._background)
            self._built[frequency] = (scorer, [p.id for p in papers])
        return self._built[frequency]

    def scorer(self, frequency: str) -> EditionScorer:
        return self.for_frequency(frequency)[0]

    def sent_before(self) -> dict[int, set[int]]:
        """Per subscriber, which of this edition's candidates another edition gave them."""
        if self._sent_before is None:
            candidates = candidate_papers(self.edition.date, Subscriber.Frequency.WEEKLY)
            ids = list(candidates.values_list("id", flat=True))
            self._sent_before = already_sent_papers(None, ids, self.edition)
        return self._sent_before


def edition_match(*, edition: Edition, subscriber_ids: Sequence[int] | None = None) -> MatchSummary:
    """Choose each queued delivery's papers (with reasons), or skip it with the reason."""
    summary = MatchSummary()
    queued = Delivery.objects.filter(
        edition=edition, status=Delivery.Status.QUEUED, matched_at__isnull=True
    )
    if subscriber_ids is not None:
        queued = queued.filter(subscriber_id__in=subscriber_ids)
    pending = list(queued.order_by("id").values_list("id", flat=True))
    papers = EditionPapers(edition)
    items = ItemWriter()
    for chunk in _chunks(pending, MATCH_CHUNK):
        _match_chunk(edition, chunk, papers, items, summary)
    return summary


def _skip_reason(interests: Sequence[str], paper_ids: list[int]) -> str:
    if not any(not p.strip().startswith("-") for p in interests):
        return SKIP_NO_TOPICS
    if not paper_ids:
        return SKIP_NO_PAPERS
    return ""


class ItemWriter:
    """Writes a chunk's chosen papers in one statement per few thousand rows.

    The ORM's bulk_create spends most of its time building model instances; at hundreds
    of thousands of items a day that is the bulk of matching. Reasons repeat (a paper
    matched by the same phrase for many readers), so each distinct list is encoded once.
    """

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
        self.reasons_field = meta.get_field("reasons")
        self._encoded: dict[tuple[Reason, ...], Any] = {}

    def row(self, delivery_id: int, rank: int, match: Match) -> tuple[Any, ...]:
        key = tuple(match.reasons)
        encoded = self._encoded.get(key)
        if encoded is None:
            value = [r.as_dict() for r in match.reasons]
            encoded = self.reasons_field.get_db_prep_save(value, connection)
            self._encoded[key] = encoded
        return (delivery_id, match.paper_id, rank, match.score, encoded)

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        with connection.cursor() as cursor:
            for start in range(0, len(rows), self.BATCH):
                cursor.executemany(self.sql, rows[start : start + self.BATCH])


def _match_chunk(
    edition: Edition,
    delivery_ids: Sequence[int],
    papers: EditionPapers,
    items: ItemWriter,
    summary: MatchSummary,
) -> None:
    now = timezone.now()
    with transaction.atomic():
        # Locked and re-checked inside the transaction: a second matcher running at the
        # same time skips these rows instead of matching them again.
        deliveries = dict(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                id__in_ints=ints(delivery_ids),
                status=Delivery.Status.QUEUED,
                matched_at__isnull=True,
            )
            .order_by()
            .values_list("subscriber_id", "id")
        )
        if not deliveries:
            return
        loaded = load_readers(
            list(deliveries),
            scorer_for=papers.scorer,
            papers=papers.feedback_papers,
            exclude=papers.sent_before(),
        )
        by_frequency: dict[str, list[LoadedReader]] = defaultdict(list)
        for one in loaded:
            by_frequency[one.frequency].append(one)
        rows: list[tuple[Any, ...]] = []
        matched_ids: list[int] = []
        skipped_ids: dict[str, list[int]] = defaultdict(list)
        for frequency, group in by_frequency.items():
            scorer, paper_ids = papers.for_frequency(frequency)
            to_rank = [one for one in group if not _skip_reason(one.reader.interests, paper_ids)]
            ranked = dict(
                zip(
                    (one.subscriber_id for one in to_rank),
                    scorer.rank_many([one.reader for one in to_rank]),
                    strict=True,
                )
            )
            for one in group:
                delivery_id = deliveries[one.subscriber_id]
                found = ranked.get(one.subscriber_id, [])
                reason = _skip_reason(one.reader.interests, paper_ids) or (
                    "" if found else SKIP_NOTHING_MATCHED
                )
                if reason:
                    skipped_ids[reason].append(delivery_id)
                    summary.skipped[reason] += 1
                    continue
                rows.extend(items.row(delivery_id, rank, m) for rank, m in enumerate(found, 1))
                matched_ids.append(delivery_id)
                summary.matched += 1
        items.write(rows)
        # One UPDATE per outcome rather than bulk_update's CASE per row: the rows of a chunk
        # share their matched_at, and there are only a few skip reasons.
        Delivery.objects.filter(id__in_ints=ints(matched_ids)).update(matched_at=now)
        for reason, ids in skipped_ids.items():
            Delivery.objects.filter(id__in_ints=ints(ids)).update(
                matched_at=now, status=Delivery.Status.SKIPPED, skip_reason=reason
            )


def ready_to_send(edition: Edition | None = None) -> QuerySet[Delivery]:
    """Queued deliveries with their papers chosen, whose retry time (if any) has come."""
    qs = Delivery.objects.filter(status=Delivery.Status.QUEUED, matched_at__isnull=False).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())
    )
    return qs.filter(edition=edition) if edition is not None else qs


def subscriber_preview(*, subscriber: Subscriber, date: dt.date) -> tuple[list[DigestItem], str]:
    """What this subscriber's digest for `date` would hold, computed without writing.

    Returns (items, skip reason); the reason is empty when there are items.
    """
    edition = Edition.objects.filter(date=date).first() or Edition(date=date)
    papers = EditionPapers(edition)
    scorer, paper_ids = papers.for_frequency(subscriber.frequency)
    reason = _skip_reason(subscriber.interests, paper_ids)
    if reason:
        return [], reason
    sent_before = already_sent_papers([subscriber.id], paper_ids, edition) if subscriber.pk else {}
    # An unsaved copy (the manage page's preview of edited topics) is embedded in memory.
    [reader] = readers_for([subscriber], exclude=sent_before, save=False)
    found = scorer.rank(reader)
    by_id = Paper.objects.in_bulk([m.paper_id for m in found])
    items = [
        DigestItem(paper=by_id[m.paper_id], rank=rank, reasons=[r.as_dict() for r in m.reasons])
        for rank, m in enumerate(found, start=1)
    ]
    return items, "" if items else SKIP_NOTHING_MATCHED
