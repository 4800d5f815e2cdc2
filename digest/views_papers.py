"""/papers/ and /papers/<day>/: the public daily pages (see digest.papers_pages)."""

from __future__ import annotations

import datetime as dt

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from .papers_pages import day_papers, neighbour_days, recent_listing_days


@require_safe
@cache_control(public=True, max_age=600)
def papers_index(request: HttpRequest) -> HttpResponse:
    return render(request, "digest/papers_index.html", {"days": recent_listing_days()})


@require_safe
@cache_control(public=True, max_age=600)
def papers_day(request: HttpRequest, day: str) -> HttpResponse:
    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise Http404("Not a date.") from None
    papers = day_papers(date)
    if not papers:
        raise Http404("No papers that day.")
    before, after = neighbour_days(date)
    context = {"date": date, "papers": papers, "before": before, "after": after}
    return render(request, "digest/papers_day.html", context)
