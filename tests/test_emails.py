"""The digest email, as alice's mail client receives it."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any
from unittest import mock

import jinja2
import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from digest.mail import (
    DigestItem,
    RenderedEmail,
    build_message,
    digest_message,
    render_digest,
    render_digest_for,
    summary_of,
)
from digest.mail import templates as digest_jinja
from digest.mail.message import message_id
from digest.models import Delivery, DeliveryPaper, Edition, Paper
from subscriptions.links import digest_url, manage_url, unsubscribe_url
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE

GMAIL_CLIP_BYTES = 102 * 1024

# Papers as Hugging Face lists them, with the reasons the matcher gives for alice
# (topics: diffusion, video generation, -survey).
SAMPLE_PAPERS: list[dict[str, Any]] = [
    {
        "title": "Helios: Real-Time Long Video Generation with Autoregressive Diffusion",
        "abstract": (
            "We present Helios, an autoregressive video diffusion model that generates "
            "minute-long videos at 24 frames per second on a single GPU. Helios combines a "
            "causal transformer backbone with a rolling key-value cache and a distilled "
            "few-step sampler. On VBench-Long it matches bidirectional baselines while being "
            "18x faster."
        ),
        "authors": ["Shenghai Yuan", "Jinfa Huang", "Xianyi He", "Yunyang Ge", "Li Yuan"],
        "upvotes": 214,
        "num_comments": 12,
        "ai_summary": (
            "Helios generates minute-long videos in real time by running a distilled "
            "autoregressive diffusion transformer with a rolling key-value cache."
        ),
        "github_repo": "https://github.com/PKU-YuanGroup/Helios",
        "github_stars": 1840,
        "project_page": "https://pku-yuangroup.github.io/Helios-Page/",
        "reasons": [
            {
                "topic": "video generation",
                "field": "title",
                "before": "Helios: Real-Time Long ",
                "match": "Video Generation",
                "after": " with Autoregressive Diffusion",
            },
            {
                "topic": "diffusion",
                "field": "title",
                "before": "Helios: Real-Time Long Video Generation with Autoregressive ",
                "match": "Diffusion",
                "after": "",
            },
        ],
    },
    {
        "title": "Lost in Stories: Consistency Bugs in Long Story Generation by LLMs",
        "abstract": (
            "What happens when a storyteller forgets its own story? Large Language Models "
            "(LLMs) can now generate narratives spanning tens of thousands of words, but they "
            "often fail to maintain consistency throughout. We present ConStory-Bench, a "
            "benchmark of 2,000 prompts, and a diffusion-based story planner baseline."
        ),
        "authors": [
            "Junjie Li",
            "Xinrui Guo",
            "Yuhao Wu",
            "Roy Ka-Wei Lee",
            "Hongzhi Li",
            "Yutao Xie",
        ],
        "upvotes": 75,
        "num_comments": 3,
        "ai_summary": "",
        "github_repo": "https://github.com/Picrew/ConStory-Bench",
        "project_page": "",
        "reasons": [
            {
                "topic": "diffusion",
                "field": "abstract",
                "before": "…of 2,000 prompts, and a ",
                "match": "diffusion",
                "after": "-based story planner baseline.",
            }
        ],
    },
    {
        "title": "MotionCrafter: Camera-Controlled Text-to-Video with Decoupled Motion Priors",
        "abstract": (
            "Controlling camera motion in text-to-video models remains difficult. We decouple "
            "camera and object motion into two lightweight adapters trained on a frozen video "
            "diffusion backbone."
        ),
        "authors": ["Yuxin Zhang", "Fan Tang", "Weiming Dong"],
        "upvotes": 58,
        "num_comments": 1,
        "ai_summary": (
            "Two lightweight adapters on a frozen video diffusion backbone give separate "
            "control over camera and object motion in text-to-video generation."
        ),
        "ai_keywords": ["text-to-video", "video generation", "camera control", "adapters"],
        "github_repo": "",
        "project_page": "https://motioncrafter.github.io/",
        "reasons": [
            {
                "topic": "video generation",
                "field": "keywords",
                "before": "",
                "match": "video generation",
                "after": "",
            },
            {
                "topic": "diffusion",
                "field": "abstract",
                "before": "…adapters trained on a frozen video ",
                "match": "diffusion",
                "after": " backbone.",
            },
        ],
    },
    {
        "title": "Masked Discrete Diffusion Language Models Scale Like Autoregressive Ones",
        "abstract": (
            "We train masked discrete diffusion language models from 170M to 7B parameters "
            "and find they follow scaling laws with exponents close to autoregressive models."
        ),
        "authors": ["Subham Sahoo", "Marianne Arriola", "Aaron Gokaslan", "Volodymyr Kuleshov"],
        "upvotes": 41,
        "num_comments": 0,
        "ai_summary": "",
        "reasons": [
            {
                "topic": "diffusion",
                "field": "title",
                "before": "Masked Discrete ",
                "match": "Diffusion",
                "after": " Language Models Scale Like Autoregressive Ones",
            }
        ],
    },
    {
        "title": "One-Step Image Editing with Consistency-Distilled Diffusion Transformers",
        "abstract": (
            "Image editing with diffusion models usually needs dozens of steps. We distill an "
            "editing transformer into a single step with a consistency objective."
        ),
        "authors": ["Nupur Kumari", "Sheng-Yu Wang", "Jun-Yan Zhu"],
        "upvotes": 33,
        "num_comments": 2,
        "ai_summary": "A consistency-distilled diffusion transformer edits images in one step.",
        "github_repo": "https://github.com/nupurkmr9/one-step-edit",
        "github_stars": 312,
        "reasons": [
            {
                "topic": "diffusion",
                "field": "title",
                "before": "One-Step Image Editing with Consistency-Distilled ",
                "match": "Diffusion",
                "after": " Transformers",
            }
        ],
    },
    {
        "title": "WorldPlay: Interactive World Models from Internet Video",
        "abstract": (
            "We learn an action-conditioned world model from unlabelled gameplay videos. "
            "Latent actions are inferred with an inverse dynamics model, and video generation "
            "is conditioned on them at 16 frames per second."
        ),
        "authors": ["Jake Bruce", "Michael Dennis", "Ashley Edwards", "Tim Rocktäschel"],
        "upvotes": 29,
        "num_comments": 4,
        "ai_summary": "",
        "reasons": [
            {
                "topic": "video generation",
                "field": "abstract",
                "before": "…an inverse dynamics model, and ",
                "match": "video generation",
                "after": " is conditioned on them at 16 frames per second.",
            }
        ],
    },
    {
        "title": "Flow Matching Policies for Dexterous Manipulation",
        "abstract": (
            "Diffusion policies are slow at inference. We replace them with flow matching and "
            "reach 50 Hz control on a five-fingered hand."
        ),
        "authors": ["Cheng Chi", "Zhenjia Xu", "Shuran Song"],
        "upvotes": 17,
        "num_comments": 0,
        "ai_summary": "",
        "reasons": [
            {
                "topic": "diffusion",
                "field": "abstract",
                "before": "",
                "match": "Diffusion",
                "after": " policies are slow at inference. We replace them with flow matching…",
            }
        ],
    },
    {
        "title": "Sparse Autoencoders Find Interpretable Features in Video Diffusion Models",
        "abstract": (
            "We train sparse autoencoders on the activations of a video diffusion transformer "
            "and find features for motion, lighting and object identity."
        ),
        "authors": ["Chris Olah"],
        "upvotes": 12,
        "num_comments": 1,
        "ai_summary": "",
        "reasons": [
            {
                "topic": "diffusion",
                "field": "title",
                "before": "Sparse Autoencoders Find Interpretable Features in Video ",
                "match": "Diffusion",
                "after": " Models",
            }
        ],
    },
]


def sample_paper(fields: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Split a SAMPLE_PAPERS entry into Paper fields and its reasons."""
    paper_fields = {k: v for k, v in fields.items() if k != "reasons"}
    return paper_fields, list(fields["reasons"])


@pytest.fixture
def make_delivery(make_paper: Callable[..., Paper]) -> Callable[..., Delivery]:
    def make(subscriber: Subscriber, papers: list[dict[str, Any]]) -> Delivery:
        edition, _ = Edition.objects.get_or_create(date=EDITION_DATE)
        delivery = Delivery.objects.create(edition=edition, subscriber=subscriber)
        for rank, entry in enumerate(papers, start=1):
            fields, reasons = sample_paper(entry)
            paper = make_paper(**fields)
            DeliveryPaper.objects.create(
                delivery=delivery, paper=paper, rank=rank, score=10 - rank, reasons=reasons
            )
        return delivery

    return make


@pytest.fixture
def alices_delivery(alice: Subscriber, make_delivery: Callable[..., Delivery]) -> Delivery:
    return make_delivery(alice, SAMPLE_PAPERS)


def received(message: Any) -> EmailMessage:
    """Parse the message's bytes as a receiving mail server would."""
    raw = message.message().as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(message: EmailMessage) -> tuple[str, str]:
    text_part, html_part = message.iter_parts()
    return text_part.get_content(), html_part.get_content()


def flat(text: str) -> str:
    """The text part with its line wrapping undone, to look for phrases in it."""
    return " ".join(text.split())


def header(message: EmailMessage, name: str) -> str:
    # A header too long for one line is folded right after its colon ("List-Unsubscribe:
    # CRLF <https://…>"); the stdlib parser keeps that folding white space, mail clients
    # strip it.
    return str(message[name]).strip()


def urls_in(rendered: RenderedEmail) -> list[str]:
    hrefs = re.findall(r'href="([^"]*)"', rendered.html)
    in_text = re.findall(r"https?://\S+", rendered.text)
    return hrefs + in_text


# --- What alice reads -------------------------------------------------------------------


def test_digest_reads_well_in_both_parts(alices_delivery: Delivery) -> None:
    rendered = render_digest(delivery=alices_delivery)

    assert rendered.subject == (
        "Paperboy · 10 Mar: Helios: Real-Time Long Video Generation with Autoregressive… + 7 more"
    )
    for body in (flat(rendered.text), rendered.html):
        assert "Tuesday, 10 March 2026" in body
        assert "8 papers picked for your topics: diffusion, video generation" in body
        for entry in SAMPLE_PAPERS:
            assert entry["authors"][0] in body
        # Six authors shorten to three and a count.
        assert "Junjie Li, Xinrui Guo, Yuhao Wu +3 more" in body
        # HF's summary when there is one, else the abstract's first sentences.
        assert "Helios generates minute-long videos in real time" in body
        assert "What happens when a storyteller forgets its own story? Large Language" in body
        assert "We present ConStory-Bench" not in body
        assert "Also matches: diffusion" in body
        assert "▲ 214 upvotes · 12 comments" in body
        assert "Code ★ 1.8k" in body

    text = rendered.text
    assert (
        "1.  Helios: Real-Time Long Video Generation with Autoregressive\n    Diffusion\n" in text
    )
    assert "Matched “video generation” in the title." in text
    assert "Matched “diffusion” in the abstract: …of 2,000 prompts, and a *diffusion*" in flat(text)
    # A keyword that is exactly the topic says so without repeating it.
    assert "Matched “video generation” in the paper’s keywords.\n" in text
    assert "    arXiv         https://arxiv.org/abs/2603.00001\n" in text
    assert "    PDF           https://arxiv.org/pdf/2603.00001\n" in text
    assert "    Project page  https://pku-yuangroup.github.io/Helios-Page/\n" in text
    assert "    Hugging Face  https://huggingface.co/papers/2603.00001\n" in text
    assert max(len(line) for line in text.splitlines() if "://" not in line) <= 72

    html = rendered.html
    assert 'href="https://huggingface.co/papers/2603.00001"' in html
    assert 'href="https://github.com/PKU-YuanGroup/Helios"' in html
    assert 'href="https://arxiv.org/pdf/2603.00002"' in html
    # The matched words are highlighted: in the title, or in the snippet.
    assert re.search(
        r'Helios: Real-Time Long <span class="pb-h"[^>]*>Video Generation</span>', html
    )
    assert re.search(r'and a <span class="pb-h"[^>]*>diffusion</span>-based story planner', html)
    assert html.index("Helios") < html.index("Lost in Stories") < html.index("WorldPlay")


def test_every_email_sets_lang_preview_and_no_web_fonts(alices_delivery: Delivery) -> None:
    html = render_digest(delivery=alices_delivery).html
    assert '<html lang="en"' in html
    assert '<meta name="color-scheme" content="light dark"' in html
    assert "Helios: Real-Time Long Video Generation with Autoregressive Diffusion + 7 more" in html
    assert "fonts.googleapis" not in html and "@import" not in html
    assert "<img" not in html  # nothing to block
    assert "font-size:16px" in html  # the body text


def test_visible_unsubscribe_and_manage_links_in_both_parts(
    alice: Subscriber, alices_delivery: Delivery
) -> None:
    rendered = render_digest(delivery=alices_delivery)
    unsubscribe, manage = unsubscribe_url(alice), manage_url(alice)

    assert re.search(rf'<a href="{re.escape(unsubscribe)}"[^>]*>Unsubscribe</a>', rendered.html)
    assert re.search(rf'<a href="{re.escape(manage)}"[^>]*>Manage preferences</a>', rendered.html)
    assert f"Unsubscribe:        {unsubscribe}\n" in rendered.text
    assert f"Manage preferences: {manage}\n" in rendered.text
    assert (
        "https://paperboy.example" in rendered.html and "https://paperboy.example" in rendered.text
    )


def test_the_html_header_links_to_the_browser_copy(
    alice: Subscriber, alices_delivery: Delivery
) -> None:
    html = render_digest(delivery=alices_delivery).html
    url = digest_url(alice, EDITION_DATE)

    # On the date's line, above the papers: where a subscriber whose client mangles the
    # layout looks first.
    line = re.search(
        rf'<p [^>]*>Tuesday, 10 March 2026 · <a [^>]*href="{re.escape(url)}"[^>]*>'
        r"View in browser</a></p>",
        html,
    )
    assert line
    assert line.end() < html.index("8 papers picked for your topics")
    assert html.count(url) == 1


def test_no_email_address_in_any_url(alice: Subscriber, alices_delivery: Delivery) -> None:
    rendered = render_digest(delivery=alices_delivery)
    urls = urls_in(rendered)
    assert len(urls) > 40
    for url in urls:
        assert "@" not in url and "%40" not in url.upper() and "alice" not in url
    unsubscribe_header = received(digest_message(delivery=alices_delivery))["List-Unsubscribe"]
    assert "alice" not in unsubscribe_header and "@" not in unsubscribe_header


# --- Headers, as the receiving server parses them ---------------------------------------


def test_digest_headers_exact(
    alice: Subscriber, alices_delivery: Delivery, settings: Any, client: Client
) -> None:
    settings.PAPERBOY_FROM_EMAIL = "Paperboy <digest@paperboy.example>"
    msg = digest_message(delivery=alices_delivery)
    got = received(msg)

    assert got["From"] == "Paperboy <digest@paperboy.example>"
    assert got["To"] == "alice@example.org"
    assert header(got, "Subject") == (
        "Paperboy · 10 Mar: Helios: Real-Time Long Video Generation with Autoregressive… + 7 more"
    )
    assert got["Date"].datetime.utcoffset() == dt.timedelta(0)
    assert abs(got["Date"].datetime - timezone.now()) < dt.timedelta(minutes=1)
    assert got["Message-ID"] == message_id(msg)
    assert re.fullmatch(r"<[^<>@\s]+@paperboy\.example>", got["Message-ID"])
    assert got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert got["List-Id"] == "Paperboy daily papers <daily.paperboy.localhost>"
    assert got["Auto-Submitted"] == "auto-generated"
    assert header(got, "List-Unsubscribe") == f"<{unsubscribe_url(alice)}>"
    found = re.fullmatch(
        r"<https://paperboy\.example(/unsubscribe/[^>\s]+)>", header(got, "List-Unsubscribe")
    )
    assert found, got["List-Unsubscribe"]

    assert got.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in got.iter_parts()] == ["text/plain", "text/html"]
    text, html = parts(got)
    assert "Helios" in text and "<html" not in text
    assert html.startswith("<!doctype html>")

    # The header's token is alice's: a one-click POST from her mail provider unsubscribes her.
    response = client.post(
        found.group(1),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.UNSUBSCRIBED


def test_build_message_is_the_one_builder(settings: Any) -> None:
    settings.PAPERBOY_FROM_EMAIL = "Paperboy <paperboy@news.example.net>"
    rendered = RenderedEmail(subject="Hello", text="Plain", html="<p>Rich</p>")
    msg = build_message(to="bob@example.org", rendered=rendered, headers={"X-Kind": "test"})
    got = received(msg)
    assert got["X-Kind"] == "test"
    assert got["Message-ID"].endswith("@news.example.net>")
    assert msg.recipients() == ["bob@example.org"]
    assert parts(got) == ("Plain", "<p>Rich</p>")
    # Each message gets its own id.
    assert message_id(msg) != message_id(build_message(to="b@x.org", rendered=rendered, headers={}))


def test_title_cannot_inject_a_header(
    alice: Subscriber, make_delivery: Callable[..., Delivery]
) -> None:
    hostile = dict(SAMPLE_PAPERS[3], title="Diffusion for all\r\nBcc: x@y\r\n\r\nHello")
    delivery = make_delivery(alice, [hostile])
    msg = digest_message(delivery=delivery)
    raw = msg.message().as_bytes()
    got = received(msg)

    assert header(got, "Subject") == "Paperboy · 10 Mar: Diffusion for all Bcc: x@y Hello"
    assert got["Bcc"] is None
    assert b"\nBcc:" not in raw and b"\rBcc:" not in raw
    assert msg.recipients() == ["alice@example.org"]


def test_scraped_markup_is_escaped_in_html_and_readable_in_text(
    alice: Subscriber, make_delivery: Callable[..., Delivery]
) -> None:
    attack = '"><img src=x onerror=alert(1)>'
    hostile = dict(
        SAMPLE_PAPERS[1],
        title="Diffusion <script>alert(1)</script> for stories",
        ai_summary=f"A summary {attack}",
        authors=[f"Mallory {attack}", "Ada Lovelace"],
        github_repo="https://github.com/x/y?a=1&b=2",
        project_page="javascript:alert(1)",
        reasons=[
            {
                "topic": "diffusion",
                "field": "abstract",
                "before": f"…and {attack} a ",
                "match": "diffusion",
                "after": "<b>-based</b> planner",
            }
        ],
    )
    rendered = render_digest(delivery=make_delivery(alice, [hostile]))
    html, text = rendered.html, rendered.text

    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "<b>-based" not in html
    assert (
        html.count("&#34;&gt;&lt;img src=x onerror=alert(1)&gt;") == 3
    )  # summary, author, snippet
    assert "&lt;b&gt;-based&lt;/b&gt; planner" in html
    assert 'href="https://github.com/x/y?a=1&amp;b=2"' in html
    assert "javascript:" not in html and "javascript:" not in text

    assert "Diffusion <script>alert(1)</script> for stories" in flat(text)
    assert f"A summary {attack}" in flat(text)
    assert f"Mallory {attack}" in flat(text)
    assert "https://github.com/x/y?a=1&b=2" in text


def twenty_papers(**overrides: Any) -> list[dict[str, Any]]:
    papers = []
    for i in range(20):
        sample = SAMPLE_PAPERS[i % len(SAMPLE_PAPERS)]
        papers.append(dict(sample, title=f"{sample['title']} (part {i + 1})", **overrides))
    return papers


@pytest.mark.parametrize(
    ("case", "html_limit_kb"),
    [
        # Today's papers, as they come (40.6 KB: what repeats per paper is a class in the
        # <style> block; inline, only what must survive a client that drops it). Of that,
        # 6.3 KB are the two signed "more / less like this" links under each paper.
        ("typical", 41),
        # Every paper at its longest: 14 authors, a long abstract and no HF summary, code
        # and a project page behind long URLs (44.3 KB).
        ("longest", 46),
    ],
)
def test_twenty_papers_stay_well_under_the_gmail_clip(
    alice: Subscriber, make_delivery: Callable[..., Delivery], case: str, html_limit_kb: int
) -> None:
    if case == "typical":
        papers = twenty_papers()
    else:
        papers = twenty_papers(
            abstract=" ".join(
                ["We study video diffusion models at scale and report what changes."] * 25
            ),
            ai_summary="",
            authors=[f"Author Number{j}" for j in range(14)],
            github_repo="https://github.com/some-research-lab/a-fairly-long-repository-name",
            project_page="https://some-research-lab.github.io/a-fairly-long-project-page/",
        )
    delivery = make_delivery(alice, papers)
    rendered = render_digest(delivery=delivery)
    html_bytes = len(rendered.html.encode())
    message_bytes = len(digest_message(delivery=delivery).message().as_bytes())
    print(f"\n20 {case} papers: HTML {html_bytes / 1024:.1f} KB,", end=" ")
    print(f"whole message {message_bytes / 1024:.1f} KB")

    assert rendered.html.count('class="pb-p"') == 20
    assert f'href="{digest_url(alice, EDITION_DATE)}"' in rendered.html  # View in browser
    assert html_bytes < html_limit_kb * 1024
    assert message_bytes < GMAIL_CLIP_BYTES
    # Short lines keep the HTML part 8-bit, not the bulkier quoted-printable.
    assert max(len(line.encode()) for line in rendered.html.splitlines()) <= 998
    assert "Content-Transfer-Encoding: quoted-printable" not in str(
        digest_message(delivery=delivery).message()
    )


# --- The machinery ----------------------------------------------------------------------


def test_mjml_is_compiled_once(alices_delivery: Delivery) -> None:
    digest_jinja.mjml_template.cache_clear()
    digest_jinja.compiled_mjml.cache_clear()
    # The links' signatures carry the second they were made in; a frozen clock keeps the
    # two renders comparable when they straddle a second.
    with (
        time_machine.travel(timezone.now(), tick=False),
        mock.patch.object(digest_jinja, "mjml2html", wraps=digest_jinja.mjml2html) as compile_,
    ):
        first = render_digest(delivery=alices_delivery)
        second = render_digest(delivery=alices_delivery)
    assert compile_.call_count == 1
    assert first.html == second.html


def test_templates_fail_loudly_on_a_missing_variable() -> None:
    with pytest.raises(jinja2.UndefinedError):
        digest_jinja.mjml_template("digest.mjml").render(papers=[])
    with pytest.raises(jinja2.UndefinedError):
        digest_jinja.text_env().get_template("digest.txt").render(papers=[])
    with pytest.raises(jinja2.UndefinedError):
        digest_jinja.text_env().get_template("digest_subject.txt").render()


def test_html_autoescapes_and_text_does_not() -> None:
    assert digest_jinja.html_env().from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    assert digest_jinja.text_env().from_string("{{ x }}").render(x="<b>") == "<b>"


def test_render_digest_queries_are_pinned(
    alices_delivery: Delivery, django_assert_num_queries: Any
) -> None:
    delivery = Delivery.objects.get(pk=alices_delivery.pk)
    # The delivery's subscriber, its edition, and its papers in one join.
    with django_assert_num_queries(3):
        render_digest(delivery=delivery)


def test_a_preview_renders_without_a_saved_delivery(bob: Subscriber) -> None:
    fields, reasons = sample_paper(SAMPLE_PAPERS[0])
    paper = Paper(arxiv_id="2603.09999", batch_date=EDITION_DATE, **fields)
    rendered = render_digest_for(
        subscriber=bob,
        edition_date=EDITION_DATE,
        items=[DigestItem(paper=paper, reasons=reasons, rank=1)],
    )
    assert rendered.subject == (
        "Paperboy · 10 Mar: Helios: Real-Time Long Video Generation with Autoregressive…"
    )
    assert "1 paper picked for your topics: reinforcement learning, RLHF, reward model" in flat(
        rendered.text
    )


def test_an_empty_digest_still_reads_well(carol: Subscriber) -> None:
    rendered = render_digest_for(subscriber=carol, edition_date=EDITION_DATE, items=[])
    assert rendered.subject == "Paperboy · 10 Mar: no new papers on your topics"
    assert "No new papers matched your topics" in rendered.text
    assert "No new papers matched your topics" in rendered.html


def test_summary_falls_back_to_the_abstract_cut_on_a_word() -> None:
    long_sentence = "We propose " + "a very long method name " * 30 + "that works."
    paper = Paper(title="T", abstract=long_sentence + " Second sentence.", ai_summary="")
    summary = summary_of(paper)
    assert summary.endswith("…") and len(summary) <= 301
    assert summary[:-1] == long_sentence[: len(summary) - 1]
    assert not summary[:-1].endswith(" ")

    two = Paper(title="T", abstract="Short first. Then a second one. And a third.", ai_summary="")
    assert summary_of(two) == "Short first. Then a second one."
