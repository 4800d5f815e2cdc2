"""How relevant each of an edition's papers is to each reader: several signals, combined.

Keyword phrases alone send mostly noise: a generic word a person naturally types
("reasoning", "benchmark", "evaluation") pulls in every paper that mentions it. So a
paper's score adds up:

- **keyword evidence**: where a phrase matched (title > HF keywords > abstract) times how
  specific the phrase is (inverse document frequency over the recent papers: a phrase in
  half the papers counts for little, one in two papers for much);
- **the sentence's words**: how well the paper's words (title, HF keywords, abstract and
  HF's one-sentence summary) match the words of the reader's sentence, scored as search
  engines do (BM25: a rare word counts more than a common one,
  a repeated word with diminishing returns, a long abstract does not win by length) and,
  like the meanings below, turned into a z-score against the recent papers. A sentence
  vector blurs exact terms a reader chose on purpose ("OCR", "reranker"); the words keep
  them;
- **meaning**: the similarity of the paper (title and abstract, a sentence vector) to the
  reader's sentence and to each of their phrases. Raw cosine similarities mean different
  things for different texts (a broad sentence is "close" to everything), so each is
  turned into a z-score against the recent papers: how unusual this paper's closeness is
  *for this reader's text*;
- **feedback**: closeness to papers the reader asked for more of, or fewer of;
- a touch of **upvotes**, to break ties.

A paper goes in a digest only above a threshold, so a day with nothing relevant stays
silent and a thin day gives a short digest. The weights and thresholds are few and
general, tuned on a judged development set (see the README), not on any topic's words.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, compress
from typing import Any

import numpy as np

from .keywords import (
    FIELD_WEIGHTS,
    Interests,
    Match,
    PaperIndex,
    Reason,
    phrase_stems,
    text_stems,
)
from .windows import Window

# Weights of the combination (see the module docstring and the README's figures).
KEYWORD_FIELD = {"title": 1.0, "keywords": 0.8, "abstract": 0.45}
W_KEYWORD = 4.0
W_LIKED = 3.5  # a near-twin of a liked paper comes on its own
W_DISLIKED = 6.0  # and a near-twin (similarity past FEEDBACK_FULL) of a disliked one never does
W_UPVOTES = 0.05
# The sentence's words: weight of their BM25 z-score. It adds to every score of a reader
# with a sentence (a paper using the sentence's rarer words gains 2-4 points), hence that
# reader's higher threshold.
W_SENTENCE_WORDS = 0.75
BM25_K1, BM25_B = 1.2, 0.75  # the usual BM25 constants: term saturation, length norm
WORDS_REFERENCE_SAMPLE = 120  # background papers the words' z-scores are measured against
THRESHOLD_WITH_INTENT = 10.6
THRESHOLD_KEYWORDS_ONLY = 6.0
# A reader's sentence counts as the reason when the paper is this unusually close to it
# (the sum of its z-scores: whole paper, best sentence, and the weighted words').
DESCRIBED_Z = 4.0
# Feedback: similarity at which a liked / disliked paper starts to pull, and saturates.
FEEDBACK_FROM, FEEDBACK_FULL = 0.55, 0.85
# Fewer background papers than this make z-scores noise; matching then falls back to the
# keyword evidence alone (a new install's first day).
MIN_BACKGROUND = 20

Matrix = np.ndarray[Any, np.dtype[np.float32]]


@dataclass
class Reader:
    """What matching needs to know of one subscriber."""

    key: int
    interests: Sequence[str]
    limit: int
    intent: Matrix | None = None  # one row, or None without a sentence
    # The sentence's distinct stemmed words (`sentence_terms`); () without a sentence.
    intent_terms: Sequence[str] = ()
    phrase_vectors: dict[str, Matrix] = field(default_factory=dict)  # phrase -> row
    liked: Matrix | None = None  # rows of papers they want more like
    liked_titles: Sequence[str] = ()
    disliked: Matrix | None = None
    exclude_paper_ids: set[int] | frozenset[int] = frozenset()
    parsed: Interests | None = None  # `interests` parsed, when the loader has done it
    # The papers this digest covers (see digest.matching.windows); None: every paper of the scorer.
    window: Window | None = None
    trending: str = "none"  # Subscriber.Trending, as it applies (none, few, only)
    frequency: str = "daily"


Scores = np.ndarray[Any, np.dtype[np.float32]]


class _PhraseTable:
    """Each distinct phrase's signals over the edition's papers, one row per phrase.

    Rows are shared by every reader who typed the phrase; the arrays grow by doubling so
    adding a phrase does not copy the table each time.
    """

    def __init__(self, papers: int) -> None:
        self.slots: dict[tuple[tuple[str, ...], str], int] = {}
        self.by_text: dict[str, int] = {}  # the phrase as typed -> its row, the fast way in
        self.count = 0
        self.hits = np.zeros((16, papers), dtype=bool)  # the phrase is in the paper
        self.evidence = np.zeros((16, papers), dtype=np.float32)  # field x specificity
        self.z = np.zeros((16, papers), dtype=np.float32)  # whole paper's closeness
        self.z_units = np.zeros((16, papers), dtype=np.float32)  # closest sentence's

    def add(
        self,
        key: tuple[tuple[str, ...], str] | None,
        hits: np.ndarray[Any, np.dtype[np.bool_]],
        evidence: Scores,
        z: Scores,
        z_units: Scores,
    ) -> int:
        """Store a phrase's rows; `key=None` stores them for this batch only (not found again)."""
        if self.count == len(self.z):
            grow = ((0, len(self.z)), (0, 0))
            self.hits, self.evidence, self.z, self.z_units = (
                np.pad(self.hits, grow),
                np.pad(self.evidence, grow),
                np.pad(self.z, grow),
                np.pad(self.z_units, grow),
            )
        slot = self.count
        self.hits[slot], self.evidence[slot] = hits, evidence
        self.z[slot], self.z_units[slot] = z, z_units
        self.count += 1
        if key is not None:
            self.slots[key] = slot
            self.by_text[key[1]] = slot
        return slot

    def learned_since(self, start: int) -> LearnedPhrases:
        """The phrases stored from row `start` on (and how they were typed), to be handed
        to another copy of this table: a forked scorer's to the run's own."""
        keyed = sorted((slot, key) for key, slot in self.slots.items() if slot >= start)
        typed: dict[int, list[str]] = defaultdict(list)
        for text, slot in self.by_text.items():
            if slot >= start:
                typed[slot].append(text)
        slots = [slot for slot, _ in keyed]
        return LearnedPhrases(
            keys=[key for _, key in keyed],
            typed=[typed[slot] for slot in slots],
            rows=(self.hits[slots], self.evidence[slots], self.z[slots], self.z_units[slots]),
        )

    def learn(self, learned: LearnedPhrases) -> None:
        """Take the phrases another copy of this table made, those not known here yet."""
        hits, evidence, z, z_units = learned.rows
        for i, (key, typed) in enumerate(zip(learned.keys, learned.typed, strict=True)):
            slot = self.slots.get(key)
            if slot is None:
                slot = self.add(key, hits[i], evidence[i], z[i], z_units[i])
            for text in typed:
                self.by_text.setdefault(text, slot)


@dataclass
class LearnedPhrases:
    """Phrases' rows made by one copy of a scorer, for another (see `_PhraseTable`)."""

    keys: list[tuple[tuple[str, ...], str]]
    typed: list[list[str]]  # per phrase, how readers typed it
    rows: tuple[np.ndarray[Any, Any], ...]  # hits, evidence, z, z_units: a row per phrase

    def __len__(self) -> int:
        return len(self.keys)


def sentence_terms(intent: str) -> tuple[str, ...]:
    """The distinct stemmed words of a reader's sentence, its BM25 query. No stop-word
    list: a word most papers use ("models", "the") has an inverse document frequency near
    0 over the recent papers, so it counts for almost nothing."""
    return tuple(dict.fromkeys(text_stems(intent)))


class _WordTable:
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
        self.rows = np.zeros((64, self.papers + len(sample)), dtype=np.float32)

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


@dataclass(frozen=True)
class _ParsedInterests:
    interests: Interests
    texts: tuple[str, ...]  # the wanted phrases as typed
    blocked: np.ndarray[Any, Any]  # positions of papers an exclusion ("-survey") hits


_NONE = np.zeros(0, dtype=np.int64)


def _zscores(sims: Scores, reference: Scores) -> Scores:
    """Each row of `sims` as z-scores against the same row's `reference` distribution."""
    mean = reference.mean(axis=1, keepdims=True)
    spread = np.maximum(reference.std(axis=1, keepdims=True), 1e-6)
    return ((sims - mean) / spread).astype(np.float32)


def _stacked(rows: Sequence[Matrix]) -> tuple[Matrix, np.ndarray[Any, Any]]:
    """Several readers' row blocks as one matrix, and where each reader's rows start."""
    starts = np.cumsum([0] + [len(r) for r in rows[:-1]]).astype(np.int64)
    return np.vstack(rows).astype(np.float32, copy=False), starts


class EditionScorer:
    """The edition's papers (and recent papers as background), ready to score readers.

    `vectors` are the edition papers' embeddings (title and abstract) in `paper_ids`
    order, `units` their titles' and sentences' vectors, paper by paper from
    `unit_starts`; `background` holds recent papers' embeddings (the edition's included),
    `background_units` the units of a sample of them, and `background_index` their
    keyword index, for z-scores and phrase specificity.

    Readers are scored many at a time (`rank_many`): a phrase's signals are computed once
    per edition and shared by everyone who typed it, and the per-reader signals (their
    sentence, their feedback) are a few matrix products over the whole batch of readers,
    so a reader costs microseconds rather than a round of small numpy calls each.
    """

    def __init__(
        self,
        *,
        index: PaperIndex,
        paper_ids: Sequence[int],
        vectors: Matrix,
        units: Matrix,
        unit_starts: np.ndarray[Any, Any],
        upvotes: Sequence[int],
        background: Matrix,
        background_units: Matrix,
        background_unit_starts: np.ndarray[Any, Any],
        background_index: PaperIndex,
        seen: Sequence[float] | None = None,
        listed: Sequence[int] | None = None,
    ) -> None:
        self.index = index
        self.paper_ids = list(paper_ids)
        self.position = {pid: i for i, pid in enumerate(self.paper_ids)}
        self.vectors = vectors
        self.set_upvotes(upvotes)
        # Each paper's first-seen time (epoch s) and listing day (ordinal), for windows.
        count = len(self.paper_ids)
        self.seen = np.asarray(seen if seen is not None else [0.0] * count, dtype=np.float64)
        self.listed = np.asarray(listed if listed is not None else [0] * count, dtype=np.int64)
        self._windows: dict[Window, np.ndarray[Any, Any]] = {}
        self.units, self.unit_starts = units, unit_starts
        self.background = background
        self.background_units, self.background_unit_starts = (
            background_units,
            background_unit_starts,
        )
        self.background_index = background_index
        self.use_meaning = len(background) >= MIN_BACKGROUND and len(vectors) > 0
        self._phrases = _PhraseTable(len(self.paper_ids))
        self._words: _WordTable | None = None  # made when a reader with a sentence comes
        # Reasons by (paper position, phrases that hit it) or (-1, kind, interest): equal
        # reasons are one tuple, so the writer encodes each only once.
        self._reasons: dict[tuple[int | str, ...], tuple[Reason, ...]] = {}

    def word_table(self) -> _WordTable:
        """The papers' words for readers' sentences, made on first need (or before forking
        scoring processes, so that each of them does not make its own)."""
        if self._words is None:
            self._words = _WordTable(self.index, self.paper_ids, self.background_index)
        return self._words

    def set_upvotes(self, upvotes: Sequence[int]) -> None:
        """Take the papers' upvotes of now (they move every hour; nothing else here
        depends on them, so a kept scorer needs only these)."""
        self.upvotes = np.asarray(upvotes, dtype=np.int64)
        self.upvote_bonus = W_UPVOTES * np.log1p(self.upvotes.astype(np.float32))

    @property
    def phrases_known(self) -> int:
        return self._phrases.count

    def phrases_learned_since(self, start: int) -> LearnedPhrases:
        """The phrases' signals made since the scorer knew `start` of them."""
        return self._phrases.learned_since(start)

    def learn_phrases(self, learned: LearnedPhrases) -> None:
        """Take phrases' signals another copy of this scorer made (a forked one's)."""
        self._phrases.learn(learned)

    # --- signals ------------------------------------------------------------------------

    def _closeness_parts(self, rows: Matrix) -> tuple[Scores, Scores]:
        """Per text (row) and paper: how unusually close the whole paper is, and its
        closest title or sentence, each as z-scores against the background papers."""
        rows = np.atleast_2d(rows)
        whole = _zscores(rows @ self.vectors.T, rows @ self.background.T)
        best_unit = np.maximum.reduceat(rows @ self.units.T, self.unit_starts, axis=1)
        reference = np.maximum.reduceat(
            rows @ self.background_units.T, self.background_unit_starts, axis=1
        )
        return whole, _zscores(best_unit, reference)

    def specificity(self, stems: tuple[str, ...]) -> float:
        """1 for a phrase in one or two recent papers, falling towards 0 as it gets common."""
        total = len(self.background_index.papers)
        if total <= 2 or not self.use_meaning:
            return 1.0  # too few papers to say what is common: every phrase counts fully
        df = max(len(self.background_index.lookup(stems)), 1)
        return max(0.0, min(1.0, math.log(total / df) / math.log(total / 2)))

    def knows(self, phrase: str) -> bool:
        """Whether the phrase's signals are made already, so its vector is not needed."""
        table = self._phrases
        return phrase in table.by_text or (phrase_stems(phrase), phrase.lower()) in table.slots

    def knows_all(self, phrases: Sequence[str]) -> bool:
        """`knows` of every phrase (the quick way first: each typed exactly as before)."""
        return all(map(self._phrases.by_text.__contains__, phrases)) or all(
            map(self.knows, phrases)
        )

    def _phrase_slot(self, phrase: str, stems: tuple[str, ...], vector: Matrix | None) -> int:
        # The model is uncased, so "Diffusion" and "diffusion" share a vector and a row.
        key = (stems, phrase.lower())
        slot = self._phrases.slots.get(key)
        if slot is not None:
            self._phrases.by_text[phrase] = slot
            return slot
        hits = np.zeros(len(self.paper_ids), dtype=bool)
        evidence = np.zeros(len(self.paper_ids), dtype=np.float32)
        spec = self.specificity(stems)
        for paper_id, hit in self.index.lookup(stems).items():
            hits[self.position[paper_id]] = True
            evidence[self.position[paper_id]] = KEYWORD_FIELD[hit.field] * spec
        zeros = np.zeros(len(self.paper_ids), dtype=np.float32)
        if not self.use_meaning:
            return self._phrases.add(key, hits, evidence, zeros, zeros)
        if vector is None:
            # A phrase without its vector (there should be one) scores on its keywords;
            # not remembered, so a reader who brings the vector gets the full signals.
            return self._phrases.add(None, hits, evidence, zeros, zeros)
        whole, best_unit = self._closeness_parts(vector)
        return self._phrases.add(key, hits, evidence, whole[0], best_unit[0])

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

    def _parsed(self, reader: Reader) -> _ParsedInterests:
        interests = reader.parsed or Interests.parse(reader.interests)
        blocked = _NONE
        if interests.excluded:
            lookup, position = self.index.lookup, self.position
            hit = {position[p] for stems in interests.excluded for p in lookup(stems)}
            blocked = np.asarray(sorted(hit), dtype=np.int64)
        return _ParsedInterests(interests, interests.texts, blocked)

    def _sentence_words_many(self, terms: Sequence[Sequence[str]]) -> Scores:
        """Per sentence (its terms) and paper: BM25 of the sentence's words, as z-scores
        against the background papers' BM25 for the same words."""
        table = self.word_table()
        out = np.zeros((len(terms), len(self.paper_ids)), dtype=np.float32)
        having = [k for k, t in enumerate(terms) if t]
        if not having:
            return out
        slots = [table.slots_of(terms[k]) for k in having]
        take = np.fromiter(chain.from_iterable(slots), dtype=np.int64)
        starts = np.cumsum([0] + [len(row) for row in slots[:-1]])
        sums = np.add.reduceat(table.rows[take], starts, axis=0)
        out[having] = _zscores(sums[:, : table.papers], sums[:, table.papers :])
        return out

    def sentence_words(self, terms: Sequence[str]) -> Scores:
        """`_sentence_words_many` of one sentence."""
        return self._sentence_words_many([terms])[0]

    def _feedback(self, readers: Sequence[Matrix]) -> Scores:
        """Per reader and paper: how strongly it resembles one of that reader's papers."""
        rows, starts = _stacked(readers)
        best = np.maximum.reduceat(rows @ self.vectors.T, starts, axis=0)
        return np.clip((best - FEEDBACK_FROM) / (FEEDBACK_FULL - FEEDBACK_FROM), 0.0, 1.0)

    # --- ranking ------------------------------------------------------------------------

    def rank(self, reader: Reader) -> list[Match]:
        """The reader's papers above the threshold, best first, at most `reader.limit`."""
        return self.rank_many([reader])[0]

    def rank_many(self, readers: Sequence[Reader]) -> list[list[Match]]:
        """`rank` for each reader, computed together (see the class docstring)."""
        results: list[list[Match]] = [[] for _ in readers]
        n = len(self.paper_ids)
        if n == 0:
            return results
        # Readers with something to match, and the table rows of their phrases.
        active: list[int] = []
        parsed: list[_ParsedInterests] = []
        slots: list[int] = []
        slot_starts: list[int] = []
        by_text = self._phrases.by_text
        for r, reader in enumerate(readers):
            p = self._parsed(reader)
            if not p.texts:
                continue
            active.append(r)
            parsed.append(p)
            slot_starts.append(len(slots))
            for text, stems in p.interests.wanted:
                slot = by_text.get(text)
                if slot is None:
                    slot = self._phrase_slot(text, stems, reader.phrase_vectors.get(text))
                slots.append(slot)
        if not active:
            return results
        table, take, starts = self._phrases, np.asarray(slots), np.asarray(slot_starts)
        evidence = np.maximum.reduceat(table.evidence[take], starts, axis=0)
        blocked = np.zeros((len(active), n), dtype=bool)
        for a, (r, p) in enumerate(zip(active, parsed, strict=True)):
            if p.blocked.size:
                blocked[a, p.blocked] = True
            for paper_id in readers[r].exclude_paper_ids:
                if paper_id in self.position:
                    blocked[a, self.position[paper_id]] = True
            if readers[r].window is not None:
                blocked[a] |= ~self.inside(readers[r].window)

        closeness: dict[int, Scores] = {}  # active index -> its sentence's closeness
        if not self.use_meaning:
            # Too few papers to tell what is unusual: keyword evidence alone, as typed.
            score = evidence + self.upvote_bonus * 0.01
            chosen = (evidence > 0) & ~blocked
        else:
            score = (
                np.maximum.reduceat(table.z[take], starts, axis=0)
                + np.maximum.reduceat(table.z_units[take], starts, axis=0)
                + W_KEYWORD * evidence
            )
            threshold = np.full((len(active), 1), THRESHOLD_KEYWORDS_ONLY, dtype=np.float32)
            intents = {a: readers[r].intent for a, r in enumerate(active)}
            with_intent = [a for a, row in intents.items() if row is not None]
            if with_intent:
                rows = np.vstack([row for row in intents.values() if row is not None])
                whole, best_unit = self._closeness_parts(rows)
                words = self._sentence_words_many(
                    [readers[active[a]].intent_terms for a in with_intent]
                )
                # What the sentence brings, by meaning and by words: also the measure of
                # whether "close to what you described" is the reason.
                close = whole + best_unit + W_SENTENCE_WORDS * words
                score[with_intent] += close
                threshold[with_intent] = THRESHOLD_WITH_INTENT
                closeness = dict(zip(with_intent, close, strict=True))
            for attr, weight in (("liked", W_LIKED), ("disliked", -W_DISLIKED)):
                having = [a for a, r in enumerate(active) if _has_rows(getattr(readers[r], attr))]
                if not having:
                    continue
                strength = self._feedback([getattr(readers[active[a]], attr) for a in having])
                score[having] += weight * strength
                if weight < 0:
                    blocked[having] |= strength >= 1.0
            score += self.upvote_bonus
            chosen = (score >= threshold) & ~blocked

        order = np.argsort(-score, axis=1, kind="stable")
        chosen_in_order = np.take_along_axis(chosen, order, axis=1)
        ends = [*slot_starts[1:], len(slots)]
        paper_ids, known_reasons = self.paper_ids, self._reasons
        for a in np.flatnonzero(chosen_in_order.any(axis=1)).tolist():
            r = active[a]
            reader = readers[r]
            picked = order[a][chosen_in_order[a]][: reader.limit]
            reader_slots = take[slot_starts[a] : ends[a]]
            # Which of the reader's phrases are in each picked paper (paper x phrase).
            hit_in = table.hits[reader_slots][:, picked].T.tolist()
            texts = parsed[a].texts
            found: list[Match] = []
            for i, score_i, hits in zip(
                picked.tolist(), score[a, picked].tolist(), hit_in, strict=True
            ):
                if any(hits):
                    key = (i, *compress(texts, hits))
                    reasons = known_reasons.get(key) or self._keyword_reasons(key)
                else:
                    reasons = self._meaning_reasons(
                        reader, parsed[a], i, reader_slots, closeness.get(a)
                    )
                found.append(Match(paper_ids[i], score_i, reasons))
            results[r] = found
        return results

    # --- reasons ------------------------------------------------------------------------

    def _keyword_reasons(self, key: tuple[int | str, ...]) -> tuple[Reason, ...]:
        """The snippets of phrases key[1:] in paper key[0], title hits first; made once."""
        paper_id = self.paper_ids[int(key[0])]
        made = [
            self.index.snippet(paper_id, text, self.index.lookup(phrase_stems(text))[paper_id])
            for text in map(str, key[1:])
        ]
        made.sort(key=lambda r: -FIELD_WEIGHTS[r.field])
        reasons = self._reasons[key] = tuple(made)
        return reasons

    def _meaning_reasons(
        self,
        reader: Reader,
        parsed: _ParsedInterests,
        i: int,
        slots: np.ndarray[Any, Any],
        closeness: Scores | None,
    ) -> tuple[Reason, ...]:
        """Why a paper none of the reader's phrases is in came: like a paper they liked,
        close to their sentence, or close in meaning to one of their phrases."""
        if not self.use_meaning:
            return ()
        if reader.liked is not None and len(reader.liked) and reader.liked_titles:
            sims = reader.liked @ self.vectors[i]
            if float(sims.max()) > FEEDBACK_FROM:
                return self._plain(reader.liked_titles[int(sims.argmax())], "liked")
        if closeness is not None and closeness[i] >= DESCRIBED_Z:
            return self._plain("", "described")
        # Close in meaning to one of their phrases: name the closest one.
        closest = int(np.argmax(self._phrases.z[slots, i]))
        return self._plain(parsed.texts[closest], "related")

    def _plain(self, interest: str, kind: str) -> tuple[Reason, ...]:
        """A reason with nothing to highlight ("described", "liked", "related"), shared."""
        key = (-1, kind, interest)
        reasons = self._reasons.get(key)
        if reasons is None:
            plain = Reason(interest=interest, field=kind, before="", match="", after="")
            reasons = self._reasons[key] = (plain,)
        return reasons


def _has_rows(rows: Matrix | None) -> bool:
    return rows is not None and len(rows) > 0
