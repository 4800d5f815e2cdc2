"""The batch renderer and the one-pass MIME writer make exactly what the plain path makes.

`DigestRenderer` reuses paper cards across digests and `PrebuiltEmail` writes MIME bytes
by hand, both for speed; a subscriber must not be able to tell. Every digest here is rendered
both ways and compared byte for byte, including hostile scraped text and cards served from
the renderer's cache to a second reader.
"""

from __future__ import annotations

import datetime as dt
import email
import email.header
import email.policy
import itertools
import json
import random
import textwrap
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
import time_machine

from digest.mail import DigestItem, build_message, render_digest_for
from digest.mail.fast_render import CardItem, DigestRenderer
from digest.mail.message import list_headers, stable_message_id
from digest.mail.mime import ENCODED_WORD_OCTETS, PrebuiltEmail, encoded_words
from digest.mail.moulds import MouldError, Moulds, casting_environment
from digest.mail.templates import html_env, text_env, wrap_text
from digest.models import Paper
from subscriptions.links import LinkMaker, digest_url, feedback_url, manage_url, unsubscribe_url
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE

HOSTILE_TITLE = 'Attention </a><script>alert("x")</script> & “Diffusion” \u2028 Is All'


def reasons_sets() -> list[list[dict[str, str]]]:
    keyword = {
        "topic": "diffusion",
        "field": "abstract",
        "before": "we train a ",
        "match": "diffusion",
        "after": " model on <b>video</b> & audio",
    }
    return [
        [keyword, {"topic": "video generation", "field": "title", "match": "Video"}],
        [{"topic": "diffusion", "field": "title", "before": "", "match": "Diffusion"}],
        [{"topic": "#2 today · 212 upvotes", "field": "trending"}],
        [{"topic": "", "field": "described"}],
        [{"topic": "A <liked> paper", "field": "liked"}],
        [{"topic": "RLHF", "field": "related"}],
        [],
    ]


@pytest.fixture
def papers(make_paper: Callable[..., Paper]) -> list[Paper]:
    return [
        make_paper(
            "Consistent Video Generation with Latent Diffusion",
            "We train a diffusion model on video. It is fast.",
            upvotes=212,
            num_comments=3,
            github_repo="https://github.com/x/y",
            github_stars=1234,
        ),
        make_paper(HOSTILE_TITLE, "An abstract with <tags> & ampersands. " * 30, upvotes=1),
        make_paper("Speech at Scale", "", ai_summary="A one-line summary.", upvotes=0),
        make_paper("Long " + "word" * 400, "x", project_page="javascript:alert(1)"),
    ]


def both_ways(
    subscriber: Subscriber,
    items: list[tuple[Paper, list[dict[str, str]]]],
    renderer: DigestRenderer,
) -> tuple[Any, Any]:
    plain = render_digest_for(
        subscriber=subscriber,
        edition_date=EDITION_DATE,
        items=[DigestItem(paper=p, reasons=r, rank=n) for n, (p, r) in enumerate(items, 1)],
    )
    fast = renderer.render(
        subscriber=subscriber,
        edition_date=EDITION_DATE,
        items=[CardItem(p, n, json.dumps(r)) for n, (p, r) in enumerate(items, 1)],
    )
    return plain, fast


# Timestamped links (the manage page's) are the same only within one second.
frozen = time_machine.travel(dt.datetime(2026, 3, 10, 7, 0, 3, tzinfo=dt.UTC), tick=False)


@frozen
def test_links_are_djangos_own_tokens(alice: Subscriber) -> None:
    links = LinkMaker()
    for _ in range(2):  # the second time with the signers kept
        assert links.unsubscribe(alice) == unsubscribe_url(alice)
        assert links.manage(alice) == manage_url(alice)
        assert links.digest(alice, EDITION_DATE) == digest_url(alice, EDITION_DATE)
        paper = Paper(arxiv_id="2603.00001")
        assert links.feedback(alice, paper.arxiv_id, 1) == feedback_url(alice, paper, 1)
        assert links.feedback(alice, paper.arxiv_id, -1) == feedback_url(alice, paper, -1)


@frozen
def test_batch_rendering_is_byte_for_byte_the_plain_rendering(
    make_subscriber: Callable[..., Subscriber], papers: list[Paper]
) -> None:
    renderer = DigestRenderer()
    readers = [
        make_subscriber("alice@example.org", ["diffusion", "video generation", "-survey"]),
        make_subscriber("bob@example.org", []),
        make_subscriber("carol@example.org", ["speech"], frequency=Subscriber.Frequency.WEEKLY),
        # Topics that need escaping, wrap over several lines and pass the headline's six.
        make_subscriber(
            "dora@example.org",
            ["<b>bold</b> & co", "ünïcode “quotes”", "x" * 90, "t1", "t2", "t3", "t4", "-a<b"],
        ),
    ]
    checked = 0
    for reader in readers:
        for shift in range(len(reasons_sets())):
            sets = reasons_sets()[shift:] + reasons_sets()[:shift]
            items = [(paper, sets[n % len(sets)]) for n, paper in enumerate(papers)]
            for count in (len(items), 1, 0):
                plain, fast = both_ways(reader, items[:count], renderer)
                assert fast == plain
                checked += 1
    assert checked == 4 * 7 * 3
    # Later subscribers got cards rendered for earlier ones, with their own links swapped in.
    assert renderer.card_hits > renderer.card_misses


def test_wrapping_is_textwraps_own() -> None:
    """wrap_text's quick path for words between single spaces against textwrap itself,
    around the edges: words that fill a line exactly, words longer than a line, indents."""
    rng = random.Random(7)
    sizes = [1, 2, 3, 5, 8, 13, 20, 40, 66, 67, 68, 69, 70, 71, 72, 73, 80]
    spaces = [" ", " ", " ", " ", "  ", "\t", "\n", "\u00a0", "\u2028"]
    checked = 0
    for _ in range(3000):
        words = ["w" * rng.choice(sizes) for _ in range(rng.randint(1, 25))]
        text = "".join(word + rng.choice(spaces) for word in words).rstrip()
        width = rng.choice([5, 20, 71, 72, 73])
        indent = rng.choice(["", "  ", "    "])
        first = rng.choice([None, "", "1.  ", "12. "])
        expected = textwrap.fill(
            text,
            width=width,
            initial_indent=indent if first is None else first,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        assert wrap_text(text, width, indent, first) == expected, (text, width, indent, first)
        checked += 1
    assert checked == 3000


def test_a_frame_is_cast_once_per_shape_and_refuses_a_stand_in_it_cannot_fill() -> None:
    env = casting_environment(text_env())
    moulds = Moulds(env.from_string("{{ day }}: {{ a|wrap(indent='  ') }}|{{ b }}"), slots="ab")
    long = "word " * 30
    assert moulds.render({"day": "Mon"}, {"a": long, "b": "x"}) == (
        "Mon: " + wrap_text(long, indent="  ") + "|x"
    )
    assert moulds.render({"day": "Mon"}, {"a": "short", "b": "y"}) == "Mon:   short|y"
    assert moulds.render({"day": "Mon"}, {"a": "", "b": "z"}) == "Mon: |z"
    # Two shapes: "Mon" with both values, and with `a` empty.
    assert len(moulds._moulds) == 2
    html = Moulds(
        casting_environment(html_env()).from_string("<p>{{ a }}</p>{{ c }}"),
        slots="ac",
        markup="c",
    )
    assert (
        html.render({}, {"a": "<b>&", "c": "<i>cards</i>"}) == "<p>&lt;b&gt;&amp;</p><i>cards</i>"
    )
    concatenated = Moulds(env.from_string("{{ ('Dear ' ~ a)|wrap }}"), slots="a")
    with pytest.raises(MouldError):
        concatenated.render({}, {"a": "Alice"})
    cut = Moulds(env.from_string("{{ a[:2] }}"), slots="a")
    with pytest.raises(MouldError):
        cut.render({}, {"a": "Alice"})


@frozen
def test_cards_carry_each_readers_own_feedback_links(
    make_subscriber: Callable[..., Subscriber], papers: list[Paper]
) -> None:
    renderer = DigestRenderer()
    alice = make_subscriber("alice@example.org", ["diffusion"])
    bob = make_subscriber("bob@example.org", ["diffusion"])
    items = [(papers[0], reasons_sets()[1])]
    _, for_alice = both_ways(alice, items, renderer)
    _, for_bob = both_ways(bob, items, renderer)
    assert renderer.card_hits >= 1
    assert alice.key in for_alice.html and alice.key not in for_bob.html
    assert bob.key in for_bob.text and "\x00" not in for_bob.html + for_bob.text


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize(
    "subject,text,html",
    [
        ("Paperboy · 10 Mar: plain ASCII", "Hello\nworld\n", "<p>Hi</p>\n"),
        ("Paperboy · 10 Mar: “Diffusion” für alle 🚀", "Grüße\r\nzwei\rdrei", "<p>é</p>"),
        ("Long lines", "x" * 2500 + "\né" * 3, "<p>" + "é" * 1200 + "</p>"),
    ],
)
def test_one_pass_mime_reads_back_as_djangos_message(
    alice: Subscriber, subject: str, text: str, html: str
) -> None:
    headers = {
        "Message-ID": stable_message_id(7),
        **list_headers(unsubscribe=unsubscribe_url(alice)),
    }
    headers["Date"] = "Wed, 04 Mar 2026 07:00:00 +0000"
    ours = PrebuiltEmail(subject=subject, text=text, html=html, to=alice.email, headers=headers)
    django = build_message(to=alice.email, rendered=_rendered(subject, text, html), headers=headers)
    raw = ours.message().as_bytes(linesep="\r\n")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    mine, theirs = parsed(raw), parsed(django.message().as_bytes())
    for name in (
        "Subject",
        "From",
        "To",
        "Date",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
        "Auto-Submitted",
        "Precedence",
    ):
        # Django folds a long header onto a second line; unfolded, they read the same.
        assert str(mine[name]).strip() == str(theirs[name]).strip(), name
    mine_parts = [p.get_content() for p in mine.iter_parts()]
    theirs_parts = [p.get_content() for p in theirs.iter_parts()]
    assert [p.get_content_type() for p in mine.iter_parts()] == ["text/plain", "text/html"]
    # Django keeps the text's own line breaks; ours are normalised to one kind.
    assert [_lines(p) for p in mine_parts] == [_lines(p) for p in theirs_parts]
    # The same bytes on every call, whatever line separator a backend asks for.
    assert ours.message().as_bytes() == raw.replace(b"\r\n", b"\n")


def test_a_non_ascii_subject_is_cut_into_words_the_rfc_allows() -> None:
    for subject in [
        "Paperboy · 10 Mar: Ünïcode",
        "é" * 100,
        "日本語のタイトル" * 9,
        "·",
        "a€" * 40,
    ]:
        encoded = encoded_words(subject)
        words = encoded.split("\r\n ")
        assert all(len(word) <= 75 for word in words)
        # Each word holds whole characters, as many as fit in its 45 octets.
        decoded = [email.header.decode_header(word)[0][0].decode() for word in words]
        assert "".join(decoded) == subject
        for word, following in itertools.pairwise(decoded):
            assert len((word + following[0]).encode()) > ENCODED_WORD_OCTETS
        assert str(email.header.make_header(email.header.decode_header(encoded))) == subject


def test_a_header_with_a_line_break_is_refused(alice: Subscriber) -> None:
    message = PrebuiltEmail(
        subject="fine", text="", html="", to=alice.email, headers={"X-Evil": "a\r\nBcc: x@y.z"}
    )
    with pytest.raises(ValueError, match="line breaks"):
        message.message()


def test_a_part_holding_the_next_boundary_gets_another(alice: Subscriber) -> None:
    """Boundaries follow a per-process prefix a subscriber can see in any digest, so scraped
    text could carry the next one; the message must still split into its two parts."""
    seen = PrebuiltEmail(subject="s", text="t", html="h", to=alice.email, headers={})
    boundary = parsed(seen.message().as_bytes()).get_boundary()
    assert boundary is not None
    prefix, _, serial = boundary.rstrip("=").rpartition(".")
    hostile = "\n".join(f"--{prefix}.{int(serial) + n}==" for n in range(1, 4))
    message = PrebuiltEmail(subject="s", text=hostile, html=hostile, to=alice.email, headers={})
    mine = parsed(message.message().as_bytes())
    assert (mine.get_boundary() or hostile) not in hostile
    assert [p.get_content_type() for p in mine.iter_parts()] == ["text/plain", "text/html"]
    assert [_lines(p.get_content()) for p in mine.iter_parts()] == [hostile.split("\n")] * 2


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")


def _rendered(subject: str, text: str, html: str) -> Any:
    from digest.mail import RenderedEmail

    return RenderedEmail(subject=subject, text=text, html=html)


@frozen
def test_ranks_past_nine_are_placed_as_the_plain_rendering_places_them(
    make_subscriber: Callable[..., Subscriber], make_paper: Callable[..., Paper]
) -> None:
    renderer = DigestRenderer()
    reader = make_subscriber("dora@example.org", ["diffusion"], max_papers=20)
    many = [make_paper(f"Diffusion paper {n} " + "with a long title " * 4) for n in range(20)]
    reasons = reasons_sets()[1]
    for shift in (0, 3):  # the same cards again, at other ranks
        items = [(paper, reasons) for paper in many[shift:] + many[:shift]]
        plain, fast = both_ways(reader, items, renderer)
        assert fast == plain
    assert renderer.card_hits + renderer.card_misses == 40 and renderer.card_misses == 20


def test_a_batch_of_digests_costs_a_few_queries_not_a_few_per_digest(
    make_subscriber: Callable[..., Subscriber],
    papers: list[Paper],
    django_assert_max_num_queries: Any,
    mailoutbox: list[Any],
) -> None:
    from django.utils import timezone

    from digest.mail import Outcome, owed_send
    from digest.models import Delivery, DeliveryPaper, Edition

    edition = Edition.objects.create(date=EDITION_DATE)
    for n in range(40):
        reader = make_subscriber(f"reader{n}@example.org", ["diffusion"])
        delivery = Delivery.objects.create(
            edition=edition, subscriber=reader, matched_at=timezone.now()
        )
        for rank, paper in enumerate(papers[:3], start=1):
            DeliveryPaper.objects.create(
                delivery=delivery, paper=paper, rank=rank, reasons=reasons_sets()[rank]
            )
    # Claims (each in a savepoint here, with its plan settings): the batch, then none
    # above it and none from the start; the deliveries, subscribers, items, papers (2),
    # outcomes, release. The same for 40 digests as for 500.
    with django_assert_max_num_queries(19):
        result = owed_send(edition_id=edition.id)
    assert result.count(Outcome.SENT) == 40 == len(mailoutbox)
    assert {m.to[0] for m in mailoutbox} == {f"reader{n}@example.org" for n in range(40)}


def test_the_send_rate_limit_slows_a_run_instead_of_failing_it(
    settings: Any,
    make_subscriber: Callable[..., Subscriber],
    papers: list[Paper],
    mailoutbox: list[Any],
) -> None:
    import time

    from django.utils import timezone

    from digest.mail import Outcome, owed_send
    from digest.models import Delivery, DeliveryPaper, Edition

    # In-process bucket (no Redis in this test's settings): 20 a second, 5 at once.
    settings.REDIS_URL = ""
    settings.PAPERBOY_SEND_RATE, settings.PAPERBOY_SEND_BURST = 20, 5
    edition = Edition.objects.create(date=EDITION_DATE)
    for n in range(25):
        reader = make_subscriber(f"reader{n}@example.org", ["diffusion"])
        delivery = Delivery.objects.create(
            edition=edition, subscriber=reader, matched_at=timezone.now()
        )
        DeliveryPaper.objects.create(delivery=delivery, paper=papers[0], rank=1, reasons=[])
    started = time.monotonic()
    result = owed_send(edition_id=edition.id)
    took = time.monotonic() - started
    assert result.count(Outcome.SENT) == 25 == len(mailoutbox)
    assert took >= (25 - 5) / 20 * 0.9  # the 20 past the burst waited their turn
