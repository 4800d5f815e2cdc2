"""The keyword signal: which of an edition's papers each of a reader's phrases is in, and where.

An topic is a keyword phrase: consecutive words, matched case-insensitively after
stemming ("diffusion models" matches "Diffusion Model"), in the title, HF's ai_keywords or
the abstract. A phrase starting with "-" excludes every paper that contains it.

The papers of an edition are indexed once (`PaperIndex`), and each distinct phrase is
looked up once per edition and cached, so matching thousands of subscribers costs about
as much as the distinct phrases they typed, not subscribers × papers.

A hit is evidence by where it is (title > HF keywords > abstract) times how specific the
phrase is: its inverse document frequency over the recent papers, so a phrase found in
half the papers counts for little and one found in two counts fully.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import snowballstemmer

# Where a phrase matched, best first; the weight ranks a title hit above a keyword hit
# above an abstract hit (a paper's best hit, and the order of its reasons).
FIELD_WEIGHTS: dict[str, int] = {"title": 4, "keywords": 2, "abstract": 1}
# A hit's keyword evidence by where it is, before the phrase's specificity.
KEYWORD_FIELD = {"title": 1.0, "keywords": 0.8, "abstract": 0.45}

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STEMMER = snowballstemmer.stemmer("english")
# Separates ai_keywords in the indexed text so a phrase never spans two keywords.
KEYWORD_SEPARATOR = " ; "


# Distinct words stemmed once a process: the edition's and the recent papers' vocabulary
# (tens of thousands of words) fits with room to spare.
STEMS_KEPT = 200_000
# Distinct phrases stemmed once a process: every subscriber's, at a million subscribers
# about as many as there are distinct phrases typed.
PHRASES_KEPT = 100_000


@lru_cache(maxsize=STEMS_KEPT)
def stem(word: str) -> str:
    return str(_STEMMER.stemWord(word.lower()))


def text_stems(text: str) -> tuple[str, ...]:
    """The stems of a text's words, in order."""
    return tuple(stem(m.group()) for m in _WORD.finditer(text))


# Phrases repeat across subscribers ("diffusion"), so a phrase is stemmed once a process.
phrase_stems = lru_cache(maxsize=PHRASES_KEPT)(text_stems)


class PaperLike(Protocol):
    id: int
    title: str
    abstract: str
    ai_keywords: list[str]
    ai_summary: str
    upvotes: int


@dataclass(frozen=True)
class Hit:
    field: str
    start: int  # character offsets of the matched words in that field's text
    end: int


@dataclass
class _Field:
    text: str
    stems: list[str]
    spans: list[tuple[int, int]]


@dataclass
class _IndexedPaper:
    paper_id: int
    upvotes: int
    fields: dict[str, _Field]
    # Stems of HF's one-sentence ai_summary: words the paper is about, counted by the
    # sentence's words (BM25) but not searched for phrases, nor in `postings`.
    summary_stems: tuple[str, ...] = ()

    def words(self) -> Iterator[str]:
        """All the paper's stemmed words: its fields' and its summary's."""
        for f in self.fields.values():
            yield from f.stems
        yield from self.summary_stems


def _index_field(text: str) -> _Field:
    stems: list[str] = []
    spans: list[tuple[int, int]] = []
    for m in _WORD.finditer(text):
        stems.append(stem(m.group()))
        spans.append(m.span())
    return _Field(text=text, stems=stems, spans=spans)


def _keywords_text(keywords: Iterable[str]) -> str:
    return KEYWORD_SEPARATOR.join(k for k in keywords if isinstance(k, str))


@dataclass
class PaperIndex:
    """An edition's papers, tokenised and stemmed once, with a cache of phrase lookups."""

    papers: dict[int, _IndexedPaper]
    # stem -> paper ids containing it anywhere; narrows each phrase lookup to few papers
    postings: dict[str, set[int]]
    _phrase_cache: dict[tuple[str, ...], dict[int, Hit]] = field(default_factory=dict)

    @classmethod
    def build(cls, papers: Iterable[PaperLike]) -> PaperIndex:
        indexed: dict[int, _IndexedPaper] = {}
        postings: dict[str, set[int]] = defaultdict(set)
        for paper in papers:
            fields = {
                "title": _index_field(paper.title),
                "keywords": _index_field(_keywords_text(paper.ai_keywords or [])),
                "abstract": _index_field(paper.abstract),
            }
            summary = text_stems(paper.ai_summary or "")
            indexed[paper.id] = _IndexedPaper(paper.id, paper.upvotes, fields, summary)
            for f in fields.values():
                for s in f.stems:
                    postings[s].add(paper.id)
        return cls(papers=indexed, postings=dict(postings))

    def lookup(self, stems: tuple[str, ...]) -> dict[int, Hit]:
        """Papers containing the phrase, each with its best hit (title > keywords > abstract)."""
        cached = self._phrase_cache.get(stems)
        if cached is not None:
            return cached
        hits: dict[int, Hit] = {}
        if stems:
            candidates = min((self.postings.get(s, set()) for s in stems), key=len)
            for paper_id in candidates:
                hit = self._best_hit(self.papers[paper_id], stems)
                if hit is not None:
                    hits[paper_id] = hit
        self._phrase_cache[stems] = hits
        return hits

    @staticmethod
    def _best_hit(paper: _IndexedPaper, stems: tuple[str, ...]) -> Hit | None:
        n = len(stems)
        for name in FIELD_WEIGHTS:  # best field first
            f = paper.fields[name]
            first = stems[0]
            for i in range(len(f.stems) - n + 1):
                if f.stems[i] == first and tuple(f.stems[i : i + n]) == stems:
                    return Hit(field=name, start=f.spans[i][0], end=f.spans[i + n - 1][1])
        return None


@lru_cache(maxsize=100_000)
def _parse_phrase(phrase: str) -> tuple[bool, str, tuple[str, ...]]:
    """(excluded?, the phrase as typed without "-", its stems) of one typed topic."""
    phrase = phrase.strip()
    if phrase.startswith("-"):
        return True, phrase[1:].strip(), phrase_stems(phrase[1:])
    return False, phrase, phrase_stems(phrase)


@dataclass(frozen=True)
class Topics:
    """A subscriber's phrases, split into what they want and what they exclude."""

    wanted: list[tuple[str, tuple[str, ...]]]
    excluded: list[tuple[str, ...]]
    texts: tuple[str, ...] = ()  # the wanted phrases as typed

    @classmethod
    def parse(cls, phrases: Sequence[str]) -> Topics:
        # Phrases repeat across subscribers ("diffusion"), so each is parsed once.
        wanted: list[tuple[str, tuple[str, ...]]] = []
        excluded: list[tuple[str, ...]] = []
        for phrase in phrases:
            is_excluded, text, stems = _parse_phrase(phrase)
            if not stems:
                continue
            if is_excluded:
                excluded.append(stems)
            else:
                wanted.append((text, stems))
        return cls(wanted=wanted, excluded=excluded, texts=tuple(text for text, _ in wanted))


def specificity(
    stems: tuple[str, ...], background: PaperIndex, *, enough_background: bool
) -> float:
    """1 for a phrase in one or two recent papers, falling towards 0 as it gets common.

    Without `enough_background` (too few papers to say what is common) every phrase
    counts fully."""
    total = len(background.papers)
    if total <= 2 or not enough_background:
        return 1.0
    df = max(len(background.lookup(stems)), 1)
    return max(0.0, min(1.0, math.log(total / df) / math.log(total / 2)))


def phrase_evidence(
    index: PaperIndex, position: dict[int, int], stems: tuple[str, ...], specificity: float
) -> tuple[np.ndarray[Any, np.dtype[np.bool_]], np.ndarray[Any, np.dtype[np.float32]]]:
    """Per paper (by `position`): whether the phrase is in it, and its keyword evidence."""
    hits = np.zeros(len(position), dtype=bool)
    evidence = np.zeros(len(position), dtype=np.float32)
    for paper_id, hit in index.lookup(stems).items():
        hits[position[paper_id]] = True
        evidence[position[paper_id]] = KEYWORD_FIELD[hit.field] * specificity
    return hits, evidence
