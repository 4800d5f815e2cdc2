"""Signed tokens for the links in emails.

Each token signs the subscriber's random key (never the email address or the database
id) with a salt per purpose, so a token made for one page cannot open another.

How long each link works, and why:

============  =========================================  ================================
purpose       works for                                  because
============  =========================================  ================================
unsubscribe   ever                                       one click must always stop mail
                                                         (RFC 8058), from any old email
digest,       ever                                       read-only copies and a vote on
feedback                                                 a paper
confirm       CONFIRM_MAX_AGE (3 days)                   it turns an address on
manage        PAPERBOY_MANAGE_LINK_MAX_AGE_DAYS (60)     it edits settings, and digests
                                                         get forwarded; each digest
                                                         carries a fresh one
action        PAPERBOY_ACTION_LINK_MAX_AGE_MINUTES (60)  it exports or deletes personal
                                                         data; only ever emailed to the
                                                         address on request
============  =========================================  ================================

A timed token carries the time it was made (`TimestampSigner`). A token that is ours but
too old raises `ExpiredToken`, a kind of `BadToken` that still names the subscriber, so a
page can offer a fresh link rather than call it broken. Manage tokens from before they
carried a time count as expired.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from django.conf import settings
from django.core import signing

from .models import Subscriber

CONFIRM_MAX_AGE = dt.timedelta(days=3)


class Purpose(StrEnum):
    UNSUBSCRIBE = "paperboy.unsubscribe"
    MANAGE = "paperboy.manage"
    CONFIRM = "paperboy.confirm"
    DIGEST = "paperboy.digest"
    FEEDBACK = "paperboy.feedback"
    # Export or delete, confirmed from the address's inbox; the action is the token's extra.
    ACTION = "paperboy.action"


def manage_link_max_age() -> dt.timedelta:
    return dt.timedelta(days=settings.PAPERBOY_MANAGE_LINK_MAX_AGE_DAYS)


def action_link_max_age() -> dt.timedelta:
    return dt.timedelta(minutes=settings.PAPERBOY_ACTION_LINK_MAX_AGE_MINUTES)


def max_age(purpose: Purpose) -> dt.timedelta | None:
    """How long a token for `purpose` works; None: for ever."""
    if purpose is Purpose.CONFIRM:
        return CONFIRM_MAX_AGE
    if purpose is Purpose.MANAGE:
        return manage_link_max_age()
    if purpose is Purpose.ACTION:
        return action_link_max_age()
    return None


class BadToken(Exception):
    """The token was tampered with, made for another purpose, or has expired."""


class ExpiredToken(BadToken):
    """Our token, for this purpose, but too old. `key` and `extra` are what it signed."""

    def __init__(self, key: str, extra: str) -> None:
        super().__init__("the link has expired")
        self.key = key
        self.extra = extra

    def subscriber(self) -> Subscriber | None:
        return Subscriber.objects.filter(key=self.key).first()


def signer(purpose: Purpose) -> signing.Signer:
    """The signer of `purpose`'s tokens: timestamped when they expire. A caller making
    many tokens (a batch of digests) keeps it rather than making one per token."""
    if max_age(purpose) is not None:
        return signing.TimestampSigner(salt=purpose.value)
    return signing.Signer(salt=purpose.value)


def token_value(key: str, extra: str = "") -> str:
    return f"{key}:{extra}" if extra else key


def make_token(subscriber: Subscriber, purpose: Purpose, *, extra: str = "") -> str:
    return signer(purpose).sign(token_value(subscriber.key, extra))


def _split(value: str) -> tuple[str, str]:
    key, _, extra = value.partition(":")
    return key, extra


def read_token(token: str, purpose: Purpose) -> tuple[str, str]:
    """Return (subscriber key, extra); raise ExpiredToken if too old, BadToken if not ours."""
    age = max_age(purpose)
    try:
        # The signature first, whatever the age: only a token we made may count as expired.
        value = signing.Signer(salt=purpose.value).unsign(token)
        if age is None:
            return _split(value)
        if ":" not in value:
            # A manage link from before links carried their age: signed, but of unknown age.
            raise ExpiredToken(*_split(value))
        try:
            value = signing.TimestampSigner(salt=purpose.value).unsign(token, max_age=age)
        except signing.SignatureExpired:
            raise ExpiredToken(*_split(value.rpartition(":")[0])) from None
    except (signing.BadSignature, ValueError) as exc:  # ValueError: a garbled time
        raise BadToken(str(exc)) from None
    return _split(value)


def subscriber_for_token(token: str, purpose: Purpose) -> tuple[Subscriber, str]:
    key, extra = read_token(token, purpose)
    try:
        return Subscriber.objects.get(key=key), extra
    except Subscriber.DoesNotExist:
        raise BadToken("no such subscriber") from None
