"""How relevant each of an edition's papers is to each reader: several signals, combined.

Keyword phrases alone send mostly noise: a generic word a person naturally types
("reasoning", "benchmark", "evaluation") pulls in every paper that mentions it. So a
paper's score adds up:

- **keyword evidence**: where a phrase matched (title > HF keywords > abstract) times how
  specific the phrase is (inverse document frequency over the recent papers: a phrase in
  half the papers counts for little, one in two papers for much);
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .matching import FIELD_WEIGHTS, Interests, Match, PaperIndex, Reason

# Weights of the combination (see the module docstring and the README's figures).
KEYWORD_FIELD = {"title": 1.0, "keywords": 0.8, "abstract": 0.45}
W_KEYWORD = 4.0
W_LIKED = 3.5  # a near-twin of a liked paper comes on its own
W_DISLIKED = 6.0  # and a near-twin (similarity past FEEDBACK_FULL) of a disliked one never does
W_UPVOTES = 0.05
THRESHOLD_WITH_INTENT = 9.0
THRESHOLD_KEYWORDS_ONLY = 6.0
# A reader's sentence counts as the reason when the paper is this unusually close to it
# (the sum of its two z-scores, whole paper and best sentence).
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
    phrase_vectors: dict[str, Matrix] = field(default_factory=dict)  # phrase -> row
    liked: Matrix | None = None  # rows of papers they want more like
    liked_titles: Sequence[str] = ()
    disliked: Matrix | None = None
    exclude_paper_ids: set[int] | frozenset[int] = frozenset()


@dataclass
class _Phrase:
    z: np.ndarray[Any, Any]  # per edition paper, z-score of the whole paper's closeness
    z_units: np.ndarray[Any, Any]  # per edition paper, z-score of its closest sentence
    evidence: np.ndarray[Any, Any]  # per edition paper, field weight x specificity (0 = no hit)


class EditionScorer:
    """The edition's papers (and recent papers as background), ready to score readers.

    `vectors` are the edition papers' embeddings (title and abstract) in `paper_ids`
    order, `units` their titles' and sentences' vectors, paper by paper from
    `unit_starts`; `background` holds recent papers' embeddings (the edition's included),
    `background_units` the units of a sample of them, and `background_index` their
    keyword index, for z-scores and phrase specificity.
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
    ) -> None:
        self.index = index
        self.paper_ids = list(paper_ids)
        self.position = {pid: i for i, pid in enumerate(self.paper_ids)}
        self.vectors = vectors
        self.upvote_bonus = W_UPVOTES * np.log1p(np.asarray(upvotes, dtype=np.float32))
        self.units, self.unit_starts = units, unit_starts
        self.background = background
        self.background_units, self.background_unit_starts = (
            background_units,
            background_unit_starts,
        )
        self.background_index = background_index
        self.use_meaning = len(background) >= MIN_BACKGROUND and len(vectors) > 0
        self._phrases: dict[tuple[tuple[str, ...], str], _Phrase] = {}

    # --- signals ------------------------------------------------------------------------

    def _z(self, row: Matrix) -> np.ndarray[Any, Any]:
        """The edition papers' similarity to `row`, as z-scores against the background."""
        sims = self.vectors @ row
        reference = self.background @ row
        return (sims - reference.mean()) / max(float(reference.std()), 1e-6)

    def _z_units(self, row: Matrix) -> np.ndarray[Any, Any]:
        """Each paper's closest title or sentence to `row`, as z-scores (same idea)."""
        sims = np.maximum.reduceat(self.units @ row, self.unit_starts)
        reference = np.maximum.reduceat(self.background_units @ row, self.background_unit_starts)
        return (sims - reference.mean()) / max(float(reference.std()), 1e-6)

    def closeness(self, row: Matrix) -> np.ndarray[Any, Any]:
        """How unusually close each paper is to a text: whole paper plus best sentence."""
        return self._z(row) + self._z_units(row)

    def specificity(self, stems: tuple[str, ...]) -> float:
        """1 for a phrase in one or two recent papers, falling towards 0 as it gets common."""
        total = len(self.background_index.papers)
        if total <= 2 or not self.use_meaning:
            return 1.0  # too few papers to say what is common: every phrase counts fully
        df = max(len(self.background_index.lookup(stems)), 1)
        return max(0.0, min(1.0, math.log(total / df) / math.log(total / 2)))

    def phrase(self, phrase: str, stems: tuple[str, ...], vector: Matrix | None) -> _Phrase:
        cache_key = (stems, phrase.lower())
        cached = self._phrases.get(cache_key)
        if cached is not None:
            return cached
        evidence = np.zeros(len(self.paper_ids), dtype=np.float32)
        spec = self.specificity(stems)
        for paper_id, hit in self.index.lookup(stems).items():
            evidence[self.position[paper_id]] = KEYWORD_FIELD[hit.field] * spec
        zeros = np.zeros(len(self.paper_ids), dtype=np.float32)
        meaning = self.use_meaning and vector is not None
        made = _Phrase(
            z=self._z(vector) if meaning and vector is not None else zeros,
            z_units=self._z_units(vector) if meaning and vector is not None else zeros,
            evidence=evidence,
        )
        self._phrases[cache_key] = made
        return made

    # --- ranking ------------------------------------------------------------------------

    def rank(self, reader: Reader) -> list[Match]:
        """The reader's papers above the threshold, best first, at most `reader.limit`."""
        n = len(self.paper_ids)
        if n == 0:
            return []
        parsed = Interests.parse(reader.interests)
        if not parsed.wanted:
            return []
        blocked = np.zeros(n, dtype=bool)
        for stems in parsed.excluded:
            for paper_id in self.index.lookup(stems):
                blocked[self.position[paper_id]] = True
        for paper_id in reader.exclude_paper_ids:
            if paper_id in self.position:
                blocked[self.position[paper_id]] = True

        signals = [
            self.phrase(text, stems, reader.phrase_vectors.get(text))
            for text, stems in parsed.wanted
        ]
        evidence = np.max([s.evidence for s in signals], axis=0)
        if not self.use_meaning:
            # Too few papers to tell what is unusual: keyword evidence alone, as typed.
            score = evidence + self.upvote_bonus * 0.01
            chosen = np.flatnonzero((evidence > 0) & ~blocked)
        else:
            score = (
                np.max([s.z for s in signals], axis=0)
                + np.max([s.z_units for s in signals], axis=0)
                + W_KEYWORD * evidence
            )
            threshold = THRESHOLD_KEYWORDS_ONLY
            if reader.intent is not None:
                score = score + self.closeness(reader.intent)
                threshold = THRESHOLD_WITH_INTENT
            liked_by = self._feedback(reader.liked)[0]
            disliked_by = self._feedback(reader.disliked)[0]
            blocked |= disliked_by >= 1.0
            score = score + W_LIKED * liked_by - W_DISLIKED * disliked_by
            score = score + self.upvote_bonus
            chosen = np.flatnonzero((score >= threshold) & ~blocked)
        chosen = chosen[np.argsort(-score[chosen], kind="stable")][: reader.limit]
        return [self._match(reader, parsed, int(i), float(score[i])) for i in chosen]

    def _feedback(self, rows: Matrix | None) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Per paper: how strongly it resembles one of `rows` (0..1), and which one."""
        n = len(self.paper_ids)
        if rows is None or len(rows) == 0:
            return np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.int64)
        sims = self.vectors @ rows.T
        best = sims.max(axis=1)
        strength = np.clip((best - FEEDBACK_FROM) / (FEEDBACK_FULL - FEEDBACK_FROM), 0.0, 1.0)
        return strength, sims.argmax(axis=1)

    def _match(self, reader: Reader, parsed: Interests, i: int, score: float) -> Match:
        paper_id = self.paper_ids[i]
        reasons: list[Reason] = []
        for text, stems in parsed.wanted:
            hit = self.index.lookup(stems).get(paper_id)
            if hit is not None:
                reasons.append(self.index.snippet(paper_id, text, hit))
        reasons.sort(key=lambda r: -FIELD_WEIGHTS[r.field])
        if not reasons and self.use_meaning:
            strength, which = self._feedback(reader.liked)
            if strength[i] > 0 and reader.liked_titles:
                title = reader.liked_titles[int(which[i])]
                reasons.append(Reason(interest=title, field="liked", before="", match="", after=""))
            elif reader.intent is not None and self.closeness(reader.intent)[i] >= DESCRIBED_Z:
                reasons.append(
                    Reason(interest="", field="described", before="", match="", after="")
                )
            else:
                # Close in meaning to one of their phrases: name the closest one.
                zs = [
                    (self.phrase(t, s, reader.phrase_vectors.get(t)).z[i], t)
                    for t, s in parsed.wanted
                ]
                reasons.append(
                    Reason(interest=max(zs)[1], field="related", before="", match="", after="")
                )
        return Match(paper_id=paper_id, score=score, reasons=reasons)


def _plain_reason(interest: str, kind: str) -> Reason:
    """A reason with nothing to highlight: "described", "liked" or "related"."""
    return Reason(interest=interest, field=kind, before="", match="", after="")
