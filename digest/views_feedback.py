"""The "more like this" / "less like this" links under each paper of a digest.

Thin: digest/feedback.py reads the token and records the click.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from paperboy.text import one_line
from subscriptions.tokens import BadToken, Purpose, make_token

from .feedback import (
    UnknownPaper,
    feedback_for,
    feedback_link_read,
    feedback_paper,
    feedback_record,
)


# No CSRF token, as on the unsubscribe page: the link comes from an email, and the mail
# app's browser may open it without our cookie. The signed token in the URL is the
# credential, and a forged POST could only record the holder's own, undoable preference.
@csrf_exempt
@never_cache  # the pages link to the subscriber's settings
@require_http_methods(["GET", "HEAD", "POST"])
def feedback(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = feedback_link_read(token=token)
    except BadToken:
        return render(request, "pages/bad_link.html", status=400)
    manage_url = reverse("subscriptions:manage", args=[make_token(link.subscriber, Purpose.MANAGE)])
    try:
        paper = feedback_paper(link=link)
    except UnknownPaper:
        missing = {"manage_url": manage_url}
        return render(request, "digest/feedback_missing.html", missing, status=404)
    context: dict[str, Any] = {
        "more": link.value > 0,
        "title": one_line(paper.title),
        "paper_url": paper.hf_url,
        "manage_url": manage_url,
    }
    if request.method == "POST":
        feedback_record(subscriber=link.subscriber, paper=paper, value=link.value)
        return render(request, "digest/feedback_done.html", context)
    # GET changes nothing: mail scanners follow links. Only the button records it.
    previous = feedback_for(subscriber=link.subscriber, paper=paper)
    context["previous"] = previous
    context["already"] = previous is not None and previous.value == link.value
    return render(request, "digest/feedback.html", context)
