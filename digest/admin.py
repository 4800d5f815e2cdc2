from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from .edition_progress import edition_progress
from .mail import deliveries_requeue
from .models import Delivery, DeliveryPaper, Edition, Feedback, Paper, ScrapeRun
from .queueing import start_senders


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin[Paper]):
    list_display = ("arxiv_id", "title", "batch_date", "upvotes", "num_comments", "source")
    list_filter = ("source", "batch_date")
    search_fields = ("arxiv_id", "title", "abstract", "ai_keywords")
    date_hierarchy = "batch_date"
    readonly_fields = ("first_seen_at", "updated_at")
    # A URL typed without a scheme means https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


def _status_column(status: Delivery.Status, description: str) -> Callable[[Any, Edition], str]:
    """A column of the editions' list: how many deliveries have `status`, linked to them."""

    @admin.display(description=description, ordering=f"_{status.value}")
    def column(model_admin: EditionAdmin, obj: Edition) -> str:
        count = model_admin._count(obj, status.value)
        return model_admin._deliveries_link(obj, status, count)

    return column


@admin.register(Edition)
class EditionAdmin(admin.ModelAdmin[Edition]):
    """Each day's run, with how its deliveries ended; editions are made by planning only."""

    list_display = ("__str__", "papers", "sent", "skipped", "failed", "queued", "planned_at")
    date_hierarchy = "date"
    fields = (
        "date",
        "slot",
        "cutoff",
        "created_at",
        "planned_at",
        "papers",
        "sent",
        "skipped",
        "failed",
        "queued",
        "sending",
        "skip_reasons",
        "deliveries",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Edition]:
        def by(status: str) -> Count:
            return Count("deliveries", filter=Q(deliveries__status=status))

        # A subquery, not a Count over a second join, which would multiply the counts
        # above by the number of papers (and it ran one query per row before).
        papers = (
            Paper.objects.filter(batch_date=OuterRef("date"))
            .order_by()
            .values("batch_date")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                _papers=Coalesce(Subquery(papers, output_field=IntegerField()), 0),
                _sent=by("sent"),
                _skipped=by("skipped"),
                _failed=by("failed"),
                _queued=by("queued"),
                _sending=by("sending"),
            )
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Edition | None = None) -> bool:
        # Nothing on the page is for editing: the date is the edition, the rest is counts.
        return False

    # --- Live progress: the change page shows the counts, its script polls this URL -------

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:edition_id>/progress.json",
                self.admin_site.admin_view(self.progress_view),
                name="digest_edition_progress",
            ),
        ]
        return own + super().get_urls()

    def progress_view(self, request: HttpRequest, edition_id: int) -> JsonResponse:
        edition = get_object_or_404(Edition, pk=edition_id)
        if not self.has_view_permission(request, edition):
            raise PermissionDenied
        # Never cached: admin_view marks every admin response so.
        return JsonResponse(edition_progress(edition_id=edition.pk).as_json())

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Edition | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["progress"] = edition_progress(edition_id=obj.pk)
            context["progress_url"] = reverse("admin:digest_edition_progress", args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _count(self, obj: Edition, status: str) -> int:
        return int(getattr(obj, f"_{status}", 0))

    def _deliveries_link(self, obj: Edition, status: str | None, text: object) -> str:
        query: dict[str, str | int] = {"edition__id__exact": obj.pk}
        if status:
            query["status__exact"] = status
        url = reverse("admin:digest_delivery_changelist") + "?" + urlencode(query)
        return format_html('<a href="{}">{}</a>', url, text)

    @admin.display(description="Papers", ordering="_papers")
    def papers(self, obj: Edition) -> int:
        return int(getattr(obj, "_papers", 0))

    sent = _status_column(Delivery.Status.SENT, "Sent")
    skipped = _status_column(Delivery.Status.SKIPPED, "Skipped")
    failed = _status_column(Delivery.Status.FAILED, "Failed")
    queued = _status_column(Delivery.Status.QUEUED, "Queued")
    sending = _status_column(Delivery.Status.SENDING, "Sending now (or interrupted)")

    @admin.display(description="Why skipped")
    def skip_reasons(self, obj: Edition) -> str:
        reasons = (
            obj.deliveries.filter(status=Delivery.Status.SKIPPED)
            .values("skip_reason")
            .annotate(n=Count("pk"))
            .order_by("-n", "skip_reason")
        )
        lines = [(row["skip_reason"] or "no reason recorded", row["n"]) for row in reasons]
        if not lines:
            return "–"
        return format_html_join(mark_safe("<br>"), "{}: {}", lines)

    @admin.display(description="Deliveries")
    def deliveries(self, obj: Edition) -> str:
        return self._deliveries_link(obj, None, f"All deliveries of {obj.date.isoformat()}")


class DeliveryPaperInline(admin.TabularInline[DeliveryPaper, Delivery]):
    model = DeliveryPaper
    fields = ("rank", "paper", "score", "reasons")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin[Delivery]):
    list_display = (
        "edition",
        "subscriber",
        "status",
        "due_at",
        "paper_count",
        "attempts",
        "sent_at",
        "skip_reason",
        "short_error",
    )
    list_filter = ("status", "edition__date")
    search_fields = ("subscriber__email", "message_id", "last_error")
    list_select_related = ("edition", "subscriber")
    readonly_fields = (
        "edition",
        "subscriber",
        "status",
        "due_at",
        "covers_from",
        "covers_until",
        "matched_at",
        "skip_reason",
        "message_id",
        "attempts",
        "last_error",
        "next_attempt_at",
        "created_at",
        "claimed_at",
        "sent_at",
    )
    inlines = [DeliveryPaperInline]
    actions = ["requeue"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return super().get_queryset(request).annotate(_papers=Count("items"))

    @admin.display(description="Papers", ordering="_papers")
    def paper_count(self, obj: Delivery) -> int:
        return int(getattr(obj, "_papers", 0))

    @admin.display(description="Last error")
    def short_error(self, obj: Delivery) -> str:
        return obj.last_error[:80]

    @admin.action(description="Send failed deliveries again")
    def requeue(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        ids = list(queryset.values_list("id", flat=True))
        n = deliveries_requeue(delivery_ids=ids)
        start_senders()
        self.message_user(request, f"{n} failed deliveries queued again.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin[Feedback]):
    """What subscribers said with the digest's "more / less like this" links. Read-only: only
    the subscriber's own click (or Undo on their settings page) changes it."""

    list_display = ("created_at", "subscriber", "value", "paper_id_link", "paper_title")
    list_filter = ("value", "created_at")
    search_fields = ("subscriber__email", "paper__arxiv_id", "paper__title")
    list_select_related = ("subscriber", "paper")
    date_hierarchy = "created_at"
    fields = ("subscriber", "paper", "value", "created_at")
    readonly_fields = fields

    @admin.display(description="Paper", ordering="paper__arxiv_id")
    def paper_id_link(self, obj: Feedback) -> str:
        return format_html('<a href="{}">{}</a>', obj.paper.hf_url, obj.paper.arxiv_id)

    @admin.display(description="Title", ordering="paper__title")
    def paper_title(self, obj: Feedback) -> str:
        return obj.paper.title[:80]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Feedback | None = None) -> bool:
        return False


@admin.register(ScrapeRun)
class ScrapeRunAdmin(admin.ModelAdmin[ScrapeRun]):
    """What each source gave each scrape, and what it sent that had to be left out or
    mended. Read-only: the scrape writes it, nobody edits it."""

    # The list and the page show the same counts; the page has room for the whole error.
    _counts = ("started_at", "date", "source", "fetched", "created", "updated", "rejected")
    list_display = (*_counts, "why_rejected", "short_error")
    list_filter = ("source", "date")
    date_hierarchy = "started_at"
    fields = (*_counts, "why_rejected", "what_was_mended", "error")
    readonly_fields = fields

    @admin.display(description="Why left out")
    def why_rejected(self, obj: ScrapeRun) -> str:
        return _counts_html(obj.rejected_reasons)

    @admin.display(description="Mended")
    def what_was_mended(self, obj: ScrapeRun) -> str:
        return _counts_html(obj.repaired)

    @admin.display(description="Error")
    def short_error(self, obj: ScrapeRun) -> str:
        return obj.error[:80]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ScrapeRun | None = None) -> bool:
        return False


def _counts_html(counts: object) -> str:
    """{reason: n} as escaped lines, the commonest first; "–" for none."""
    if not isinstance(counts, dict) or not counts:
        return "–"
    ordered = sorted(counts.items(), key=lambda pair: (-int(pair[1]), str(pair[0]).casefold()))
    return format_html_join(mark_safe("<br>"), "{}: {}", ordered)
