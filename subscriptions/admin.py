from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Max, Q, QuerySet
from django.http import HttpRequest

from .models import Subscriber


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin[Subscriber]):
    list_display = (
        "email",
        "status",
        "frequency",
        "topics",
        "max_papers",
        "created_at",
        "confirmed_at",
        "last_digest",
        "digests_sent",
    )
    list_filter = ("status", "frequency", "created_at")
    search_fields = ("email", "interests")
    readonly_fields = ("key", "created_at", "confirmed_at", "unsubscribed_at")
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscriber]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _sent=Count("deliveries", filter=Q(deliveries__status="sent")),
                _last=Max("deliveries__sent_at"),
            )
        )

    @admin.display(description="Topics")
    def topics(self, obj: Subscriber) -> str:
        return ", ".join(obj.interests)

    @admin.display(description="Last digest", ordering="_last")
    def last_digest(self, obj: Subscriber) -> object:
        return getattr(obj, "_last", None)

    @admin.display(description="Sent", ordering="_sent")
    def digests_sent(self, obj: Subscriber) -> int:
        return int(getattr(obj, "_sent", 0))
