"""What gets sent: papers, the edition of each day, and one delivery per subscriber."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from subscriptions.models import Subscriber


class Paper(models.Model):
    class Source(models.TextChoices):
        HF = "hf", "Hugging Face Daily Papers"
        ARXIV = "arxiv", "arXiv"

    arxiv_id = models.CharField(max_length=32, unique=True, help_text="Bare arXiv id, no vN.")
    title = models.TextField()
    abstract = models.TextField(blank=True)
    authors = models.JSONField(default=list, blank=True)
    published_at = models.DateTimeField(null=True, blank=True, help_text="arXiv v1 time.")
    batch_date = models.DateField(db_index=True, help_text="The day it appeared in a listing.")
    listed_at = models.DateTimeField(
        null=True, blank=True, help_text="When Hugging Face listed it (submittedOnDailyAt)."
    )
    upvotes = models.PositiveIntegerField(default=0)
    num_comments = models.PositiveIntegerField(default=0)
    ai_keywords = models.JSONField(default=list, blank=True)
    ai_summary = models.TextField(blank=True)
    github_repo = models.URLField(max_length=500, blank=True)
    github_stars = models.PositiveIntegerField(null=True, blank=True)
    project_page = models.URLField(max_length=500, blank=True)
    thumbnail = models.URLField(max_length=500, blank=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.HF)
    embedding = models.BinaryField(
        null=True, editable=False, help_text="Title and abstract as a sentence vector."
    )
    # Digests cover papers by when Paperboy first stored them: a paper listed late, or
    # added to an earlier day, is seen at the next scrape and goes in the next digest.
    first_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-batch_date", "-upvotes"]

    def __str__(self) -> str:
        return f"{self.arxiv_id} {self.title[:60]}"

    @property
    def hf_url(self) -> str:
        from django.conf import settings

        return f"{settings.PAPERBOY_HF_URL}/papers/{self.arxiv_id}"

    @property
    def arxiv_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv_id}"

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.arxiv_id}"


class Edition(models.Model):
    """One run's digests: the deliveries planned by the run of one hour (`slot`), or the
    replay of one listing day (`date`, no slot: `run_daily --date`).

    An hourly run covers papers first seen up to its `cutoff`; each of its deliveries
    covers that subscriber's own window, from their previous digest's cutoff to this one.
    """

    date = models.DateField(help_text="The listing day replayed, or the slot's UTC date.")
    slot = models.DateTimeField(
        null=True, blank=True, unique=True, help_text="The UTC hour of an hourly run."
    )
    cutoff = models.DateTimeField(
        null=True, blank=True, help_text="Papers first seen up to this time are covered."
    )
    created_at = models.DateTimeField(default=timezone.now)
    planned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-date", "-slot"]
        constraints = [
            models.UniqueConstraint(
                fields=["date"], condition=models.Q(slot__isnull=True), name="one_replay_per_day"
            )
        ]

    def __str__(self) -> str:
        if self.slot is not None:
            return f"Run of {self.slot:%Y-%m-%d %H:%M} UTC"
        return f"Edition {self.date.isoformat()}"

    @property
    def is_replay(self) -> bool:
        return self.slot is None


class Delivery(models.Model):
    """One subscriber's digest of one edition; the row is the truth about what is owed."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        FEED = "feed", "In the feed only"

    # No index of its own: the (edition, subscriber) constraint's index leads with it.
    edition = models.ForeignKey(
        Edition, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    # No index of its own: the (subscriber, due_at) constraint's index leads with it.
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    # No index of its own: a delivery's status changes three times (matched, claimed,
    # sent), and each change of an indexed column rewrites every index of the row. The
    # states looked for are served by the partial indexes below.
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    papers = models.ManyToManyField(Paper, through="DeliveryPaper", related_name="deliveries")
    topics = models.JSONField(
        default=list,
        blank=True,
        help_text="The subscriber's topics when it was planned: what the digest was picked for.",
    )
    matched_at = models.DateTimeField(
        null=True, blank=True, help_text="When its papers were chosen; only matched rows send."
    )
    due_at = models.DateTimeField(
        null=True, blank=True, help_text="The subscriber's hour this digest is for (UTC)."
    )
    covers_from = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Papers first seen after this; empty: the subscriber's first digest.",
    )
    covers_until = models.DateTimeField(
        null=True, blank=True, help_text="… and up to this (the run's cutoff)."
    )
    skip_reason = models.CharField(max_length=200, blank=True)
    message_id = models.CharField(max_length=255, blank=True, help_text="Message-ID or ESP id.")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # While `sending`, the sender that claimed it holds a lease, renewed as it works: a
    # sender that dies stops renewing, and the sweep hands the delivery back to the queue
    # when the lease runs out (digest/mail/leases.py).
    lease_owner = models.CharField(max_length=32, blank=True, db_default="", editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-edition__date", "subscriber__email"]
        constraints = [
            models.UniqueConstraint(fields=["edition", "subscriber"], name="one_delivery_per_day"),
            # A subscriber's hour comes once: two runs (or two schedulers) plan it once.
            models.UniqueConstraint(fields=["subscriber", "due_at"], name="one_delivery_per_due"),
        ]
        indexes = [
            # A run plans each subscriber's window from their previous digest's end: one
            # step down this index per subscriber, not a sort of all their deliveries.
            models.Index(fields=["subscriber", "-covers_until"], name="delivery_previous"),
            # Senders claim the owed rows in id order, and the sweep looks for lapsed
            # leases: partial indexes keep both small however many rows were sent before.
            models.Index(
                fields=["id"],
                condition=models.Q(status="queued", matched_at__isnull=False),
                name="delivery_owed",
            ),
            models.Index(
                fields=["lease_until"],
                condition=models.Q(status="sending"),
                name="delivery_leased",
            ),
            # What matching still has to do, per edition (and the sweep's lost matching).
            models.Index(
                fields=["edition", "created_at"],
                condition=models.Q(status="queued", matched_at__isnull=True),
                name="delivery_unmatched",
            ),
            # The admin's "failed" filter, rare among millions of sent rows.
            models.Index(
                fields=["id"], condition=models.Q(status="failed"), name="delivery_failed"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.edition} → {self.subscriber.email} ({self.status})"


class DeliveryPaper(models.Model):
    """A paper carried by a delivery, in digest order, with why it matched."""

    # No index of its own: the (delivery, paper) constraint's index leads with it, and a
    # day's matching writes hundreds of thousands of rows, each paying for every index.
    # No database-level foreign keys either: checking them, two lookups per row at commit,
    # cost more than writing the rows (3.7 s against 2.0 s for 400,000 on PostgreSQL).
    # Integrity holds without them: items are written only by digest.matching.chunks, in the
    # transaction that locks their delivery, for papers of the edition; deleting a delivery
    # or a paper goes through Django, whose CASCADE deletes their items.
    delivery = models.ForeignKey(
        Delivery,
        on_delete=models.CASCADE,
        related_name="items",
        db_index=False,
        db_constraint=False,
    )
    paper = models.ForeignKey(
        Paper, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    rank = models.PositiveSmallIntegerField()
    score = models.FloatField(default=0)
    reasons = models.JSONField(
        default=list, help_text="[{topic, field, snippet: [before, match, after]}]"
    )

    class Meta:
        ordering = ["delivery", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "paper"], name="paper_once_per_delivery")
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.paper_id}"


class Feedback(models.Model):
    """A subscriber's "more like this" / "less like this" on a paper, from a digest's links."""

    class Value(models.IntegerChoices):
        MORE = 1, "More like this"
        LESS = -1, "Less like this"

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="feedback")
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="feedback")
    value = models.SmallIntegerField(choices=Value.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "paper"], name="one_feedback_per_paper")
        ]

    def __str__(self) -> str:
        return f"{self.subscriber} {self.get_value_display()}: {self.paper.arxiv_id}"


class ScrapeRun(models.Model):
    """What one source gave one scrape: how many papers, how many were new, and what it
    sent that had to be left out or mended, counted by reason. A hostile or changed source
    shows here (and in the logs, item by item) rather than as a day without a digest."""

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    date = models.DateField(help_text="The day scraped (the newest, for a run over several).")
    source = models.CharField(max_length=8, choices=Paper.Source.choices)
    fetched = models.PositiveIntegerField(default=0, help_text="Usable papers it sent.")
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(
        default=0, help_text="Bad items left out (the other papers were saved)."
    )
    rejected_reasons = models.JSONField(
        default=dict, blank=True, help_text="{reason: how many items}"
    )
    repaired = models.JSONField(
        default=dict,
        blank=True,
        help_text="{what was mended: how many items}, e.g. a NUL stripped from a title.",
    )
    error = models.TextField(blank=True, help_text="Why the source could not be read, if not.")

    class Meta:
        ordering = ["-started_at", "source"]

    def __str__(self) -> str:
        return f"{self.source} {self.date.isoformat()} at {self.started_at:%Y-%m-%d %H:%M}"
