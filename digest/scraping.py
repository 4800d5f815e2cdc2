"""Scrape a day's papers from the sources and upsert them as `Paper` rows.

Everything is fetched first and written afterwards in one transaction: network time never
holds a transaction open, and a failure halfway leaves the database as it was. The sources
leave out (and count) any item that could not be stored, so one bad paper never costs the
day its others; each source's counts are kept as a `ScrapeRun`, shown in the admin.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from digest.models import Paper, ScrapeRun
from digest.sources import arxiv, huggingface
from digest.sources.client import SourceError
from digest.sources.records import PaperRecord, Screened, storable_text

logger = logging.getLogger(__name__)

# Order of precedence when two sources know the same paper: HF carries upvotes, comments,
# keywords and the day it was featured, which arXiv knows nothing about.
SOURCES = ("hf", "arxiv")

# What an HF record may set on an existing row: everything it knows.
HF_FIELDS = (
    "title",
    "abstract",
    "authors",
    "published_at",
    "batch_date",
    "upvotes",
    "num_comments",
    "ai_keywords",
    "ai_summary",
    "github_repo",
    "github_stars",
    "project_page",
    "thumbnail",
    "listed_at",
    "source",
)
# What an arXiv record may set on a row arXiv owns: the paper's own metadata (a new version
# can change it). Its batch_date stays the day we first listed it.
ARXIV_FIELDS = ("title", "abstract", "authors", "published_at")
# These keep their stored value when a record has nothing for them: HF adds ai_keywords and
# ai_summary hours after a paper is listed, and one answer that lacks them (or a GitHub
# link) must not erase what an earlier answer gave. Every field but those a record always
# carries (its title, its day, its counts, its source).
KEEP_IF_EMPTY = frozenset(HF_FIELDS) - {"title", "batch_date", "upvotes", "num_comments", "source"}
REFRESH_FIELDS = ("upvotes", "num_comments")
# What HF adds hours after listing a paper: a refresh fills them in if they were missing
# (matching counts the summary's words), and never changes one already there.
REFRESH_IF_MISSING = ("ai_keywords", "ai_summary")
BATCH_SIZE = 500
ERROR_MAX_LENGTH = 2000  # of a ScrapeRun's error: enough for both of HF's URLs and reasons


@dataclass
class ScrapeResult:
    """What a scrape did. `fetched` = `created` + `updated` + `skipped` (unchanged, or an
    arXiv record of a paper HF already has); `refreshed` counts earlier days' papers whose
    upvotes or comments changed. Items a source could not use are not in `fetched`: they
    are counted in `rejected`, by reason; `repaired` counts papers kept once a field was
    mended (a NUL stripped, an unsafe URL dropped)."""

    date: dt.date
    fetched: int = 0
    created: int = 0
    updated: int = 0
    refreshed: int = 0
    skipped: int = 0
    per_source: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # source (and day) -> why it failed
    days: list[dt.date] = field(default_factory=list)  # the listing days read
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> bad items left out
    repaired: dict[str, int] = field(default_factory=dict)  # what was mended -> papers

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> str:
        """One line for a person: what was fetched, stored, and left out or mended, and why."""
        days = ", ".join(f"{day:%a %d %b}" for day in self.days) or f"{self.date}"
        line = (
            f"{self.fetched} papers fetched from {days} "
            f"({self.created} new, {self.updated} updated)"
        )
        if self.rejected:
            line += f"; {self.rejected_total} bad items skipped ({_by_count(self.rejected)})"
        if self.repaired:
            line += f"; mended: {_by_count(self.repaired)}"
        return line


def _by_count(counts: Mapping[str, int]) -> str:
    """The reasons, the commonest first: `title is not a string: 2, id is missing: 1`."""
    ordered = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0].casefold()))
    return ", ".join(f"{reason}: {n}" for reason, n in ordered)


def scrape_papers(*, date: dt.date, sources: Sequence[str] = ("hf",)) -> ScrapeResult:
    """Fetch `date`'s papers from `sources`, refresh recent HF upvotes, upsert everything.

    A source that fails is logged and recorded in `errors` while the others are still
    saved; if every source fails, raises SourceError (the caller should exit non-zero).
    """
    wanted = [name for name in SOURCES if name in sources]
    unknown = set(sources) - set(SOURCES)
    if unknown or not wanted:
        raise ValueError(f"Unknown or no sources {sorted(unknown)!r}; choose from {SOURCES}.")

    result = ScrapeResult(date=date)
    fetched: dict[str, Screened] = {}
    for name in wanted:
        try:
            fetched[name] = _fetch(name, date)
        except SourceError as exc:
            logger.warning("Source %s failed for %s: %s", name, date, exc)
            result.errors[name] = str(exc)
            continue
        result.per_source[name] = len(fetched[name].records)
    if not fetched:
        _record_runs(result, wanted, fetched, created=Counter(), updated=Counter())
        raise SourceError("; ".join(result.errors.values()))

    # Refreshing HF upvotes only makes sense when HF answered today: if it did not, each
    # refresh would wait out the same timeouts only to fail again.
    refresh = _fetch_refresh(date) if "hf" in fetched else []
    today = {r.arxiv_id for r in fetched["hf"].records} if "hf" in fetched else set()

    with transaction.atomic():
        created, updated = _upsert(_merge(fetched))
        result.refreshed = _refresh(refresh, exclude=today)
        _record_runs(result, wanted, fetched, created=created, updated=updated)
    logger.info("Scraped %s: %s", date, result)
    return result


def listing_days(today: dt.date, count: int) -> list[dt.date]:
    """The `count` most recent weekdays up to `today`, newest first: Hugging Face lists
    no papers on weekends, so Monday's run looks back to Friday and Thursday."""
    days: list[dt.date] = []
    day = today
    while len(days) < count:
        if day.isoweekday() <= 5:
            days.append(day)
        day -= dt.timedelta(days=1)
    return days


def scrape_recent(*, today: dt.date, sources: Sequence[str] = ("hf",)) -> ScrapeResult:
    """Fetch the last PAPERBOY_SCRAPE_DAYS listing days and upsert every paper on them.

    Hugging Face keeps adding papers to a day for hours after it starts (and sometimes to
    an earlier day), and upvotes grow for days: each run creates whatever it has not seen,
    whichever day it is listed under, and refreshes the rest. arXiv, which asks for one
    request every 3 s, is read for `today` only. A day that fails is logged and the others
    are still saved; if nothing could be read, raises SourceError.
    """
    wanted = [name for name in SOURCES if name in sources]
    if set(sources) - set(SOURCES) or not wanted:
        raise ValueError(f"Unknown or no sources {sorted(sources)!r}; choose from {SOURCES}.")
    days = listing_days(today, settings.PAPERBOY_SCRAPE_DAYS)
    result = ScrapeResult(date=today, days=days)
    fetched: dict[str, Screened] = {}
    for name in wanted:
        screened = Screened()
        answered = 0
        for day in days if name == "hf" else [today]:
            try:
                screened.extend(_fetch(name, day))
                answered += 1
            except SourceError as exc:
                logger.warning("Source %s failed for %s: %s", name, day, exc)
                result.errors[f"{name} {day.isoformat()}"] = str(exc)
        if answered:
            fetched[name] = screened
            result.per_source[name] = len(screened.records)
    if not fetched:
        _record_runs(result, wanted, fetched, created=Counter(), updated=Counter())
        raise SourceError("; ".join(result.errors.values()))
    with transaction.atomic():
        created, updated = _upsert(_merge(fetched))
        _record_runs(result, wanted, fetched, created=created, updated=updated)
    logger.info("Scraped %s: %s", ", ".join(map(str, days)), result)
    return result


def _fetch(name: str, date: dt.date) -> Screened:
    # Looked up at call time so tests and callers can substitute a source module's function.
    if name == "hf":
        return huggingface.fetch_day(date)
    return arxiv.fetch_day(date)


def _record_runs(
    result: ScrapeResult,
    sources: Sequence[str],
    fetched: Mapping[str, Screened],
    *,
    created: Counter[str],
    updated: Counter[str],
) -> None:
    """Fill in `result`'s totals and keep one ScrapeRun per source asked, read or not."""
    rejected: Counter[str] = Counter()
    repaired: Counter[str] = Counter()
    runs = []
    for name in sources:
        screened = fetched.get(name, Screened())
        rejected.update(screened.skipped)
        repaired.update(screened.repaired)
        errors = [why for where, why in result.errors.items() if where.split()[0] == name]
        runs.append(
            ScrapeRun(
                date=result.date,
                source=name,
                fetched=len(screened.records),
                created=created[name],
                updated=updated[name],
                rejected=screened.skipped.total(),
                rejected_reasons=dict(screened.skipped),
                repaired=dict(screened.repaired),
                # A source's error may quote what it sent: keep it short and storable.
                error=storable_text("; ".join(errors))[:ERROR_MAX_LENGTH],
            )
        )
    ScrapeRun.objects.bulk_create(runs)
    result.created, result.updated = created.total(), updated.total()
    result.fetched = sum(result.per_source.values())
    result.skipped = result.fetched - result.created - result.updated
    result.rejected, result.repaired = dict(rejected), dict(repaired)


def _fetch_refresh(date: dt.date) -> list[PaperRecord]:
    """HF's current list of each of the previous PAPERBOY_REFRESH_DAYS days we hold papers of."""
    since = date - dt.timedelta(days=settings.PAPERBOY_REFRESH_DAYS)
    days = (
        Paper.objects.filter(source=Paper.Source.HF, batch_date__gte=since, batch_date__lt=date)
        # order_by() replaces Meta.ordering, whose -upvotes would defeat the DISTINCT.
        .order_by("batch_date")
        .values_list("batch_date", flat=True)
        .distinct()
    )
    records: list[PaperRecord] = []
    for day in days:
        try:
            records.extend(huggingface.fetch_papers(day))
        except SourceError as exc:
            # Stale upvotes are a small loss; today's papers must still be saved.
            logger.warning("Could not refresh upvotes of %s: %s", day, exc)
    return records


def _merge(fetched: Mapping[str, Screened]) -> list[PaperRecord]:
    """One record per paper, the source of highest precedence winning."""
    merged: dict[str, PaperRecord] = {}
    for name in SOURCES:
        for record in fetched[name].records if name in fetched else []:
            merged.setdefault(record.arxiv_id, record)
    return list(merged.values())


def _upsert(records: list[PaperRecord]) -> tuple[Counter[str], Counter[str]]:
    """Create the new papers in bulk and update the known ones; returns how many papers
    each source created and updated.

    Two scrapes racing to create the same paper make the second one's INSERT fail on the
    unique arxiv_id, which rolls its whole transaction back: a re-run then updates instead.
    """
    existing = Paper.objects.in_bulk([r.arxiv_id for r in records], field_name="arxiv_id")
    new: list[Paper] = []
    changed: list[Paper] = []
    changed_fields: set[str] = set()
    for record in records:
        paper = existing.get(record.arxiv_id)
        if paper is None:
            new.append(Paper(arxiv_id=record.arxiv_id, **_values(record, HF_FIELDS)))
            continue
        names = _apply(paper, record)
        if names:
            changed.append(paper)
            changed_fields.update(names)
    Paper.objects.bulk_create(new, batch_size=BATCH_SIZE)
    _bulk_update(changed, changed_fields)
    # A paper's row names the source of the record that made or changed it.
    return Counter(p.source for p in new), Counter(p.source for p in changed)


def _apply(paper: Paper, record: PaperRecord) -> list[str]:
    """Set on `paper` what `record` may change; return the names of the fields changed."""
    if record.source == Paper.Source.HF:
        names: Iterable[str] = HF_FIELDS
    elif paper.source == Paper.Source.HF:
        return []  # HF's row is richer and its upvotes/batch_date are the truth.
    else:
        names = ARXIV_FIELDS
    changed = []
    for name, value in _values(record, names).items():
        if name in KEEP_IF_EMPTY and value in ("", [], None):
            continue
        if getattr(paper, name) != value:
            setattr(paper, name, value)
            changed.append(name)
    return changed


def _refresh(records: list[PaperRecord], *, exclude: set[str]) -> int:
    """Update upvotes/comments of stored papers from earlier days' lists, and fill in HF's
    summary and keywords where they were missing; returns how many papers changed."""
    latest = {r.arxiv_id: r for r in records if r.arxiv_id not in exclude}
    stored = Paper.objects.in_bulk(list(latest), field_name="arxiv_id")
    changed = []
    for arxiv_id, paper in stored.items():
        record = latest[arxiv_id]
        names = [n for n in REFRESH_FIELDS if getattr(paper, n) != getattr(record, n)]
        names += [n for n in REFRESH_IF_MISSING if not getattr(paper, n) and getattr(record, n)]
        for name in names:
            setattr(paper, name, getattr(record, name))
        if names:
            changed.append(paper)
    _bulk_update(changed, {*REFRESH_FIELDS, *REFRESH_IF_MISSING})
    return len(changed)


def _bulk_update(papers: list[Paper], names: set[str]) -> None:
    if not papers:
        return
    # bulk_update skips auto_now, so updated_at is set by hand.
    now = timezone.now()
    for paper in papers:
        paper.updated_at = now
    Paper.objects.bulk_update(papers, sorted(names | {"updated_at"}), batch_size=BATCH_SIZE)


def _values(record: PaperRecord, names: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(record, name) for name in names}
