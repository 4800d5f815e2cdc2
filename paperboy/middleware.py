"""Request guards that belong to no app: what every request passes before any view."""

from __future__ import annotations

import codecs
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from paperboy.client_ip import is_trusted

# Headers only a proxy of ours may set: they decide "is this HTTPS?" and "who is this?".
FORWARDING_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
)


class UntrustedForwardingMiddleware:
    """Drop forwarding headers unless the request came from a trusted proxy.

    `SECURE_PROXY_SSL_HEADER` makes Django believe X-Forwarded-Proto from anyone; with
    this in front, only what PAPERBOY_TRUSTED_PROXIES sent is left to believe.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_trusted(str(request.META.get("REMOTE_ADDR", ""))):
            for header in FORWARDING_HEADERS:
                request.META.pop(header, None)
        return self.get_response(request)


# Form bodies are decoded by Django with the charset the client declares. Ours are UTF-8;
# an ASCII-compatible charset decodes harmlessly (at worst to mojibake a form rejects),
# but UTF-16 or UTF-32 fail halfway through Django's parsing, and an unknown name fails
# the lookup: both used to end in a 500.
ASCII_COMPATIBLE = frozenset({"utf-8", "ascii", "latin-1", "iso8859-1", "cp1252", "iso8859-15"})


def declared_charset(content_type: str) -> str:
    """The charset parameter of a Content-Type header, lowercased ("" when none)."""
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return ""


def charset_problem(content_type: str) -> str:
    """Why a body in this Content-Type cannot be read, or "" when it can."""
    charset = declared_charset(content_type)
    if not charset:
        return ""
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        return f"Unknown charset {charset!r}: send UTF-8."
    if name not in ASCII_COMPATIBLE:
        return f"Charset {charset!r} is not supported: send UTF-8."
    return ""


class RejectUndecodableMiddleware:
    """Answer 400, with the reason, to a body declared in a charset we cannot read."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        problem = charset_problem(str(request.META.get("CONTENT_TYPE", "")))
        if problem:
            return HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
