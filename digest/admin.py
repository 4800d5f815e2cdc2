from __future__ import annotations

from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from .models import Delivery, DeliveryPaper, Edition, Paper
from .sending import deliveries_requeue
from .tasks import enqueue_sends


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin[Paper]):
    list_display = ("arxiv_id", "title", "batch_date", "upvotes", "num_comments", "source")
    list_filter = ("source", "batch_date")
    search_fields = ("arxiv_id", "title", "abstract", "ai_keywords")
    date_hierarchy = "batch_date"
    readonly_fields = ("first_seen_at", "updated_at")
    # A URL typed without a scheme means https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(Edition)
class EditionAdmin(admin.ModelAdmin[Edition]):
    list_display = ("date", "papers", "sent", "skipped", "failed", "queued", "planned_at")
    date_hierarchy = "date"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Edition]:
        def by(status: str) -> Count:
            return Count("deliveries", filter=Q(deliveries__status=status))

        return (
            super()
            .get_queryset(request)
            .annotate(
                _sent=by("sent"),
                _skipped=by("skipped"),
                _failed=by("failed"),
                _queued=by("queued"),
            )
        )

    @admin.display(description="Papers")
    def papers(self, obj: Edition) -> int:
        return Paper.objects.filter(batch_date=obj.date).count()

    @admin.display(ordering="_sent")
    def sent(self, obj: Edition) -> int:
        return int(getattr(obj, "_sent", 0))

    @admin.display(ordering="_skipped")
    def skipped(self, obj: Edition) -> int:
        return int(getattr(obj, "_skipped", 0))

    @admin.display(ordering="_failed")
    def failed(self, obj: Edition) -> int:
        return int(getattr(obj, "_failed", 0))

    @admin.display(ordering="_queued")
    def queued(self, obj: Edition) -> int:
        return int(getattr(obj, "_queued", 0))


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
        enqueue_sends(ids)
        self.message_user(request, f"{n} failed deliveries queued again.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
