"""A paper's card: what the digest, the feed, the public papers pages and the manage
page's preview show of one paper.

`paper_entry` turns a paper and the reasons it was picked for (the matched words, its
trending rank) into plain values the templates print: the title with the match to
highlight, why it is there, a short summary, the authors and the links.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from paperboy.text import one_line, shorten, squash
from subscriptions.links import feedback_url
from subscriptions.models import Subscriber

from ..models import Paper

SUMMARY_LIMIT = 300  # characters of abstract shown when HF has no ai_summary
AI_SUMMARY_LIMIT = 420  # HF's summaries are one sentence; this only stops a runaway
AUTHORS_SHOWN = 3

# Which field a reason names, as a subscriber would say it. The matcher already lists a
# paper's reasons best field first; sorting by field again (stably) keeps its order and
# makes reasons from any other caller read the same way.
_FIELD_WORDS: dict[str, str] = {
    "title": "the title",
    "keywords": "the paper’s keywords",
    "abstract": "the abstract",
}
_FIELD_ORDER: dict[str, int] = {"title": 0, "keywords": 1, "abstract": 2}

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9“\"(\[])")


class DigestItemLike(Protocol):
    """What the renderer needs of one paper in a digest; DeliveryPaper fits."""

    @property
    def paper(self) -> Paper: ...

    @property
    def reasons(self) -> Any: ...  # list of {"topic", "field", "before", "match", "after"}

    @property
    def rank(self) -> int: ...


@dataclass(frozen=True)
class DigestItem:
    """A paper to render without a saved Delivery (previews that save nothing, tests)."""

    paper: Paper
    reasons: list[dict[str, str]]
    rank: int


# --- What the templates see -------------------------------------------------------------
# Plain values only: the templates escape (HTML) or not (text) as they print them.


@dataclass(frozen=True)
class Snippet:
    """Text around a highlighted phrase; `match` is empty when nothing is highlighted."""

    before: str
    match: str = ""
    after: str = ""


@dataclass(frozen=True)
class Why:
    topic: str
    where: str  # "the abstract"
    snippet: Snippet | None  # None when it would only repeat the topic or the title
    also: list[str]  # the other topics this paper matched
    # "keyword" (a phrase matched: topic, where, snippet), "described" (close to their
    # sentence), "liked" (like the paper titled `topic` they liked) or "related" (close
    # in meaning to their phrase `topic`, though the words differ).
    kind: str = "keyword"


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class PaperEntry:
    rank: int
    title: str
    title_parts: Snippet  # the title, with the matched words when a title match is shown
    url: str
    authors: str
    upvotes: int
    comments: int
    why: Why | None
    summary: str
    links: list[Link] = field(default_factory=list)
    # The subscriber's "more like this" / "less like this" links; "" where there is no
    # subscriber to ask (the manage page's preview).
    more_url: str = ""
    less_url: str = ""


# --- From a paper to its card ----------------------------------------------------------


def summary_of(paper: Paper) -> str:
    """HF's one-line ai_summary, else the abstract's first sentence or two."""
    if paper.ai_summary.strip():
        return shorten(one_line(paper.ai_summary), AI_SUMMARY_LIMIT)
    abstract = one_line(paper.abstract)
    if not abstract:
        return ""
    sentences = _SENTENCE_BREAK.split(abstract)
    text = sentences[0]
    # A short first sentence ("What happens when…?") says little alone; add the next.
    if len(sentences) > 1 and len(text) < SUMMARY_LIMIT // 2:
        text = f"{text} {sentences[1]}"
    return shorten(text, SUMMARY_LIMIT)


def _author_name(author: Any) -> str:
    # Names are stored as strings; HF's wire format has {"name": …} objects.
    if isinstance(author, dict):
        return one_line(str(author.get("name", "")))
    return one_line(str(author))


def authors_line(authors: Sequence[Any]) -> str:
    names = [name for name in map(_author_name, authors) if name]
    if len(names) <= AUTHORS_SHOWN + 1:  # "+1 more" would be longer than the name
        return ", ".join(names)
    return f"{', '.join(names[:AUTHORS_SHOWN])} +{len(names) - AUTHORS_SHOWN} more"


def _title_parts(title: str, reason: Mapping[str, str] | None) -> Snippet:
    """Split the title around a title match so the template can highlight it."""
    if reason is None or reason.get("field") != "title":
        return Snippet(title)
    match = one_line(reason.get("match", ""))
    if not match:
        return Snippet(title)
    before = squash(reason.get("before", "")).lstrip()
    # The matcher's title snippet is the whole title; find its match there, or else the
    # first occurrence of the matched words.
    start = title.find(before + match)
    start = start + len(before) if start >= 0 else title.lower().find(match.lower())
    if start < 0:
        return Snippet(title)
    end = start + len(match)
    return Snippet(title[:start], title[start:end], title[end:])


def best_reason(reasons: Sequence[Mapping[str, str]]) -> Mapping[str, str] | None:
    ordered = sorted(reasons, key=lambda r: _FIELD_ORDER.get(r.get("field", ""), 9))
    return ordered[0] if ordered else None


def _why(
    reasons: Sequence[Mapping[str, str]], best: Mapping[str, str], title_parts: Snippet
) -> Why:
    topic = one_line(best.get("topic", ""))
    others: list[str] = []
    for reason in reasons:
        other = one_line(reason.get("topic", ""))
        if other and other.lower() != topic.lower() and other not in others:
            others.append(other)
    field_name = best.get("field", "")
    if field_name in ("described", "liked", "related", "trending"):
        return Why(topic=topic, where="", snippet=None, also=[], kind=field_name)
    snippet: Snippet | None = Snippet(
        squash(best.get("before", "")).lstrip(),
        one_line(best.get("match", "")),
        squash(best.get("after", "")).rstrip(),
    )
    if field_name == "title" and title_parts.match:
        snippet = None  # highlighted in the title itself, just above
    elif (
        snippet and not (snippet.before or snippet.after) and snippet.match.lower() == topic.lower()
    ):
        snippet = None  # a keyword that is exactly the topic: nothing to add
    return Why(
        topic=topic,
        where=_FIELD_WORDS.get(field_name, f"the {field_name}"),
        snippet=snippet,
        also=others,
    )


def _web_url(url: str) -> str:
    """The scraped URL if it is http(s), else "": escaping cannot defuse javascript:."""
    url = url.strip()
    return url if urlsplit(url).scheme in ("http", "https") and " " not in url else ""


def _links(paper: Paper) -> list[Link]:
    # The Hugging Face page is the title's link (and a line of its own in the text part).
    links = [Link("arXiv", paper.arxiv_url), Link("PDF", paper.pdf_url)]
    if github := _web_url(paper.github_repo):
        stars = f" ★ {_compact(paper.github_stars)}" if paper.github_stars else ""
        links.append(Link(f"Code{stars}", github))
    if project := _web_url(paper.project_page):
        links.append(Link("Project page", project))
    return links


def _compact(n: int) -> str:
    return f"{n / 1000:.1f}k".replace(".0k", "k") if n >= 1000 else str(n)


def paper_entry(item: DigestItemLike, *, subscriber: Subscriber | None = None) -> PaperEntry:
    """One paper as the templates show it; with `subscriber`, with their feedback links."""
    paper = item.paper
    reasons: list[Mapping[str, str]] = [r for r in (item.reasons or []) if isinstance(r, dict)]
    title = one_line(paper.title)
    best = best_reason(reasons)
    title_parts = _title_parts(title, best)
    why = _why(reasons, best, title_parts) if best else None
    return PaperEntry(
        rank=item.rank,
        title=title,
        title_parts=title_parts,
        url=paper.hf_url,
        authors=authors_line(paper.authors or []),
        upvotes=paper.upvotes,
        comments=paper.num_comments,
        why=why,
        summary=summary_of(paper),
        links=_links(paper),
        more_url=feedback_url(subscriber, paper, 1) if subscriber else "",
        less_url=feedback_url(subscriber, paper, -1) if subscriber else "",
    )
