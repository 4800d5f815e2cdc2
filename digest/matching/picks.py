"""Each reader's picks, once their scores are made: the chosen papers, best first, up to
their limit, and why each came.

A paper one of the reader's phrases is in comes for those phrases (keyword reasons,
shared between readers: reasons.py). Otherwise the reason is what brought it: a paper they
liked it is close to, their sentence ("close to what you described"), or the phrase
closest to it in meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any, Protocol

import numpy as np

from . import feedback
from .keywords import Topics
from .phrases import PhraseTable
from .readers import Reader
from .reasons import Match, Reason, SharedReasons
from .sentences import Matrix, Scores

# A reader's sentence counts as the reason when the paper is this unusually close to it
# (the sum of its z-scores: whole paper, best sentence, and the weighted words').
DESCRIBED_Z = 4.0


@dataclass(frozen=True)
class ParsedTopics:
    topics: Topics
    texts: tuple[str, ...]  # the wanted phrases as typed
    blocked: np.ndarray[Any, Any]  # positions of papers an exclusion ("-survey") hits


@dataclass
class Batch:
    """The readers of one `rank_many` call that have phrases (`active`, by position in
    the call), and their phrases' rows of the table, reader after reader."""

    readers: Sequence[Reader]
    active: list[int]
    parsed: list[ParsedTopics]
    slot_starts: list[int]  # where each active reader's rows start in `take`
    take: np.ndarray[Any, Any]  # their phrases' rows
    starts: np.ndarray[Any, Any]  # `slot_starts`, as an array

    def rows(self, attr: str) -> list[Any]:
        """Each active reader's `attr` (their sentence, liked or disliked papers)."""
        return [getattr(self.readers[r], attr) for r in self.active]


class Scored(Protocol):
    """What picking reads of the scorer (scorer.EditionScorer)."""

    paper_ids: list[int]
    phrases: PhraseTable
    reasons: SharedReasons
    use_meaning: bool
    vectors: Matrix


def picks(
    scorer: Scored,
    batch: Batch,
    score: np.ndarray[Any, Any],
    chosen: np.ndarray[Any, Any],
    closeness: dict[int, Scores],
    results: list[list[Match]],
) -> None:
    """Each active reader's chosen papers, best first, up to their limit, with reasons,
    into `results` (by the reader's position in the batch). `closeness`: per active
    reader with a sentence, how close each paper is to it."""
    order = np.argsort(-score, axis=1, kind="stable")
    chosen_in_order = np.take_along_axis(chosen, order, axis=1)
    readers, active, parsed, take = batch.readers, batch.active, batch.parsed, batch.take
    slot_starts = batch.slot_starts
    ends = [*slot_starts[1:], len(take)]
    table_hits = scorer.phrases.hits
    paper_ids, known_reasons = scorer.paper_ids, scorer.reasons.known
    keyword_reasons = scorer.reasons.keyword
    for a in np.flatnonzero(chosen_in_order.any(axis=1)).tolist():
        r = active[a]
        reader = readers[r]
        picked = order[a][chosen_in_order[a]][: reader.limit]
        reader_slots = take[slot_starts[a] : ends[a]]
        # Which of the reader's phrases are in each picked paper (paper x phrase).
        hit_in = table_hits[reader_slots][:, picked].T.tolist()
        texts = parsed[a].texts
        found: list[Match] = []
        for i, score_i, hits in zip(
            picked.tolist(), score[a, picked].tolist(), hit_in, strict=True
        ):
            if any(hits):
                key = (i, *compress(texts, hits))
                reasons = known_reasons.get(key) or keyword_reasons(key)
            else:
                reasons = _meaning_reasons(
                    scorer, reader, parsed[a], i, reader_slots, closeness.get(a)
                )
            found.append(Match(paper_ids[i], score_i, reasons))
        results[r] = found


def _meaning_reasons(
    scorer: Scored,
    reader: Reader,
    parsed: ParsedTopics,
    i: int,
    slots: np.ndarray[Any, Any],
    closeness: Scores | None,
) -> tuple[Reason, ...]:
    """Why a paper none of the reader's phrases is in came: like a paper they liked,
    close to their sentence, or close in meaning to one of their phrases."""
    if not scorer.use_meaning:
        return ()
    if reader.liked is not None and len(reader.liked) and reader.liked_titles:
        sims = reader.liked @ scorer.vectors[i]
        if float(sims.max()) > feedback.FEEDBACK_FROM:
            return scorer.reasons.plain(reader.liked_titles[int(sims.argmax())], "liked")
    if closeness is not None and closeness[i] >= DESCRIBED_Z:
        return scorer.reasons.plain("", "described")
    # Close in meaning to one of their phrases: name the closest one.
    closest = int(np.argmax(scorer.phrases.z[slots, i]))
    return scorer.reasons.plain(parsed.texts[closest], "related")
