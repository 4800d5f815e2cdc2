"""A reader's private feed, as Atom and JSON Feed (see digest.feeds).

Conditional GET (ETag, Last-Modified) answers a feed reader's poll with a 304 after one
small query; an unknown or renewed key is a 404.
"""

from __future__ import annotations

import datetime as dt

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import condition, require_safe

from .feeds import atom_feed, feed_entries, feed_subscriber, feed_version, json_feed

CACHE = "private, max-age=300"  # five minutes: a feed reader's usual poll


def _etag(request: HttpRequest, key: str) -> str | None:
    subscriber = feed_subscriber(key)
    return feed_version(subscriber)[0] if subscriber else None


def _modified(request: HttpRequest, key: str) -> dt.datetime | None:
    subscriber = feed_subscriber(key)
    return feed_version(subscriber)[1] if subscriber else None


@require_safe
@condition(etag_func=_etag, last_modified_func=_modified)
def feed_atom(request: HttpRequest, key: str) -> HttpResponse:
    subscriber = feed_subscriber(key)
    if subscriber is None:
        raise Http404("No such feed.")
    body = atom_feed(subscriber, feed_entries(subscriber))
    response = HttpResponse(body, content_type="application/atom+xml; charset=utf-8")
    response["Cache-Control"] = CACHE
    return response


@require_safe
@condition(etag_func=_etag, last_modified_func=_modified)
def feed_json(request: HttpRequest, key: str) -> HttpResponse:
    subscriber = feed_subscriber(key)
    if subscriber is None:
        raise Http404("No such feed.")
    response = JsonResponse(
        json_feed(subscriber, feed_entries(subscriber)),
        content_type="application/feed+json; charset=utf-8",
        json_dumps_params={"ensure_ascii": False},
    )
    response["Cache-Control"] = CACHE
    return response
