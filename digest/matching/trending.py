"""The trending list: the papers a digest covers, ranked by upvotes.

A reader without topics gets the top papers of their window (as many as they asked for);
a reader with topics may add the top few (PAPERBOY_TRENDING_EXTRA) to their topics' papers,
or take the trending list alone. Upvotes are read at the run that sends the digest, so the
ranking is the one of that moment. Each pick says where it stands: "#2 today · 212 upvotes".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.conf import settings

from .readers import Reader
from .reasons import Match, Reason
from .scorer import EditionScorer

NONE, FEW, ONLY = "none", "few", "only"  # Subscriber.Trending's values
TRENDING = "trending"  # a Reason's field for a trending pick


def period_word(frequency: str) -> str:
    return "this week" if frequency == "weekly" else "today"


def trending_reason(place: int, upvotes: int, frequency: str) -> Reason:
    """Why a trending paper is there, as the reader reads it (the reason's `topic`)."""
    votes = "1 upvote" if upvotes == 1 else f"{upvotes} upvotes"
    return Reason(
        topic=f"#{place} {period_word(frequency)} · {votes}",
        field=TRENDING,
        before="",
        match="",
        after="",
    )


def trending_count(reader: Reader) -> int:
    """How many trending papers this reader's digest holds, besides their topics'."""
    if reader.trending == ONLY:
        return reader.limit
    if reader.trending == FEW:
        return min(int(settings.PAPERBOY_TRENDING_EXTRA), reader.limit)
    return 0


class TrendingList:
    """An edition's papers by upvotes (most first), ranked once per window."""

    def __init__(self, scorer: EditionScorer) -> None:
        self.scorer = scorer
        # Stable on the scorer's order (by id): equal upvotes keep a fixed order.
        self.order = np.argsort(-scorer.upvotes, kind="stable")
        self._ranked: dict[object, list[int]] = {}
        self._reasons: dict[tuple[int, int, str], tuple[Reason, ...]] = {}

    def _ranked_in(self, reader: Reader) -> list[int]:
        """Positions of the window's papers, most upvoted first (shared per window)."""
        key = reader.window
        ranked = self._ranked.get(key)
        if ranked is None:
            inside = self.scorer.inside(reader.window)
            ranked = self._ranked[key] = self.order[inside[self.order]].tolist()
        return ranked

    def picks(self, reader: Reader, *, taken: set[int], count: int) -> list[Match]:
        """The reader's `count` best-placed papers not already sent or `taken` (by their
        topics), nor matching one of their "-phrase" exclusions."""
        if count <= 0:
            return []
        scorer = self.scorer
        excluded = set(reader.exclude_paper_ids) | taken
        blocked = scorer.excluded_positions(reader)
        found: list[Match] = []
        for place, i in enumerate(self._ranked_in(reader), start=1):
            paper_id = scorer.paper_ids[i]
            if paper_id in excluded or i in blocked:
                continue
            upvotes = int(scorer.upvotes[i])
            key = (place, upvotes, reader.frequency)
            reasons = self._reasons.get(key)
            if reasons is None:
                reasons = self._reasons[key] = (trending_reason(*key),)
            found.append(Match(paper_id, float(upvotes), reasons))
            if len(found) == count:
                break
        return found


def with_trending(
    trending: TrendingList, readers: Sequence[Reader], topics: Sequence[list[Match]]
) -> list[list[Match]]:
    """Each reader's digest: their topics' papers (unless trending only), then their
    trending picks."""
    digests: list[list[Match]] = []
    for reader, matches in zip(readers, topics, strict=True):
        own = [] if reader.trending == ONLY else list(matches)
        count = trending_count(reader)
        if count:
            own += trending.picks(reader, taken={m.paper_id for m in own}, count=count)
        digests.append(own)
    return digests
