"""Readers for matching: each subscriber's topics, vectors and feedback, loaded in bulk.

Matching a hundred thousand subscribers must not read a hundred thousand full rows of
vectors. A subscriber's sentence vector is stored apart (`intent_vector`) from their
phrases' (`embedding`), and phrases are shared (thousands of people type "diffusion"),
so the scorer keeps each phrase's signals once: the bulk loader reads each subscriber's
sentence vector and fetches the phrases' vectors only for subscribers with a phrase the
scorer has not seen yet. A liked or disliked paper's vector is read once per run, however
many readers gave it feedback.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from django.db.models import BinaryField, F, Func, Value

from subscriptions.models import Subscriber

from ..lookups import ints
from ..models import Feedback, Paper
from .embedding import ROW_BYTES, from_bytes, text_key
from .keywords import Topics
from .sentences import Matrix
from .vectors import subscribers_embed
from .windows import Window
from .words import stored_intent_terms

if TYPE_CHECKING:
    from .scorer import EditionScorer


@dataclass
class Reader:
    """What matching needs to know of one subscriber: the one shape of a reader, made
    from a stored row (`load_readers`) or a subscriber in memory (`readers_for`)."""

    key: int
    topics: Sequence[str]
    limit: int
    intent: Matrix | None = None  # one row, or None without a sentence
    # The sentence's distinct stemmed words (`intent_terms_of`); () without a sentence.
    intent_terms: Sequence[str] = ()
    phrase_vectors: dict[str, Matrix] = field(default_factory=dict)  # phrase -> row
    liked: Matrix | None = None  # rows of papers they want more like
    liked_titles: Sequence[str] = ()
    disliked: Matrix | None = None
    exclude_paper_ids: set[int] | frozenset[int] = frozenset()
    parsed: Topics | None = None  # `topics` parsed, when the loader has done it
    # The papers this digest covers (see windows.py); None: every paper of the scorer.
    window: Window | None = None
    trending: str = "none"  # Subscriber.Trending, as it applies (none, few, only)
    frequency: str = "daily"


class FirstRow(Func):
    """The first stored vector of a blob of vectors (SUBSTR works on blobs in SQLite and
    on bytea in PostgreSQL): a paper's whole-text vector, 1.5 KB of its ~15 KB."""

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
    topics: Sequence[str],
    parsed: Topics | None = None,
    intent: str,
    words: str,
    intent_vector: bytes | memoryview | None,
    phrase_vectors: bytes | memoryview | None,
    limit: int,
    feedback: dict[int, list[int]] | None,
    papers: FeedbackPapers,
    exclude: set[int],
    trending: str = "none",
    frequency: str = "daily",
) -> Reader:
    """A Reader from a subscriber's stored vectors (`phrase_vectors` may not have been
    read: the scorer knows every phrase)."""
    phrases = (parsed or Topics.parse(topics)).texts
    if not phrases:
        trending = "only"  # no topics: the trending list, whatever else was chosen
    sentence = from_bytes(intent_vector) if intent else None
    liked = [papers.rows[p] for p in (feedback or {}).get(1, []) if p in papers.rows]
    disliked = [papers.rows[p] for p in (feedback or {}).get(-1, []) if p in papers.rows]
    has_intent = sentence is not None and len(sentence) > 0
    return Reader(
        key=subscriber_id,
        topics=topics,
        limit=max(1, limit),
        intent=sentence[0] if sentence is not None and has_intent else None,
        intent_terms=stored_intent_terms(intent, words) if has_intent else (),
        phrase_vectors=dict(zip(phrases, from_bytes(phrase_vectors), strict=False)),
        liked=np.vstack([v for v, _ in liked]) if liked else None,
        liked_titles=[t for _, t in liked],
        disliked=np.vstack([v for v, _ in disliked]) if disliked else None,
        exclude_paper_ids=exclude,
        parsed=parsed,
        trending=trending,
        frequency=frequency,
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
        readers.append(
            _reader(
                subscriber.pk or 0,
                topics=subscriber.topics,
                intent=subscriber.intent.strip(),
                words=subscriber.intent_words,
                intent_vector=subscriber.intent_vector,
                phrase_vectors=subscriber.embedding,
                limit=subscriber.max_papers,
                feedback=given.get(subscriber.pk or 0),
                papers=papers,
                exclude=(exclude or {}).get(subscriber.pk or 0, set()),
                trending=subscriber.trending,
                frequency=subscriber.frequency,
            )
        )
    return readers


@dataclass
class _Stored:
    """A subscriber's row as read, while its vectors may still come (a stale reader's
    remade, unknown phrases' fetched); each becomes a Reader."""

    frequency: str
    topics: list[str]
    parsed: Topics
    intent: str
    words: str  # the intent's stored BM25 words
    limit: int
    trending: str
    intent_vector: bytes | memoryview | None
    phrase_vectors: bytes | memoryview | None = None


def load_readers(
    subscriber_ids: Sequence[int],
    *,
    scorer_for: Callable[[str], EditionScorer],
    papers: FeedbackPapers,
    exclude: dict[int, set[int]],
    embed_stale: bool = True,
) -> list[Reader]:
    """Readers of stored subscribers, reading as little as matching needs (see above).

    `scorer_for(frequency)` is the scorer a subscriber of that frequency is matched by: a
    phrase it already knows needs no vector. Subscribers whose stored vectors are stale
    (they edited their topics and nobody embedded them since) are embedded and saved here,
    or, with `embed_stale=False`, left out (a forked process must not embed: the caller
    matches them where it can).
    """
    rows = (
        Subscriber.objects.filter(id__in_ints=ints(subscriber_ids))
        .order_by()
        .values_list(
            "id",
            "frequency",
            "topics",
            "intent",
            "intent_words",
            "max_papers",
            "trending",
            "embedding_key",
            "intent_vector",
        )
    )
    stored: dict[int, _Stored] = {}
    stale: list[int] = []
    unknown: list[int] = []  # fresh, but with a phrase the scorer has not seen
    for subscriber_id, frequency, topics, intent, words, limit, trending, key, vector in rows:
        parsed = Topics.parse(topics)
        sentence = intent.strip()
        if key != text_key(sentence, *parsed.texts) or (sentence and not vector):
            stale.append(subscriber_id)
        elif not scorer_for(frequency).phrases.knows_all(parsed.texts):
            unknown.append(subscriber_id)
        stored[subscriber_id] = _Stored(
            frequency, topics, parsed, sentence, words, limit, trending, vector
        )
    if stale and not embed_stale:
        for subscriber_id in stale:
            del stored[subscriber_id]
    elif stale:
        remade = list(Subscriber.objects.filter(id__in_ints=ints(stale)))
        subscribers_embed(remade)
        for subscriber in remade:
            row = stored[subscriber.pk]
            row.words, row.intent_vector = subscriber.intent_words, subscriber.intent_vector
            row.phrase_vectors = subscriber.embedding
    if unknown:
        blobs = Subscriber.objects.filter(id__in_ints=ints(unknown)).values_list("id", "embedding")
        for subscriber_id, blob in blobs:
            stored[subscriber_id].phrase_vectors = blob

    given = _feedback(list(stored), papers)
    return [
        _reader(
            subscriber_id,
            topics=row.topics,
            parsed=row.parsed,
            intent=row.intent,
            words=row.words,
            intent_vector=row.intent_vector,
            phrase_vectors=row.phrase_vectors,
            limit=row.limit,
            feedback=given.get(subscriber_id),
            papers=papers,
            exclude=exclude.get(subscriber_id, set()),
            trending=row.trending,
            frequency=row.frequency,
        )
        for subscriber_id, row in sorted(stored.items())
    ]
