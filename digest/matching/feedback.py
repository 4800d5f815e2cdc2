"""The feedback signal: closeness to papers a reader asked for more of, or fewer of.

A reader's "more like this" / "less like this" (recorded by digest/feedback.py) gives them
liked and disliked papers; a paper close to a liked one gains, one close to a disliked one
loses, and a near-twin of a disliked paper is never sent. How much each weighs is the
scorer's (W_LIKED, W_DISLIKED); this module says how strongly a paper resembles them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .sentences import Matrix, Scores

# Similarity at which a liked / disliked paper starts to pull, and saturates.
FEEDBACK_FROM, FEEDBACK_FULL = 0.55, 0.85


def has_rows(rows: Matrix | None) -> bool:
    return rows is not None and len(rows) > 0


def strength(readers: Sequence[Matrix], vectors: Matrix) -> Scores:
    """Per reader (their papers' rows) and paper (`vectors`): how strongly it resembles one
    of that reader's papers, from 0 (not past FEEDBACK_FROM) to 1 (FEEDBACK_FULL or more)."""
    rows, starts = _stacked(readers)
    best = np.maximum.reduceat(rows @ vectors.T, starts, axis=0)
    return np.clip((best - FEEDBACK_FROM) / (FEEDBACK_FULL - FEEDBACK_FROM), 0.0, 1.0)


def _stacked(rows: Sequence[Matrix]) -> tuple[Matrix, np.ndarray[Any, Any]]:
    """Several readers' row blocks as one matrix, and where each reader's rows start."""
    starts = np.cumsum([0] + [len(r) for r in rows[:-1]]).astype(np.int64)
    return np.vstack(rows).astype(np.float32, copy=False), starts
