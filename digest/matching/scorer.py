"""How relevant each of an edition's papers is to each reader: the signals, combined.

Keyword phrases alone send mostly noise: a generic word a person naturally types
("reasoning", "benchmark", "evaluation") pulls in every paper that mentions it. So a
paper's score adds up, each signal in a module of its own:

- **keyword evidence** (keywords.py): where a phrase matched (title > HF keywords >
  abstract) times how specific the phrase is over the recent papers;
- **meaning** (sentences.py): how unusually close the paper is to the reader's sentence
  and to each of their phrases, as z-scores against the recent papers;
- **the sentence's words** (words.py): BM25 of the sentence's words in the paper's words,
  as a z-score too;
- **feedback** (feedback.py): closeness to papers the reader asked for more of, or fewer
  of;
- a touch of **upvotes**, to break ties.

A paper goes in a digest only above a threshold, so a day with nothing relevant stays
silent and a thin day gives a short digest. The weights and thresholds are few and
general, tuned on a judged development set (see the README), not on any topic's words;
they are all here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import feedback
from .keywords import PaperIndex, Topics, phrase_evidence, specificity
from .phrases import PhraseTable
from .picks import Batch, ParsedTopics, picks
from .readers import Reader
from .reasons import Match, SharedReasons
from .sentences import Matrix, PaperVectors, Scores, closeness
from .windows import Window
from .words import WordTable

# Weights of the combination (see the module docstring and the README's figures).
W_KEYWORD = 4.0
W_LIKED = 3.5  # a near-twin of a liked paper comes on its own
W_DISLIKED = 6.0  # and a near-twin (similarity past FEEDBACK_FULL) of a disliked one never does
W_UPVOTES = 0.05
# The sentence's words: weight of their BM25 z-score. It adds to every score of a reader
# with a sentence (a paper using the sentence's rarer words gains 2-4 points), hence that
# reader's higher threshold.
W_SENTENCE_WORDS = 0.75
THRESHOLD_WITH_INTENT = 10.6
THRESHOLD_KEYWORDS_ONLY = 6.0
# Fewer background papers than this make z-scores noise; matching then falls back to the
# keyword evidence alone (a new install's first day).
MIN_BACKGROUND = 20


@dataclass(frozen=True)
class PaperSet:
    """The papers a scorer ranks, in its order: their keyword index and vectors, their
    upvotes, and when each was first seen (epoch s) and listed (a date's ordinal), which
    readers' windows are held to (None: all at 0)."""

    paper_ids: Sequence[int]
    index: PaperIndex
    vectors: PaperVectors
    upvotes: Sequence[int]
    seen: Sequence[float] | None = None
    listed: Sequence[int] | None = None


@dataclass(frozen=True)
class Background:
    """The recent papers (the edition's included) that say what is usual: their keyword
    index, for phrase specificity and the words' reference, and their vectors, for
    z-scores (every paper's whole-text row; the units of a sample of them)."""

    index: PaperIndex
    vectors: PaperVectors


_NONE = np.zeros(0, dtype=np.int64)


class EditionScorer:
    """The edition's papers (and recent papers as background), ready to score readers.

    Readers are scored many at a time (`rank_many`): a phrase's signals are computed once
    per edition and shared by everyone who typed it (phrases.py), and the per-reader
    signals (their sentence, their feedback) are a few matrix products over the whole
    batch of readers, so a reader costs microseconds rather than a round of small numpy
    calls each.
    """

    def __init__(self, papers: PaperSet, background: Background) -> None:
        self.index = papers.index
        self.paper_ids = list(papers.paper_ids)
        self.position = {pid: i for i, pid in enumerate(self.paper_ids)}
        self.edition_vectors = papers.vectors
        self.vectors = papers.vectors.whole
        self.set_upvotes(papers.upvotes)
        count = len(self.paper_ids)
        seen, listed = papers.seen, papers.listed
        self.seen = np.asarray(seen if seen is not None else [0.0] * count, dtype=np.float64)
        self.listed = np.asarray(listed if listed is not None else [0] * count, dtype=np.int64)
        self._windows: dict[Window, np.ndarray[Any, Any]] = {}
        self.background_vectors = background.vectors
        self.background_index = background.index
        self.use_meaning = len(background.vectors.whole) >= MIN_BACKGROUND and len(self.vectors) > 0
        self.phrases = PhraseTable(len(self.paper_ids))
        self._words: WordTable | None = None  # made when a reader with a sentence comes
        self.reasons = SharedReasons(self.index, self.paper_ids)

    def word_table(self) -> WordTable:
        """The papers' words for readers' sentences, made on first need (or before forking
        scoring processes, so that each of them does not make its own)."""
        if self._words is None:
            self._words = WordTable(self.index, self.paper_ids, self.background_index)
        return self._words

    def set_upvotes(self, upvotes: Sequence[int]) -> None:
        """Take the papers' upvotes of now (they move every hour; nothing else here
        depends on them, so a kept scorer needs only these)."""
        self.upvotes = np.asarray(upvotes, dtype=np.int64)
        self.upvote_bonus = W_UPVOTES * np.log1p(self.upvotes.astype(np.float32))

    # --- signals ------------------------------------------------------------------------

    def _closeness_parts(self, rows: Matrix) -> tuple[Scores, Scores]:
        """Per text (row) and paper: how unusually close the whole paper is, and its
        closest title or sentence (sentences.closeness)."""
        return closeness(rows, self.edition_vectors, self.background_vectors)

    def specificity(self, stems: tuple[str, ...]) -> float:
        """1 for a phrase in one or two recent papers, falling towards 0 as it gets common."""
        return specificity(stems, self.background_index, enough_background=self.use_meaning)

    def _phrase_slot(self, phrase: str, stems: tuple[str, ...], vector: Matrix | None) -> int:
        # The model is uncased, so "Diffusion" and "diffusion" share a vector and a row.
        key = (stems, phrase.lower())
        slot = self.phrases.slots.get(key)
        if slot is not None:
            self.phrases.by_text[phrase] = slot
            return slot
        hits, evidence = phrase_evidence(self.index, self.position, stems, self.specificity(stems))
        zeros = np.zeros(len(self.paper_ids), dtype=np.float32)
        if not self.use_meaning:
            return self.phrases.add(key, hits, evidence, zeros, zeros)
        if vector is None:
            # A phrase without its vector (there should be one) scores on its keywords;
            # not remembered, so a reader who brings the vector gets the full signals.
            return self.phrases.add(None, hits, evidence, zeros, zeros)
        whole, best_unit = self._closeness_parts(vector)
        return self.phrases.add(key, hits, evidence, whole[0], best_unit[0])

    def inside(self, window: Window | None) -> np.ndarray[Any, Any]:
        """Which papers a window covers (all, for None); one mask per distinct window,
        and a run's readers share a handful of windows."""
        if window is None:
            return np.ones(len(self.paper_ids), dtype=bool)
        mask = self._windows.get(window)
        if mask is None:
            mask = self._windows[window] = window.mask(self.seen, self.listed)
        return mask

    def excluded_positions(self, reader: Reader) -> set[int]:
        """Positions of the papers the reader's "-phrase" exclusions rule out."""
        return set(self._parsed(reader).blocked.tolist())

    def _parsed(self, reader: Reader) -> ParsedTopics:
        topics = reader.parsed or Topics.parse(reader.topics)
        blocked = _NONE
        if topics.excluded:
            lookup, position = self.index.lookup, self.position
            hit = {position[p] for stems in topics.excluded for p in lookup(stems)}
            blocked = np.asarray(sorted(hit), dtype=np.int64)
        return ParsedTopics(topics, topics.texts, blocked)

    def intent_word_scores(self, terms: Sequence[str]) -> Scores:
        """Per paper: BM25 of one sentence's words, as z-scores (words.py)."""
        return self.word_table().scores([terms])[0]

    # --- ranking ------------------------------------------------------------------------

    def rank(self, reader: Reader) -> list[Match]:
        """The reader's papers above the threshold, best first, at most `reader.limit`."""
        return self.rank_many([reader])[0]

    def rank_many(self, readers: Sequence[Reader]) -> list[list[Match]]:
        """`rank` for each reader, computed together (see the class docstring), in steps:
        the readers' phrases' rows, the papers each may not get, the scores, the picks."""
        results: list[list[Match]] = [[] for _ in readers]
        if len(self.paper_ids) == 0:
            return results
        batch = self._batch(readers)
        if batch is None:
            return results
        table = self.phrases
        evidence = np.maximum.reduceat(table.evidence[batch.take], batch.starts, axis=0)
        blocked = self._blocked(batch)
        closeness: dict[int, Scores] = {}  # active index -> its sentence's closeness
        if not self.use_meaning:
            # Too few papers to tell what is unusual: keyword evidence alone, as typed.
            score = evidence + self.upvote_bonus * 0.01
            chosen = (evidence > 0) & ~blocked
        else:
            score = (
                np.maximum.reduceat(table.z[batch.take], batch.starts, axis=0)
                + np.maximum.reduceat(table.z_units[batch.take], batch.starts, axis=0)
                + W_KEYWORD * evidence
            )
            threshold = np.full((len(batch.active), 1), THRESHOLD_KEYWORDS_ONLY, dtype=np.float32)
            closeness = self._add_intent_closeness(batch, score, threshold)
            self._add_feedback(batch, score, blocked)
            score += self.upvote_bonus
            chosen = (score >= threshold) & ~blocked
        picks(self, batch, score, chosen, closeness, results)
        return results

    def _batch(self, readers: Sequence[Reader]) -> Batch | None:
        """The readers with something to match, and the table rows of their phrases
        (made here for phrases the table does not have yet); None if there are none."""
        active: list[int] = []
        parsed: list[ParsedTopics] = []
        slots: list[int] = []
        slot_starts: list[int] = []
        by_text = self.phrases.by_text
        for r, reader in enumerate(readers):
            p = self._parsed(reader)
            if not p.texts:
                continue
            active.append(r)
            parsed.append(p)
            slot_starts.append(len(slots))
            for text, stems in p.topics.wanted:
                slot = by_text.get(text)
                if slot is None:
                    slot = self._phrase_slot(text, stems, reader.phrase_vectors.get(text))
                slots.append(slot)
        if not active:
            return None
        take, starts = np.asarray(slots), np.asarray(slot_starts)
        return Batch(readers, active, parsed, slot_starts, take, starts)

    def _blocked(self, batch: Batch) -> np.ndarray[Any, Any]:
        """Per active reader and paper: papers they may not get (an exclusion hits them,
        already sent, or outside their window)."""
        readers, position = batch.readers, self.position
        blocked = np.zeros((len(batch.active), len(self.paper_ids)), dtype=bool)
        for a, (r, p) in enumerate(zip(batch.active, batch.parsed, strict=True)):
            if p.blocked.size:
                blocked[a, p.blocked] = True
            for paper_id in readers[r].exclude_paper_ids:
                if paper_id in position:
                    blocked[a, position[paper_id]] = True
            if readers[r].window is not None:
                blocked[a] |= ~self.inside(readers[r].window)
        return blocked

    def _add_intent_closeness(
        self, batch: Batch, score: np.ndarray[Any, Any], threshold: Scores
    ) -> dict[int, Scores]:
        """Add what each reader's sentence brings, by meaning and by words, and raise their
        threshold; return it per active reader with a sentence (also the measure of
        whether "close to what you described" is the reason)."""
        intents = dict(enumerate(batch.rows("intent")))
        with_intent = [a for a, row in intents.items() if row is not None]
        if not with_intent:
            return {}
        rows = np.vstack([row for row in intents.values() if row is not None])
        whole, best_unit = self._closeness_parts(rows)
        readers, active = batch.readers, batch.active
        words = self.word_table().scores([readers[active[a]].intent_terms for a in with_intent])
        close = whole + best_unit + W_SENTENCE_WORDS * words
        score[with_intent] += close
        threshold[with_intent] = THRESHOLD_WITH_INTENT
        return dict(zip(with_intent, close, strict=True))

    def _add_feedback(
        self, batch: Batch, score: np.ndarray[Any, Any], blocked: np.ndarray[Any, Any]
    ) -> None:
        """Add closeness to each reader's liked papers and take away closeness to their
        disliked ones; block a disliked paper's near-twins."""
        for attr, weight in (("liked", W_LIKED), ("disliked", -W_DISLIKED)):
            rows = batch.rows(attr)
            having = [a for a, row in enumerate(rows) if feedback.has_rows(row)]
            if not having:
                continue
            strength = feedback.strength([rows[a] for a in having], self.vectors)
            score[having] += weight * strength
            if weight < 0:
                blocked[having] |= strength >= 1.0
