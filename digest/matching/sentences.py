"""The meaning signal: how unusually close a paper is to a reader's text, by its vectors.

Each paper is embedded as a whole (title and abstract) and as units (its title, each
sentence of its abstract); so are a reader's sentence and each of their phrases (see
vectors.py). Raw cosine similarities mean different things for different texts (a broad
sentence is "close" to everything), so each becomes a z-score against the recent papers:
how unusual this paper's closeness is *for this reader's text*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Matrix = np.ndarray[Any, np.dtype[np.float32]]
Scores = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class PaperVectors:
    """Papers' vectors: a whole-text row per paper, and their units' rows (titles and
    sentences), paper by paper from `unit_starts`."""

    whole: Matrix
    units: Matrix
    unit_starts: np.ndarray[Any, Any]


def zscores(sims: Scores, reference: Scores) -> Scores:
    """Each row of `sims` as z-scores against the same row's `reference` distribution."""
    mean = reference.mean(axis=1, keepdims=True)
    spread = np.maximum(reference.std(axis=1, keepdims=True), 1e-6)
    return ((sims - mean) / spread).astype(np.float32)


def closeness(
    rows: Matrix, papers: PaperVectors, background: PaperVectors
) -> tuple[Scores, Scores]:
    """Per text (row) and paper: how unusually close the whole paper is, and its closest
    title or sentence, each as z-scores against the background papers."""
    rows = np.atleast_2d(rows)
    whole = zscores(rows @ papers.whole.T, rows @ background.whole.T)
    best_unit = np.maximum.reduceat(rows @ papers.units.T, papers.unit_starts, axis=1)
    reference = np.maximum.reduceat(rows @ background.units.T, background.unit_starts, axis=1)
    return whole, zscores(best_unit, reference)
