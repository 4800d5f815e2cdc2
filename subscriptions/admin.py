"""The operator's view of subscribers: who they are, what they got, what bounced.

The list shows each subscriber's counts from subqueries, one per column, so the page
makes the same few queries for 30 rows as for 3 (two Count()s over two joins would also
multiply each other). Actions and the two extra pages (CSV import, digest preview) call
plain functions: subscriptions.services / csv_import / csv_export, digest.admin_views.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, IntegerField, Max, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from digest.admin_views import (
    PreviewDateForm,
    default_digest_date,
    digest_preview_build,
    digests_send_as_test,
)
from digest.emails import long_date
from digest.models import Delivery

from .csv_export import subscribers_csv
from .csv_import import MAX_IMPORT_BYTES, ImportMode, ImportReport, subscribers_import
from .form_fields import HOUR_CHOICES, WEEKDAY_CHOICES
from .models import EmailEvent, Subscriber
from .schedule import timezone_names, zone
from .services import subscriber_suppress, subscriber_unsuppress
from .signup import confirmation_send
from .topics import InvalidInterest, clean_interests

OPERATOR_SUPPRESS_REASON = "suppressed by an operator"
RECENT_EVENTS = 10
BOUNCED = "bounced"  # anymail's EventType.BOUNCED, as EmailEvent.event_type stores it
_DAYS = {day: name[:3] for day, name in WEEKDAY_CHOICES}  # 5: "Fri"


def _count_of(queryset: QuerySet[Any]) -> Coalesce:
    """COUNT(*) of a correlated subquery, as an integer column (0 when there are none)."""
    counted = queryset.order_by().values("subscriber").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


class SubscriberForm(forms.ModelForm[Subscriber]):
    """The change form checks what the public forms check: tidy topics (none is a trending
    reader), 1–20 papers, an hour, a weekday and a time zone that exist."""

    send_hour = forms.TypedChoiceField(label="Hour", choices=HOUR_CHOICES, coerce=int)
    send_weekday = forms.TypedChoiceField(
        label="Weekday", choices=WEEKDAY_CHOICES, coerce=int, help_text="Weekly readers only."
    )
    time_zone = forms.ChoiceField(
        choices=lambda: [(name, name) for name in timezone_names()],
        help_text="The hour is in this zone.",
    )

    class Meta:
        model = Subscriber
        fields = (
            "email",
            "status",
            "interests",
            "intent",
            "trending",
            "frequency",
            "max_papers",
            "channel",
            "send_hour",
            "send_weekday",
            "time_zone",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Without topics the reader gets the trending list whatever the mix says.
        self.fields["trending"].help_text = "Readers without topics get trending only."

    def clean_interests(self) -> list[str]:
        raw = self.cleaned_data["interests"]
        if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
            raise ValidationError('Write the topics as a JSON list, e.g. ["diffusion", "-survey"].')
        try:
            return clean_interests(raw)
        except InvalidInterest as exc:
            raise ValidationError(str(exc)) from None

    def clean_max_papers(self) -> int:
        value: int = self.cleaned_data["max_papers"]
        if not 1 <= value <= 20:
            raise ValidationError("Choose a number from 1 to 20.")
        return value


class ImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="Columns: email, topics (separated by “;”; empty for the day’s trending "
        "papers), frequency (daily or weekly, optional), max_papers (1–20, optional). A header "
        "row is optional. UTF-8, "
        f"at most {MAX_IMPORT_BYTES // (1024 * 1024)} MB.",
    )
    mode = forms.ChoiceField(
        label="The addresses are",
        choices=[
            (ImportMode.SEND_CONFIRMATION.value, "Sent a confirmation email (double opt-in)"),
            (ImportMode.PRE_CONFIRMED.value, "Pre-confirmed: I vouch that they asked for it"),
        ],
        initial=ImportMode.SEND_CONFIRMATION.value,
        widget=forms.RadioSelect,
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        # Checked before reading: an upload larger than this never reaches memory.
        if upload.size > MAX_IMPORT_BYTES:
            raise ValidationError(
                f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB; "
                "split it in parts."
            )
        return upload


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin[Subscriber]):
    form = SubscriberForm
    list_display = (
        "email",
        "status",
        "topics",
        "when",
        "time_zone",
        "trending",
        "channel",
        "signed_up",
        "confirmed",
        "last_digest",
        "digests_sent",
        "bounces",
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
    search_fields = ("email", "interests")
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
        (None, {"fields": ("email", "status", "interests", "intent", "trending", "max_papers")}),
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
    actions = [
        "send_test_digest",
        "resend_confirmation",
        "suppress",
        "unsuppress",
        "export_csv",
    ]
    change_list_template = "admin/subscriptions/subscriber/change_list.html"
    change_form_template = "admin/subscriptions/subscriber/change_form.html"

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

    # --- Columns ------------------------------------------------------------------------

    @admin.display(description="Topics")
    def topics(self, obj: Subscriber) -> str:
        return ", ".join(obj.interests) or "– (trending)"

    @admin.display(description="When", ordering="send_hour")
    def when(self, obj: Subscriber) -> str:
        """ "07:00 daily", "18:00 Fri": the hour in the reader's own zone."""
        day = "daily" if obj.frequency != Subscriber.Frequency.WEEKLY else _DAYS[obj.send_weekday]
        return f"{obj.send_hour:02d}:00 {day}"

    # Times as "2026-03-10 07:00" (in the site's time zone): the admin's long format
    # ("March 10, 2026, 7 a.m.") would push the counts off the side of the list.
    @admin.display(description="Signed up", ordering="created_at")
    def signed_up(self, obj: Subscriber) -> str:
        return _short(obj.created_at)

    @admin.display(description="Confirmed", ordering="confirmed_at")
    def confirmed(self, obj: Subscriber) -> str:
        return _short(obj.confirmed_at)

    @admin.display(description="Last digest", ordering="_last")
    def last_digest(self, obj: Subscriber) -> str:
        return _short(getattr(obj, "_last", None))

    @admin.display(description="Sent", ordering="_sent")
    def digests_sent(self, obj: Subscriber) -> int:
        return int(getattr(obj, "_sent", 0))

    @admin.display(description="Bounces", ordering="_bounces")
    def bounces(self, obj: Subscriber) -> int:
        return int(getattr(obj, "_bounces", 0))

    # --- Change page --------------------------------------------------------------------

    @admin.display(description="Next digest")
    def next_digest(self, obj: Subscriber) -> str:
        """When it is owed, in UTC and in the reader's zone; or, before the next run has
        worked it out, when that run will make it."""
        if obj.pk is None:
            return "–"
        if obj.status != Subscriber.Status.ACTIVE:
            return f"None while {obj.get_status_display().lower()}."
        due = obj.next_due_at
        note = ""
        if due is None:
            due = obj.schedule.next_after(timezone.now())
            note = " (not planned yet: the next hourly run works it out, from this schedule)"
        local = due.astimezone(zone(obj.time_zone))
        return (
            f"{due.astimezone(dt.UTC):%a %Y-%m-%d %H:%M} UTC · "
            f"{local:%a %Y-%m-%d %H:%M} {obj.time_zone}{note}"
        )

    @admin.display(description="Digests")
    def digest_activity(self, obj: Subscriber) -> str:
        if obj.pk is None:
            return "–"
        deliveries = (
            reverse("admin:digest_delivery_changelist")
            + "?"
            + urlencode({"subscriber__id__exact": obj.pk})
        )
        last = getattr(obj, "_last", None)
        return format_html(
            '{} sent, last {}; {} bounced. <a href="{}">All deliveries</a> · '
            '<a href="{}">Preview a digest</a>',
            self.digests_sent(obj),
            _short(last) if last else "never",
            self.bounces(obj),
            deliveries,
            reverse("admin:subscriptions_subscriber_preview", args=[obj.pk]),
        )

    @admin.display(description="Recent email events")
    def recent_events(self, obj: Subscriber) -> str:
        if obj.pk is None:
            return "–"
        events = list(obj.events.order_by("-received_at")[:RECENT_EVENTS])
        if not events:
            return "None (bounces, complaints and the like appear here as the ESP reports them)."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    _short(e.occurred_at or e.received_at),
                    e.event_type,
                    (e.description or e.mta_response or e.reject_reason)[:120],
                    e.outcome,
                )
                for e in events
            ),
        )
        everything = (
            reverse("admin:subscriptions_emailevent_changelist")
            + "?"
            + urlencode({"subscriber__id__exact": obj.pk})
        )
        return format_html(
            "<table><thead><tr><th>When</th><th>Event</th><th>Detail</th>"
            '<th>What Paperboy did</th></tr></thead><tbody>{}</tbody></table><a href="{}">'
            "All events</a>",
            rows,
            everything,
        )

    def save_model(
        self, request: HttpRequest, obj: Subscriber, form: forms.ModelForm[Subscriber], change: bool
    ) -> None:
        # A status chosen by hand gets the times and fields the service functions would
        # set, so the history and the unsuppress rules stay right.
        if "status" in form.changed_data:
            _stamp_status_change(obj, previous=form.initial.get("status"))
        if change and set(Subscriber.SCHEDULE_FIELDS) & set(form.changed_data):
            obj.next_due_at = None  # a new schedule: the next run works out when
        super().save_model(request, obj, form, change)

    # --- Actions ------------------------------------------------------------------------

    @admin.action(description="Send a test digest", permissions=["change"])
    def send_test_digest(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        date = default_digest_date()
        report = digests_send_as_test(subscribers=queryset, date=date)
        when = long_date(date)
        if report.sent:
            self.message_user(
                request, f"{_n(report.sent, 'test digest')} of {when} sent.", messages.SUCCESS
            )
        for reason, n in report.nothing_to_send.items():
            self.message_user(request, f"{_n(n, 'subscriber')}: nothing to send ({reason}).")
        for status, n in report.not_receiving.items():
            self.message_user(
                request, f"{_n(n, 'subscriber')} not sent a test ({status}).", messages.WARNING
            )
        for failure in report.failed:
            self.message_user(request, f"Not sent: {failure}", messages.ERROR)

    @admin.action(description="Resend the confirmation email", permissions=["change"])
    def resend_confirmation(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        sent = recently = skipped = 0
        for subscriber in queryset:
            if subscriber.status != Subscriber.Status.PENDING:
                skipped += 1
            elif confirmation_send(subscriber=subscriber):
                sent += 1
            else:
                recently += 1
        if sent:
            self.message_user(request, f"{_n(sent, 'confirmation email')} sent.", messages.SUCCESS)
        if recently:
            self.message_user(
                request,
                f"{_n(recently, 'subscriber')} had one sent a few minutes ago; not sent again.",
                messages.WARNING,
            )
        if skipped:
            self.message_user(
                request,
                f"{_n(skipped, 'subscriber')} skipped: only pending subscribers are sent one.",
                messages.WARNING,
            )

    @admin.action(description="Suppress (send nothing more)", permissions=["change"])
    def suppress(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        done = 0
        for subscriber in queryset.exclude(status=Subscriber.Status.SUPPRESSED):
            subscriber_suppress(subscriber=subscriber, reason=OPERATOR_SUPPRESS_REASON)
            self.log_change(request, subscriber, "Suppressed by an operator.")
            done += 1
        already = queryset.count() - done
        self.message_user(request, f"{_n(done, 'subscriber')} suppressed.", messages.SUCCESS)
        if already:
            self.message_user(request, f"{_n(already, 'subscriber')} already suppressed.")

    @admin.action(description="Unsuppress (the address works again)", permissions=["change"])
    def unsuppress(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        done = 0
        for subscriber in queryset.filter(status=Subscriber.Status.SUPPRESSED):
            subscriber_unsuppress(subscriber=subscriber)
            self.log_change(
                request, subscriber, f"Unsuppressed; now {subscriber.get_status_display()}."
            )
            done += 1
        others = queryset.count() - done
        self.message_user(request, f"{_n(done, 'subscriber')} unsuppressed.", messages.SUCCESS)
        if others:
            self.message_user(request, f"{_n(others, 'subscriber')} not suppressed; unchanged.")

    @admin.action(description="Export CSV", permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[Subscriber]
    ) -> StreamingHttpResponse:
        rows = subscribers_csv(queryset.order_by("email").iterator(chunk_size=2000))
        # A byte-order mark first: Excel reads the file as UTF-8 only with it.
        response = StreamingHttpResponse(_with_bom(rows), content_type="text/csv; charset=utf-8")
        name = f"subscribers-{timezone.now():%Y-%m-%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    # --- Extra pages --------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="subscriptions_subscriber_import",
            ),
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="subscriptions_subscriber_preview",
            ),
        ]
        return own + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        report: ImportReport | None = None
        form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
        if form.is_valid():
            report = subscribers_import(
                data=form.cleaned_data["file"].read(),
                mode=ImportMode(form.cleaned_data["mode"]),
            )
            form = ImportForm()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import subscribers from CSV",
            "form": form,
            "report": report,
        }
        return TemplateResponse(request, "admin/subscriptions/subscriber/import.html", context)

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        subscriber = get_object_or_404(Subscriber, pk=object_id)
        if not self.has_view_permission(request, subscriber):
            raise PermissionDenied
        form = PreviewDateForm(request.GET if "date" in request.GET else None)
        preview = None
        if form.is_valid():
            preview = digest_preview_build(subscriber=subscriber, date=form.cleaned_data["date"])
        elif not form.is_bound:
            date = default_digest_date()
            form = PreviewDateForm(initial={"date": date})
            preview = digest_preview_build(subscriber=subscriber, date=date)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": subscriber,
            "title": f"Digest preview for {subscriber.email}",
            "form": form,
            "preview": preview,
            "long_date": long_date(preview.date) if preview else "",
        }
        return TemplateResponse(request, "admin/digest/preview.html", context)


@admin.register(EmailEvent)
class EmailEventAdmin(admin.ModelAdmin[EmailEvent]):
    """What ESPs reported, read-only: the record of why an address was suppressed."""

    list_display = ("received_at", "event_type", "recipient", "subscriber", "esp_name", "outcome")
    list_filter = ("event_type", "esp_name", "received_at")
    search_fields = ("recipient", "message_id", "event_id")
    list_select_related = ("subscriber",)
    date_hierarchy = "received_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: EmailEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: EmailEvent | None = None) -> bool:
        return False


def _stamp_status_change(subscriber: Subscriber, *, previous: str | None) -> None:
    now = timezone.now()
    status = subscriber.status
    if previous == Subscriber.Status.SUPPRESSED and status != Subscriber.Status.SUPPRESSED:
        subscriber.suppressed_at = None
        subscriber.suppressed_reason = ""
        subscriber.soft_bounces = 0
    if status == Subscriber.Status.SUPPRESSED:
        subscriber.suppressed_at = subscriber.suppressed_at or now
        subscriber.suppressed_reason = subscriber.suppressed_reason or OPERATOR_SUPPRESS_REASON
    elif status == Subscriber.Status.ACTIVE:
        subscriber.confirmed_at = subscriber.confirmed_at or now  # the operator vouches
        subscriber.unsubscribed_at = None
    elif status == Subscriber.Status.UNSUBSCRIBED:
        subscriber.unsubscribed_at = now


def _short(when: dt.datetime | None) -> str:
    return f"{timezone.localtime(when):%Y-%m-%d %H:%M}" if when else "–"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _with_bom(lines: Iterator[str]) -> Iterator[str]:
    yield "\ufeff"
    yield from lines
