"""Matching: which papers each reader's digest holds, and why.

Code outside this package imports only what is named here; the modules inside are its
own (tests may reach in). Inside, one module per signal or stage:

Stages
    batching.py     an edition's matching over forked processes or Celery chunk tasks
    chunks.py       one chunk of deliveries: its readers scored, then written
    readers.py      readers loaded for matching (Reader: topics, vectors, feedback)
    windows.py      which papers one digest covers (its window of first-seen times)
    candidates.py   the papers matching draws on, and the scorer built of them, kept
    scorer.py       EditionScorer: the signals combined, thresholds, rank_many
    picks.py        each reader's chosen papers, best first, and why each came
    trending.py     the trending list mixed into a digest, as each reader chose
    reasons.py      Match and Reason: why a paper is there, snippets around a hit
    preview.py      one reader's digest worked out without writing
Signals
    keywords.py     phrases: stems, the papers' index, hits and keyword evidence
    phrases.py      each distinct phrase's signals over an edition, shared by readers
    sentences.py    meaning: closeness to a reader's texts, as z-scores
    words.py        the sentence's words, scored as BM25 z-scores
    feedback.py     closeness to papers a reader liked or disliked
Vectors
    vectors.py      stored vectors of papers and readers, made once per text
    embedding.py    the sentence model (all-MiniLM-L6-v2, int8 ONNX; minilm/ holds
                    its tokenizer)

The public names, one line each:

    edition_match           choose the papers of an edition's queued deliveries, here
    edition_chunks          an edition's unmatched deliveries, in chunks for chunk tasks
    chunk_match             match one chunk of an edition's deliveries (a task's work)
    MatchSummary            what a matching did: matched, and skipped by reason
    SKIP_NOTHING_MATCHED    the skip reason of a reader whose topics matched nothing
    SKIP_NO_PAPERS          the skip reason of a reader with no new papers to get
    subscriber_preview      one reader's digest of a listing day, worked out without writing
    candidates_count        how many papers a listing day offers a reader of a frequency
    recent_papers_embed     embed the recent papers before matching, with progress
    forget_scorers          drop the scorers this process keeps (tests, benches)
"""

from .batching import MatchSummary, chunk_match, edition_chunks, edition_match
from .candidates import forget_scorers, recent_papers_embed
from .chunks import SKIP_NO_PAPERS, SKIP_NOTHING_MATCHED
from .preview import candidates_count, subscriber_preview

__all__ = [
    "SKIP_NOTHING_MATCHED",
    "SKIP_NO_PAPERS",
    "MatchSummary",
    "candidates_count",
    "chunk_match",
    "edition_chunks",
    "edition_match",
    "forget_scorers",
    "recent_papers_embed",
    "subscriber_preview",
]
