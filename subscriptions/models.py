"""Who gets what: subscribers and their topics."""

from __future__ import annotations

import contextlib
import secrets

from django.db import models
from django.utils import timezone

from .schedule import Schedule, default_hour, default_timezone, default_weekday


def new_subscriber_key() -> str:
    """A random, unguessable key that tokens sign instead of the database id."""
    return secrets.token_urlsafe(16)


# How many papers a digest may carry, as every form, the CSV import and the commands
# allow it: one at least, and twenty at most (a longer email is a list nobody reads).
MIN_PAPERS, MAX_PAPERS, DEFAULT_PAPERS = 1, 20, 10


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

    class Trending(models.TextChoices):
        """How much of the day's trending list a subscriber with topics mixes in. A subscriber
        without topics always gets the trending list."""

        NONE = "none", "Only my topics"
        FEW = "few", "My topics plus the top few trending"
        ONLY = "only", "Trending only"

    class Channel(models.TextChoices):
        EMAIL = "email", "Email (and the private feed)"
        FEED = "feed", "Feed only, no email"

    email = models.EmailField(unique=True, help_text="Stored normalised (lower case).")
    key = models.CharField(max_length=32, unique=True, default=new_subscriber_key, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    frequency = models.CharField(max_length=8, choices=Frequency.choices, default=Frequency.DAILY)
    max_papers = models.PositiveSmallIntegerField(
        default=DEFAULT_PAPERS, help_text="Most papers in one digest (1–20)."
    )
    topics = models.JSONField(
        default=list,
        blank=True,
        help_text='Keyword phrases, e.g. ["diffusion", "speech recognition", "-survey"]. '
        "A phrase starting with '-' excludes papers that contain it.",
    )
    trending = models.CharField(
        max_length=8,
        choices=Trending.choices,
        default=Trending.NONE,
        help_text="How much trending to mix in; subscribers without topics get trending only.",
    )
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    time_zone = models.CharField(
        max_length=64, default=default_timezone, help_text="IANA name, e.g. Europe/Berlin."
    )
    send_hour = models.PositiveSmallIntegerField(
        default=default_hour, help_text="Local hour (0–23) the digest arrives."
    )
    send_weekday = models.PositiveSmallIntegerField(
        default=default_weekday, help_text="Weekly subscribers: ISO weekday (1 = Monday)."
    )
    next_due_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the next digest is owed (UTC). Empty: worked out at the next run.",
    )
    feed_key = models.CharField(
        max_length=32,
        unique=True,
        default=new_subscriber_key,
        editable=False,
        help_text="The secret in the private feed's URL; a new one kills the old URL.",
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
        indexes = [
            models.Index(fields=["status", "frequency"]),
            # Each hourly run finds the subscribers due: status = active, next_due_at <= now.
            models.Index(fields=["status", "next_due_at"], name="subscriber_due"),
        ]

    # Changing any of these makes the next digest's time be worked out again (set
    # next_due_at to None; the next run fills it in).
    SCHEDULE_FIELDS = ("time_zone", "send_hour", "send_weekday", "frequency")

    def __str__(self) -> str:
        return self.email

    def save(self, *args: object, **kwargs: object) -> None:
        self.email = normalise_email(self.email)
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def schedule(self) -> Schedule:
        return Schedule(
            timezone=self.time_zone,
            hour=self.send_hour,
            frequency=self.frequency,
            weekday=self.send_weekday,
        )

    @property
    def has_topics(self) -> bool:
        """At least one wanted phrase (an excluding "-phrase" alone picks nothing)."""
        return any(p.strip() and not p.strip().startswith("-") for p in self.topics)

    @property
    def effective_trending(self) -> str:
        """What the subscriber gets: without topics, the trending list whatever they chose."""
        return self.trending if self.has_topics else self.Trending.ONLY

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
