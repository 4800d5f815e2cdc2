"""The public daily page: each listing day's papers ranked by upvotes, for anyone.

No personal data, so the pages can be cached by any proxy for a few minutes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Max

from .emails import PaperEntry, paper_entry
from .models import Paper

RECENT_DAYS = 30  # days listed on /papers/


@dataclass(frozen=True)
class ListingDay:
    date: dt.date
    count: int
    top: Paper | None


@dataclass(frozen=True)
class _Ranked:
    """A paper as paper_entry reads it: its place, no reasons (nobody's topics)."""

    paper: Paper
    rank: int
    reasons: list[dict[str, str]]


def recent_listing_days(*, limit: int = RECENT_DAYS) -> list[ListingDay]:
    rows = list(
        Paper.objects.order_by()
        .values("batch_date")
        .annotate(n=Count("id"), most=Max("upvotes"))
        .order_by("-batch_date")[:limit]
    )
    days = []
    for row in rows:
        top = (
            Paper.objects.filter(batch_date=row["batch_date"])
            .order_by("-upvotes", "arxiv_id")
            .first()
        )
        days.append(ListingDay(row["batch_date"], row["n"], top))
    return days


def day_papers(date: dt.date) -> list[PaperEntry]:
    """The day's papers as the email's cards, most upvoted first."""
    papers = Paper.objects.filter(batch_date=date).order_by("-upvotes", "arxiv_id")
    return [paper_entry(_Ranked(p, rank, [])) for rank, p in enumerate(papers, start=1)]


def neighbour_days(date: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """The listing days before and after `date` that have papers."""
    before = Paper.objects.filter(batch_date__lt=date).aggregate(d=Max("batch_date"))["d"]
    after = (
        Paper.objects.filter(batch_date__gt=date)
        .order_by("batch_date")
        .values_list("batch_date", flat=True)
        .first()
    )
    return before, after
