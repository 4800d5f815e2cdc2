"""One reader's digest, worked out without writing: the admin's and the manage page's
preview, and `preview_digest`."""

from __future__ import annotations

import datetime as dt

from subscriptions.models import Subscriber

from ..mail import DigestItem
from ..models import Edition, Paper
from .candidates import EditionPapers, already_sent_papers, candidate_papers
from .chunks import skip_reason
from .readers import readers_for
from .trending import ONLY, with_trending


def subscriber_preview(*, subscriber: Subscriber, date: dt.date) -> tuple[list[DigestItem], str]:
    """What this subscriber's digest of listing day `date` would hold (their topics and
    the trending mix they chose), computed without writing.

    Returns (items, skip reason); the reason is empty when there are items.
    """
    edition = Edition.objects.filter(date=date, slot=None).first() or Edition(date=date)
    papers = EditionPapers(edition)
    scorer, paper_ids = papers.for_frequency(subscriber.frequency)
    sent_before = already_sent_papers([subscriber.id], paper_ids, edition) if subscriber.pk else {}
    # An unsaved copy (the manage page's preview of edited topics) is embedded in memory.
    [reader] = readers_for([subscriber], exclude=sent_before, save=False)
    topics = [] if reader.trending == ONLY else scorer.rank(reader)
    [found] = with_trending(papers.trending(subscriber.frequency), [reader], [topics])
    by_id = Paper.objects.in_bulk([m.paper_id for m in found])
    items = [
        DigestItem(paper=by_id[m.paper_id], rank=rank, reasons=[r.as_dict() for r in m.reasons])
        for rank, m in enumerate(found, start=1)
    ]
    return items, skip_reason(found, reader, scorer)


def candidates_count(*, date: dt.date, frequency: str) -> int:
    """How many papers a reader of `frequency` may get from listing day `date`."""
    return candidate_papers(Edition(date=date), frequency).count()
