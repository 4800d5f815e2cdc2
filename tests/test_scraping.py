"""Scraping a day into the database: create, update, refresh earlier days, never half-write."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from digest import scraping
from digest.models import Paper
from digest.scraping import scrape_papers
from digest.sources import arxiv
from digest.sources.client import SourceError
from digest.sources.records import PaperRecord, Screened
from tests.conftest import FIXTURES
from tests.loopback_http import LoopbackServer, RecordedRequest, Reply

MONDAY, TUESDAY = dt.date(2026, 3, 9), dt.date(2026, 3, 10)
API = "/api/daily_papers"

pytestmark = pytest.mark.django_db


def hf_day(server: LoopbackServer, day: dt.date, pages: list[list[Any]]) -> None:
    """HF's API answers `day` with `pages` (then an empty page) and nothing else."""
    for number, items in enumerate([*pages, []]):
        server.route(API, query={"date": day.isoformat(), "p": str(number)}, json=items)


def load(name: str) -> list[Any]:
    return json.loads((FIXTURES / name).read_text())


def tuesday_pages(upvotes: dict[str, int] | None = None) -> list[list[Any]]:
    """Tuesday's two API pages; `upvotes` overrides some papers' counts (they keep growing)."""
    pages = [load("hf_api_2026-03-10_p0.json"), load("hf_api_2026-03-10_p1.json")]
    for item in pages[0] + pages[1]:
        item["paper"]["upvotes"] = (upvotes or {}).get(
            item["paper"]["id"], item["paper"]["upvotes"]
        )
    return pages


def upvotes_of(*arxiv_ids: str) -> list[int]:
    return [Paper.objects.get(arxiv_id=i).upvotes for i in arxiv_ids]


@pytest.fixture
def hf(sources_on_loopback: LoopbackServer) -> LoopbackServer:
    return sources_on_loopback


def test_a_first_scrape_creates_the_days_papers(hf: LoopbackServer) -> None:
    hf_day(hf, TUESDAY, tuesday_pages())

    result = scrape_papers(date=TUESDAY)

    assert (result.fetched, result.created, result.updated, result.skipped) == (5, 5, 0, 0)
    assert result.per_source == {"hf": 5}
    assert Paper.objects.filter(batch_date=TUESDAY, source="hf").count() == 5
    hostile = Paper.objects.get(arxiv_id="2603.08457")
    assert "<script>alert(1)</script>" in hostile.title  # text as it came; escaped when shown
    smod = Paper.objects.get(arxiv_id="2603.08801")
    assert smod.ai_keywords[0] == "video diffusion"
    assert (smod.github_stars, smod.num_comments) == (231, 6)


def test_a_second_scrape_updates_upvotes_without_duplicating(hf: LoopbackServer) -> None:
    hf_day(hf, TUESDAY, tuesday_pages())
    scrape_papers(date=TUESDAY)
    first_seen = Paper.objects.get(arxiv_id="2603.08801").first_seen_at

    hf.routes.clear()
    hf_day(hf, TUESDAY, tuesday_pages(upvotes={"2603.08801": 150, "2603.05548": 12}))
    result = scrape_papers(date=TUESDAY)

    assert (result.created, result.updated, result.skipped) == (0, 2, 3)
    assert Paper.objects.count() == 5
    assert upvotes_of("2603.08801", "2603.05548") == [150, 12]
    assert Paper.objects.get(arxiv_id="2603.08801").first_seen_at == first_seen


def test_keywords_added_later_are_stored_but_never_erased(hf: LoopbackServer) -> None:
    pages = tuesday_pages()
    hf_day(hf, TUESDAY, pages)
    scrape_papers(date=TUESDAY)

    # HF generates keywords hours later; one answer may also lack them again.
    pages[0][2]["paper"]["ai_keywords"] = ["speech recognition", "self-training"]
    del pages[0][0]["paper"]["ai_keywords"]
    hf.routes.clear()
    hf_day(hf, TUESDAY, pages)
    scrape_papers(date=TUESDAY)

    assert Paper.objects.get(arxiv_id="2603.07922").ai_keywords == [
        "speech recognition",
        "self-training",
    ]
    assert Paper.objects.get(arxiv_id="2603.08801").ai_keywords[0] == "video diffusion"


def test_earlier_days_get_their_upvotes_refreshed(hf: LoopbackServer, settings: Any) -> None:
    settings.PAPERBOY_REFRESH_DAYS = 3
    monday = load("hf_api_2026-03-09.json")
    hf_day(hf, MONDAY, [monday])
    scrape_papers(date=MONDAY)

    # A day later Monday's papers have more upvotes, and HF has retouched a title.
    monday[0]["paper"]["upvotes"] = 63
    monday[0]["numComments"] = 5
    monday[0]["paper"]["title"] = "Retitled by HF"
    hf.routes.clear()
    hf_day(hf, MONDAY, [monday])
    hf_day(hf, TUESDAY, tuesday_pages())
    result = scrape_papers(date=TUESDAY)

    assert (result.created, result.refreshed) == (5, 1)
    refreshed = Paper.objects.get(arxiv_id="2603.07104")
    assert (refreshed.upvotes, refreshed.num_comments) == (63, 5)
    assert refreshed.title.startswith("Token-Level Reward Shaping")  # only the counts move
    assert refreshed.batch_date == MONDAY
    # Only days we hold papers of are asked again: not the weekend before.
    assert {r.query["date"] for r in hf.requests} == {"2026-03-09", "2026-03-10"}


def test_a_refresh_fills_in_the_summary_and_keywords_hf_added_later(
    hf: LoopbackServer, settings: Any
) -> None:
    settings.PAPERBOY_REFRESH_DAYS = 3
    monday = load("hf_api_2026-03-09.json")
    listed = monday[1]["paper"]
    summary, keywords = "A streaming vocoder for speech.", ["vocoder", "speech synthesis"]
    listed["ai_summary"], listed["ai_keywords"] = "", []  # at listing time HF had none yet
    monday[0]["paper"]["ai_summary"] = "An earlier summary that HF rewrote."
    hf_day(hf, MONDAY, [monday])
    scrape_papers(date=MONDAY)
    kept = Paper.objects.get(arxiv_id=monday[0]["paper"]["id"]).ai_summary
    assert Paper.objects.get(arxiv_id=listed["id"]).ai_summary == ""

    listed["ai_summary"], listed["ai_keywords"] = summary, keywords
    monday[0]["paper"]["ai_summary"] = "A summary HF rewrote later."
    hf.routes.clear()
    hf_day(hf, MONDAY, [monday])
    hf_day(hf, TUESDAY, tuesday_pages())
    scrape_papers(date=TUESDAY)

    filled = Paper.objects.get(arxiv_id=listed["id"])
    assert (filled.ai_summary, filled.ai_keywords) == (summary, keywords)
    # One already there stays: the refresh fills gaps, it does not rewrite.
    assert Paper.objects.get(arxiv_id=monday[0]["paper"]["id"]).ai_summary == kept


def test_a_failed_refresh_is_a_warning_not_an_error(
    hf: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    hf_day(hf, MONDAY, [load("hf_api_2026-03-09.json")])
    scrape_papers(date=MONDAY)

    hf.routes.clear()
    hf_day(hf, TUESDAY, tuesday_pages())
    hf.route(API, status=500)  # Monday's API...
    hf.route("/papers/date/2026-03-09", status=500)  # ...and Monday's page are down
    result = scrape_papers(date=TUESDAY)

    assert (result.created, result.refreshed) == (5, 0)
    assert any("Could not refresh upvotes of 2026-03-09" in m for m in caplog.messages)
    assert upvotes_of("2603.07104") == [41]


# --- Several sources ----------------------------------------------------------------------------


def arxiv_monday(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """arXiv's export API answers Monday's cs.LG and cs.CL submissions, two entries a page."""
    settings.PAPERBOY_ARXIV_CATEGORIES = ["cs.LG", "cs.CL"]
    monkeypatch.setattr(arxiv, "PAGE_SIZE", 2)

    def answer(request: RecordedRequest) -> Reply:
        category = request.query["search_query"].split()[0].removeprefix("cat:")
        start = request.query["start"]
        return Reply.file(FIXTURES / f"arxiv_{category}_2026-03-09_start{start}.xml")

    server.route("/api/query", handler=answer)


def test_arxiv_never_overwrites_what_hf_knows(
    hf: LoopbackServer, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    hf_day(hf, TUESDAY, tuesday_pages())
    scrape_papers(date=TUESDAY)
    arxiv_monday(hf, monkeypatch, settings)

    # arXiv lists 2603.08801 under Monday, the day it was submitted; HF featured it Tuesday.
    result = scrape_papers(date=MONDAY, sources=("arxiv",))

    assert result.per_source == {"arxiv": 4}
    assert (result.created, result.updated, result.skipped) == (3, 0, 1)
    smod = Paper.objects.get(arxiv_id="2603.08801")
    assert (smod.source, smod.upvotes, smod.batch_date) == ("hf", 112, TUESDAY)
    assert smod.title == "Sparse Mixture-of-Depths for Long-Context Video Diffusion"
    newcomer = Paper.objects.get(arxiv_id="2603.09415")
    assert (newcomer.source, newcomer.upvotes, newcomer.batch_date) == ("arxiv", 0, MONDAY)


def test_hf_takes_over_a_paper_first_seen_on_arxiv(
    hf: LoopbackServer, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    arxiv_monday(hf, monkeypatch, settings)
    scrape_papers(date=MONDAY, sources=("arxiv",))
    hf_day(hf, TUESDAY, tuesday_pages())

    result = scrape_papers(date=TUESDAY)

    assert (result.created, result.updated) == (4, 1)
    smod = Paper.objects.get(arxiv_id="2603.08801")
    assert (smod.source, smod.upvotes, smod.batch_date) == ("hf", 112, TUESDAY)
    assert not smod.title.endswith("(arXiv title)")


def test_in_one_scrape_the_hf_record_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    def record(source: str, **fields: Any) -> PaperRecord:
        return PaperRecord(
            arxiv_id="2603.08801",
            title=f"Title from {source}",
            abstract="",
            authors=["Mira Castellanos"],
            published_at=None,
            batch_date=TUESDAY,
            source=source,
            **fields,
        )

    hf_day = Screened(records=[record("hf", upvotes=7)])
    monkeypatch.setattr(scraping.huggingface, "fetch_day", lambda d: hf_day)
    monkeypatch.setattr(scraping.arxiv, "fetch_day", lambda d: Screened(records=[record("arxiv")]))
    monkeypatch.setattr(scraping, "_fetch_refresh", lambda d: [])

    result = scrape_papers(date=TUESDAY, sources=("arxiv", "hf"))

    assert (result.fetched, result.created, result.skipped) == (2, 1, 1)
    paper = Paper.objects.get()
    assert (paper.title, paper.source, paper.upvotes) == ("Title from hf", "hf", 7)


# --- Failures -----------------------------------------------------------------------------------


def test_when_hf_is_down_the_scrape_fails_and_writes_nothing(hf: LoopbackServer) -> None:
    hf.route(API, status=503)
    hf.route("/papers/date/2026-03-10", status=503)

    with pytest.raises(SourceError, match="PAPERBOY_HF_URL"):
        scrape_papers(date=TUESDAY)

    assert Paper.objects.count() == 0


def test_one_failed_source_of_two_is_reported_and_the_other_saved(
    hf: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    hf_day(hf, TUESDAY, tuesday_pages())
    hf.route("/api/query", status=503)

    with caplog.at_level(logging.WARNING):
        result = scrape_papers(date=TUESDAY, sources=("hf", "arxiv"))

    assert result.created == 5
    assert "arxiv" in result.errors and "/api/query" in result.errors["arxiv"]
    assert any("Source arxiv failed" in m for m in caplog.messages)


def test_when_every_source_fails_the_error_names_each(hf: LoopbackServer) -> None:
    hf.route(API, status=500)
    hf.route("/papers/date/2026-03-10", status=500)
    hf.route("/api/query", status=500)

    with pytest.raises(SourceError) as error:
        scrape_papers(date=TUESDAY, sources=("hf", "arxiv"))

    assert "Hugging Face" in str(error.value) and "arXiv" in str(error.value)


def test_a_failure_while_writing_leaves_nothing_half_written(
    hf: LoopbackServer, monkeypatch: pytest.MonkeyPatch, make_paper: Callable[..., Paper]
) -> None:
    make_paper("Sparse Mixture-of-Depths", arxiv_id="2603.08801", upvotes=1, source="hf")
    hf_day(hf, TUESDAY, tuesday_pages())

    def broken_bulk_update(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database went away")

    # New papers are inserted first; the update of the known one then fails.
    monkeypatch.setattr(Paper.objects, "bulk_update", broken_bulk_update)
    with pytest.raises(RuntimeError):
        scrape_papers(date=TUESDAY)

    assert list(Paper.objects.values_list("arxiv_id", "upvotes")) == [("2603.08801", 1)]


def test_an_unknown_source_is_refused_before_any_request(hf: LoopbackServer) -> None:
    with pytest.raises(ValueError, match="reddit"):
        scrape_papers(date=TUESDAY, sources=("hf", "reddit"))
    assert hf.requests == []
