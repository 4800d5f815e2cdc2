"""Who gets what: subscribers and their interests."""

from __future__ import annotations

import contextlib
import secrets

from django.db import models
from django.utils import timezone


def new_subscriber_key() -> str:
    """A random, unguessable key that tokens sign instead of the database id."""
    return secrets.token_urlsafe(16)


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        SUPPRESSED = "suppressed", "Suppressed"

    class Frequency(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    email = models.EmailField(unique=True, help_text="Stored normalised (lower case).")
    key = models.CharField(max_length=32, unique=True, default=new_subscriber_key, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    frequency = models.CharField(max_length=8, choices=Frequency.choices, default=Frequency.DAILY)
    max_papers = models.PositiveSmallIntegerField(
        default=10, help_text="Most papers in one digest (1–20)."
    )
    interests = models.JSONField(
        default=list,
        blank=True,
        help_text='Keyword phrases, e.g. ["diffusion", "speech recognition", "-survey"]. '
        "A phrase starting with '-' excludes papers that contain it.",
    )
    intent = models.CharField(
        max_length=300,
        blank=True,
        help_text="In their own words, what they are looking for (one sentence).",
    )
    intent_vector = models.BinaryField(
        null=True,
        editable=False,
        help_text="Vector of the intent; apart, as matching reads it for everyone every day.",
    )
    embedding = models.BinaryField(null=True, editable=False, help_text="Vectors of each topic.")
    embedding_key = models.CharField(
        max_length=32, blank=True, editable=False, help_text="Which texts `embedding` is of."
    )
    intent_words = models.TextField(
        blank=True,
        editable=False,
        help_text="The intent's distinct stemmed words, made with its vector, for matching.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    suppressed_at = models.DateTimeField(null=True, blank=True)
    suppressed_reason = models.CharField(max_length=200, blank=True)
    confirmation_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last confirmation email went out."
    )
    soft_bounces = models.PositiveSmallIntegerField(
        default=0, help_text="Soft bounces since the last delivered message."
    )

    class Meta:
        ordering = ["email"]
        indexes = [models.Index(fields=["status", "frequency"])]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: object, **kwargs: object) -> None:
        self.email = normalise_email(self.email)
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def masked_email(self) -> str:
        """a•••@example.org: enough to recognise, for pages behind links that get forwarded."""
        local, _, domain = self.email.partition("@")
        return f"{local[:1]}•••@{domain}"


def normalise_email(address: str) -> str:
    """Trim and lower-case an address (and punycode its domain) so one person is one row."""
    address = address.strip()
    local, sep, domain = address.rpartition("@")
    if not sep:
        return address.lower()
    # An address whose domain IDNA cannot encode is left as typed; the form rejects it.
    with contextlib.suppress(UnicodeError):
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}".lower()


class EmailEvent(models.Model):
    """A tracking event an ESP reported (bounce, complaint, unsubscribe…), kept once.

    The unique event id makes a replayed webhook harmless: the second copy is not stored
    and not processed.
    """

    event_id = models.CharField(max_length=255, unique=True)
    event_type = models.CharField(max_length=32, db_index=True)
    esp_name = models.CharField(max_length=32, blank=True)
    recipient = models.EmailField(blank=True, db_index=True)
    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    message_id = models.CharField(max_length=255, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.CharField(max_length=32, blank=True)
    description = models.TextField(blank=True)
    mta_response = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True, help_text="What Paperboy did about it.")

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.recipient}"
