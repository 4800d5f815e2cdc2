"""What the subscriber admin shows: the list's columns and the change page's read-only
panels, as plain display functions of one subscriber.

The counts come from the annotations SubscriberAdmin.get_queryset adds (subqueries, one
per column, so a page of 30 rows makes the same few queries as a page of 3).
"""

from __future__ import annotations

import datetime as dt

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from subscriptions.form_fields import WEEKDAY_CHOICES
from subscriptions.models import Subscriber
from subscriptions.schedule import zone

RECENT_EVENTS = 10  # events shown on the change page; the rest are a link away
_DAYS = {day: name[:3] for day, name in WEEKDAY_CHOICES}  # 5: "Fri"


def short_time(when: dt.datetime | None) -> str:
    """ "2026-03-10 07:00" in the site's time zone: the admin's long format ("March 10,
    2026, 7 a.m.") would push the counts off the side of the list."""
    return f"{timezone.localtime(when):%Y-%m-%d %H:%M}" if when else "–"


@admin.display(description="Topics")
def topics(obj: Subscriber) -> str:
    return ", ".join(obj.topics) or "– (trending)"


@admin.display(description="When", ordering="send_hour")
def when(obj: Subscriber) -> str:
    """ "07:00 daily", "18:00 Fri": the hour in the subscriber's own zone."""
    day = "daily" if obj.frequency != Subscriber.Frequency.WEEKLY else _DAYS[obj.send_weekday]
    return f"{obj.send_hour:02d}:00 {day}"


@admin.display(description="Signed up", ordering="created_at")
def signed_up(obj: Subscriber) -> str:
    return short_time(obj.created_at)


@admin.display(description="Confirmed", ordering="confirmed_at")
def confirmed(obj: Subscriber) -> str:
    return short_time(obj.confirmed_at)


@admin.display(description="Last digest", ordering="_last")
def last_digest(obj: Subscriber) -> str:
    return short_time(getattr(obj, "_last", None))


@admin.display(description="Sent", ordering="_sent")
def digests_sent(obj: Subscriber) -> str:
    return str(getattr(obj, "_sent", 0))


@admin.display(description="Bounces", ordering="_bounces")
def bounces(obj: Subscriber) -> str:
    return str(getattr(obj, "_bounces", 0))


# --- Change page --------------------------------------------------------------------


@admin.display(description="Next digest")
def next_digest(obj: Subscriber) -> str:
    """When it is owed, in UTC and in the subscriber's zone; or, before the next run has
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
def digest_activity(obj: Subscriber) -> str:
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
        digests_sent(obj),
        short_time(last) if last else "never",
        bounces(obj),
        deliveries,
        reverse("admin:subscriptions_subscriber_preview", args=[obj.pk]),
    )


@admin.display(description="Recent email events")
def recent_events(obj: Subscriber) -> str:
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
                short_time(e.occurred_at or e.received_at),
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
