"""The public daily pages: each listing day's papers ranked by upvotes, for anyone.

The same cards as the email (`paper_entry`), without reasons or feedback links: there is
no subscriber here. No personal data, so any proxy may cache the pages for a few minutes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from django.conf import settings
from django.db.models import Count, F, QuerySet
from django.db.models.expressions import Window
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils import timezone

from paperboy.text import shorten

from .mail import PaperEntry, paper_entry
from .models import Paper

RECENT_DAYS = 30  # days listed on /papers/
HOME_TOP = 5  # papers shown on the home page
HOME_SUMMARY = 160  # characters: beside the form, a taste, not the whole summary


@dataclass(frozen=True)
class ListingDay:
    date: dt.date
    count: int
    top: PaperEntry


@dataclass(frozen=True)
class TopPapers:
    """A day's most upvoted papers, and how many it has in all."""

    date: dt.date
    count: int
    papers: list[PaperEntry]
    url: str  # the day's page (site-relative)
    is_today: bool  # in the site's time zone: "today's top papers", or "the latest"


@dataclass(frozen=True)
class _Ranked:
    """A paper as paper_entry reads it: its place, no reasons (nobody's topics)."""

    paper: Paper
    rank: int
    reasons: list[dict[str, str]]


def _by_upvotes(papers: QuerySet[Paper]) -> QuerySet[Paper]:
    # arxiv_id breaks ties, so a page and its cache agree on the order.
    return papers.defer("embedding").order_by("-upvotes", "arxiv_id")


def _entries(papers: QuerySet[Paper]) -> list[PaperEntry]:
    return [paper_entry(_Ranked(p, rank, [])) for rank, p in enumerate(papers, start=1)]


def day_path(date: dt.date) -> str:
    return reverse("papers_day", args=[date.isoformat()])


def day_url(date: dt.date) -> str:
    """The day's page, absolute, for emails."""
    return settings.SITE_URL + day_path(date)


def recent_listing_days(*, limit: int = RECENT_DAYS) -> list[ListingDay]:
    """The latest days with papers, newest first, each with its count and top paper
    (two queries, whatever the number of days)."""
    counts = dict(
        Paper.objects.order_by()
        .values_list("batch_date")
        .annotate(n=Count("id"))
        .order_by("-batch_date")[:limit]
    )
    ranked = Paper.objects.filter(batch_date__in=counts).annotate(
        place=Window(
            RowNumber(),
            partition_by=[F("batch_date")],
            order_by=[F("upvotes").desc(), F("arxiv_id").asc()],
        )
    )
    tops = {p.batch_date: p for p in ranked.filter(place=1).defer("embedding")}
    return [
        ListingDay(date, count, paper_entry(_Ranked(tops[date], 1, [])))
        for date, count in counts.items()
        if date in tops
    ]


def day_papers(date: dt.date) -> list[PaperEntry]:
    """The day's papers as the email's cards, most upvoted first."""
    return _entries(_by_upvotes(Paper.objects.filter(batch_date=date)))


def neighbour_days(date: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """The listing days before and after `date` that have papers."""
    dates = Paper.objects.order_by().values_list("batch_date", flat=True)
    before = dates.filter(batch_date__lt=date).order_by("-batch_date").first()
    after = dates.filter(batch_date__gt=date).order_by("batch_date").first()
    return before, after


def latest_top_papers(*, count: int = HOME_TOP) -> TopPapers | None:
    """The latest listing day's most upvoted papers, for the home page; None before the
    first scrape."""
    latest = Paper.objects.order_by("-batch_date").values_list("batch_date", flat=True).first()
    if latest is None:
        return None
    papers = Paper.objects.filter(batch_date=latest)
    return TopPapers(
        date=latest,
        count=papers.count(),
        papers=[
            replace(entry, summary=shorten(entry.summary, HOME_SUMMARY))
            for entry in _entries(_by_upvotes(papers)[:count])
        ],
        url=day_path(latest),
        is_today=latest == timezone.localdate(),
    )
