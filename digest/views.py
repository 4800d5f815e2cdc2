"""The "view in browser" copy of a digest that was sent."""

from __future__ import annotations

import datetime as dt

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from subscriptions.tokens import BadToken, Purpose, make_token, subscriber_for_token

from .deliveries import sent_delivery
from .mail import render_digest

# The page is the email's own HTML: no scripts, scraped text escaped by the template.
# The policy makes sure of the first; links still open, as navigation is not covered.
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; base-uri 'none'"


@never_cache  # it carries the subscriber's manage and unsubscribe links
@require_http_methods(["GET"])
def digest_in_browser(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber, extra = subscriber_for_token(token, Purpose.DIGEST)
        edition_date = dt.date.fromisoformat(extra)
    except (BadToken, ValueError):
        return render(request, "pages/bad_link.html", status=400)
    delivery = sent_delivery(subscriber=subscriber, edition_date=edition_date)
    if delivery is None:
        manage = reverse("subscriptions:manage", args=[make_token(subscriber, Purpose.MANAGE)])
        context = {"edition_date": edition_date, "manage_url": manage}
        return render(request, "digest/not_found.html", context, status=404)
    response = HttpResponse(render_digest(delivery=delivery, for_browser=True).html)
    response["Content-Security-Policy"] = _POLICY
    response["X-Robots-Tag"] = "noindex"  # links get forwarded; keep copies out of search
    return response
