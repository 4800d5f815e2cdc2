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

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from subscriptions.models import Subscriber

from .emails import DigestItem
from .models import Delivery, DeliveryPaper, Edition, Paper
from .relevance import EditionScorer
from .vectors import background_papers, edition_scorer, readers_for

logger = logging.getLogger(__name__)

MATCH_CHUNK = 500

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
    due = Subscriber.objects.filter(
        status=Subscriber.Status.ACTIVE, frequency__in=due_frequencies(date)
    )
    if subscriber_ids is not None:
        due = due.filter(id__in=subscriber_ids)
    rows = due.values_list("id", "interests")
    now = timezone.now()
    batch: list[Delivery] = []
    for subscriber_id, interests in rows.iterator(chunk_size=2000):
        batch.append(
            Delivery(
                edition=edition, subscriber_id=subscriber_id, interests=interests, created_at=now
            )
        )
        if len(batch) >= 2000:
            Delivery.objects.bulk_create(batch, ignore_conflicts=True)
            batch.clear()
    Delivery.objects.bulk_create(batch, ignore_conflicts=True)
    if edition.planned_at is None:
        Edition.objects.filter(pk=edition.pk, planned_at__isnull=True).update(planned_at=now)
        edition.refresh_from_db()
    return edition


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
    subscriber_ids: Sequence[int], paper_ids: Sequence[int], edition: Edition
) -> dict[int, set[int]]:
    """Of these papers, which were already given to each subscriber by another edition."""
    rows = DeliveryPaper.objects.filter(
        delivery__subscriber_id__in=subscriber_ids, paper_id__in=paper_ids
    ).exclude(delivery__status__in=[Delivery.Status.FAILED, Delivery.Status.SKIPPED])
    if edition.pk is not None:  # a preview's edition may not be saved yet
        rows = rows.exclude(delivery__edition=edition)
    sent: dict[int, set[int]] = defaultdict(set)
    for subscriber_id, paper_id in rows.values_list("delivery__subscriber_id", "paper_id"):
        sent[subscriber_id].add(paper_id)
    return sent


class EditionPapers:
    """The candidate papers of one edition per frequency, scored by one shared scorer.

    The papers (and the recent ones that serve as background) are embedded and indexed
    once per run, however many readers are matched against them.
    """

    def __init__(self, edition: Edition) -> None:
        self.edition = edition
        self._built: dict[str, tuple[EditionScorer, list[int]]] = {}
        self._background: list[Paper] | None = None

    def for_frequency(self, frequency: str) -> tuple[EditionScorer, list[int]]:
        if frequency not in self._built:
            if self._background is None:
                self._background = background_papers(self.edition.date)
            papers = list(candidate_papers(self.edition.date, frequency).order_by("id"))
            scorer = edition_scorer(papers, self._background)
            self._built[frequency] = (scorer, [p.id for p in papers])
        return self._built[frequency]


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
    for chunk in _chunks(pending, MATCH_CHUNK):
        _match_chunk(edition, chunk, papers, summary)
    return summary


def _skip_reason(subscriber: Subscriber, paper_ids: list[int]) -> str:
    if not any(not p.strip().startswith("-") for p in subscriber.interests):
        return SKIP_NO_TOPICS
    if not paper_ids:
        return SKIP_NO_PAPERS
    return ""


def _match_chunk(
    edition: Edition, delivery_ids: Sequence[int], papers: EditionPapers, summary: MatchSummary
) -> None:
    now = timezone.now()
    with transaction.atomic():
        # Locked and re-checked inside the transaction: a second matcher running at the
        # same time skips these rows instead of matching them again.
        deliveries = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(id__in=delivery_ids, status=Delivery.Status.QUEUED, matched_at__isnull=True)
            .select_related("subscriber")
        )
        if not deliveries:
            return
        candidate_ids = sorted(
            {pid for d in deliveries for pid in papers.for_frequency(d.subscriber.frequency)[1]}
        )
        sent_before = already_sent_papers(
            [d.subscriber_id for d in deliveries], candidate_ids, edition
        )
        items: list[DeliveryPaper] = []
        matched_ids: list[int] = []
        skipped_ids: dict[str, list[int]] = defaultdict(list)
        readers = readers_for([d.subscriber for d in deliveries], exclude=sent_before)
        for delivery, reader in zip(deliveries, readers, strict=True):
            subscriber = delivery.subscriber
            scorer, paper_ids = papers.for_frequency(subscriber.frequency)
            reason = _skip_reason(subscriber, paper_ids)
            if not reason:
                found = scorer.rank(reader)
                reason = "" if found else SKIP_NOTHING_MATCHED
                items.extend(
                    DeliveryPaper(
                        delivery=delivery,
                        paper_id=m.paper_id,
                        rank=rank,
                        score=m.score,
                        reasons=[r.as_dict() for r in m.reasons],
                    )
                    for rank, m in enumerate(found, start=1)
                )
            if reason:
                skipped_ids[reason].append(delivery.id)
                summary.skipped[reason] += 1
            else:
                matched_ids.append(delivery.id)
                summary.matched += 1
        DeliveryPaper.objects.bulk_create(items, ignore_conflicts=True, batch_size=2000)
        # One UPDATE per outcome rather than bulk_update's CASE per row: the rows of a chunk
        # share their matched_at, and there are only a few skip reasons.
        Delivery.objects.filter(id__in=matched_ids).update(matched_at=now)
        for reason, ids in skipped_ids.items():
            Delivery.objects.filter(id__in=ids).update(
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
    reason = _skip_reason(subscriber, paper_ids)
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
