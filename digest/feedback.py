"""A subscriber's "more like this" / "less like this" on a paper: record, undo, list.

The links sit under every paper of a digest. Each carries a signed FEEDBACK token whose
extra part is "<arXiv id>:more" or "<arXiv id>:less": the arXiv id is public, so the URL
names no email address and no database id. A GET only shows a confirm button (mail
scanners follow links); the POST records it. One row per subscriber and paper: a second
click changes the value, and the manage page lists the rows with an Undo for each.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from subscriptions.models import Subscriber
from subscriptions.tokens import BadToken, Purpose, subscriber_for_token

from .models import Feedback, Paper

MORE, LESS = "more", "less"


def value_word(value: int) -> str:
    """The word a token and a URL use for a value: "more" (+1) or "less" (-1)."""
    return MORE if value > 0 else LESS


@dataclass(frozen=True)
class FeedbackLink:
    """What a feedback link says: whose it is, which paper, which way."""

    subscriber: Subscriber
    arxiv_id: str
    value: int  # Feedback.Value.MORE or LESS


class UnknownPaper(Exception):
    """The link is ours, but its paper is no longer in the database."""


def feedback_link_read(*, token: str) -> FeedbackLink:
    """Raise BadToken unless we made this token; it may still name an unknown paper."""
    subscriber, extra = subscriber_for_token(token, Purpose.FEEDBACK)
    # rpartition: the word is last, whatever characters an arXiv id holds.
    arxiv_id, _, word = extra.rpartition(":")
    if not arxiv_id or word not in (MORE, LESS):
        raise BadToken("not a feedback token")
    value = Feedback.Value.MORE if word == MORE else Feedback.Value.LESS
    return FeedbackLink(subscriber=subscriber, arxiv_id=arxiv_id, value=int(value))


def feedback_paper(*, link: FeedbackLink) -> Paper:
    """The paper a link names; UnknownPaper if it has gone."""
    try:
        return Paper.objects.get(arxiv_id=link.arxiv_id)
    except Paper.DoesNotExist:
        raise UnknownPaper(link.arxiv_id) from None


def feedback_for(*, subscriber: Subscriber, paper: Paper) -> Feedback | None:
    """What they said about this paper before, if anything."""
    return Feedback.objects.filter(subscriber=subscriber, paper=paper).first()


def feedback_record(*, subscriber: Subscriber, paper: Paper, value: int) -> Feedback:
    """Record "more" (+1) or "less" (-1); a second click replaces the first.

    update_or_create on the unique (subscriber, paper): a double click, or two clicks at
    once, leaves one row. created_at moves to the latest click, the time the manage page
    shows next to what they said last.
    """
    if value not in Feedback.Value.values:
        raise ValueError(f"feedback is +1 or -1, not {value!r}")
    with transaction.atomic():
        feedback, _ = Feedback.objects.update_or_create(
            subscriber=subscriber,
            paper=paper,
            defaults={"value": value, "created_at": timezone.now()},
        )
    return feedback


def feedback_undo(*, subscriber: Subscriber, paper: Paper) -> bool:
    """Forget what they said about this paper; True if there was something to forget."""
    deleted, _ = Feedback.objects.filter(subscriber=subscriber, paper=paper).delete()
    return deleted > 0


def subscriber_feedback(*, subscriber: Subscriber) -> list[Feedback]:
    """Everything they said, newest first, with each paper loaded."""
    return list(
        Feedback.objects.filter(subscriber=subscriber)
        .select_related("paper")
        .order_by("-created_at", "-pk")
    )
