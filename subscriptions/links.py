"""Absolute links for emails, built from PAPERBOY_SITE_URL and signed tokens."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.conf import settings
from django.urls import reverse

from .models import Subscriber
from .tokens import Purpose, make_token

if TYPE_CHECKING:
    from digest.models import Paper


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


def feedback_url(subscriber: Subscriber, paper: Paper, value: int) -> str:
    """A digest's "more like this" (value > 0) or "less like this" link for one paper.

    The token signs the paper's arXiv id, which is public: no database id in the URL.
    """
    extra = f"{paper.arxiv_id}:{'more' if value > 0 else 'less'}"
    token = make_token(subscriber, Purpose.FEEDBACK, extra=extra)
    return absolute(reverse("feedback", args=[token]))
