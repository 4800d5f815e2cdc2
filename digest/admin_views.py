"""What the operator's admin does with digests, as plain functions its views call.

- `digest_preview_build`: the digest a subscriber would get on a date, rendered, or why
  there is none; nothing is written.
- `digests_send_as_test`: send that digest now, marked "[Test]", to check what people
  get. It creates no Delivery and records no paper as sent, so the real digest of that
  day still goes out, with the same papers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from django import forms
from django.core.mail import get_connection
from django.utils import timezone

from paperboy.closing import close_quietly
from subscriptions.models import Subscriber

from .mail import RenderedEmail, build_message, digest_headers, render_digest_for
from .matching import subscriber_preview
from .planning import due_frequencies, latest_stored_date

logger = logging.getLogger(__name__)

TEST_SUBJECT_PREFIX = "[Test] "
# Statuses whose owner confirmed the address and has not left: the only ones a test
# digest goes to (a pending address is sent nothing but its confirmation email).
RECEIVING = (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED)


def default_digest_date() -> dt.date:
    return latest_stored_date() or timezone.now().date()


# --- Preview ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestPreview:
    date: dt.date
    rendered: RenderedEmail | None  # None when there would be no digest
    reason: str  # why there would be none; "" when rendered
    paper_count: int
    # Why the digest would not actually be sent on that date, although it renders.
    notes: list[str] = field(default_factory=list)


def _not_sent_notes(subscriber: Subscriber, date: dt.date) -> list[str]:
    notes: list[str] = []
    if subscriber.status != Subscriber.Status.ACTIVE:
        notes.append(
            f"The subscriber is {subscriber.get_status_display().lower()}: "
            "no digest is sent to them."
        )
    if subscriber.frequency not in due_frequencies(date):
        notes.append(f"Weekly digests are not sent on a {date:%A}.")
    return notes


def digest_preview_build(*, subscriber: Subscriber, date: dt.date) -> DigestPreview:
    """Render the digest `subscriber` would get on `date`, writing nothing."""
    items, reason = subscriber_preview(subscriber=subscriber, date=date)
    notes = _not_sent_notes(subscriber, date)
    if reason:
        return DigestPreview(date, None, reason, 0, notes)
    rendered = render_digest_for(subscriber=subscriber, edition_date=date, items=items)
    return DigestPreview(date, rendered, "", len(items), notes)


class PreviewDateForm(forms.Form):
    date = forms.DateField(
        label="Digest of",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )


# --- Test digests -----------------------------------------------------------------------


@dataclass
class SendAsTestReport:
    sent: int = 0
    nothing_to_send: Counter[str] = field(default_factory=Counter)  # by skip reason
    not_receiving: Counter[str] = field(default_factory=Counter)  # by status label
    failed: list[str] = field(default_factory=list)  # "address: error"


def digests_send_as_test(*, subscribers: Iterable[Subscriber], date: dt.date) -> SendAsTestReport:
    """Send each subscriber their digest of `date` now, subject marked "[Test] ".

    Same renderer, same builder and same list headers as the real digest (so the
    unsubscribe link in it works), one SMTP session for all. Nothing is recorded: no
    Delivery, no paper marked as sent.
    """
    report = SendAsTestReport()
    connection = get_connection()
    try:
        # Opened here so all go in one session; if it fails, each send tries again and
        # reports its own error.
        connection.open()
    except Exception as exc:
        logger.warning("email backend unavailable: %s", exc)
    try:
        for subscriber in subscribers:
            if subscriber.status not in RECEIVING:
                report.not_receiving[subscriber.get_status_display().lower()] += 1
                continue
            preview = digest_preview_build(subscriber=subscriber, date=date)
            if preview.rendered is None:
                report.nothing_to_send[preview.reason] += 1
                continue
            rendered = dataclasses.replace(
                preview.rendered, subject=TEST_SUBJECT_PREFIX + preview.rendered.subject
            )
            message = build_message(
                to=subscriber.email,
                rendered=rendered,
                headers=digest_headers(subscriber=subscriber),
            )
            try:
                if connection.send_messages([message]) != 1:
                    raise OSError("the email backend accepted no message")
            except Exception as exc:  # SMTP and ESP errors have no common base class
                logger.warning("test digest to %s failed: %s", subscriber.email, exc)
                report.failed.append(f"{subscriber.email}: {exc}")
                continue
            report.sent += 1
    finally:
        close_quietly(connection, "the email connection")
    return report
