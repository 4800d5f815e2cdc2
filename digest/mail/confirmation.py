"""The signup emails: the confirmation (double opt-in) and "already subscribed".

Sent because someone typed an address into the public form, so they echo nothing typed
but that address (never the topics: the form must not carry a stranger's words to
someone's inbox). They are not list emails: no List-Unsubscribe, just "ignore this".
`render_email` and `signup_headers` also serve the manage page's emailed links.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from paperboy.text import one_line
from subscriptions.links import absolute, manage_url
from subscriptions.models import Subscriber
from subscriptions.tokens import CONFIRM_MAX_AGE, Purpose, make_token

from .message import RenderedEmail, build_message
from .templates import mjml_template, text_env

SIGNUP_TEMPLATE = "confirm"  # confirm.mjml, confirm.txt, confirm_subject.txt


def render_email(*, name: str, context: Mapping[str, Any]) -> RenderedEmail:
    """Subject, text and HTML of one kind of email from its three templates."""
    env = text_env()
    return RenderedEmail(
        subject=one_line(env.get_template(f"{name}_subject.txt").render(context)),
        text=env.get_template(f"{name}.txt").render(context),
        html=mjml_template(f"{name}.mjml").render(context),
    )


def confirm_url(subscriber: Subscriber) -> str:
    """A fresh confirmation link: its token's clock starts now (valid CONFIRM_MAX_AGE)."""
    token = make_token(subscriber, Purpose.CONFIRM)
    return absolute(reverse("subscriptions:confirm", args=[token]))


def signup_headers() -> dict[str, str]:
    # Vacation responders and ticket systems stay quiet (RFC 3834).
    return {"Auto-Submitted": "auto-generated"}


def _signup_context(*, subscriber: Subscriber, kind: str, action_url: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "email": subscriber.email,
        "action_url": action_url,
        "valid_days": CONFIRM_MAX_AGE.days,
        "site_url": settings.SITE_URL,
        "site_name": settings.SITE_URL.split("://", 1)[-1],
    }


def confirmation_message(*, subscriber: Subscriber) -> EmailMultiAlternatives:
    """Double opt-in: the link that turns a pending subscriber into an active one."""
    return _signup_message(subscriber, kind="confirm", action_url=confirm_url(subscriber))


def already_subscribed_message(*, subscriber: Subscriber) -> EmailMultiAlternatives:
    """Someone signed up an address that already gets the digest: send its settings link.

    The page after the form says "check your inbox" whatever the address's state, so
    that a stranger learns nothing; this email is what the owner finds there.
    """
    return _signup_message(subscriber, kind="already_subscribed", action_url=manage_url(subscriber))


def _signup_message(
    subscriber: Subscriber, *, kind: str, action_url: str
) -> EmailMultiAlternatives:
    context = _signup_context(subscriber=subscriber, kind=kind, action_url=action_url)
    return build_message(
        to=subscriber.email,
        rendered=render_email(name=SIGNUP_TEMPLATE, context=context),
        headers=signup_headers(),
    )
