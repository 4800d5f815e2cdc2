"""The sentence's words signal: the words of a reader's sentence matched as words (BM25).

A sentence vector blurs exact terms a reader chose on purpose ("OCR", "reranker"); the
words keep them. They are scored as search engines do (BM25: a rare word counts more than
a common one, a repeated word with diminishing returns, a long abstract does not win by
length) and turned into z-scores against the recent papers, like the meanings. A paper's
words are its title, HF's keywords, abstract and HF's one-sentence summary.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from .keywords import PaperIndex, text_stems
from .sentences import Scores, zscores

BM25_K1, BM25_B = 1.2, 0.75  # the usual BM25 constants: term saturation, length norm
WORDS_REFERENCE_SAMPLE = 120  # background papers the words' z-scores are measured against
# Rows the word table starts with; it doubles as words arrive, so this only spares the
# first few copies.
INITIAL_WORDS = 64


def intent_terms_of(intent: str) -> tuple[str, ...]:
    """The distinct stemmed words of a reader's sentence, its BM25 query. No stop-word
    list: a word most papers use ("models", "the") has an inverse document frequency near
    0 over the recent papers, so it counts for almost nothing."""
    return tuple(dict.fromkeys(text_stems(intent)))


def intent_words(intent: str) -> str:
    """A sentence's BM25 words as stored (space-separated): stemming a hundred thousand
    sentences every morning would cost a second; it is done once per edit instead."""
    return " ".join(intent_terms_of(intent))


def stored_intent_terms(intent: str, words: str) -> tuple[str, ...]:
    """The sentence's words from their stored form, or made now if not stored yet."""
    if not intent.strip():
        return ()
    return tuple(words.split(" ")) if words else intent_terms_of(intent)


class WordTable:
    """Each distinct word's BM25 weight in every edition paper and background paper.

    A row per word, made on first use and shared by every sentence that has the word; a
    reader's sentence score is then a sum of rows.
    """

    def __init__(self, index: PaperIndex, paper_ids: Sequence[int], background: PaperIndex):
        self.slots: dict[str, int] = {}
        self.postings = background.postings
        self.total = len(background.papers)
        # The z-scores' reference: a sample of the background is plenty for a mean and a
        # spread, and a reader's cost grows with it (their words' rows are summed over it).
        everyone = list(background.papers)
        sample = everyone[:: max(1, len(everyone) // WORDS_REFERENCE_SAMPLE)]
        # Lengths are measured against the recent papers' average, the edition's too: a
        # day's papers often lack HF's summary and keywords when they are matched, so the
        # edition is shorter than usual, not its papers shorter than each other.
        average = _average_length(background)
        self.edition = _Bags.of(index, paper_ids, average=average)
        self.background = _Bags.of(background, sample, average=average)
        # Per word: its weight in each edition paper, then in each reference paper, in one
        # row, so a batch of sentences is summed in one pass.
        self.papers = len(paper_ids)
        self.rows = np.zeros((INITIAL_WORDS, self.papers + len(sample)), dtype=np.float32)

    def slots_of(self, terms: Sequence[str]) -> list[int]:
        known = list(map(self.slots.get, terms))
        if None in known:
            return [self.slot(t) for t in terms]
        return known  # type: ignore[return-value]  # no None left

    def slot(self, term: str) -> int:
        slot = self.slots.get(term)
        if slot is not None:
            return slot
        slot = self.slots[term] = len(self.slots)
        if slot == len(self.rows):
            self.rows = np.pad(self.rows, ((0, slot), (0, 0)))
        df = len(self.postings.get(term, ()))
        idf = math.log(1 + (self.total - df + 0.5) / (df + 0.5))
        self.rows[slot, : self.papers] = self.edition.weights(term, idf)
        self.rows[slot, self.papers :] = self.background.weights(term, idf)
        return slot

    def scores(self, terms: Sequence[Sequence[str]]) -> Scores:
        """Per sentence (its terms) and edition paper: BM25 of the sentence's words, as
        z-scores against the background papers' BM25 for the same words."""
        out = np.zeros((len(terms), self.papers), dtype=np.float32)
        having = [k for k, t in enumerate(terms) if t]
        if not having:
            return out
        slots = [self.slots_of(terms[k]) for k in having]
        take = np.fromiter(chain.from_iterable(slots), dtype=np.int64)
        starts = np.cumsum([0] + [len(row) for row in slots[:-1]])
        sums = np.add.reduceat(self.rows[take], starts, axis=0)
        out[having] = zscores(sums[:, : self.papers], sums[:, self.papers :])
        return out


@dataclass
class _Bags:
    """Papers as bags of stemmed words: title, HF keywords, abstract and HF's one-sentence
    summary together (the summary names what a paper is about in few, plain words)."""

    counts: list[Counter[str]]
    length_norm: np.ndarray[Any, Any]  # per paper: k1 * (1 - b + b * length / average)

    @classmethod
    def of(cls, index: PaperIndex, order: Sequence[int], *, average: float) -> _Bags:
        """The papers `order` of `index`, lengths measured against `average`."""
        counts = [Counter(index.papers[paper_id].words()) for paper_id in order]
        lengths = np.array([c.total() for c in counts], dtype=np.float32)
        return cls(counts, BM25_K1 * (1 - BM25_B + BM25_B * lengths / average))

    def weights(self, term: str, idf: float) -> np.ndarray[Any, Any]:
        """Per paper, the term's BM25 weight: idf x saturated term frequency."""
        tf = np.array([c.get(term, 0) for c in self.counts], dtype=np.float32)
        return idf * tf * (BM25_K1 + 1) / (tf + self.length_norm)


def _average_length(index: PaperIndex) -> float:
    """The papers' average number of words (BM25's yardstick of a long paper)."""
    lengths = [sum(1 for _ in p.words()) for p in index.papers.values()]
    return max(sum(lengths) / len(lengths), 1.0) if lengths else 1.0
