"""Reading papers from Hugging Face and arXiv, over HTTP on loopback and from real captures."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest

from digest.sources import arxiv, huggingface
from digest.sources.client import SourceError
from digest.sources.records import PaperRecord
from tests.conftest import FIXTURES, SAMPLES
from tests.loopback_http import LoopbackServer, Reply

DAY = dt.date(2026, 3, 10)
ARXIV_DAY = dt.date(2026, 3, 9)
API = "/api/daily_papers"
PAGE = "/papers/date/2026-03-10"
FIVE_PAPERS = ["2603.08801", "2603.08457", "2603.07922", "2603.06315", "2603.05548"]

needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason=f"real captures not found at {SAMPLES}"
)


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def serve_hf_api_day(server: LoopbackServer) -> None:
    """HF's API for 2026-03-10: three papers on page 0, two on page 1, then nothing."""
    server.route(
        API, query={"date": "2026-03-10", "p": "0"}, file=FIXTURES / "hf_api_2026-03-10_p0.json"
    )
    server.route(
        API, query={"date": "2026-03-10", "p": "1"}, file=FIXTURES / "hf_api_2026-03-10_p1.json"
    )
    server.route(API, query={"date": "2026-03-10", "p": "2"}, json=[])


def by_id(records: list[PaperRecord]) -> dict[str, PaperRecord]:
    return {r.arxiv_id: r for r in records}


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# --- Hugging Face: the JSON API -------------------------------------------------------------


def test_the_api_is_read_page_by_page_until_an_empty_page(
    sources_on_loopback: LoopbackServer,
) -> None:
    serve_hf_api_day(sources_on_loopback)

    records = huggingface.fetch_papers(DAY)

    assert [r.arxiv_id for r in records] == FIVE_PAPERS
    asked = sources_on_loopback.requests_to(API)
    assert [r.query["p"] for r in asked] == ["0", "1", "2"]
    assert all(r.query["date"] == "2026-03-10" and r.query["limit"] == "100" for r in asked)
    assert asked[0].headers["user-agent"].startswith("Paperboy/")


def test_an_api_item_becomes_a_normalised_record(sources_on_loopback: LoopbackServer) -> None:
    serve_hf_api_day(sources_on_loopback)

    paper = by_id(huggingface.fetch_papers(DAY))["2603.08801"]

    # The title arrives as "Sparse Mixture-of-Depths for\n  Long-Context Video  Diffusion".
    assert paper.title == "Sparse Mixture-of-Depths for Long-Context Video Diffusion"
    assert "\n" not in paper.abstract and "  " not in paper.abstract
    assert paper.authors == [
        "Mira Castellanos",
        "Tomasz Wierzbicki",
        "Aiko Hanamura",
        "Daniel O. Okafor",
    ]
    # paper.publishedAt (arXiv v1), not the outer publishedAt, which is hours off.
    assert paper.published_at == dt.datetime(2026, 3, 9, 17, 58, 2, tzinfo=dt.UTC)
    assert paper.batch_date == DAY
    assert (paper.upvotes, paper.num_comments) == (112, 6)
    assert paper.ai_keywords[:2] == ["video diffusion", "mixture-of-depths"]
    assert paper.ai_summary.startswith("A token router")
    assert (paper.github_repo, paper.github_stars) == ("https://github.com/tidewater-ai/smod", 231)
    assert paper.project_page == "https://tidewater-ai.github.io/smod/"
    assert paper.thumbnail.endswith("/papers/2603.08801.png")
    assert paper.source == "hf"


def test_hostile_text_is_kept_verbatim_and_hostile_urls_are_dropped(
    sources_on_loopback: LoopbackServer,
) -> None:
    serve_hf_api_day(sources_on_loopback)

    papers = by_id(huggingface.fetch_papers(DAY))

    # Stored as the text it is; templates escape it when they show it.
    assert "<script>alert(1)</script>" in papers["2603.08457"].title
    assert '"><img src=x onerror=alert(1)>' in papers["2603.07922"].abstract
    # projectPage was "javascript:alert(document.cookie)".
    assert papers["2603.07922"].project_page == ""
    # Optional fields that are absent stay empty.
    assert papers["2603.07922"].ai_keywords == []
    assert papers["2603.07922"].github_stars is None


def test_a_server_that_ignores_the_page_parameter_is_read_once(
    sources_on_loopback: LoopbackServer,
) -> None:
    sources_on_loopback.route(API, file=FIXTURES / "hf_api_2026-03-10_p0.json")

    records = huggingface.fetch_papers(DAY)

    assert len(records) == 3
    assert len(sources_on_loopback.requests_to(API)) == 2  # page 1 repeated page 0: stop


def test_a_500_is_retried_and_the_retry_succeeds(sources_on_loopback: LoopbackServer) -> None:
    p0 = Reply.file(FIXTURES / "hf_api_2026-03-10_p0.json")
    sources_on_loopback.route(API, query={"p": "0"}, replies=[Reply(500), p0])
    sources_on_loopback.route(API, query={"p": "1"}, json=[])

    records = huggingface.fetch_papers(DAY)

    assert len(records) == 3
    assert [r.query["p"] for r in sources_on_loopback.requests_to(API)] == ["0", "0", "1"]
    assert sources_on_loopback.requests_to(PAGE) == []


# --- Hugging Face: the HTML page when the API fails -----------------------------------------

API_FAILURES = {
    "HTTP 500": {"status": 500, "body": "Internal Server Error"},
    "garbage": {"body": "<html>We'll be right back</html>", "content_type": "text/html"},
    "JSON that is not a list": {"json": {"error": "Invalid date"}},
    "a timeout": {"json": [], "delay_s": 2.0},
}


@pytest.mark.parametrize("failure", API_FAILURES.values(), ids=API_FAILURES.keys())
def test_when_the_api_fails_the_days_page_is_read_instead(
    sources_on_loopback: LoopbackServer,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    failure: dict[str, Any],
) -> None:
    settings.PAPERBOY_HTTP_TIMEOUT_S = 0.2
    sources_on_loopback.route(API, **failure)
    sources_on_loopback.route(PAGE, file=FIXTURES / "hf_papers_date_2026-03-10.html")

    records = huggingface.fetch_papers(DAY)

    assert [r.arxiv_id for r in records] == FIVE_PAPERS
    assert "<script>alert(1)</script>" in records[1].title  # unescaped from the attribute
    assert any("falling back" in w and PAGE in w for w in warnings_of(caplog))


def test_when_both_endpoints_fail_the_error_names_both_urls_and_the_setting(
    sources_on_loopback: LoopbackServer,
) -> None:
    sources_on_loopback.route(API, status=503)
    sources_on_loopback.route(PAGE, status=502)

    with pytest.raises(SourceError) as error:
        huggingface.fetch_papers(DAY)

    message = str(error.value)
    assert f"{sources_on_loopback.base_url}{API}?date=2026-03-10 (HTTP 503)" in message
    assert f"{sources_on_loopback.base_url}{PAGE} (HTTP 502)" in message
    assert "PAPERBOY_HF_URL" in message


def test_when_nothing_listens_the_error_says_connection_refused(settings: Any) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.PAPERBOY_HF_URL = f"http://127.0.0.1:{port}"
    settings.PAPERBOY_HTTP_RETRIES = 0

    with pytest.raises(SourceError, match=r"ConnectionError.*PAPERBOY_HF_URL") as error:
        huggingface.fetch_papers(DAY)
    assert f"http://127.0.0.1:{port}/papers/date/2026-03-10" in str(error.value)


def test_a_page_without_the_daily_papers_div_is_an_error() -> None:
    with pytest.raises(ValueError, match="DailyPapers"):
        huggingface.extract_page_items(b"<html><body><div data-target='Other'></div></body></html>")


# --- Hugging Face: untrustworthy items --------------------------------------------------------


def test_malformed_items_are_skipped_by_name_and_the_rest_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = huggingface.parse_daily_papers(fixture_json("hf_api_malformed.json"), date=DAY)

    assert [r.arxiv_id for r in records] == ["2603.09001", "2603.09002"]
    skipped = {
        "2603.09010": "upvotes is '12'",
        "2603.09011": "title is missing",
        "not-an-arxiv-id": "is not an arXiv id",
        "2603.09013": "ai_keywords is str",
        "no id": "item is str",  # a bare string where an object belongs
        "2603.09014": "publishedAt 'yesterday'",
        "2603.09015": "numComments is -1",
        "2603.09016": "authors is str",
    }
    warned = warnings_of(caplog)
    for name, reason in skipped.items():
        assert any(f"({name})" in w and reason in w for w in warned), (name, reason)
    assert any("no paper object" in w for w in warned)
    first, second = records
    assert first.upvotes == 30  # its duplicate with 3 upvotes was dropped
    assert second.authors == ["Lena Fischer"]  # an author entry without a name is ignored
    assert second.github_repo == ""  # "javascript:alert(1)"
    assert second.thumbnail == ""  # "//evil.example/x.png": not absolute http(s)
    assert second.project_page == "https://probes.example.org/semantic-entropy"


def test_a_versioned_id_is_stored_bare() -> None:
    records = huggingface.parse_daily_papers(fixture_json("hf_api_malformed.json"), date=DAY)
    assert "2603.09002" in by_id(records)  # the item said 2603.09002v3


# --- arXiv -------------------------------------------------------------------------------------


def serve_arxiv_day(server: LoopbackServer) -> None:
    """arXiv's export API for 2026-03-09, two categories, two entries a page."""

    def page(category: str, start: int) -> Callable[[dict[str, str]], bool]:
        return lambda q: (
            q["search_query"].startswith(f"cat:{category} ") and q["start"] == str(start)
        )

    for category in ("cs.LG", "cs.CL"):
        for start in (0, 2):
            server.route(
                "/api/query",
                query=page(category, start),
                file=FIXTURES / f"arxiv_{category}_2026-03-09_start{start}.xml",
            )


def test_atom_entries_become_records(caplog: pytest.LogCaptureFixture) -> None:
    content = (FIXTURES / "arxiv_cs.CL_2026-03-09_start0.xml").read_bytes()

    records = arxiv.parse_atom(content, date=ARXIV_DAY)

    # The entry without a <title> is skipped, by name.
    assert [r.arxiv_id for r in records] == ["2603.09411"]
    assert any("2603.09430 has no title" in w for w in warnings_of(caplog))
    paper = records[0]
    assert paper.title == "Curriculum Distillation for Small Reasoning Models"
    assert paper.abstract.endswith("the order matters more than the amount of data & compute.")
    assert paper.authors == ["Fatima Zahra El Amrani", "Georg Müller"]
    assert paper.published_at == dt.datetime(2026, 3, 9, 17, 59, 58, tzinfo=dt.UTC)
    assert (paper.batch_date, paper.source, paper.upvotes) == (ARXIV_DAY, "arxiv", 0)


def test_arxiv_is_paged_per_category_and_a_cross_listed_paper_comes_once(
    sources_on_loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(arxiv, "PAGE_SIZE", 2)
    serve_arxiv_day(sources_on_loopback)

    records = arxiv.fetch_papers(ARXIV_DAY, ["cs.LG", "cs.CL"])

    # 2603.09411 is in cs.LG and cs.CL; 2603.09415v2 is stored as its bare id.
    assert sorted(r.arxiv_id for r in records) == [
        "2603.08801",
        "2603.09411",
        "2603.09415",
        "2603.09420",
    ]
    asked = sources_on_loopback.requests_to("/api/query")
    assert [(r.query["search_query"], r.query["start"]) for r in asked] == [
        ("cat:cs.LG AND submittedDate:[202603090000 TO 202603092359]", "0"),
        ("cat:cs.LG AND submittedDate:[202603090000 TO 202603092359]", "2"),
        ("cat:cs.CL AND submittedDate:[202603090000 TO 202603092359]", "0"),
        ("cat:cs.CL AND submittedDate:[202603090000 TO 202603092359]", "2"),
    ]
    assert all(r.query["max_results"] == "2" for r in asked)
    assert all(r.query["sortBy"] == "submittedDate" for r in asked)
    assert asked[0].headers["user-agent"].startswith("Paperboy/")


def test_arxiv_requests_keep_the_configured_distance(
    sources_on_loopback: LoopbackServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PAPERBOY_ARXIV_DELAY_S = 0.15  # 3 s in production
    monkeypatch.setattr(arxiv, "PAGE_SIZE", 2)
    serve_arxiv_day(sources_on_loopback)

    arxiv.fetch_papers(ARXIV_DAY, ["cs.LG", "cs.CL"])

    times = [r.at for r in sources_on_loopback.requests_to("/api/query")]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert min(gaps) >= 0.14


def test_an_arxiv_failure_names_the_url(sources_on_loopback: LoopbackServer) -> None:
    sources_on_loopback.route("/api/query", status=500)

    with pytest.raises(SourceError, match=r"arXiv at http://127\.0\.0\.1:\d+/api/query\?") as error:
        arxiv.fetch_papers(ARXIV_DAY, ["cs.LG"])
    assert "cat%3Acs.LG" in str(error.value) and "(HTTP 500)" in str(error.value)
    assert len(sources_on_loopback.requests) == 2  # one retry


def test_arxiv_xml_entities_are_never_resolved(tmp_path: Any) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    content = f"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file://{secret}">]>
<feed xmlns="http://www.w3.org/2005/Atom"><entry>
<id>http://arxiv.org/abs/2603.00001v1</id><title>Title &xxe;</title><summary>&xxe;</summary>
</entry></feed>""".encode()

    records = arxiv.parse_atom(content, date=ARXIV_DAY)

    assert "TOP-SECRET" not in repr(records)


def test_a_non_atom_answer_is_an_error() -> None:
    with pytest.raises(ValueError, match="not XML"):
        arxiv.parse_atom(b"<html><body>Rate exceeded", date=ARXIV_DAY)


# --- Real captures (../shared/samples) ------------------------------------------------------------

HF_PROPS = {
    "2026-03-09": 31,
    "2026-03-10": 49,
    "2026-03-11": 30,
    "2026-03-12": 29,
    "2026-03-13": 48,
    "2026-03-17": 46,
}


@needs_samples
@pytest.mark.parametrize(("day", "count"), HF_PROPS.items())
def test_every_real_hf_capture_parses_without_a_warning(
    day: str, count: int, caplog: pytest.LogCaptureFixture
) -> None:
    props = json.loads((SAMPLES / f"hf_daily_papers_props_{day}.json").read_text())

    records = huggingface.parse_daily_papers(props["dailyPapers"], date=dt.date.fromisoformat(day))

    assert len(records) == count
    assert warnings_of(caplog) == []
    assert all(r.batch_date == dt.date.fromisoformat(day) for r in records)
    assert all(r.published_at and r.published_at.tzinfo for r in records)


@needs_samples
def test_a_real_hf_item_maps_field_by_field() -> None:
    props = json.loads((SAMPLES / "hf_daily_papers_props_2026-03-10.json").read_text())

    paper = by_id(huggingface.parse_daily_papers(props["dailyPapers"], date=DAY))["2603.05890"]

    assert paper.title == "Lost in Stories: Consistency Bugs in Long Story Generation by LLMs"
    assert paper.authors[:2] == ["Junjie Li", "Xinrui Guo"]
    assert paper.published_at == dt.datetime(2026, 3, 6, 4, 16, 46, tzinfo=dt.UTC)
    assert (paper.upvotes, paper.num_comments, paper.github_stars) == (75, 4, 40)
    assert paper.github_repo == "https://github.com/Picrew/ConStory-Bench"
    assert "narrative consistency" in paper.ai_keywords


@needs_samples
def test_hf_keywords_are_optional_in_real_data() -> None:
    props = json.loads((SAMPLES / "hf_daily_papers_props_2026-03-17.json").read_text())

    records = huggingface.parse_daily_papers(props["dailyPapers"], date=dt.date(2026, 3, 17))

    assert sum(1 for r in records if r.ai_keywords) == 8


@needs_samples
def test_the_real_hf_day_page_parses_through_the_fallback() -> None:
    content = (SAMPLES / "hf_papers_date_2026-03-10.html").read_bytes()

    records = huggingface.parse_daily_papers(huggingface.extract_page_items(content), date=DAY)

    assert len(records) == 49
    assert records[0].arxiv_id == "2603.05890"


@needs_samples
@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("arxiv_api_cs_submitted_2025-12-17.xml", 405),
        ("arxiv_api_id_list_2312.00752.xml", 1),
        ("arxiv_rss_atom_cs.AI_2025-08-20.xml", 86),
    ],
)
def test_every_real_arxiv_capture_parses(
    name: str, count: int, caplog: pytest.LogCaptureFixture
) -> None:
    records = arxiv.parse_atom((SAMPLES / name).read_bytes(), date=ARXIV_DAY)

    assert len(records) == count
    assert warnings_of(caplog) == []
    assert all(r.title and r.abstract and r.authors for r in records)


@needs_samples
def test_a_real_arxiv_entry_maps_field_by_field() -> None:
    content = (SAMPLES / "arxiv_api_id_list_2312.00752.xml").read_bytes()

    [paper] = arxiv.parse_atom(content, date=ARXIV_DAY)

    assert paper.arxiv_id == "2312.00752"  # from http://arxiv.org/abs/2312.00752v2
    assert paper.title == "Mamba: Linear-Time Sequence Modeling with Selective State Spaces"
    assert paper.authors == ["Albert Gu", "Tri Dao"]
    assert paper.published_at == dt.datetime(2023, 12, 1, 18, 1, 34, tzinfo=dt.UTC)


@needs_samples
def test_the_listing_feed_loses_its_announcement_prefix() -> None:
    content = (SAMPLES / "arxiv_rss_atom_cs.AI_2025-08-20.xml").read_bytes()

    first = arxiv.parse_atom(content, date=dt.date(2025, 8, 20))[0]

    assert first.arxiv_id == "2508.13167"  # from oai:arXiv.org:2508.13167v1
    assert first.abstract.startswith("Recent advances in large language models")
    assert first.authors[:2] == ["Weizhen Li", "Jianbo Lin"]  # from one comma-separated dc:creator
