"""Absolute links for emails, built from PAPERBOY_SITE_URL and signed tokens."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from .models import Subscriber
from .tokens import Purpose, make_token


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def unsubscribe_url(subscriber: Subscriber) -> str:
    token = make_token(subscriber, Purpose.UNSUBSCRIBE)
    return absolute(reverse("subscriptions:unsubscribe", args=[token]))


def manage_url(subscriber: Subscriber) -> str:
    token = make_token(subscriber, Purpose.MANAGE)
    return absolute(reverse("subscriptions:manage", args=[token]))
