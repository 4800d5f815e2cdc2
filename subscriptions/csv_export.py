"""Subscribers as CSV, for the admin's "Export CSV" action.

Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula (and a leading
tab or carriage return can hide one), so a subscriber who typed `=HYPERLINK(…)` as a topic
could make an operator's spreadsheet fetch a URL. Such a cell is written with a leading
apostrophe, which spreadsheets show as text and hide.

The apostrophe is added to the CSV cell only, never to the stored data: a topic such as
"-survey" (an exclusion) is legitimate and stays "-survey" in the database, but a topics
cell that starts with it is written as "'-survey; diffusion". The CSV import strips that
apostrophe again (`csv_import.unquote_cell`), so an export can be imported back unchanged.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator

from .models import Subscriber

EXPORT_COLUMNS = [
    "email",
    "status",
    "frequency",
    "max_papers",
    "topics",
    "created_at",
    "confirmed_at",
]
TOPIC_JOINER = "; "  # the import splits on ";" and trims, so the two agree
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """The cell as a spreadsheet will show it as text, never run it as a formula."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def _when(value: dt.datetime | None) -> str:
    # ISO 8601 in UTC (the stored time zone): sorts as text, and every tool parses it.
    return value.isoformat() if value is not None else ""


def subscriber_row(subscriber: Subscriber) -> list[str]:
    cells = [
        subscriber.email,
        subscriber.status,
        subscriber.frequency,
        str(subscriber.max_papers),
        TOPIC_JOINER.join(str(t) for t in subscriber.topics or []),
        _when(subscriber.created_at),
        _when(subscriber.confirmed_at),
    ]
    return [safe_cell(cell) for cell in cells]


class _Echo:
    """A file-like object that hands back what is written, for streaming csv.writer."""

    def write(self, value: str) -> str:
        return value


def subscribers_csv(subscribers: Iterable[Subscriber]) -> Iterator[str]:
    """The header line, then one line per subscriber, produced as they are read.

    A generator, so a response can stream a large export without holding it in memory.
    """
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for subscriber in subscribers:
        yield writer.writerow(subscriber_row(subscriber))
