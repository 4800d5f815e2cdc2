"""The manage page, linked from every digest, and what it posts to.

The signed manage token in the URL is the credential; the forms still carry a CSRF
token, because this is an ordinary page a browser fills in (only the RFC 8058
unsubscribe POST goes without). Every response is `never_cache`: the pages hold
personal settings, and Back after a delete must not bring them up again.

A manage link expires (an expired one shows a form that emails a fresh one), and it does
not reach the person's data by itself: "download" and "delete" email the address a link
of their own (`manage_action`), which does it.
"""

from __future__ import annotations

import calendar
import functools
import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from digest.feedback import subscriber_feedback
from digest.feeds import feed_urls
from paperboy.text import one_line
from subscriptions.forms_manage import DigestSettingsForm, ManageLinkForm
from subscriptions.models import Subscriber
from subscriptions.ratelimit import RateLimited
from subscriptions.schedule import timezone_names
from subscriptions.tokens import (
    BadToken,
    ExpiredToken,
    Purpose,
    action_link_max_age,
    make_token,
    manage_link_max_age,
    subscriber_for_token,
)

from .limits import client_ip, too_many
from .manage import (
    Action,
    Preview,
    action_link_read,
    digest_preview,
    duration_words,
    manage_action_possible,
    manage_action_request,
    manage_link_request,
    next_digest_words,
    subscriber_can_resume,
    subscriber_delete,
    subscriber_export,
    subscriber_feed_key_renew,
    subscriber_feedback_undo,
    subscriber_pause,
    subscriber_recent_digests,
    subscriber_resume,
    subscriber_sent_count,
    subscriber_settings_update,
)

ManageView = Callable[[HttpRequest, Subscriber, str], HttpResponse]


def with_manage_token(view: ManageView) -> Callable[[HttpRequest, str], HttpResponse]:
    """Resolve the token to its subscriber, or show the friendly bad-link page (400), or
    for a link that is ours but too old the page that offers a fresh one (410)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, token: str) -> HttpResponse:
        try:
            subscriber, _ = subscriber_for_token(token, Purpose.MANAGE)
        except ExpiredToken:
            return _new_link_page(request, expired="settings")
        except BadToken:
            return _bad_link(request)
        return view(request, subscriber, token)

    return never_cache(wrapped)


def _urls(subscriber: Subscriber, token: str) -> dict[str, str]:
    def url(name: str) -> str:
        return reverse(f"subscriptions:{name}", args=[token])

    return {
        "manage_url": url("manage"),
        "preview_url": url("manage_preview"),
        "pause_url": url("manage_pause"),
        "resume_url": url("manage_resume"),
        "export_url": url("manage_export"),
        "delete_url": url("manage_delete"),
        "feedback_undo_url": url("manage_feedback_undo"),
        "unsubscribe_url": reverse(
            "subscriptions:unsubscribe", args=[make_token(subscriber, Purpose.UNSUBSCRIBE)]
        ),
    }


def _preview(subscriber: Subscriber, form: DigestSettingsForm) -> dict[str, Any]:
    """The preview's context: from the form's values when they are valid."""
    if not form.is_valid():
        return {"preview": None, "preview_error": form.first_error()}
    data = form.cleaned_data
    preview: Preview = digest_preview(
        subscriber=subscriber,
        topics=data["topics"],
        intent=data["intent"],
        frequency=data["frequency"],
        max_papers=data["max_papers"],
        trending=data["trending"],
    )
    return {"preview": preview, "preview_error": ""}


def _saved_form(subscriber: Subscriber) -> DigestSettingsForm:
    """The saved settings as a bound form, so the preview of them goes through the same
    cleaning as what the subscriber types."""
    initial = DigestSettingsForm.for_subscriber(subscriber).initial
    return DigestSettingsForm(data=initial)


def _page(
    request: HttpRequest,
    subscriber: Subscriber,
    token: str,
    form: DigestSettingsForm | None = None,
) -> HttpResponse:
    shown = form or DigestSettingsForm.for_subscriber(subscriber)
    context = {
        "subscriber": subscriber,
        "form": shown,
        "unsaved": form is not None,  # the page shows what they typed, not what is saved
        "can_resume": subscriber_can_resume(subscriber),
        "digests": subscriber_recent_digests(subscriber=subscriber),
        "feedback": subscriber_feedback(subscriber=subscriber),
        "feed": feed_urls(subscriber),
        "next_digest": next_digest_words(subscriber),
        "weekday_name": calendar.day_name[subscriber.send_weekday - 1],
        "time_zones": timezone_names(),
        "feed_new_url": reverse("subscriptions:manage_feed_new", args=[token]),
        **_preview(subscriber, form or _saved_form(subscriber)),
        **_urls(subscriber, token),
    }
    return render(request, "pages/manage.html", context)


@require_http_methods(["GET", "POST"])
@with_manage_token
def manage(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    if request.method == "GET":
        return _page(request, subscriber, token)
    form = DigestSettingsForm(data=request.POST)
    # "Preview" without JavaScript: show the page with the preview, save nothing.
    if request.POST.get("action") == "preview" or not form.is_valid():
        return _page(request, subscriber, token, form)
    subscriber_settings_update(
        subscriber=subscriber,
        topics=form.cleaned_data["topics"],
        intent=form.cleaned_data["intent"],
        frequency=form.cleaned_data["frequency"],
        max_papers=form.cleaned_data["max_papers"],
        **form.choices(),
    )
    messages.success(request, "Saved. Your next digest uses these settings.")
    return redirect("subscriptions:manage", token=token)


@require_http_methods(["GET", "POST"])
@with_manage_token
def manage_preview(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    """The preview as an HTML fragment, for the page's script. Writes nothing, so a GET
    (with the settings in the query, or none for the saved ones) is fine too."""
    values = request.POST if request.method == "POST" else request.GET
    form = DigestSettingsForm(data=values) if "topics" in values else _saved_form(subscriber)
    return render(request, "pages/manage_preview.html", _preview(subscriber, form))


@require_http_methods(["POST"])
@with_manage_token
def manage_pause(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    # No message: the page's paused banner, with its Resume button, says it.
    subscriber_pause(subscriber=subscriber)
    return redirect("subscriptions:manage", token=token)


@require_http_methods(["POST"])
@with_manage_token
def manage_resume(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    was = subscriber.status
    if subscriber_resume(subscriber=subscriber):
        if was == Subscriber.Status.UNSUBSCRIBED:
            messages.success(request, "Welcome back. Your digests start again.")
        else:
            messages.success(request, "Resumed. Your next digest comes as usual.")
    return redirect("subscriptions:manage", token=token)


@require_http_methods(["POST"])
@with_manage_token
def manage_feed_new(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    subscriber_feed_key_renew(subscriber=subscriber)
    messages.success(request, "Your feed has a new address; the old one no longer works.")
    return redirect(reverse("subscriptions:manage", args=[token]) + "#feed")


@require_http_methods(["POST"])
@with_manage_token
def manage_feedback_undo(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    """The Undo next to a paper in their feedback list; the paper's arXiv id is posted."""
    paper = subscriber_feedback_undo(subscriber=subscriber, arxiv_id=request.POST.get("paper", ""))
    if paper is not None:
        # Tagged, so the page shows it by the list rather than at the top.
        title = one_line(paper.title)
        messages.success(request, f"Undone: “{title}” no longer counts.", extra_tags="feedback")
    return redirect(reverse("subscriptions:manage", args=[token]) + "#feedback")


def _bad_link(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/bad_link.html", status=400)


def _new_link_page(
    request: HttpRequest, *, expired: str = "", form: ManageLinkForm | None = None
) -> HttpResponse:
    """The form that emails a fresh settings link. Reached from an expired settings link
    (expired="settings") or export/delete link (expired="action"), it says so, with 410."""
    context = {
        "expired": expired,
        "form": form or ManageLinkForm(),
        "manage_days": duration_words(manage_link_max_age()),
        "action_minutes": duration_words(action_link_max_age()),
    }
    status = 410 if expired else 200
    return render(request, "pages/manage_new_link.html", context, status=status)


def _action_asked(
    request: HttpRequest, subscriber: Subscriber, token: str, action: Action
) -> HttpResponse:
    """POST "download" or "delete" on the manage page: the link goes to their inbox."""
    possible = manage_action_possible(subscriber)
    if possible:
        manage_action_request(subscriber=subscriber, action=action)
    context = {
        "subscriber": subscriber,
        "action": action.value,
        "possible": possible,
        "valid_for": duration_words(action_link_max_age()),
        **_urls(subscriber, token),
    }
    return render(request, "pages/manage_action_sent.html", context)


def _action_step(
    request: HttpRequest,
    subscriber: Subscriber,
    token: str,
    action: Action,
    template: str,
    shown: Callable[[], dict[str, object]] = dict,
) -> HttpResponse:
    """GET: the page saying what `action` does (with what `shown` adds); POST: email the
    address the link that does it."""
    if request.method == "POST":
        return _action_asked(request, subscriber, token, action)
    context = {"subscriber": subscriber, "step": "ask", **shown(), **_urls(subscriber, token)}
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@with_manage_token
def manage_export(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    """GET explains; POST emails the address the link that downloads their data."""
    return _action_step(request, subscriber, token, Action.EXPORT, "pages/manage_export.html")


@require_http_methods(["GET", "POST"])
@with_manage_token
def manage_delete(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    """GET says what goes; POST emails the address the link that deletes it."""
    return _action_step(
        request,
        subscriber,
        token,
        Action.DELETE,
        "pages/manage_delete.html",
        lambda: {"digests_sent": subscriber_sent_count(subscriber=subscriber)},
    )


# The emailed link is the credential, as for a confirmation link (views_signup.confirm):
# no CSRF token, since a mail app's browser may open it without the cookie. GET only
# shows the button: mail scanners follow links, and must neither download nor delete.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def manage_action(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link that downloads or deletes the subscriber's data."""
    try:
        subscriber, action = action_link_read(token=token)
    except ExpiredToken:
        return _new_link_page(request, expired="action")
    except BadToken:
        return _bad_link(request)
    if action is Action.EXPORT:
        if request.method == "POST":
            return _export_response(subscriber)
        context = {"subscriber": subscriber, "step": "confirm", "action_url": request.path}
        return render(request, "pages/manage_export.html", context)
    if request.method == "POST":
        masked = subscriber.masked_email
        subscriber_delete(subscriber=subscriber)
        return render(request, "pages/manage_deleted.html", {"masked_email": masked})
    context = {
        "subscriber": subscriber,
        "step": "confirm",
        "action_url": request.path,
        "digests_sent": subscriber_sent_count(subscriber=subscriber),
    }
    return render(request, "pages/manage_delete.html", context)


def _export_response(subscriber: Subscriber) -> HttpResponse:
    data = subscriber_export(subscriber=subscriber)
    response = HttpResponse(
        json.dumps(data, indent=2, ensure_ascii=False) + "\n",
        content_type="application/json; charset=utf-8",
    )
    filename = f"paperboy-data-{timezone.now():%Y-%m-%d}.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def manage_link_form(request: HttpRequest) -> HttpResponse:
    """ "Email me a link to my settings": the same answer whatever the address (the task
    looks it up), rate limited per IP."""
    if request.method != "POST":
        return _new_link_page(request)
    form = ManageLinkForm(request.POST)
    if not form.is_valid():
        return _new_link_page(request, form=form)
    try:
        manage_link_request(email=form.cleaned_data["email"], ip=client_ip(request))
    except RateLimited as exc:
        return too_many(request, exc)
    # Post/redirect/get: reloading the next page does not ask again.
    return redirect("subscriptions:manage_link_sent")


@require_http_methods(["GET", "HEAD"])
def manage_link_sent(request: HttpRequest) -> HttpResponse:
    context = {"valid_for": duration_words(manage_link_max_age())}
    return render(request, "pages/manage_link_sent.html", context)
