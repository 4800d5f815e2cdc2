"""Signed tokens for the links in emails.

Each token signs the subscriber's random key (never the email address or the database
id) with a salt per purpose, so a token made for one page cannot open another.
Unsubscribe and manage tokens never expire: they sit in emails people keep. Confirmation
tokens expire after three days.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from django.core import signing

from .models import Subscriber

CONFIRM_MAX_AGE = dt.timedelta(days=3)


class Purpose(StrEnum):
    UNSUBSCRIBE = "paperboy.unsubscribe"
    MANAGE = "paperboy.manage"
    CONFIRM = "paperboy.confirm"
    DIGEST = "paperboy.digest"
    FEEDBACK = "paperboy.feedback"


class BadToken(Exception):
    """The token was tampered with, made for another purpose, or has expired."""


def make_token(subscriber: Subscriber, purpose: Purpose, *, extra: str = "") -> str:
    value = f"{subscriber.key}:{extra}" if extra else subscriber.key
    if purpose is Purpose.CONFIRM:
        return signing.TimestampSigner(salt=purpose.value).sign(value)
    return signing.Signer(salt=purpose.value).sign(value)


def read_token(token: str, purpose: Purpose) -> tuple[str, str]:
    """Return (subscriber key, extra) or raise BadToken."""
    try:
        if purpose is Purpose.CONFIRM:
            value = signing.TimestampSigner(salt=purpose.value).unsign(
                token, max_age=CONFIRM_MAX_AGE
            )
        else:
            value = signing.Signer(salt=purpose.value).unsign(token)
    except signing.BadSignature as exc:  # SignatureExpired is a BadSignature too
        raise BadToken(str(exc)) from None
    key, _, extra = value.partition(":")
    return key, extra


def subscriber_for_token(token: str, purpose: Purpose) -> tuple[Subscriber, str]:
    key, extra = read_token(token, purpose)
    try:
        return Subscriber.objects.get(key=key), extra
    except Subscriber.DoesNotExist:
        raise BadToken("no such subscriber") from None
