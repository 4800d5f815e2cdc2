"""The papers matching draws on, and the scorer built of them, kept while they are unchanged.

An edition's candidates (the papers its readers may get), the background (recent papers
that say what is usual), and which candidates each reader had already: read and scored
once per run, whoever is matched against them.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet

from subscriptions.models import Subscriber

from ..models import Delivery, DeliveryPaper, Edition, Paper
from .keywords import PaperIndex
from .readers import FeedbackPapers
from .scorer import Background, EditionScorer, PaperSet
from .sentences import PaperVectors
from .trending import TrendingList
from .vectors import paper_matrix, paper_units, papers_embed
from .windows import first_digest_from, oldest_covered

# The background: the recent papers that say what is usual (the z-scores' reference, and
# how common a phrase is), the last BACKGROUND_DAYS' papers, BACKGROUND_MAX at most.
BACKGROUND_DAYS = 30
BACKGROUND_MAX = 400
BACKGROUND_UNITS_SAMPLE = 120  # of them, whose titles' and sentences' vectors are used


def candidate_papers(edition: Edition, frequency: str) -> QuerySet[Paper]:
    """The papers an edition's readers of one frequency may get.

    A replay of a listing day draws on that day's papers (a weekly reader on the last
    seven days'). An hourly run draws on every paper inside any of its deliveries'
    windows (see digest.matching.windows): each reader is then held to their own window.
    """
    if edition.is_replay:
        date = edition.date
        if frequency == Subscriber.Frequency.WEEKLY:
            return Paper.objects.filter(batch_date__range=(date - dt.timedelta(days=6), date))
        return Paper.objects.filter(batch_date=date)
    # Over all the run's deliveries, matched or not: every chunk of a run, wherever it is
    # matched, must see the same papers (and so get the same scorer).
    bounds = edition.deliveries.filter(subscriber__frequency=frequency).aggregate(
        since=Min("covers_from"),
        until=Max("covers_until"),
        first=Count("id", filter=Q(covers_from__isnull=True)),
    )
    return window_papers(
        since=bounds["since"],
        until=bounds["until"],
        has_first=bool(bounds["first"]),
        frequency=frequency,
    )


def window_papers(
    *, since: dt.datetime | None, until: dt.datetime | None, has_first: bool, frequency: str
) -> QuerySet[Paper]:
    """Papers first seen up to `until` and after `since` (no earlier than the longest
    window allows), plus, if a reader's first digest is among them, those listed since
    the day a first digest reaches back to."""
    if until is None:
        return Paper.objects.none()
    inside = Q()
    if since is not None:
        inside |= Q(first_seen_at__gt=max(since, oldest_covered(until)))
    if has_first:
        inside |= Q(batch_date__gte=first_digest_from(until, frequency))
    if not inside:
        return Paper.objects.none()
    return Paper.objects.filter(inside, first_seen_at__lte=until)


def already_sent_papers(
    subscriber_ids: Sequence[int] | None, paper_ids: Sequence[int], edition: Edition
) -> dict[int, set[int]]:
    """Of these papers, which were already given to each subscriber by another edition.

    `subscriber_ids=None` asks for everyone: the query is driven by the papers (a day's
    few dozen, indexed), and only readers who were given one of them appear. With a few
    readers (a chunk task's), it is driven by their deliveries instead: by the papers, it
    would read every item of the day's other digests to keep a few hundred readers'.
    """
    given = [Delivery.Status.FAILED, Delivery.Status.SKIPPED]
    if subscriber_ids is not None:
        theirs = Delivery.objects.filter(subscriber_id__in=subscriber_ids).exclude(status__in=given)
        if edition.pk is not None:
            theirs = theirs.exclude(edition=edition)
        rows = DeliveryPaper.objects.filter(
            delivery_id__in=list(theirs.order_by().values_list("id", flat=True)),
            paper_id__in=paper_ids,
        )
        sent_to: dict[int, set[int]] = defaultdict(set)
        for subscriber_id, paper_id in rows.values_list("delivery__subscriber_id", "paper_id"):
            sent_to[subscriber_id].add(paper_id)
        return sent_to
    rows = DeliveryPaper.objects.filter(paper_id__in=paper_ids).exclude(delivery__status__in=given)
    if edition.slot is not None:
        # An hourly run's readers are a twenty-fourth of everyone: ask only of them, or
        # each run of the day would read every delivery the day's earlier runs made.
        rows = rows.filter(delivery__subscriber_id__in=edition.deliveries.values("subscriber_id"))
    if edition.pk is not None:  # a preview's edition may not be saved yet
        rows = rows.exclude(delivery__edition=edition)
    sent: dict[int, set[int]] = defaultdict(set)
    for subscriber_id, paper_id in rows.values_list("delivery__subscriber_id", "paper_id"):
        sent[subscriber_id].add(paper_id)
    return sent


def recent_papers(date: dt.date) -> QuerySet[Paper]:
    """The background's papers (see `background_papers`), unread."""
    return Paper.objects.filter(
        batch_date__range=(date - dt.timedelta(days=BACKGROUND_DAYS), date)
    ).order_by("-batch_date", "-upvotes", "id")[:BACKGROUND_MAX]


def background_papers(
    date: dt.date, *, on_progress: Callable[[int, int], None] | None = None
) -> list[Paper]:
    """The recent papers that say what is usual: the last month's, the newest first.

    The day's own papers are among them, so embedding these embeds the edition too.
    """
    recent = list(recent_papers(date))
    papers_embed(recent, on_progress=on_progress)
    return recent


def edition_scorer(papers: Sequence[Paper], background: Sequence[Paper]) -> EditionScorer:
    """A scorer of `papers` (embedded here if they are not yet) against `background`."""
    papers_embed(papers)
    units, starts = paper_units(papers)
    # Per-reader z-scores of sentence-level closeness need a background of sentences too;
    # a sample of the recent papers is plenty for a mean and a spread, and keeps matching
    # many readers cheap.
    sample = list(background)[:: max(1, len(background) // BACKGROUND_UNITS_SAMPLE)]
    bg_units, bg_starts = paper_units(sample)
    edition = PaperSet(
        paper_ids=[p.id for p in papers],
        index=PaperIndex.build(papers),
        vectors=PaperVectors(paper_matrix(papers), units, starts),
        upvotes=[p.upvotes for p in papers],
        seen=[p.first_seen_at.timestamp() for p in papers],
        listed=[p.batch_date.toordinal() for p in papers],
    )
    usual = Background(
        index=PaperIndex.build(background),
        vectors=PaperVectors(paper_matrix(background), bg_units, bg_starts),
    )
    return EditionScorer(edition, usual)


def recent_papers_embed(
    date: dt.date, *, on_progress: Callable[[int, int], None] | None = None
) -> None:
    """Embed the recent papers of `date` (the edition's among them) ahead of matching, so
    a caller can show the slow part's progress: `on_progress(done, total)`."""
    background_papers(date, on_progress=on_progress)


class _ScorerCache:
    """The last few scorers this process built, by what they were built from.

    Hourly runs match a day's readers a few thousand at a time, mostly against the same
    papers: the scorer (papers' vectors and indexes, and each phrase's signals, filled in
    as readers bring phrases) is built once and shared by every run until a paper's text,
    vectors or dates change, or the set of papers does. Upvotes move every hour and only
    tip ties and order the trending list, so a new count is copied into the kept scorer
    rather than making a new one (and its phrases' signals afresh). The key is read with
    one light query; the papers' vectors are loaded only to build a new scorer.
    """

    SIZE = 4  # a daily and a weekly scorer, and the previous hour's pair
    # What a scorer is made of, besides upvotes: a change to any of these makes a new one.
    # (Vectors too, but a paper's are made once, from its text, by the first scorer.)
    MADE_OF = ("id", "first_seen_at", "batch_date", "title", "abstract", "ai_keywords")
    MADE_OF_TOO = ("ai_summary",)

    def __init__(self) -> None:
        self._scorers: OrderedDict[tuple[Any, ...], EditionScorer] = OrderedDict()

    def clear(self) -> None:
        self._scorers.clear()

    def get(self, papers: QuerySet[Paper], date: dt.date) -> tuple[EditionScorer, list[int]]:
        rows = list(papers.order_by("id").values_list(*self.MADE_OF, *self.MADE_OF_TOO, "upvotes"))
        made_of = [row[:-1] for row in rows]
        # The background only sets what is usual; which papers it is of is enough.
        background = tuple(recent_papers(date).values_list("id", flat=True))
        key = (tuple(map(_hashable, made_of)), background)
        scorer = self._scorers.get(key)
        if scorer is None:
            built = list(papers.order_by("id"))
            scorer = self._scorers[key] = edition_scorer(built, background_papers(date))
            while len(self._scorers) > self.SIZE:
                self._scorers.popitem(last=False)
        else:
            scorer.set_upvotes([row[-1] for row in rows])
        self._scorers.move_to_end(key)
        return scorer, [row[0] for row in rows]


def _hashable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # ai_keywords is a JSON list.
    return tuple(tuple(value) if isinstance(value, list) else value for value in row)


_scorers = _ScorerCache()


class _RunPapers:
    """Per (edition, frequency), the scorer and candidate ids a chunk task found: every
    chunk of a run has the same candidates (see candidate_papers), so a worker process
    looks them up once per run, not once per chunk (two aggregates and the papers' rows,
    a fifth of a small chunk's time). Kept for the last few runs only."""

    SIZE = 8

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[int, str], tuple[EditionScorer, list[int]]] = OrderedDict()

    def get(self, edition: Edition, frequency: str) -> tuple[EditionScorer, list[int]]:
        key = (edition.pk, frequency)
        if key not in self._kept:
            self._kept[key] = _scorers.get(candidate_papers(edition, frequency), edition.date)
            while len(self._kept) > self.SIZE:
                self._kept.popitem(last=False)
        self._kept.move_to_end(key)
        return self._kept[key]

    def clear(self) -> None:
        self._kept.clear()


_run_papers = _RunPapers()


def forget_scorers() -> None:
    """Drop the scorers kept (tests, whose databases come and go)."""
    _scorers.clear()
    _run_papers.clear()


class EditionPapers:
    """The candidate papers of one edition per frequency, scored by one shared scorer.

    The papers (and the recent ones that serve as background) are embedded and indexed
    once per run, however many readers are matched against them; so are the papers that
    other editions already gave to someone, and the vectors of papers readers gave
    feedback on.
    """

    def __init__(self, edition: Edition, *, readers: Sequence[int] | None = None) -> None:
        """`readers`: the only subscribers to be matched (a chunk task's), whose papers
        already sent are all that need looking up; None for all of the edition's."""
        self.edition = edition
        self.readers = readers
        self._built: dict[str, tuple[EditionScorer, list[int]]] = {}
        self._sent_before: dict[int, set[int]] | None = None
        self._trending: dict[str, TrendingList] = {}
        self.feedback_papers = FeedbackPapers()

    def for_frequency(self, frequency: str) -> tuple[EditionScorer, list[int]]:
        if frequency not in self._built:
            if self.readers is not None and self.edition.pk is not None:  # a chunk task's
                self._built[frequency] = _run_papers.get(self.edition, frequency)
            else:
                candidates = candidate_papers(self.edition, frequency)
                self._built[frequency] = _scorers.get(candidates, self.edition.date)
        return self._built[frequency]

    def prepare(self) -> None:
        """Build everything matching will ask for: each frequency's scorer and its table
        of the papers' words, and the papers already sent. (Phrases' signals are made as
        readers bring phrases, and kept with the scorer.)"""
        for frequency in Subscriber.Frequency.values:
            self.trending(frequency)
            self.scorer(frequency).word_table()
        self.sent_before()

    def scorer(self, frequency: str) -> EditionScorer:
        return self.for_frequency(frequency)[0]

    def trending(self, frequency: str) -> TrendingList:
        """The frequency's papers by upvotes (made once, shared by every reader)."""
        if frequency not in self._trending:
            self._trending[frequency] = TrendingList(self.scorer(frequency))
        return self._trending[frequency]

    def sent_before(self) -> dict[int, set[int]]:
        """Per subscriber, which of this edition's candidates another edition gave them."""
        if self._sent_before is None:
            ids = sorted(
                {
                    paper_id
                    for frequency in Subscriber.Frequency.values
                    for paper_id in self.for_frequency(frequency)[1]
                }
            )
            self._sent_before = already_sent_papers(self.readers, ids, self.edition)
        return self._sent_before
