"""What every page that sends email shares: whom a rate limit counts, and the page a
client over it gets."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from paperboy.client_ip import client_address
from subscriptions.ratelimit import RateLimited, client_key


def client_ip(request: HttpRequest) -> str:
    """The key to rate-limit this client by.

    Behind a reverse proxy REMOTE_ADDR is the proxy's address, and every visitor would
    share one limit: `client_address` believes X-Forwarded-For only as far as it was
    written by PAPERBOY_TRUSTED_PROXIES, and reads REMOTE_ADDR otherwise.
    """
    return client_key(client_address(request))


def too_many(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    """The 429 page of every form that sends email. Limits are per IP only, so it says
    nothing about the address that was typed."""
    minutes = max(1, round(exc.retry_after / 60))
    hours = round(minutes / 60)
    context = {
        "wait": f"{minutes} minute{'s' if minutes != 1 else ''}"
        if minutes < 90
        else f"about {hours} hours",
    }
    response = render(request, "pages/signup_too_many.html", context, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response
