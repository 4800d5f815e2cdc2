"""Readers for matching: each subscriber's vectors and feedback, loaded in bulk.

Matching a hundred thousand subscribers must not read a hundred thousand full rows of
vectors: a subscriber's stored vectors are their sentence's row and then one per phrase,
and phrases are shared (thousands of people type "diffusion"), so the scorer keeps each
phrase's signals once. The bulk loader therefore reads only the first stored row of each
subscriber (their sentence's) and fetches the whole blob only for subscribers with a
phrase the scorer has not seen yet. A liked or disliked paper's vector is read once per
run, however many readers gave it feedback.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db.models import BinaryField, F, Func, Value

from subscriptions.models import Subscriber

from .embedding import ROW_BYTES, from_bytes, text_key
from .lookups import ints
from .matching import Interests
from .models import Feedback, Paper
from .relevance import EditionScorer, Reader, sentence_terms
from .vectors import subscriber_texts, subscribers_embed


class FirstRow(Func):
    """The first stored vector of a blob of vectors (SUBSTR works on blobs in SQLite and
    on bytea in PostgreSQL), so a query reads 1.5 KB of a row, not all of it."""

    function = "SUBSTR"
    output_field = BinaryField()

    def __init__(self, column: str) -> None:
        super().__init__(F(column), Value(1), Value(ROW_BYTES))


@dataclass
class FeedbackPapers:
    """Vectors and titles of papers readers gave feedback on, read once per run."""

    rows: dict[int, tuple[np.ndarray[Any, Any], str]] = field(default_factory=dict)

    def load(self, paper_ids: set[int]) -> None:
        missing = paper_ids - self.rows.keys()
        if not missing:
            return
        found = Paper.objects.filter(id__in=missing, embedding__isnull=False).values_list(
            "id", "title", FirstRow("embedding")
        )
        for paper_id, title, row in found:
            if row:
                self.rows[paper_id] = (from_bytes(row)[0], title)


@dataclass(frozen=True)
class LoadedReader:
    subscriber_id: int
    frequency: str
    reader: Reader


def _feedback(
    subscriber_ids: Sequence[int], papers: FeedbackPapers
) -> dict[int, dict[int, list[int]]]:
    """subscriber -> {+1: liked paper ids, -1: disliked paper ids}."""
    given: dict[int, dict[int, list[int]]] = defaultdict(lambda: {1: [], -1: []})
    rows = (
        Feedback.objects.filter(subscriber_id__in_ints=ints(subscriber_ids))
        .order_by()
        .values_list("subscriber_id", "value", "paper_id")
    )
    for subscriber_id, value, paper_id in rows:
        given[subscriber_id][1 if value > 0 else -1].append(paper_id)
    papers.load({p for by_value in given.values() for ids in by_value.values() for p in ids})
    return given


def _reader(
    subscriber_id: int,
    *,
    interests: Sequence[str],
    intent: str,
    phrases: Sequence[str],
    parsed: Interests | None = None,
    vectors: np.ndarray[Any, Any],
    limit: int,
    feedback: dict[int, list[int]] | None,
    papers: FeedbackPapers,
    exclude: set[int],
) -> Reader:
    """A Reader from a subscriber's stored vectors (`vectors`: the sentence's row first,
    then the phrases', or only as many leading rows as were read)."""
    offset = 1 if intent else 0
    # Often only the sentence's row was read (the scorer knows every phrase): no phrases.
    phrase_vectors = dict(zip(phrases, vectors[offset:], strict=False))
    liked = [papers.rows[p] for p in (feedback or {}).get(1, []) if p in papers.rows]
    disliked = [papers.rows[p] for p in (feedback or {}).get(-1, []) if p in papers.rows]
    return Reader(
        key=subscriber_id,
        interests=interests,
        limit=max(1, limit),
        intent=vectors[0] if intent and len(vectors) else None,
        intent_terms=sentence_terms(intent) if intent and len(vectors) else (),
        phrase_vectors=phrase_vectors,
        liked=np.vstack([v for v, _ in liked]) if liked else None,
        liked_titles=[t for _, t in liked],
        disliked=np.vstack([v for v, _ in disliked]) if disliked else None,
        exclude_paper_ids=exclude,
        parsed=parsed,
    )


def readers_for(
    subscribers: Sequence[Subscriber],
    *,
    exclude: dict[int, set[int]] | None = None,
    save: bool = True,
) -> list[Reader]:
    """Readers of subscribers in memory (a preview's, maybe unsaved), vectors made if stale."""
    subscribers_embed(subscribers, save=save)
    papers = FeedbackPapers()
    given = _feedback([s.pk for s in subscribers if s.pk is not None], papers)
    readers: list[Reader] = []
    for subscriber in subscribers:
        intent, phrases = subscriber_texts(subscriber)
        readers.append(
            _reader(
                subscriber.pk or 0,
                interests=subscriber.interests,
                intent=intent,
                phrases=phrases,
                vectors=from_bytes(subscriber.embedding),
                limit=subscriber.max_papers,
                feedback=given.get(subscriber.pk or 0),
                papers=papers,
                exclude=(exclude or {}).get(subscriber.pk or 0, set()),
            )
        )
    return readers


@dataclass
class _Stored:
    """What a subscriber's row says, with as many of its vectors as were read."""

    frequency: str
    interests: list[str]
    parsed: Interests
    intent: str
    phrases: list[str]
    limit: int
    vectors: np.ndarray[Any, Any]


def load_readers(
    subscriber_ids: Sequence[int],
    *,
    scorer_for: Callable[[str], EditionScorer],
    papers: FeedbackPapers,
    exclude: dict[int, set[int]],
) -> list[LoadedReader]:
    """Readers of stored subscribers, reading as little as matching needs (see above).

    `scorer_for(frequency)` is the scorer a subscriber of that frequency is matched by: a
    phrase it already knows needs no vector. Subscribers whose stored vectors are stale
    (they edited their topics and nobody embedded them since) are embedded and saved here.
    """
    rows = (
        Subscriber.objects.filter(id__in_ints=ints(subscriber_ids))
        .order_by()
        .values_list(
            "id",
            "frequency",
            "interests",
            "intent",
            "max_papers",
            "embedding_key",
            FirstRow("embedding"),
        )
    )
    stored: dict[int, _Stored] = {}
    stale: list[int] = []
    whole: list[int] = []  # fresh, but with a phrase the scorer has not seen: read it all
    for subscriber_id, frequency, interests, intent, limit, key, first in rows:
        parsed = Interests.parse(interests)
        sentence, phrases = intent.strip(), [text for text, _ in parsed.wanted]
        if not first or key != text_key(sentence, *phrases):
            stale.append(subscriber_id)
        else:
            scorer = scorer_for(frequency)
            if not all(scorer.knows(p) for p in phrases):
                whole.append(subscriber_id)
        stored[subscriber_id] = _Stored(
            frequency, interests, parsed, sentence, phrases, limit, from_bytes(first)
        )
    if stale:
        remade = list(Subscriber.objects.filter(id__in=stale))
        subscribers_embed(remade)
        for subscriber in remade:
            stored[subscriber.pk].vectors = from_bytes(subscriber.embedding)
    if whole:
        blobs = Subscriber.objects.filter(id__in_ints=ints(whole)).values_list("id", "embedding")
        for subscriber_id, blob in blobs:
            stored[subscriber_id].vectors = from_bytes(blob)

    given = _feedback(list(stored), papers)
    return [
        LoadedReader(
            subscriber_id=subscriber_id,
            frequency=row.frequency,
            reader=_reader(
                subscriber_id,
                interests=row.interests,
                parsed=row.parsed,
                intent=row.intent,
                phrases=row.phrases,
                vectors=row.vectors,
                limit=row.limit,
                feedback=given.get(subscriber_id),
                papers=papers,
                exclude=exclude.get(subscriber_id, set()),
            ),
        )
        for subscriber_id, row in sorted(stored.items())
    ]
