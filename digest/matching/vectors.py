"""Stored sentence vectors: papers once each, subscribers once per edit.

Embedding is the slow part (about a tenth of a second per abstract on a CPU), so nothing
is embedded twice: a paper keeps its vector, and a subscriber's vectors carry a key of
the texts they were made from and are remade only when those texts change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from subscriptions.models import Subscriber

from ..models import Paper
from .embedding import DIMENSIONS, embed_texts, from_bytes, text_key, to_bytes
from .keywords import Topics
from .words import intent_words

EMBED_BATCH_PAPERS = 8


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
MIN_SENTENCE = 20  # shorter pieces ("Code is available.") say nothing about the topic


def paper_texts(paper: Paper) -> list[str]:
    """What a paper's vectors are of: title and abstract together, the title alone, then
    each sentence of the abstract. A paper about X often says so in one sentence, which
    the whole abstract's vector dilutes with everything else it says."""
    title = " ".join(paper.title.split())
    abstract = " ".join(paper.abstract.split())
    sentences = [s for s in _SENTENCE_END.split(abstract) if len(s) >= MIN_SENTENCE]
    return [f"{title}. {abstract}".strip(), title, *sentences]


def papers_embed(
    papers: Sequence[Paper], *, on_progress: Callable[[int, int], None] | None = None
) -> int:
    """Give every paper without vectors its vectors, stored; return how many were embedded.

    `on_progress(done, total)` is called as papers are embedded, a few at a time.
    """
    missing = [p for p in papers if not p.embedding]
    for start in range(0, len(missing), EMBED_BATCH_PAPERS):
        batch = missing[start : start + EMBED_BATCH_PAPERS]
        texts = [paper_texts(p) for p in batch]
        rows = embed_texts([t for group in texts for t in group])
        offset = 0
        for paper, group in zip(batch, texts, strict=True):
            paper.embedding = to_bytes(rows[offset : offset + len(group)])
            offset += len(group)
        Paper.objects.bulk_update(batch, ["embedding"])
        if on_progress:
            on_progress(start + len(batch), len(missing))
    return len(missing)


def paper_matrix(papers: Sequence[Paper]) -> np.ndarray[Any, Any]:
    """One row per paper: its title-and-abstract vector."""
    if not papers:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    return np.vstack([from_bytes(p.embedding)[:1] for p in papers])


def paper_units(papers: Sequence[Paper]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The title and sentence vectors of all papers, and where each paper's rows start."""
    blocks = [from_bytes(p.embedding) for p in papers]
    units = [b[1:] if len(b) > 1 else b for b in blocks]
    starts = np.cumsum([0] + [len(u) for u in units[:-1]]) if units else np.zeros(0, int)
    matrix = np.vstack(units) if units else np.zeros((0, DIMENSIONS), dtype=np.float32)
    return matrix, starts.astype(np.int64)


def subscriber_texts(subscriber: Subscriber) -> tuple[str, list[str]]:
    """The texts a subscriber's vectors are of: their sentence and their wanted phrases."""
    wanted = [text for text, _ in Topics.parse(subscriber.topics).wanted]
    return subscriber.intent.strip(), wanted


def subscribers_embed(subscribers: Sequence[Subscriber], *, save: bool = True) -> int:
    """(Re)make the vectors of subscribers whose sentence or topics changed.

    The sentence's vector is stored apart from the phrases': matching reads it for every
    reader every day, and the phrases' only for phrases it meets for the first time.
    """
    stale: list[Subscriber] = []
    texts: set[str] = set()
    for subscriber in subscribers:
        intent, phrases = subscriber_texts(subscriber)
        key = text_key(intent, *phrases)
        if subscriber.embedding_key != key or (intent and not subscriber.intent_vector):
            subscriber.embedding_key = key
            stale.append(subscriber)
            texts.update(phrases)
            if intent:
                texts.add(intent)
    if not stale:
        return 0
    ordered = sorted(texts)
    vectors = dict(zip(ordered, embed_texts(ordered), strict=True))
    for subscriber in stale:
        intent, phrases = subscriber_texts(subscriber)
        subscriber.intent_vector = to_bytes(vectors[intent][None]) if intent else b""
        rows = [vectors[p] for p in phrases]
        subscriber.embedding = to_bytes(np.vstack(rows)) if rows else b""
        subscriber.intent_words = intent_words(intent)
    if save:
        # Only saved rows have a key to update; a preview's unsaved copy keeps them in memory.
        stored = [s for s in stale if s.pk is not None]
        Subscriber.objects.bulk_update(
            stored,
            ["intent_vector", "embedding", "embedding_key", "intent_words"],
            batch_size=500,
        )
    return len(stale)
