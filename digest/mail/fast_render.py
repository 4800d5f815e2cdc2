"""Rendering many digests fast: each paper's card is rendered once and reused.

A digest is a frame (headline, the subscriber's links, the footer) around up to twenty paper
cards. Across a day's digests the same card recurs: the same paper, at the same rank,
picked for the same reasons. `DigestRenderer` splits each digest template at its loop over
the papers into a frame template and a card template, renders a card once per (paper,
rank, reasons) and keeps it, with stand-ins where the subscriber's own "more / less like this"
links go. A digest is then the frame filled in around joined cards (moulds.py: the frame too is
rendered once per shape, with stand-ins for the subscriber's strings), the card's
stand-ins swapped for the subscriber's signed links.

The result is byte for byte what `digest_email.render_digest_for` makes from the whole
template (tests/test_digest_render.py holds it to that); this is only the fast way there.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
from markupsafe import escape

from paperboy.text import one_line
from subscriptions.links import LinkMaker
from subscriptions.models import Subscriber

from ..models import Paper
from .cards import DigestItem, best_reason, paper_entry
from .digest_email import (
    HTML_LAYOUT,
    SUBJECT_TEMPLATE,
    TEXT_TEMPLATE,
    ReaderLinks,
    frame_context,
)
from .message import RenderedEmail
from .moulds import Moulds, casting_environment
from .templates import compiled_mjml, html_env, text_env

# Where each template loops over the papers; its {% else %} is the empty digest.
PAPER_LOOP = "{% for p in papers %}"
# Stand-ins for the subscriber's feedback links in a kept card (characters no URL, title or
# template text contains, so a swap cannot touch anything else).
MORE, LESS = "\x00more\x00", "\x00less\x00"
# … and for its rank: two characters, so that "%-4s" of it and a dot pads as "12. " does
# and the text part's title wraps at the same place.
RANK = "\x01\x02"
# The frame's values that differ from one subscriber to the next: stand-ins in its moulds.
# The frame's other values (dates, counts, the top-papers link) pick the mould.
FRAME_SLOTS = (
    "headline",
    "preview",
    "subject_title",
    "subscribed_for",
    "unsubscribe_url",
    "manage_url",
    "feed_url",
    "view_in_browser_url",
)
# Cards kept per renderer: a day has a few thousand distinct ones; past this the oldest
# half goes (a card is a few kB of HTML and text).
CARDS_KEPT = 20_000


@dataclass(frozen=True)
class SplitTemplate:
    # The whole template, its paper loop replaced by {{ cards }}; compiled to be cast into
    # moulds (moulds.casting_environment).
    frame: jinja2.Template
    card: jinja2.Template  # the loop's body, for one paper `p`


def split_at_paper_loop(source: str, env: jinja2.Environment) -> SplitTemplate:
    """Cut `source` at its paper loop into a frame and a card, keeping what trim_blocks
    and lstrip_blocks would have done to the white space around the loop's tags."""
    start = source.index(PAPER_LOOP)
    body_start = start + len(PAPER_LOOP)
    else_at, end_at = _loop_else_and_end(source, body_start)
    body = source[body_start:else_at]
    body = body[1:] if body.startswith("\n") else body  # trim_blocks after the for tag
    head, _, last_line = body.rpartition("\n")
    if not last_line.strip(" \t"):  # lstrip_blocks before the else tag
        body = head + "\n" if head or body.startswith("\n") else ""
    end_tag = source[end_at : source.index("%}", end_at) + 2]
    frame = (
        source[:start]
        + "{% if papers %}{{ cards }}"
        + source[else_at:end_at]
        + end_tag.replace("endfor", "endif")
        + source[end_at + len(end_tag) :]
    )
    return SplitTemplate(
        frame=casting_environment(env).from_string(frame), card=env.from_string(body)
    )


def _loop_else_and_end(source: str, pos: int) -> tuple[int, int]:
    """The positions of the loop's own {% else %} and of the start of its {% endfor %}."""
    depth = 0
    else_at = -1
    while True:
        tag_at = source.index("{%", pos)
        tag_end = source.index("%}", tag_at) + 2
        words = source[tag_at + 2 : tag_end - 2].strip(" -+").split()
        word = words[0] if words else ""
        if word in ("for", "if"):
            depth += 1
        elif word in ("endfor", "endif"):
            if depth == 0:
                return (else_at if else_at >= 0 else tag_at), tag_at
            depth -= 1
        elif word == "else" and depth == 0:
            else_at = tag_at
        pos = tag_end


@cache
def html_split() -> SplitTemplate:
    return split_at_paper_loop(compiled_mjml(HTML_LAYOUT), html_env())


@cache
def subject_template() -> jinja2.Template:
    env = text_env()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, SUBJECT_TEMPLATE)
    return casting_environment(env).from_string(source)


@cache
def text_split() -> SplitTemplate:
    env = text_env()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, TEXT_TEMPLATE)
    return split_at_paper_loop(source, env)


@dataclass(frozen=True)
class _Loop:
    last: bool  # the text card ends with a rule unless it is the last


def _shown(reasons: list[dict[str, str]]) -> tuple[Any, ...]:
    """What of a paper's reasons its card shows: the best one in full (it picks the
    highlight and the snippet), and every reason's topic, in order (the "also matches")."""
    reasons = [r for r in reasons if isinstance(r, dict)]
    best = best_reason(reasons)
    return (
        tuple(sorted(best.items())) if best else (),
        tuple(str(r.get("topic", "")) for r in reasons),
    )


# In the text part the rank is "%-4s" of "12.": the stand-in with its dot and padding.
TEXT_RANK = f"{RANK}. "
_STAND_INS = re.compile("(" + "|".join(re.escape(s) for s in (MORE, LESS, TEXT_RANK, RANK)) + ")")


@dataclass(frozen=True)
class _Cut:
    """A kept card's text cut at its stand-ins: constant pieces, and between each two the
    stand-in that goes there, so filling it is one join rather than a pass per stand-in."""

    pieces: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> _Cut:
        return cls(tuple(_STAND_INS.split(text)))  # piece, stand-in, piece, …, piece

    def fill(self, values: Mapping[str, str]) -> str:
        return "".join([values.get(piece, piece) for piece in self.pieces])


@dataclass(frozen=True)
class _Card:
    html: _Cut
    text: _Cut  # followed by the rule between papers
    text_last: _Cut  # the last paper's, without it
    title: str  # as shown: the digest's preview and subject quote the first


@dataclass(frozen=True)
class CardItem:
    """A paper of one digest: `reasons_key` is its reasons as stored (JSON text), which
    names the card in the cache without parsing it."""

    paper: Paper
    rank: int
    reasons_key: str

    @property
    def reasons(self) -> list[dict[str, str]]:
        value = json.loads(self.reasons_key) if self.reasons_key else []
        return value if isinstance(value, list) else []


class DigestRenderer:
    """Renders digests for a batch of subscribers; keep one per worker task."""

    def __init__(self) -> None:
        self.links = LinkMaker()
        self.html, self.text = html_split(), text_split()
        self.html_frame = Moulds(self.html.frame, slots=(*FRAME_SLOTS, "cards"), markup=["cards"])
        self.text_frame = Moulds(self.text.frame, slots=(*FRAME_SLOTS, "cards"))
        self.subject = Moulds(subject_template(), slots=FRAME_SLOTS)
        # (paper id, when it changed, rank, reasons) → the card (see _Card)
        self._cards: dict[tuple[Any, ...], _Card] = {}
        self.card_hits = self.card_misses = 0

    def _card(self, item: CardItem) -> _Card:
        paper = item.paper
        # First by the reasons as stored; failing that, by what the card shows of them
        # (subscribers with other topics often get the same card: same best reason, same
        # other topics named), which costs parsing the reasons.
        key = (paper.pk, paper.updated_at, paper.upvotes, item.reasons_key)
        card = self._cards.get(key)
        if card is None:
            reasons = item.reasons
            shown = (*key[:3], _shown(reasons))
            card = self._cards.get(shown)
            if card is None:
                self.card_misses += 1
                card = self._render_card(item, reasons)
                self._keep(shown, card)
                self._keep(key, card)
                return card
            self._keep(key, card)
        self.card_hits += 1
        return card

    def _render_card(self, item: CardItem, reasons: list[dict[str, str]]) -> _Card:
        entry = paper_entry(DigestItem(paper=item.paper, reasons=reasons, rank=item.rank))
        stand_ins = {"more_url": MORE, "less_url": LESS, "rank": RANK}
        entry = entry.__class__(**{**entry.__dict__, **stand_ins})
        return _Card(
            html=_Cut.of(self.html.card.render({"p": entry, "loop": _Loop(last=False)})),
            text=_Cut.of(self.text.card.render({"p": entry, "loop": _Loop(last=False)})),
            text_last=_Cut.of(self.text.card.render({"p": entry, "loop": _Loop(last=True)})),
            title=entry.title,
        )

    def _keep(self, key: tuple[Any, ...], card: _Card) -> None:
        if len(self._cards) >= CARDS_KEPT:
            for old in list(self._cards)[: CARDS_KEPT // 2]:
                del self._cards[old]
        self._cards[key] = card

    def render(
        self,
        *,
        subscriber: Subscriber,
        edition_date: dt.date,
        items: Sequence[CardItem],
        topics: Sequence[str] | None = None,
    ) -> RenderedEmail:
        ordered = sorted(items, key=lambda i: i.rank)
        html_cards: list[str] = []
        text_cards: list[str] = []
        first_title = ""
        for n, item in enumerate(ordered, start=1):
            card = self._card(item)
            first_title = first_title or card.title
            text = card.text_last if n == len(ordered) else card.text
            more = self.links.feedback(subscriber, item.paper.arxiv_id, 1)
            less = self.links.feedback(subscriber, item.paper.arxiv_id, -1)
            rank = str(item.rank)
            html_cards.append(
                card.html.fill({RANK: rank, MORE: _escape(more), LESS: _escape(less)})
            )
            text_rank = f"{rank}.".ljust(len(TEXT_RANK))
            text_cards.append(text.fill({TEXT_RANK: text_rank, MORE: more, LESS: less}))
        links = ReaderLinks(
            unsubscribe=self.links.unsubscribe(subscriber),
            manage=self.links.manage(subscriber),
            feed=self.links.feed(subscriber),
            view_in_browser=self.links.digest(subscriber, edition_date),
        )
        context = frame_context(
            subscriber=subscriber,
            edition_date=edition_date,
            items=_TrendingView.of(ordered),
            first_title=first_title,
            topics=topics,
            links=links,
        )
        values = {name: context.pop(name) for name in FRAME_SLOTS}
        shape = {**context, "papers": bool(ordered)}
        return RenderedEmail(
            subject=one_line(self.subject.render(shape, values)),
            text=self.text_frame.render(shape, {**values, "cards": "".join(text_cards)}),
            html=self.html_frame.render(shape, {**values, "cards": "".join(html_cards)}),
        )


# What a link holds when it needs no escaping in HTML (our signed links always).
_HTML_PLAIN = re.compile(r"[^&<>\"']*")


def _escape(url: str) -> str:
    return url if _HTML_PLAIN.fullmatch(url) else str(escape(url))


@dataclass(frozen=True)
class _TrendingView:
    """What `frame_context` reads of the items (their papers and reasons), parsed only
    for the few that may be trending picks."""

    paper: Paper
    reasons: Sequence[Mapping[str, str]]
    rank: int

    @classmethod
    def of(cls, items: Sequence[CardItem]) -> list[_TrendingView]:
        return [
            cls(item.paper, item.reasons if '"trending"' in item.reasons_key else [], item.rank)
            for item in items
        ]
