"""Import subscribers from a CSV file an operator uploads in the admin.

The file has the columns email, topics (separated by ";"; empty for a subscriber of the day's
trending papers), frequency (optional: daily or weekly) and max_papers (optional: 1–20).
A header row naming the columns is optional; with one, the columns may come in any order
and other columns are ignored, so a file from the admin's "Export CSV" imports back as it
is.

Every row is checked on its own: a bad row is reported with its line number and the
reason, and the good rows are imported anyway, so one typo does not send the operator
back to the start. What the import does to an address depends on its state:

==============  ==========================================================================
address is      what happens
==============  ==========================================================================
new             added: active (pre-confirmed mode) or pending with a confirmation email
pending         settings updated; active (pre-confirmed) or the confirmation sent again
active, paused  settings updated; status kept, no email
unsubscribed    not touched, reported: they left by themselves, and a list someone else
                made does not sign them up again (they can, on the signup form)
suppressed      not touched, reported: it bounced or complained; only the "Unsuppress"
                action puts it back
==============  ==========================================================================

A blank frequency, max_papers or topics cell keeps an existing subscriber's setting; a new
subscriber gets the defaults, and no topics (the trending papers, most upvoted first).
The whole file is read and parsed before anything is written: a file that is not CSV,
not UTF-8 or too big is refused as a whole and changes nothing.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import transaction

from subscriptions.csv_export import FORMULA_STARTS
from subscriptions.models import DEFAULT_PAPERS, MAX_PAPERS, MIN_PAPERS, Subscriber, normalise_email
from subscriptions.services import subscriber_add
from subscriptions.topics import InvalidTopic, clean_topic_list

from .signup import confirmation_send as _signup_confirmation_send

MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_EMAIL_LENGTH = 254  # RFC 5321's forward path, less the angle brackets
SHOWN = 60  # characters of a bad value quoted back in a reason

COLUMNS = ("email", "topics", "frequency", "max_papers")
# What a person may call a column in a header; compared lower-cased, spaces as "_".
_ALIASES = {"interests": "topics", "papers": "max_papers", "max_papers_per_email": "max_papers"}
# Right-to-left overrides and isolates: Unicode "format" characters, not "control" ones,
# but they make an address or a topic display as other text.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class ImportMode(StrEnum):
    PRE_CONFIRMED = "pre_confirmed"  # the operator vouches for the addresses
    SEND_CONFIRMATION = "send_confirmation"  # double opt-in, as on the signup form


@dataclass(frozen=True)
class BadRow:
    line: int  # where the row starts in the file, counting the header, from 1
    email: str  # as typed (shortened), so the operator can find the row
    reason: str


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    confirmations_sent: int = 0
    confirmations_held: int = 0  # pending, but one was sent minutes ago: not sent again
    bad_rows: list[BadRow] = field(default_factory=list)
    error: str = ""  # the file as a whole was refused, and nothing was imported

    @property
    def imported(self) -> int:
        return self.added + self.updated + self.unchanged


@dataclass(frozen=True)
class _Row:
    line: int
    cells: dict[str, str]


@dataclass(frozen=True)
class _GoodRow:
    line: int
    email: str
    topics: list[str] | None  # None: keep the subscriber's (a new one has none)
    frequency: str | None  # None: keep the subscriber's (or the default)
    max_papers: int | None


class _BadValue(ValueError):
    pass


class _FileRefused(ValueError):
    pass


def _shown(value: str) -> str:
    value = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in value)
    return value if len(value) <= SHOWN else value[: SHOWN - 1] + "…"


def unquote_cell(value: str) -> str:
    """Undo the apostrophe an export puts before a cell a spreadsheet would run (see
    csv_export): "'-survey; diffusion" reads as "-survey; diffusion"."""
    if len(value) > 1 and value[0] == "'" and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS for ch in value)


# --- Reading the file -------------------------------------------------------------------


def _decode(data: bytes) -> str:
    if len(data) > MAX_IMPORT_BYTES:
        raise _FileRefused(
            f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB; split it in parts."
        )
    try:
        # utf-8-sig drops the byte-order mark Excel writes at the start of "CSV UTF-8".
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _FileRefused(
            f"The file is not UTF-8 text (first bad byte on line {line}). Save it as “CSV UTF-8”."
        ) from None


def _header_columns(cells: Sequence[str]) -> list[str] | None:
    """The column names if this row is a header (it names an email column), else None."""
    if len(cells) == 1 and cells[0].strip().lower().startswith("email;"):
        # Excel in many European locales separates columns with ";", which this format
        # keeps for topics: say so, rather than report every row as a bad address.
        raise _FileRefused(
            "The columns are separated by “;”. Save the file with commas between columns "
            "(“CSV UTF-8 (Comma delimited)”)."
        )
    names = ["_".join(cell.strip().lower().split()) for cell in cells]
    names = [_ALIASES.get(name, name) for name in names]
    if "email" not in names:
        return None
    if "topics" not in names and len(names) > 1:
        # A lone "email" column is a list of trending subscribers; more columns without one
        # named "topics" is a misspelt header, which would import every row without topics.
        raise _FileRefused("The header row has an “email” column but no “topics” column.")
    return names


def _read_rows(text: str) -> list[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[_Row] = []
    columns: list[str] | None = None
    line = 1  # where the next row starts: a quoted cell may span several lines
    try:
        for cells in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue  # a blank line is no row, and no error
            if columns is None:
                columns = _header_columns(cells)
                if columns is not None:
                    continue
                columns = list(COLUMNS)
            named = {name: cell for name, cell in zip(columns, cells, strict=False)}
            rows.append(_Row(start, {name: named.get(name, "") for name in COLUMNS}))
    except csv.Error as exc:
        raise _FileRefused(f"Line {reader.line_num} cannot be read as CSV: {exc}.") from None
    if not rows:
        raise _FileRefused("The file has no subscribers in it.")
    return rows


# --- Checking a row ---------------------------------------------------------------------


def _clean_email(raw: str) -> str:
    address = normalise_email(raw)
    if not address:
        raise _BadValue("no email address")
    if len(address) > MAX_EMAIL_LENGTH:
        raise _BadValue(f"bad email address: longer than {MAX_EMAIL_LENGTH} characters")
    try:
        EmailValidator()(address)
    except ValidationError:
        raise _BadValue(f"bad email address “{_shown(raw.strip())}”") from None
    return address


def _clean_topics(raw: str) -> list[str] | None:
    try:
        topics = clean_topic_list(unquote_cell(raw.strip()).split(";"))
    except InvalidTopic as exc:
        raise _BadValue(f"bad topics: {exc}") from None
    if not topics:
        return None  # a new subscriber gets the trending papers; an existing one keeps theirs
    if all(topic.startswith("-") for topic in topics):
        raise _BadValue("no topics: a topic starting with “-” only leaves papers out")
    return topics


def _clean_frequency(raw: str) -> str | None:
    value = raw.strip().lower()
    if not value:
        return None
    if value not in Subscriber.Frequency.values:
        raise _BadValue(f"bad frequency “{_shown(raw.strip())}”: use daily or weekly")
    return value


def _clean_max_papers(raw: str) -> int | None:
    value = raw.strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not MIN_PAPERS <= number <= MAX_PAPERS:
        raise _BadValue(
            f"max_papers “{_shown(value)}” is not a whole number from {MIN_PAPERS} to {MAX_PAPERS}"
        )
    return number


def _check_row(row: _Row) -> _GoodRow:
    if any(_has_control_characters(cell) for cell in row.cells.values()):
        raise _BadValue("contains control characters (a line break or tab inside a cell?)")
    return _GoodRow(
        line=row.line,
        email=_clean_email(unquote_cell(row.cells["email"])),
        topics=_clean_topics(row.cells["topics"]),
        frequency=_clean_frequency(row.cells["frequency"]),
        max_papers=_clean_max_papers(row.cells["max_papers"]),
    )


# --- Writing ----------------------------------------------------------------------------

# What subscriber_add may change, to tell "updated" from "unchanged".
_SETTINGS = ("status", "topics", "frequency", "max_papers")


def _topics_of(row: _GoodRow, existing: Subscriber | None) -> list[str]:
    if row.topics is not None:
        return row.topics
    return list(existing.topics) if existing is not None else []  # blank: kept, or none


def _import_row(
    row: _GoodRow,
    mode: ImportMode,
    report: ImportReport,
    to_confirm: list[Subscriber],
) -> BadRow | None:
    with transaction.atomic():
        # Locked, so the state the decision reads is the one subscriber_add changes.
        existing = Subscriber.objects.select_for_update().filter(email=row.email).first()
        if existing is not None and existing.status == Subscriber.Status.SUPPRESSED:
            why = f" ({existing.suppressed_reason})" if existing.suppressed_reason else ""
            return BadRow(
                row.line,
                row.email,
                f"suppressed address{why}: an import never subscribes it again",
            )
        if existing is not None and existing.status == Subscriber.Status.UNSUBSCRIBED:
            return BadRow(
                row.line,
                row.email,
                "unsubscribed by themselves: an import does not sign them up again",
            )
        before = {name: getattr(existing, name) for name in _SETTINGS} if existing else None
        subscriber, created = subscriber_add(
            email=row.email,
            topics=_topics_of(row, existing),
            frequency=row.frequency
            or (existing.frequency if existing else Subscriber.Frequency.DAILY),
            max_papers=row.max_papers or (existing.max_papers if existing else DEFAULT_PAPERS),
            confirmed=mode is ImportMode.PRE_CONFIRMED,
        )
    if created:
        report.added += 1
    elif before != {name: getattr(subscriber, name) for name in _SETTINGS}:
        report.updated += 1
    else:
        report.unchanged += 1
    if mode is ImportMode.SEND_CONFIRMATION and subscriber.status == Subscriber.Status.PENDING:
        to_confirm.append(subscriber)
    return None


def _confirmation_send(subscriber: Subscriber) -> bool:
    return _signup_confirmation_send(subscriber=subscriber)


def subscribers_import(
    *,
    data: bytes,
    mode: ImportMode,
    confirmation_send: Callable[[Subscriber], bool] | None = None,
) -> ImportReport:
    """Import the rows that are good, report the ones that are not (see the module doc).

    `confirmation_send(subscriber)` sends one confirmation email and says whether it went
    (False when one was sent too recently); in SEND_CONFIRMATION mode it is called for each
    subscriber left pending, once every row is saved. The default is signup's.
    """
    report = ImportReport()
    try:
        rows = _read_rows(_decode(data))
    except _FileRefused as exc:
        report.error = str(exc)
        return report
    first_line: dict[str, int] = {}
    to_confirm: list[Subscriber] = []
    for row in rows:
        try:
            good = _check_row(row)
        except _BadValue as exc:
            report.bad_rows.append(BadRow(row.line, _shown(row.cells["email"].strip()), str(exc)))
            continue
        # The first row with an address decides it; a later one would silently win.
        if good.email in first_line:
            report.bad_rows.append(
                BadRow(
                    row.line,
                    good.email,
                    f"duplicate: the address is on line {first_line[good.email]}",
                )
            )
            continue
        first_line[good.email] = good.line
        bad = _import_row(good, mode, report, to_confirm)
        if bad is not None:
            report.bad_rows.append(bad)
    if to_confirm:
        send = confirmation_send or _confirmation_send
        for subscriber in to_confirm:
            if send(subscriber):
                report.confirmations_sent += 1
            else:
                report.confirmations_held += 1
    return report
