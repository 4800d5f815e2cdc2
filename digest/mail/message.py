"""Building a message: every email Paperboy sends is made by `build_message`.

It sets From, To, Date and Message-ID and makes a multipart/alternative body (plain
text, then HTML) from a `RenderedEmail`. Bulk mail (the digest) adds the list headers
mail providers ask of bulk senders (RFC 2369, RFC 2919, RFC 8058, RFC 3834), and carries
a Message-ID that is the same at every attempt at one delivery.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import format_datetime, parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, make_msgid
from django.utils import timezone

from paperboy.text import one_line


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def sender_domain() -> str:
    return _domain_of(settings.PAPERBOY_FROM_EMAIL)


@functools.lru_cache(maxsize=8)  # every digest's Message-ID names it
def _domain_of(from_email: str) -> str:
    _, address = parseaddr(from_email)
    return address.rpartition("@")[2] or "localhost"


def stable_message_id(delivery_id: int) -> str:
    """The Message-ID of every attempt at one delivery: a resend after a crash carries
    the same one, so the receiving server, the ESP and we can tell it is a duplicate."""
    return f"<digest-{delivery_id}@{sender_domain()}>"


def build_message(
    *, to: str, rendered: RenderedEmail, headers: Mapping[str, str]
) -> EmailMultiAlternatives:
    """The one builder of every email: From, To, Date, Message-ID, text then HTML.

    The Message-ID is made here (not by Django at send time) so the caller can record it
    on the Delivery before sending; read it back with `message_id(msg)`.
    """
    all_headers = {
        "Date": format_datetime(timezone.now()),  # "+0000": UTC, said plainly
        # Our own domain, not the host's name, so Message-IDs are stable across machines.
        "Message-ID": make_msgid(domain=sender_domain()),
        **headers,
    }
    message = EmailMultiAlternatives(
        subject=one_line(rendered.subject),
        body=rendered.text,
        from_email=settings.PAPERBOY_FROM_EMAIL,
        to=[to],
        headers=all_headers,
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


def message_id(message: EmailMultiAlternatives) -> str:
    return str(message.extra_headers["Message-ID"])


def list_headers(*, unsubscribe: str) -> dict[str, str]:
    """The headers of bulk mail, `unsubscribe` being the subscriber's one-click URL."""
    return {
        # Only the https URL: a mailto: would need a mailbox we read, and Gmail and Yahoo
        # use the one-click POST (RFC 8058) when List-Unsubscribe-Post is present.
        "List-Unsubscribe": f"<{unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": settings.PAPERBOY_LIST_ID,
        # Vacation responders and ticket systems stay quiet (RFC 3834).
        "Auto-Submitted": "auto-generated",
        "Precedence": "bulk",
    }
