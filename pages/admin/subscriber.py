"""The operator's view of subscribers: who they are, what they got, what bounced.

The list's counts are subqueries, one per column, so the page makes the same few queries
for 30 rows as for 3 (two Count()s over two joins would also multiply each other). The
columns are in `columns`, the actions in `actions`, the two extra pages (CSV import,
digest preview) in `pages`; each calls plain functions: subscriptions.services,
csv_import, csv_export, digest.admin_views.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, IntegerField, Max, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from digest.models import Delivery
from subscriptions.models import EmailEvent, Subscriber
from subscriptions.services import status_stamp

from . import columns, pages
from .actions import export_csv, resend_confirmation, send_test_digest, suppress, unsuppress
from .forms import SubscriberForm

BOUNCED = "bounced"  # anymail's EventType.BOUNCED, as EmailEvent.event_type stores it


def _count_of(queryset: QuerySet[Any]) -> Coalesce:
    """COUNT(*) of a correlated subquery, as an integer column (0 when there are none)."""
    counted = queryset.order_by().values("subscriber").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin[Subscriber]):
    form = SubscriberForm
    list_display = (
        "email",
        "status",
        columns.topics,
        columns.when,
        "time_zone",
        "trending",
        "channel",
        columns.signed_up,
        columns.confirmed,
        columns.last_digest,
        columns.digests_sent,
        columns.bounces,
    )
    list_filter = (
        "status",
        "frequency",
        "trending",
        "channel",
        "send_hour",
        "time_zone",
        "created_at",
        "confirmed_at",
    )
    search_fields = ("email", "topics")
    date_hierarchy = "created_at"
    readonly_fields = (
        "key",
        "created_at",
        "confirmed_at",
        "confirmation_sent_at",
        "unsubscribed_at",
        "suppressed_at",
        "suppressed_reason",
        "soft_bounces",
        "digest_activity",
        "recent_events",
        "next_digest",
    )
    fieldsets = (
        (None, {"fields": ("email", "status", "topics", "intent", "trending", "max_papers")}),
        (
            "Schedule and delivery",
            {
                "fields": (
                    "frequency",
                    "send_hour",
                    "send_weekday",
                    "time_zone",
                    "next_digest",
                    "channel",
                )
            },
        ),
        (
            "History",
            {
                "fields": (
                    "created_at",
                    "confirmation_sent_at",
                    "confirmed_at",
                    "unsubscribed_at",
                    "key",
                )
            },
        ),
        ("Delivery", {"fields": ("digest_activity", "recent_events")}),
        ("Suppression", {"fields": ("suppressed_at", "suppressed_reason", "soft_bounces")}),
    )
    actions = [send_test_digest, resend_confirmation, suppress, unsuppress, export_csv]
    change_list_template = "admin/subscriptions/subscriber/change_list.html"
    change_form_template = "admin/subscriptions/subscriber/change_form.html"

    # The change page's read-only panels, by the names the fieldsets give them.
    next_digest = staticmethod(columns.next_digest)
    digest_activity = staticmethod(columns.digest_activity)
    recent_events = staticmethod(columns.recent_events)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscriber]:
        sent = Delivery.objects.filter(subscriber=OuterRef("pk"), status=Delivery.Status.SENT)
        last = sent.order_by().values("subscriber").annotate(last=Max("sent_at")).values("last")
        bounces = EmailEvent.objects.filter(subscriber=OuterRef("pk"), event_type=BOUNCED)
        return (
            super()
            .get_queryset(request)
            .annotate(
                _sent=_count_of(sent),
                _last=Subquery(last),
                _bounces=_count_of(bounces),
            )
        )

    def save_model(
        self, request: HttpRequest, obj: Subscriber, form: forms.ModelForm[Subscriber], change: bool
    ) -> None:
        if "status" in form.changed_data:  # chosen by hand: stamp what the services would
            status_stamp(obj, previous=form.initial.get("status"))
        if change and set(Subscriber.SCHEDULE_FIELDS) & set(form.changed_data):
            obj.next_due_at = None  # a new schedule: the next run works out when
        super().save_model(request, obj, form, change)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        own = [
            path("import/", view(self.import_view), name="subscriptions_subscriber_import"),
            path(
                "<path:object_id>/preview/",
                view(self.preview_view),
                name="subscriptions_subscriber_preview",
            ),
        ]
        return own + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        return pages.import_page(self, request)

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return pages.preview_page(self, request, object_id)
