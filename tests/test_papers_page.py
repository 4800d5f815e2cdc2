"""The public daily pages: each day's papers ranked by upvotes, escaped, cacheable; the
home page's top five; and the link to the day's page in a trending digest."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from digest.mail import DigestItem, render_digest_for
from digest.models import Paper
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE

pytestmark = pytest.mark.django_db

DAY_BEFORE = EDITION_DATE - dt.timedelta(days=1)  # Monday 9 March 2026
FRIDAY = EDITION_DATE - dt.timedelta(days=4)


def cards(html: str) -> list[str]:
    """The titles of the cards, in order, as the page shows them (escaped)."""
    return re.findall(r'<h2><a href="[^"]*">(.*?)</a></h2>', html)


def test_a_days_page_ranks_its_papers_by_upvotes_with_the_emails_cards(
    client: Client, make_paper: Callable[..., Paper]
) -> None:
    make_paper("<script>alert(1)</script> Tom & Jerry", upvotes=12, authors=["<b>Eve</b>"])
    top = make_paper(
        "Helios: Real-Time Long Video Generation",
        "We distil an autoregressive diffusion transformer. It runs in real time.",
        upvotes=212,
        num_comments=3,
        github_repo="https://github.com/PKU-YuanGroup/Helios",
        project_page="javascript:alert(1)",
    )
    make_paper("A quiet paper", upvotes=0)
    make_paper("The day before", upvotes=999, batch_date=DAY_BEFORE)
    make_paper("A Friday paper", batch_date=FRIDAY)

    response = client.get("/papers/2026-03-10/")
    html = response.content.decode()
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=600"
    assert "<h1>Trending on Tuesday, 10 March 2026</h1>" in html
    assert "The 3 papers listed that day, most upvoted first." in html
    assert cards(html) == [
        "Helios: Real-Time Long Video Generation",
        "&lt;script&gt;alert(1)&lt;/script&gt; Tom &amp; Jerry",
        "A quiet paper",
    ]
    assert "<script>alert" not in html and "<b>Eve</b>" not in html
    # The card: title to Hugging Face, votes, authors, summary, arXiv, PDF, code.
    assert f'<h2><a href="{top.hf_url}">Helios' in html
    assert "▲ 212 upvotes" in html and "3 comments" in html and "▲ 0 upvotes" in html
    assert "Ada Lovelace, Alan Turing" in html
    assert "We distil an autoregressive diffusion transformer." in html
    assert f'<a href="{top.arxiv_url}">arXiv</a><a href="{top.pdf_url}">PDF</a>' in html
    assert '<a href="https://github.com/PKU-YuanGroup/Helios">Code</a>' in html
    assert "javascript:" not in html
    # The days before and after that have papers (none after).
    assert '<a href="/papers/2026-03-09/" rel="prev">← Mon 9 Mar</a>' in html
    assert 'rel="next"' not in html
    monday = client.get("/papers/2026-03-09/").content.decode()
    assert cards(monday) == ["The day before"]
    assert '<a href="/papers/2026-03-06/" rel="prev">' in monday  # over the weekend
    assert '<a href="/papers/2026-03-10/" rel="next">Tue 10 Mar →</a>' in monday


def test_the_index_lists_the_days_newest_first_with_count_and_top_paper(
    client: Client, make_paper: Callable[..., Paper], django_assert_max_num_queries: Any
) -> None:
    make_paper("Small", upvotes=1)
    make_paper("<i>Big</i> & bold", upvotes=50)
    make_paper("Monday's only paper", upvotes=3, batch_date=DAY_BEFORE)
    for n in range(3):
        make_paper(f"Friday {n}", upvotes=10 - n, batch_date=FRIDAY)

    with django_assert_max_num_queries(2):  # the days, then their top papers
        response = client.get("/papers/")
    html = response.content.decode()
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=600"
    assert re.findall(r'<h2><a href="(/papers/[^"]+)">', html) == [
        "/papers/2026-03-10/",
        "/papers/2026-03-09/",
        "/papers/2026-03-06/",
    ]
    assert ">Tuesday, 10 March 2026</a>" in html
    assert "2 papers" in html and "1 paper<" in html and "3 papers" in html
    assert "&lt;i&gt;Big&lt;/i&gt; &amp; bold</a> · ▲ 50" in html
    assert "Friday 0</a> · ▲ 10" in html and "Friday 1" not in html


@pytest.mark.parametrize(
    "day", ["2026-03-08", "2026-03-01", "10-03-2026", "2026-02-30", "20260310", "2026-W11-2", "x"]
)
def test_a_day_without_papers_or_not_a_day_is_a_404(
    client: Client, make_paper: Callable[..., Paper], day: str
) -> None:
    make_paper("A paper", batch_date=EDITION_DATE)
    make_paper("Another", batch_date=FRIDAY)
    response = client.get(f"/papers/{day}/")
    html = response.content.decode()
    assert response.status_code == 404
    assert response["Cache-Control"] == "public, max-age=60"  # today's list may come soon
    assert '<a class="button" href="/papers/">See the latest days</a>' in html
    if day == "2026-03-08":  # a Sunday between two listing days
        assert "<h1>No papers on Sunday, 8 March 2026</h1>" in html
        assert 'href="/papers/2026-03-06/" rel="prev"' in html
        assert 'href="/papers/2026-03-10/" rel="next"' in html
    elif day != "2026-03-01":
        assert "<h1>That is not a day</h1>" in html


def test_the_not_a_day_page_escapes_what_was_typed(client: Client) -> None:
    html = client.get("/papers/<i>x<i>/").content.decode()
    assert "<i>x<i>" not in html and "“&lt;i&gt;x&lt;i&gt;” is not a date" in html


def test_the_home_page_shows_the_latest_days_top_five_and_links_the_day(
    client: Client, make_paper: Callable[..., Paper]
) -> None:
    for n in range(7):
        make_paper(f"Paper number {n}", upvotes=n * 10, ai_summary=f"Summary {n}. " * 30)
    make_paper("<script>x</script> Hostile", upvotes=1000)
    make_paper("Yesterday's hit", upvotes=9999, batch_date=DAY_BEFORE)

    html = client.get("/").content.decode()
    aside = html[html.index('<aside class="sample"') : html.index("</aside>")]
    assert "This is what you’d get: the latest top papers" in aside
    assert "Trending on Tuesday, 10 March" in aside
    titles = re.findall(r'<a href="https://huggingface.co/papers/[^"]+">(.*?)</a>', aside)
    assert titles == [
        "&lt;script&gt;x&lt;/script&gt; Hostile",
        "Paper number 6",
        "Paper number 5",
        "Paper number 4",
        "Paper number 3",
    ]
    assert "Yesterday" not in html
    assert '<a href="/papers/2026-03-10/">All 8 papers of Tuesday →</a>' in aside
    summaries = re.findall(r'<span class="summary">(.*?)</span>', aside)
    assert all(len(s) <= 161 and s.endswith("…") for s in summaries[1:])
    assert html.count('<aside class="sample"') == 1  # one list, not two


def test_on_the_day_itself_the_home_page_says_today(
    client: Client, make_paper: Callable[..., Paper], time_machine: Any
) -> None:
    time_machine.move_to(dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC))
    make_paper("Fresh", upvotes=3)
    assert "This is what you’d get: today’s top papers" in client.get("/").content.decode()


def test_a_trending_digest_links_the_days_page_and_a_topics_only_one_does_not(
    make_subscriber: Callable[..., Subscriber], make_paper: Callable[..., Paper]
) -> None:
    dave = make_subscriber("dave@example.org", [])
    paper = make_paper("Helios", upvotes=212)
    older = make_paper("Monday's", upvotes=5, batch_date=DAY_BEFORE)
    trending = [{"topic": "#1 today · 212 upvotes", "field": "trending"}]
    items = [DigestItem(older, trending, 2), DigestItem(paper, trending, 1)]

    rendered = render_digest_for(subscriber=dave, edition_date=EDITION_DATE, items=items)
    url = "https://paperboy.example/papers/2026-03-10/"
    assert f"Today’s top papers: {url}\n" in rendered.text
    assert re.search(rf'<a href="{re.escape(url)}"[^>]*>Today’s top papers</a>', rendered.html)
    weekly = render_digest_for(
        subscriber=dave, edition_date=EDITION_DATE + dt.timedelta(days=6), items=items
    )
    assert f"Top papers of 10 Mar: {url}\n" in weekly.text

    keyword = [{"topic": "helios", "field": "title", "before": "", "match": "Helios"}]
    alice = make_subscriber("alice@example.org", ["helios"])
    mine = render_digest_for(
        subscriber=alice, edition_date=EDITION_DATE, items=[DigestItem(paper, keyword, 1)]
    )
    assert "paperboy.example/papers/" not in mine.text + mine.html
    assert "Your private feed:  https://paperboy.example/feed/" in mine.text
