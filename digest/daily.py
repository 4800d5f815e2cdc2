"""The cycle as plain functions: scrape → plan → match → send.

`run_prepare` is the hourly run: it scrapes the last listing days and plans every digest
owed by now, each subscriber's covering the papers first seen since their previous one.
`edition_prepare` replays one listing day for everyone (the demo, `run_daily --date`).
The management commands and the Celery tasks both call these; neither holds logic of
its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from subscriptions.models import Subscriber

from .mail import BatchResult, SendResult, owed_send
from .matching import MatchSummary, edition_match, recent_papers_embed
from .models import Delivery, Edition
from .planning import edition_plan, ready_to_send, run_plan
from .scraping import ScrapeResult, scrape_papers, scrape_recent
from .sources import huggingface
from .sources.client import SourceError

LOOKBACK_DAYS = 7


def latest_listing_date(*, today: dt.date | None = None) -> dt.date | None:
    """The most recent day (today or up to a week back) on which Hugging Face lists papers:
    a request per day tried. `planning.latest_stored_date` reads the database instead.

    Weekends are passed over without a request: Hugging Face publishes no batch then.
    A source that cannot be reached raises SourceError at the first request.
    """
    day = today or timezone.now().date()
    for _ in range(LOOKBACK_DAYS + 1):
        if day.isoweekday() <= 5 and huggingface.fetch_papers(day):
            return day
        day -= dt.timedelta(days=1)
    return None


def default_sources() -> tuple[str, ...]:
    return ("hf", "arxiv") if settings.PAPERBOY_ARXIV_ENABLED else ("hf",)


@dataclass(frozen=True)
class Listeners:
    """What a caller hears while a run prepares: the scrape's result, then (done, total)
    of the two slow parts, embedding new papers and matching."""

    scraped: Callable[[ScrapeResult], None] | None = None
    embedding: Callable[[int, int], None] | None = None
    matching: Callable[[int, int], None] | None = None


NO_LISTENERS = Listeners()


@dataclass
class Prepared:
    edition: Edition
    scrape: ScrapeResult | None
    matching: MatchSummary
    scrape_error: str = ""  # why the sources could not be read, if they could not


@dataclass
class HourlyRun:
    edition: Edition | None  # None: no digest was owed at this run
    scrape: ScrapeResult | None
    matching: MatchSummary
    scrape_error: str = ""


def edition_prepare(
    *,
    date: dt.date,
    sources: Sequence[str] | None = None,
    scrape: bool = True,
    match: bool = True,
    listeners: Listeners = NO_LISTENERS,
) -> Prepared:
    """Scrape the day's papers, plan the edition and choose every delivery's papers.

    The papers are embedded (once each) before matching, so a caller can show progress
    of the slow parts (`Listeners`). With `match=False` the deliveries are only planned:
    Celery matches them in chunks.
    """
    scraped = scrape_papers(date=date, sources=sources or default_sources()) if scrape else None
    if scraped is not None and listeners.scraped:
        listeners.scraped(scraped)
    recent_papers_embed(date, on_progress=listeners.embedding)
    edition = edition_plan(date=date)
    matching = MatchSummary()
    if match:
        matching = edition_match(edition=edition, on_progress=listeners.matching)
    return Prepared(edition=edition, scrape=scraped, matching=matching)


def run_prepare(
    *,
    now: dt.datetime | None = None,
    sources: Sequence[str] | None = None,
    scrape: bool = True,
    match: bool = True,
    listeners: Listeners = NO_LISTENERS,
) -> HourlyRun:
    """The run of this hour: scrape the last listing days, plan every digest owed by now
    and choose each one's papers (`listeners` as for `edition_prepare`).

    If the sources cannot be read, the digests owed are still planned and matched from
    the papers already stored (`scrape_error` says why): the papers the sources could not
    give are first seen by a later run, so they go in the next digests, not nowhere.
    """
    scraped, error = None, ""
    if scrape:
        today = (now or timezone.now()).date()
        try:
            scraped = scrape_recent(today=today, sources=sources or default_sources())
        except SourceError as exc:
            error = str(exc)
        if scraped is not None and listeners.scraped:
            listeners.scraped(scraped)
    # The cutoff is taken after the scrape, so what it stored is inside this run's windows.
    cutoff = now or timezone.now()
    recent_papers_embed(cutoff.date(), on_progress=listeners.embedding)
    edition = run_plan(now=cutoff)
    matching = MatchSummary()
    if edition is not None and match:
        matching = edition_match(edition=edition, on_progress=listeners.matching)
    return HourlyRun(edition=edition, scrape=scraped, matching=matching, scrape_error=error)


def edition_send(
    *,
    edition: Edition,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[SendResult], None] | None = None,
) -> BatchResult:
    """Send, in this process, every delivery of the edition that is owed now."""
    if on_start:
        on_start(ready_to_send(edition).count())
    return owed_send(edition_id=edition.id, on_progress=on_progress)


def next_due_time() -> dt.datetime | None:
    """When the next digest falls due (an active subscriber's next time), if any is known."""
    upcoming: dt.datetime | None = Subscriber.objects.filter(
        status=Subscriber.Status.ACTIVE, next_due_at__isnull=False
    ).aggregate(first=Min("next_due_at"))["first"]
    return upcoming


def edition_counts(edition: Edition) -> dict[str, int]:
    counts = dict.fromkeys(Delivery.Status.values, 0)
    for row in edition.deliveries.values("status").order_by():
        counts[row["status"]] += 1
    return counts
