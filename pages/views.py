"""Subscriber pages. Views are thin: they read the token and call a function."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from subscriptions.services import subscriber_unsubscribe
from subscriptions.tokens import BadToken, Purpose, subscriber_for_token


def _bad_link(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/bad_link.html", status=400)


# RFC 8058 one-click: the mail client POSTs with no cookies and no CSRF token, and expects
# a 200 without a redirect. The signed token is the credential.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber, _ = subscriber_for_token(token, Purpose.UNSUBSCRIBE)
    except BadToken:
        return _bad_link(request)
    if request.method == "POST":
        subscriber_unsubscribe(subscriber=subscriber)
        return render(request, "pages/unsubscribed.html", {"subscriber": subscriber})
    # GET changes nothing: mail scanners follow links.
    return render(request, "pages/unsubscribe.html", {"subscriber": subscriber})
