"""Matching: which papers each reader's digest holds, and why.

Code outside this package imports only what is named here; the modules inside are its
own (tests may reach in).

The public names, one line each:

    edition_match           choose the papers of an edition's queued deliveries, here
    edition_chunks          an edition's unmatched deliveries, in chunks for chunk tasks
    chunk_match             match one chunk of an edition's deliveries (a Celery task's work)
    MatchSummary            what a matching did: matched, and skipped by reason
    SKIP_NOTHING_MATCHED    the skip reason of a reader whose topics matched nothing
    SKIP_NO_PAPERS          the skip reason of a reader with no new papers to get
    subscriber_preview      one reader's digest of a listing day, worked out without writing
    candidates_count        how many papers a listing day offers a reader of a frequency
    recent_papers_embed     embed the recent papers before matching, with progress
    forget_scorers          drop the scorers this process keeps (tests, benches)
"""

from .batching import (
    SKIP_NO_PAPERS,
    SKIP_NOTHING_MATCHED,
    MatchSummary,
    chunk_match,
    edition_chunks,
    edition_match,
)
from .candidates import forget_scorers
from .preview import candidates_count, subscriber_preview
from .vectors import recent_papers_embed

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
