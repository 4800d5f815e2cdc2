"""A subscriber's private feed, as Atom and JSON Feed (see digest.feeds).

Conditional GET (ETag, Last-Modified) answers a feed reader's poll with a 304 after two
small queries; the 304 carries the same validators and Cache-Control as the feed. An
unknown or renewed key is a 404.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.cache import get_conditional_response
from django.utils.http import http_date, quote_etag
from django.views.decorators.http import require_safe

from subscriptions.models import Subscriber

from .feeds import atom_feed, feed_entries, feed_subscriber, feed_version, json_feed

CACHE = "private, max-age=300"  # five minutes: a feed reader's usual poll


def _atom(subscriber: Subscriber) -> HttpResponse:
    body = atom_feed(subscriber, feed_entries(subscriber))
    return HttpResponse(body, content_type="application/atom+xml; charset=utf-8")


def _json(subscriber: Subscriber) -> HttpResponse:
    document = json_feed(subscriber, feed_entries(subscriber))
    body = json.dumps(document, ensure_ascii=False, indent=1)
    return HttpResponse(body, content_type="application/feed+json; charset=utf-8")


def _feed(
    request: HttpRequest, key: str, build: Callable[[Subscriber], HttpResponse]
) -> HttpResponse:
    subscriber = feed_subscriber(key)
    if subscriber is None:
        raise Http404("No such feed.")
    version = feed_version(subscriber)
    etag = quote_etag(version.etag)
    modified = int(version.modified.timestamp()) if version.modified else None
    response = get_conditional_response(request, etag=etag, last_modified=modified)
    if response is None:  # not a 304: the feed itself
        response = build(subscriber)
    response["ETag"] = etag
    if modified is not None:
        response["Last-Modified"] = http_date(modified)
    response["Cache-Control"] = CACHE
    response["X-Robots-Tag"] = "noindex"  # a private address, should one leak
    return response


@require_safe
def feed_atom(request: HttpRequest, key: str) -> HttpResponse:
    return _feed(request, key, _atom)


@require_safe
def feed_json(request: HttpRequest, key: str) -> HttpResponse:
    return _feed(request, key, _json)
