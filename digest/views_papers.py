"""/papers/ and /papers/<day>/: the public daily pages (see digest.papers_pages).

Nothing personal on them: `Cache-Control: public`, ten minutes (Hugging Face adds papers
to a day for hours, so not longer). A day without papers is a 404 that still helps: it
links the nearest days that have some, and may be asked again sooner.
"""

from __future__ import annotations

import datetime as dt
import re

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from .papers_pages import day_papers, neighbour_days, recent_listing_days

PAGE_SECONDS = 600
MISSING_SECONDS = 60  # today's list may appear any minute
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _public(response: HttpResponse, seconds: int) -> HttpResponse:
    patch_cache_control(response, public=True, max_age=seconds)
    return response


def _date(day: str) -> dt.date | None:
    """YYYY-MM-DD, and only that (fromisoformat would take 20260310 and 2026-W11-2)."""
    if not _ISO_DAY.fullmatch(day):
        return None
    try:
        return dt.date.fromisoformat(day)
    except ValueError:  # 2026-02-30
        return None


@require_safe
def papers_index(request: HttpRequest) -> HttpResponse:
    page = render(request, "digest/papers_index.html", {"days": recent_listing_days()})
    return _public(page, PAGE_SECONDS)


@require_safe
def papers_day(request: HttpRequest, day: str) -> HttpResponse:
    date = _date(day)
    papers = day_papers(date) if date else []
    before, after = neighbour_days(date) if date else (None, None)
    context = {"date": date, "day": day, "papers": papers, "before": before, "after": after}
    if not papers:
        page = render(request, "digest/papers_missing.html", context, status=404)
        return _public(page, MISSING_SECONDS)
    return _public(render(request, "digest/papers_day.html", context), PAGE_SECONDS)
