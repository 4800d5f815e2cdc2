"""A hostile source: a bad item costs only itself, a slow or endless answer only its deadline.

Tuesday's Hugging Face list carries four good papers and a dozen that are not: a NUL in a
title, lone surrogates, an upvote count no integer column holds, a list where a title
belongs, no id, javascript: URLs. Every good paper of the day is saved, each bad item is
left out with its id and reason in the log and counted in the summary and the admin.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import time
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from digest.models import Paper, ScrapeRun
from digest.scraping import scrape_papers, scrape_recent
from digest.sources import arxiv
from digest.sources.client import SourceError
from tests.hf_wire import hf_item, tuesday_papers
from tests.loopback_http import LoopbackServer, Reply

MONDAY, TUESDAY = dt.date(2026, 3, 9), dt.date(2026, 3, 10)
API = "/api/daily_papers"
PAGE = "/papers/date/2026-03-10"
GOOD = ["2603.10001", "2603.10002", "2603.10003", "2603.10004"]
# Stands for a number too long to write from Python (which refuses to print an int of
# 4,300 digits or more): the JSON text is patched after dumping.
ENDLESS_NUMBER = 987_654_321

pytestmark = pytest.mark.django_db


def hostile_items(date: dt.date) -> list[dict[str, Any]]:
    """Tuesday's good papers, and the items of a source that has gone wrong."""

    def item(arxiv_id: str, title: str, **kwargs: Any) -> dict[str, Any]:
        return hf_item(arxiv_id, title, "An abstract.", date=date, **kwargs)

    # Kept once mended: text PostgreSQL cannot store loses it, unsafe URLs are dropped.
    nul = item("2603.10011", "Null\x00 Bytes in Tokenizers", authors=("Ada\x00 Lovelace",))
    surrogate = item("2603.10012", "Lone \ud800Surrogates", ai_keywords=["uni\udfffcode"])
    scripted = item("2603.10013", "Links That Run Code", github="javascript:alert(1)")
    scripted["paper"]["projectPage"] = "JavaScript:alert(document.cookie)"
    scripted["thumbnail"] = "javascript:alert(2)"

    # Left out: what no mending makes trustworthy.
    huge = item("2603.10021", "Popular Beyond Measure", upvotes=10**30)
    endless = item("2603.10022", "Even More Popular", upvotes=ENDLESS_NUMBER)
    listed = item("2603.10023", "A Title in Pieces")
    listed["paper"]["title"] = ["A Title", "in Pieces"]
    no_id = item("2603.10024", "Nobody Knows Which Paper")
    del no_id["paper"]["id"]
    numeric_id = item("2603.10025", "An Id That Is a Number")
    numeric_id["paper"]["id"] = 2603.10025
    script_id = item("javascript:alert(3)", "An Id That Runs Code")
    sulking = item("2603.10026", "Minus Five Comments", comments=-5)
    nul_only = item("2603.10027", "\x00\x00")
    doomsday = item("2603.10028", "Published Past the End of Time")
    doomsday["paper"]["publishedAt"] = "9999-12-31T23:59:59-05:00"  # no such time in UTC
    return [*tuesday_papers(date), nul, huge, listed, surrogate, no_id, scripted, endless,
            numeric_id, script_id, sulking, nul_only, doomsday]  # fmt: skip


def hostile_json(date: dt.date) -> str:
    text = json.dumps(hostile_items(date))
    return text.replace(f'"upvotes": {ENDLESS_NUMBER}', '"upvotes": ' + "9" * 5000)


@pytest.fixture
def hf(sources_on_loopback: LoopbackServer) -> LoopbackServer:
    return sources_on_loopback


def serve_day(server: LoopbackServer, day: dt.date, body: str) -> None:
    """HF's API answers `day` with `body` on page 0, then an empty page."""
    server.route(API, query={"date": day.isoformat(), "p": "0"}, body=body)
    server.route(API, query={"date": day.isoformat(), "p": "1"}, json=[])


# --- Bad items ----------------------------------------------------------------------------


def test_bad_items_are_skipped_and_counted_and_the_days_good_papers_saved(
    hf: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    serve_day(hf, TUESDAY, hostile_json(TUESDAY))

    with caplog.at_level(logging.WARNING):
        result = scrape_papers(date=TUESDAY)

    saved = set(Paper.objects.values_list("arxiv_id", flat=True))
    assert saved == {*GOOD, "2603.10011", "2603.10012", "2603.10013"}
    assert (result.fetched, result.created, result.updated) == (7, 7, 0)
    assert result.rejected == {
        "upvotes is out of range": 2,
        "title is not a string": 1,
        "title is empty": 1,
        "id is missing": 1,
        "id is not a string": 1,
        "id is not an arXiv id": 1,
        "numComments is negative": 1,
        "published_at is out of range": 1,
    }
    assert result.summary() == (
        "7 papers fetched from 2026-03-10 (7 new, 0 updated); 9 bad items skipped "
        "(upvotes is out of range: 2, id is missing: 1, id is not a string: 1, "
        "id is not an arXiv id: 1, numComments is negative: 1, "
        "published_at is out of range: 1, title is empty: 1, title is not a string: 1); "
        "mended: lone surrogate stripped from ai_keywords: 1, "
        "lone surrogate stripped from title: 1, NUL stripped from authors: 1, "
        "NUL stripped from title: 1, unsafe URL dropped from github_repo: 1, "
        "unsafe URL dropped from project_page: 1, unsafe URL dropped from thumbnail: 1"
    )
    # Each bad item is named in the log, with what was wrong.
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    for name, why in {
        "(2603.10021)": "upvotes is 1000000000000000000000000000000",
        "(2603.10022)": "upvotes is 9999999999999999999999999999999999999",
        "(2603.10023)": "title is list, expected a string",
        "(no id)": "id is missing",
        "(javascript:alert(3))": "is not an arXiv id",
        "(2603.10026)": "numComments is -5",
    }.items():
        assert any(name in w and why in w for w in warned), (name, why)


def test_mended_papers_are_stored_without_what_postgresql_cannot_hold(
    hf: LoopbackServer,
) -> None:
    serve_day(hf, TUESDAY, hostile_json(TUESDAY))

    scrape_papers(date=TUESDAY)

    nul = Paper.objects.get(arxiv_id="2603.10011")
    assert (nul.title, nul.authors) == ("Null Bytes in Tokenizers", ["Ada Lovelace"])
    surrogate = Paper.objects.get(arxiv_id="2603.10012")
    assert (surrogate.title, surrogate.ai_keywords) == ("Lone Surrogates", ["unicode"])
    scripted = Paper.objects.get(arxiv_id="2603.10013")
    assert (scripted.github_repo, scripted.project_page, scripted.thumbnail) == ("", "", "")
    good = Paper.objects.get(arxiv_id="2603.10001")
    assert good.github_repo == "https://github.com/example/long-video"


def test_the_admin_shows_what_each_scrape_left_out_and_why(
    hf: LoopbackServer, admin_client: Client
) -> None:
    serve_day(hf, TUESDAY, hostile_json(TUESDAY))
    scrape_papers(date=TUESDAY)

    run = ScrapeRun.objects.get()
    assert (run.date, run.source, run.fetched, run.created, run.rejected) == (
        TUESDAY, "hf", 7, 7, 9,
    )  # fmt: skip
    assert run.rejected_reasons["upvotes is out of range"] == 2
    assert run.repaired["NUL stripped from title"] == 1
    listing = admin_client.get(reverse("admin:digest_scraperun_changelist")).content.decode()
    assert "upvotes is out of range: 2<br>" in listing
    page = admin_client.get(reverse("admin:digest_scraperun_change", args=[run.pk]))
    assert page.status_code == 200
    assert "unsafe URL dropped from project_page: 1" in page.content.decode()
    # Read-only: nothing to add, nothing to save.
    assert admin_client.get(reverse("admin:digest_scraperun_add")).status_code == 403
    assert b'name="_save"' not in page.content


def test_a_document_nested_too_deeply_is_an_error_not_a_crash(hf: LoopbackServer) -> None:
    hf.route(API, body="[" * 100_000)  # json.loads alone would raise RecursionError
    hf.route(PAGE, status=404)

    with pytest.raises(SourceError, match="nested too deeply"):
        scrape_papers(date=TUESDAY)


def test_an_arxiv_id_too_long_for_its_column_is_skipped(hf: LoopbackServer, settings: Any) -> None:
    """An old-style id with an endless archive name once matched, then broke the write."""
    settings.PAPERBOY_ARXIV_CATEGORIES = ["cs.LG"]
    entry = """<entry><id>http://arxiv.org/abs/{id}v1</id><title>{title}</title>
      <published>2026-03-09T10:00:00Z</published></entry>"""
    feed = (
        '<feed xmlns="http://www.w3.org/2005/Atom">'
        + entry.format(id="2603.09001", title="A Real Paper")
        + entry.format(id="a" + "-" * 40 + "/2603001", title="A Forged Id")
        + "</feed>"
    )
    hf.route("/api/query", body=feed, content_type="application/atom+xml")

    result = scrape_papers(date=MONDAY, sources=("arxiv",))

    assert list(Paper.objects.values_list("arxiv_id", flat=True)) == ["2603.09001"]
    assert result.rejected == {"id is not an arXiv id": 1}


# --- Hostile servers ----------------------------------------------------------------------


def test_a_server_trickling_its_body_is_given_up_at_the_deadline(
    hf: LoopbackServer, settings: Any
) -> None:
    settings.PAPERBOY_HF_DEADLINE_S = 1.0
    settings.PAPERBOY_HTTP_TIMEOUT_S = 5.0  # every byte comes well within the read timeout
    body = json.dumps(tuesday_papers(TUESDAY))
    hf.route(API, body=body, content_type="application/json", trickle_s=0.5)
    hf.route(PAGE, body="<html>" + body, content_type="text/html", trickle_s=0.5)

    started = time.monotonic()
    with pytest.raises(SourceError) as error:
        scrape_papers(date=TUESDAY)
    elapsed = time.monotonic() - started

    # The API, then the day's page: each given up at its deadline (plus at most one read).
    assert 2.0 <= elapsed < 4.0
    message = str(error.value)
    assert message.count("gave up after the 1s deadline (PAPERBOY_HF_DEADLINE_S)") == 2
    assert Paper.objects.count() == 0
    assert "PAPERBOY_HF_DEADLINE_S" in ScrapeRun.objects.get().error


def test_a_trickling_day_costs_only_itself(hf: LoopbackServer, settings: Any) -> None:
    settings.PAPERBOY_SCRAPE_DAYS = 2
    settings.PAPERBOY_HF_DEADLINE_S = 1.0
    settings.PAPERBOY_HTTP_TIMEOUT_S = 5.0
    serve_day(hf, TUESDAY, json.dumps(tuesday_papers(TUESDAY)))
    hf.route(API, query={"date": "2026-03-09"}, body="[" + " " * 10 + "]", trickle_s=0.5)
    hf.route("/papers/date/2026-03-09", status=404)

    result = scrape_recent(today=TUESDAY)

    assert result.created == 4
    assert "deadline" in result.errors["hf 2026-03-09"]


@pytest.mark.parametrize("send_length", [True, False], ids=["declared", "undeclared"])
def test_an_oversized_body_is_refused(hf: LoopbackServer, settings: Any, send_length: bool) -> None:
    """Refused from its Content-Length when it says, after the cap when it does not."""
    settings.PAPERBOY_HF_MAX_BYTES = 64_000
    items = tuesday_papers(TUESDAY)
    items[0]["paper"]["summary"] = "An abstract that goes on. " * 10_000
    body = json.dumps(items)
    hf.route(API, replies=[Reply(body=body, send_length=send_length)])
    hf.route(PAGE, replies=[Reply(body=body, content_type="text/html", send_length=send_length)])

    with pytest.raises(SourceError) as error:
        scrape_papers(date=TUESDAY)

    message = str(error.value)
    assert message.count("larger than 64000 bytes (PAPERBOY_HF_MAX_BYTES)") == 2


def test_a_compressed_body_is_measured_as_it_unpacks(hf: LoopbackServer, settings: Any) -> None:
    settings.PAPERBOY_HF_MAX_BYTES = 64_000
    bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")  # ~5 KB on the wire, 5 MB unpacked
    gzipped = Reply(body=bomb, headers={"Content-Encoding": "gzip"})
    hf.route(API, replies=[gzipped])
    hf.route(PAGE, replies=[gzipped])

    with pytest.raises(SourceError, match="larger than 64000 bytes"):
        scrape_papers(date=TUESDAY)


def test_arxiv_has_limits_of_its_own(hf: LoopbackServer, settings: Any) -> None:
    settings.PAPERBOY_ARXIV_CATEGORIES = ["cs.LG"]
    settings.PAPERBOY_ARXIV_MAX_BYTES = 10_000
    hf.route("/api/query", body="<feed>" + " " * 20_000 + "</feed>")

    with pytest.raises(SourceError, match=r"\(PAPERBOY_ARXIV_MAX_BYTES\)"):
        arxiv.fetch_papers(MONDAY)
