"""Which papers one digest covers: those Paperboy first saw since the reader's previous one.

A digest is not "the papers of a date". Hugging Face lists papers all day, adds some to
earlier days, and a reader's hour is theirs: so each delivery covers a window of *first
seen* times, from the cutoff of the reader's previous digest to the cutoff of this run.
Consecutive windows of one reader meet end to end, so a paper listed late falls in the
next window (never a gap) and in one window only (never a repeat; the papers already sent
to a reader are excluded as well, whatever the windows say).

A reader's first digest has no previous cutoff: it covers the last listing day (and the
current one as far as it goes), or the last seven days for a weekly reader.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

WEEKLY = "weekly"
NEVER = -np.inf


@dataclass(frozen=True)
class Window:
    """Papers first seen in (`seen_after`, `seen_until`] (epoch seconds) and listed on
    `listed_from` (a date's ordinal) or later."""

    seen_after: float
    seen_until: float
    listed_from: int = 0

    def mask(self, seen: np.ndarray[Any, Any], listed: np.ndarray[Any, Any]) -> Any:
        """True for each paper (by its first-seen time and listing day) inside."""
        return (seen > self.seen_after) & (seen <= self.seen_until) & (listed >= self.listed_from)


def first_digest_from(until: dt.datetime, frequency: str) -> dt.date:
    """The first listing day a reader's first digest reaches back to: the last complete
    listing day before the cutoff's date (Friday, on a Monday), or a week for weekly."""
    today = until.date()
    if frequency == WEEKLY:
        return today - dt.timedelta(days=7)
    day = today - dt.timedelta(days=1)
    while day.isoweekday() > 5:  # no listings on weekends
        day -= dt.timedelta(days=1)
    return day


def oldest_covered(until: dt.datetime) -> dt.datetime:
    """However long a reader was away, a digest reaches back this far at most."""
    return until - dt.timedelta(days=settings.PAPERBOY_MAX_WINDOW_DAYS)


def delivery_window(
    *, covers_from: dt.datetime | None, covers_until: dt.datetime, frequency: str
) -> Window:
    """The window of a delivery, from its stored bounds."""
    until = covers_until.timestamp()
    if covers_from is None:
        return Window(NEVER, until, first_digest_from(covers_until, frequency).toordinal())
    after = max(covers_from, oldest_covered(covers_until))
    return Window(after.timestamp(), until)
