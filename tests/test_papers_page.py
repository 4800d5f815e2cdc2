"""The public daily pages: each day's papers ranked by upvotes, escaped, cacheable."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.test import Client

from digest.models import Paper
from tests.conftest import EDITION_DATE

pytestmark = pytest.mark.django_db


def test_a_days_page_ranks_its_papers_by_upvotes_and_escapes_them(
    client: Client, make_paper: Callable[..., Paper]
) -> None:
    make_paper("<script>alert(1)</script> Diffusion", upvotes=12)
    make_paper("The top paper", upvotes=212, github_repo="https://github.com/x/y")
    make_paper("The day before", upvotes=999, batch_date=EDITION_DATE - dt.timedelta(days=1))

    response = client.get("/papers/2026-03-10/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "public" in response["Cache-Control"] and "max-age=600" in response["Cache-Control"]
    assert html.index("The top paper") < html.index("Diffusion")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "The day before" not in html
    assert 'href="/papers/2026-03-09/"' in html  # the day before, to browse
    assert "https://github.com/x/y" in html and "▲ 212 upvotes" in html

    index = client.get("/papers/").content.decode()
    assert 'href="/papers/2026-03-10/"' in index and 'href="/papers/2026-03-09/"' in index
    assert "2 papers" in index

    assert client.get("/papers/2026-03-01/").status_code == 404  # no papers that day
    assert client.get("/papers/10-03-2026/").status_code == 404


def test_the_home_page_shows_the_top_five_and_links_the_day(
    client: Client, make_paper: Callable[..., Paper]
) -> None:
    for n in range(7):
        make_paper(f"Paper number {n}", upvotes=n * 10)
    html = client.get("/").content.decode()
    shown = [n for n in range(7) if f"Paper number {n}<" in html]
    assert shown == [2, 3, 4, 5, 6]
    assert 'href="/papers/2026-03-10/"' in html
