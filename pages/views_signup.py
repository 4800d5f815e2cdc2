"""The home page with the signup form, "check your inbox", and confirmation links.

Views are thin: the form checks what was typed, pages/signup.py does the rest.
"""

from __future__ import annotations

import calendar
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from digest.papers_pages import latest_top_papers
from subscriptions.forms import SignupForm
from subscriptions.links import manage_url
from subscriptions.models import MAX_PAPERS, MIN_PAPERS, Subscriber
from subscriptions.ratelimit import RateLimited
from subscriptions.schedule import timezone_names
from subscriptions.tokens import CONFIRM_MAX_AGE, BadToken
from subscriptions.topics import MAX_TOPICS

from .limits import client_ip, too_many
from .signup import (
    LinkState,
    confirm_link_read,
    subscriber_confirm,
    subscriber_resend,
    subscriber_signup,
    topic_suggestions,
)

# The address typed into the form, for the "check your inbox" page: in the session, not
# the URL (no email address in any URL, where logs and referrers would keep it).
SESSION_EMAIL = "paperboy.signup.email"
SUGGESTIONS_VISIBLE = 8


def _home(request: HttpRequest, form: SignupForm) -> HttpResponse:
    suggestions = topic_suggestions()
    context: dict[str, Any] = {
        "form": form,
        "top_papers": latest_top_papers(),
        "suggestions": suggestions,
        "popular": suggestions[:SUGGESTIONS_VISIBLE],
        "min_papers": MIN_PAPERS,
        "max_papers": MAX_PAPERS,
        "max_topics": MAX_TOPICS,
        "time_zones": timezone_names(),
        "default_zone": settings.PAPERBOY_DEFAULT_TIMEZONE,
    }
    return render(request, "pages/home.html", context)


def _schedule(subscriber: Subscriber) -> dict[str, str]:
    """When their digests come, in words, for the pages that confirm a new reader."""
    hour, zone = subscriber.send_hour, subscriber.time_zone
    return {
        "send_time": f"{hour:02d}:00 {zone.replace('_', ' ')}",
        "weekly_day": calendar.day_name[subscriber.send_weekday - 1],
        "every_day": _every(hour),
    }


def _every(hour: int) -> str:
    """ "every morning", for a digest at 07:00; "every evening" at 19:00."""
    if 5 <= hour < 12:
        return "every morning"
    if 12 <= hour < 17:
        return "every afternoon"
    return "every evening" if 17 <= hour < 22 else "every night"


def _check_inbox(request: HttpRequest, email: str) -> HttpResponseRedirect:
    # Post/redirect/get: reloading the next page does not sign up again.
    request.session[SESSION_EMAIL] = email
    return redirect("subscriptions:signup_check_inbox")


@require_http_methods(["GET", "HEAD", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _home(request, SignupForm())
    form = SignupForm(request.POST)
    if form.looks_automated():
        # The same page a person gets, and nothing created or sent: no hint to tune a bot.
        return _check_inbox(request, form.typed_email())
    if not form.is_valid() or not form.claim_stamp():
        # A used stamp (a replayed or twice-sent page) is said on the form, which now
        # carries a fresh one.
        return _home(request, form)
    data = form.cleaned_data
    try:
        subscriber_signup(
            email=data["email"],
            topics=data["topics"],
            intent=data["intent"],
            frequency=data["frequency"],
            max_papers=data["max_papers"],
            ip=client_ip(request),
            trending=data["trending"],
            send_hour=data["send_hour"],
            send_weekday=data["send_weekday"],
            time_zone=data["time_zone"],
        )
    except RateLimited as exc:
        return too_many(request, exc)
    return _check_inbox(request, data["email"])


@require_http_methods(["GET", "HEAD"])
def signup_check_inbox(request: HttpRequest) -> HttpResponse:
    context = {
        "email": request.session.get(SESSION_EMAIL, ""),
        "sent_again": request.GET.get("again") == "1",
        "valid_days": CONFIRM_MAX_AGE.days,
    }
    return render(request, "pages/signup_check_inbox.html", context)


@require_POST
def signup_resend(request: HttpRequest) -> HttpResponse:
    """The check-inbox page's "Send it again", for the address this browser typed."""
    email = request.session.get(SESSION_EMAIL, "")
    if not email:
        return redirect("subscriptions:home")
    try:
        subscriber_resend(email=email, ip=client_ip(request))
    except RateLimited as exc:
        return too_many(request, exc)
    return HttpResponseRedirect(reverse("subscriptions:signup_check_inbox") + "?again=1")


def _bad_link(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/bad_link.html", status=400)


_CONFIRM_PAGES = {
    LinkState.READY: "pages/confirm.html",
    LinkState.EXPIRED: "pages/confirm_expired.html",
    LinkState.CONFIRMED: "pages/confirmed.html",
    LinkState.CLOSED: "pages/confirm_closed.html",
}


# No CSRF token: the signed token in the URL is the credential, and a mail app's browser
# may open the link without the cookie the token would need. Forging this POST gains
# nothing, since it only confirms the holder's own address.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = confirm_link_read(token=token)
    except BadToken:
        return _bad_link(request)
    state, just_confirmed = link.state, False
    # GET changes nothing: mail scanners follow links. Only the button confirms.
    if request.method == "POST" and state is LinkState.READY:
        state = subscriber_confirm(subscriber=link.subscriber)
        just_confirmed = state is LinkState.CONFIRMED
    context: dict[str, Any] = {
        "subscriber": link.subscriber,
        "token": token,
        "just_confirmed": just_confirmed,
        "valid_days": CONFIRM_MAX_AGE.days,
        **_schedule(link.subscriber),
    }
    if state is LinkState.CONFIRMED:
        # A fresh settings link for whoever holds a live confirmation link (it reached the
        # address days ago at most); an old one only says it is done.
        context["manage_url"] = "" if link.expired else manage_url(link.subscriber)
        # "Add us to your contacts": the bare address, as a person would type it in.
        context["from_address"] = parseaddr(settings.PAPERBOY_FROM_EMAIL)[1]
    return render(request, _CONFIRM_PAGES[state], context)


@require_POST
def confirm_resend(request: HttpRequest, token: str) -> HttpResponse:
    """The expired-link page's "Email me a new link": the old link proves the address."""
    try:
        link = confirm_link_read(token=token)
    except BadToken:
        return _bad_link(request)
    try:
        subscriber_resend(email=link.subscriber.email, ip=client_ip(request))
    except RateLimited as exc:
        return too_many(request, exc)
    return _check_inbox(request, link.subscriber.email)
