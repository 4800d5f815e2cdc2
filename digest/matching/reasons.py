"""Why a paper is in a digest: a match, its reasons, and the words shown around a hit.

Every paper says why it is there: the matched words highlighted in their title, keyword
or abstract ("keyword" reasons, one per phrase that hit, title hits first), or, with
nothing to highlight, "close to what you described", "like ‹title›, which you liked",
"close in meaning to ‹phrase›" (plain reasons), or "#2 today · 212 upvotes" (trending.py).

Reasons repeat: thousands of readers typed "diffusion" and get the same paper for it. A
scorer makes each reason once (`SharedReasons`) and hands out one shared tuple, so the
writer encodes each only once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .keywords import FIELD_WEIGHTS, KEYWORD_SEPARATOR, Hit, PaperIndex, phrase_stems

SNIPPET_CONTEXT = 70  # characters either side of a match in an abstract


class Reason(NamedTuple):
    """Why a paper is in a digest: which topic matched, where, and the words around it.

    A tuple, so it hashes cheaply: the reasons of a day's items are shared and counted."""

    topic: str
    field: str
    before: str
    match: str
    after: str

    def as_dict(self) -> dict[str, str]:
        return {
            "topic": self.topic,
            "field": self.field,
            "before": self.before,
            "match": self.match,
            "after": self.after,
        }


class Match(NamedTuple):
    """A paper chosen for a reader, its score, and why (strongest reason first).

    A tuple rather than a dataclass: matching makes hundreds of thousands of them a day,
    and equal reasons are one shared tuple."""

    paper_id: int
    score: float
    reasons: Sequence[Reason]


def snippet(index: PaperIndex, paper_id: int, topic: str, hit: Hit) -> Reason:
    """The reason a phrase's hit gives: the matched words, with some of their field."""
    text = index.papers[paper_id].fields[hit.field].text
    if hit.field == "keywords":
        # Show the one keyword that matched, not the whole list.
        lo = text.rfind(KEYWORD_SEPARATOR, 0, hit.start)
        hi = text.find(KEYWORD_SEPARATOR, hit.end)
        lo = 0 if lo < 0 else lo + len(KEYWORD_SEPARATOR)
        hi = len(text) if hi < 0 else hi
    elif hit.field == "abstract":
        lo, hi = _word_window(text, hit.start, hit.end, SNIPPET_CONTEXT)
    else:
        lo, hi = 0, len(text)
    before = text[lo : hit.start]
    after = text[hit.end : hi]
    if hit.field == "abstract":
        before = ("…" if lo > 0 else "") + before.lstrip()
        after = after.rstrip() + ("…" if hi < len(text) else "")
    return Reason(
        topic=topic,
        field=hit.field,
        before=before,
        match=text[hit.start : hit.end],
        after=after,
    )


def _word_window(text: str, start: int, end: int, context: int) -> tuple[int, int]:
    """Widen [start, end) by about `context` characters each side, on word boundaries."""
    lo = max(0, start - context)
    if lo > 0:
        space = text.find(" ", lo, start)
        lo = space + 1 if space >= 0 else lo
    hi = min(len(text), end + context)
    if hi < len(text):
        space = text.rfind(" ", end, hi)
        hi = space if space >= 0 else hi
    return lo, hi


class SharedReasons:
    """A scorer's reasons, each made once: by (paper position, phrases that hit it) for
    keyword reasons, by (-1, kind, topic) for plain ones. The scorer reads `known`
    directly in its loop over readers, and asks for a reason only when it is new."""

    def __init__(self, index: PaperIndex, paper_ids: Sequence[int]) -> None:
        self.index, self.paper_ids = index, paper_ids
        self.known: dict[tuple[int | str, ...], tuple[Reason, ...]] = {}

    def keyword(self, key: tuple[int | str, ...]) -> tuple[Reason, ...]:
        """The snippets of phrases key[1:] in paper key[0], title hits first; made once."""
        paper_id = self.paper_ids[int(key[0])]
        index = self.index
        made = [
            snippet(index, paper_id, text, index.lookup(phrase_stems(text))[paper_id])
            for text in map(str, key[1:])
        ]
        made.sort(key=lambda r: -FIELD_WEIGHTS[r.field])
        reasons = self.known[key] = tuple(made)
        return reasons

    def plain(self, topic: str, kind: str) -> tuple[Reason, ...]:
        """A reason with nothing to highlight ("described", "liked", "related"), shared."""
        key = (-1, kind, topic)
        reasons = self.known.get(key)
        if reasons is None:
            plain = Reason(topic=topic, field=kind, before="", match="", after="")
            reasons = self.known[key] = (plain,)
        return reasons
