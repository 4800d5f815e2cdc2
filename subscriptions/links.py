"""Absolute links for emails, built from PAPERBOY_SITE_URL and signed tokens."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import time
from typing import Protocol
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils.encoding import force_bytes

from .models import Subscriber
from .tokens import Purpose, make_token, signer, token_value


class _Paper(Protocol):
    """What a feedback link reads of a paper (digest's Paper has it)."""

    arxiv_id: str


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def unsubscribe_url(subscriber: Subscriber) -> str:
    token = make_token(subscriber, Purpose.UNSUBSCRIBE)
    return absolute(reverse("subscriptions:unsubscribe", args=[token]))


def manage_url(subscriber: Subscriber) -> str:
    """The settings page. The token carries the time it was made and works for
    PAPERBOY_MANAGE_LINK_MAX_AGE_DAYS: each digest gets a fresh one."""
    token = make_token(subscriber, Purpose.MANAGE)
    return absolute(reverse("subscriptions:manage", args=[token]))


def manage_action_url(subscriber: Subscriber, action: str) -> str:
    """The emailed link that downloads ("export") or deletes ("delete") their data;
    it works for PAPERBOY_ACTION_LINK_MAX_AGE_MINUTES."""
    token = make_token(subscriber, Purpose.ACTION, extra=action)
    return absolute(reverse("subscriptions:manage_action", args=[token]))


def digest_path(subscriber: Subscriber, edition_date: dt.date) -> str:
    """The site path of one sent digest; pages link with it, emails with `digest_url`."""
    token = make_token(subscriber, Purpose.DIGEST, extra=edition_date.isoformat())
    return reverse("digest_view", args=[token])


def digest_url(subscriber: Subscriber, edition_date: dt.date) -> str:
    """The "view in browser" copy of the digest of `edition_date`."""
    return absolute(digest_path(subscriber, edition_date))


def feedback_url(subscriber: Subscriber, paper: _Paper, value: int) -> str:
    """A digest's "more like this" (value > 0) or "less like this" link for one paper.

    The token signs the paper's arXiv id, which is public: no database id in the URL.
    """
    extra = f"{paper.arxiv_id}:{'more' if value > 0 else 'less'}"
    token = make_token(subscriber, Purpose.FEEDBACK, extra=extra)
    return absolute(reverse("feedback", args=[token]))


class QuickSigner:
    """`signer.sign()`, with the HMAC key derived once instead of at every signature.

    Django's Signer hashes the salt and the secret into the HMAC key for each value it
    signs; a batch of digests signs tens of thousands of links with one key. The tokens
    are Django's own (tests/test_digest_render.py compares them with `make_token`).
    """

    def __init__(self, signer: signing.Signer) -> None:
        self.signer = signer
        hasher = getattr(hashlib, signer.algorithm)
        key = hasher(force_bytes(signer.salt) + b"signer" + force_bytes(signer.key)).digest()
        self._mac = hmac.new(key, digestmod=hasher)
        self._timestamped = isinstance(signer, signing.TimestampSigner)

    def sign(self, value: str) -> str:
        if self._timestamped:
            value = f"{value}{self.signer.sep}{signing.b62_encode(int(time.time()))}"
        mac = self._mac.copy()
        mac.update(value.encode())
        signature = base64.urlsafe_b64encode(mac.digest()).strip(b"=").decode()
        return f"{value}{self.signer.sep}{signature}"


# What `reverse()` leaves unquoted in an argument (django.urls.resolvers), and a token
# made only of such characters (as signed tokens are), which needs no quoting at all.
_URL_SAFE = "!$&'()*+,;=/~:@"
_URL_PLAIN = re.compile(r"[A-Za-z0-9_.~!$&'()*+,;=/:@-]*")
_SLOT = "SLOT"


class LinkMaker:
    """The same links as the functions above, for many digests in a row.

    `reverse()` costs about 15 µs and a digest has two dozen links; each route is
    reversed once here, with a stand-in token, and each purpose's signer made once.
    Make one per batch: it keeps the signing key it started with.
    """

    def __init__(self) -> None:
        self._routes: dict[str, tuple[str, str]] = {}
        self._signers: dict[Purpose, QuickSigner] = {}
        self._last_unsubscribe = ("", "")  # (subscriber key, link)

    def _url(self, route: str, purpose: Purpose, key: str, extra: str = "") -> str:
        if route not in self._routes:
            head, _, tail = reverse(route, args=[_SLOT]).partition(_SLOT)
            self._routes[route] = (absolute(head), tail)
        if purpose not in self._signers:
            self._signers[purpose] = QuickSigner(signer(purpose))
        token = self._signers[purpose].sign(token_value(key, extra))
        if _URL_PLAIN.fullmatch(token) is None:
            token = quote(token, safe=_URL_SAFE)
        head, tail = self._routes[route]
        return f"{head}{token}{tail}"

    def unsubscribe(self, subscriber: Subscriber) -> str:
        # Asked twice in a row for each digest: its footer, then its List-Unsubscribe.
        if self._last_unsubscribe[0] != subscriber.key:
            url = self._url("subscriptions:unsubscribe", Purpose.UNSUBSCRIBE, subscriber.key)
            self._last_unsubscribe = (subscriber.key, url)
        return self._last_unsubscribe[1]

    def manage(self, subscriber: Subscriber) -> str:
        return self._url("subscriptions:manage", Purpose.MANAGE, subscriber.key)

    def digest(self, subscriber: Subscriber, edition_date: dt.date) -> str:
        return self._url("digest_view", Purpose.DIGEST, subscriber.key, edition_date.isoformat())

    def feedback(self, subscriber: Subscriber, arxiv_id: str, value: int) -> str:
        extra = f"{arxiv_id}:{'more' if value > 0 else 'less'}"
        return self._url("feedback", Purpose.FEEDBACK, subscriber.key, extra)

    def feed(self, subscriber: Subscriber) -> str:
        if "feed_atom" not in self._routes:
            head, _, tail = reverse("feed_atom", args=[_SLOT]).partition(_SLOT)
            self._routes["feed_atom"] = (settings.SITE_URL + head, tail)
        head, tail = self._routes["feed_atom"]
        return f"{head}{quote(subscriber.feed_key, safe=_URL_SAFE)}{tail}"
