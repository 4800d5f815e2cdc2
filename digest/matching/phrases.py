"""Each distinct phrase's signals over an edition's papers, shared by every reader who typed it.

A phrase's row says, per paper: whether the phrase is in it, its keyword evidence (where,
times how specific), and how unusually close the paper is to the phrase's meaning (the
whole paper, and its closest title or sentence). Thousands of readers type "diffusion";
its row is made once per scorer, and a scorer kept from run to run keeps its rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .keywords import phrase_stems
from .sentences import Scores

# Rows the phrase table starts with; it doubles as phrases arrive, so this only spares the
# first few copies.
INITIAL_PHRASES = 16


class PhraseTable:
    """Each distinct phrase's signals over the edition's papers, one row per phrase.

    Rows are shared by every reader who typed the phrase; the arrays grow by doubling so
    adding a phrase does not copy the table each time.
    """

    def __init__(self, papers: int) -> None:
        self.slots: dict[tuple[tuple[str, ...], str], int] = {}
        self.by_text: dict[str, int] = {}  # the phrase as typed -> its row, the fast way in
        self.count = 0
        rows = INITIAL_PHRASES
        self.hits = np.zeros((rows, papers), dtype=bool)  # the phrase is in the paper
        self.evidence = np.zeros((rows, papers), dtype=np.float32)  # field x specificity
        self.z = np.zeros((rows, papers), dtype=np.float32)  # whole paper's closeness
        self.z_units = np.zeros((rows, papers), dtype=np.float32)  # closest sentence's

    def add(
        self,
        key: tuple[tuple[str, ...], str] | None,
        hits: np.ndarray[Any, np.dtype[np.bool_]],
        evidence: Scores,
        z: Scores,
        z_units: Scores,
    ) -> int:
        """Store a phrase's rows; `key=None` stores them for this batch only (not found again)."""
        if self.count == len(self.z):
            grow = ((0, len(self.z)), (0, 0))
            self.hits, self.evidence, self.z, self.z_units = (
                np.pad(self.hits, grow),
                np.pad(self.evidence, grow),
                np.pad(self.z, grow),
                np.pad(self.z_units, grow),
            )
        slot = self.count
        self.hits[slot], self.evidence[slot] = hits, evidence
        self.z[slot], self.z_units[slot] = z, z_units
        self.count += 1
        if key is not None:
            self.slots[key] = slot
            self.by_text[key[1]] = slot
        return slot

    def knows(self, phrase: str) -> bool:
        """Whether the phrase's signals are made already, so its vector is not needed."""
        return phrase in self.by_text or (phrase_stems(phrase), phrase.lower()) in self.slots

    def knows_all(self, phrases: Sequence[str]) -> bool:
        """`knows` of every phrase (the quick way first: each typed exactly as before)."""
        return all(map(self.by_text.__contains__, phrases)) or all(map(self.knows, phrases))

    def learned_since(self, start: int) -> LearnedPhrases:
        """The phrases stored from row `start` on (and how they were typed), to be handed
        to another copy of this table: a forked scorer's to the run's own."""
        keyed = sorted((slot, key) for key, slot in self.slots.items() if slot >= start)
        typed: dict[int, list[str]] = defaultdict(list)
        for text, slot in self.by_text.items():
            if slot >= start:
                typed[slot].append(text)
        slots = [slot for slot, _ in keyed]
        return LearnedPhrases(
            keys=[key for _, key in keyed],
            typed=[typed[slot] for slot in slots],
            rows=(self.hits[slots], self.evidence[slots], self.z[slots], self.z_units[slots]),
        )

    def learn(self, learned: LearnedPhrases) -> None:
        """Take the phrases another copy of this table made, those not known here yet."""
        hits, evidence, z, z_units = learned.rows
        for i, (key, typed) in enumerate(zip(learned.keys, learned.typed, strict=True)):
            slot = self.slots.get(key)
            if slot is None:
                slot = self.add(key, hits[i], evidence[i], z[i], z_units[i])
            for text in typed:
                self.by_text.setdefault(text, slot)


@dataclass
class LearnedPhrases:
    """Phrases' rows made by one copy of a scorer, for another (see `PhraseTable`)."""

    keys: list[tuple[tuple[str, ...], str]]
    typed: list[list[str]]  # per phrase, how readers typed it
    rows: tuple[np.ndarray[Any, Any], ...]  # hits, evidence, z, z_units: a row per phrase

    def __len__(self) -> int:
        return len(self.keys)
