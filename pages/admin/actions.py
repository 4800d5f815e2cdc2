"""The subscriber admin's actions, as plain functions over the selected subscribers: each
calls a service (subscriptions.services, signup, csv_export, digest.admin_views) and
tells the operator what happened, counted."""

from __future__ import annotations

from collections.abc import Iterator

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from digest.admin_views import default_digest_date, digests_send_as_test
from paperboy.text import long_date, plural
from subscriptions.csv_export import subscribers_csv
from subscriptions.models import Subscriber
from subscriptions.services import (
    OPERATOR_SUPPRESS_REASON,
    subscriber_suppress,
    subscriber_unsuppress,
)

from ..signup import confirmation_send

# Django passes the ModelAdmin first; only its message_user and log_change are used here.
ModelAdmin = admin.ModelAdmin[Subscriber]


@admin.action(description="Send a test digest", permissions=["change"])
def send_test_digest(
    modeladmin: ModelAdmin, request: HttpRequest, queryset: QuerySet[Subscriber]
) -> None:
    date = default_digest_date()
    report = digests_send_as_test(subscribers=queryset, date=date)
    when = long_date(date)
    if report.sent:
        modeladmin.message_user(
            request, f"{plural(report.sent, 'test digest')} of {when} sent.", messages.SUCCESS
        )
    for reason, n in report.nothing_to_send.items():
        modeladmin.message_user(request, f"{plural(n, 'subscriber')}: nothing to send ({reason}).")
    for status, n in report.not_receiving.items():
        modeladmin.message_user(
            request, f"{plural(n, 'subscriber')} not sent a test ({status}).", messages.WARNING
        )
    for failure in report.failed:
        modeladmin.message_user(request, f"Not sent: {failure}", messages.ERROR)


@admin.action(description="Resend the confirmation email", permissions=["change"])
def resend_confirmation(
    modeladmin: ModelAdmin, request: HttpRequest, queryset: QuerySet[Subscriber]
) -> None:
    sent = recently = skipped = 0
    for subscriber in queryset:
        if subscriber.status != Subscriber.Status.PENDING:
            skipped += 1
        elif confirmation_send(subscriber=subscriber):
            sent += 1
        else:
            recently += 1
    if sent:
        modeladmin.message_user(
            request, f"{plural(sent, 'confirmation email')} sent.", messages.SUCCESS
        )
    if recently:
        modeladmin.message_user(
            request,
            f"{plural(recently, 'subscriber')} had one sent a few minutes ago; not sent again.",
            messages.WARNING,
        )
    if skipped:
        modeladmin.message_user(
            request,
            f"{plural(skipped, 'subscriber')} skipped: only pending subscribers are sent one.",
            messages.WARNING,
        )


@admin.action(description="Suppress (send nothing more)", permissions=["change"])
def suppress(modeladmin: ModelAdmin, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
    done = 0
    for subscriber in queryset.exclude(status=Subscriber.Status.SUPPRESSED):
        subscriber_suppress(subscriber=subscriber, reason=OPERATOR_SUPPRESS_REASON)
        modeladmin.log_change(request, subscriber, "Suppressed by an operator.")
        done += 1
    already = queryset.count() - done
    modeladmin.message_user(request, f"{plural(done, 'subscriber')} suppressed.", messages.SUCCESS)
    if already:
        modeladmin.message_user(request, f"{plural(already, 'subscriber')} already suppressed.")


@admin.action(description="Unsuppress (the address works again)", permissions=["change"])
def unsuppress(
    modeladmin: ModelAdmin, request: HttpRequest, queryset: QuerySet[Subscriber]
) -> None:
    done = 0
    for subscriber in queryset.filter(status=Subscriber.Status.SUPPRESSED):
        subscriber_unsuppress(subscriber=subscriber)
        modeladmin.log_change(
            request, subscriber, f"Unsuppressed; now {subscriber.get_status_display()}."
        )
        done += 1
    others = queryset.count() - done
    modeladmin.message_user(
        request, f"{plural(done, 'subscriber')} unsuppressed.", messages.SUCCESS
    )
    if others:
        modeladmin.message_user(
            request, f"{plural(others, 'subscriber')} not suppressed; unchanged."
        )


@admin.action(description="Export CSV", permissions=["view"])
def export_csv(
    modeladmin: ModelAdmin, request: HttpRequest, queryset: QuerySet[Subscriber]
) -> StreamingHttpResponse:
    rows = subscribers_csv(queryset.order_by("email").iterator(chunk_size=2000))
    # A byte-order mark first: Excel reads the file as UTF-8 only with it.
    response = StreamingHttpResponse(_with_bom(rows), content_type="text/csv; charset=utf-8")
    name = f"subscribers-{timezone.now():%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _with_bom(lines: Iterator[str]) -> Iterator[str]:
    yield "\ufeff"
    yield from lines
