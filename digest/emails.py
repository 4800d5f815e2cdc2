"""Every email Paperboy sends is made here.

One builder (`build_message`) makes every message: From, To, Date, Message-ID and a
multipart/alternative body (plain text, then HTML). One function per kind of email calls
it; today that is the digest (`digest_message`), which adds the list headers mail
providers ask of bulk senders (RFC 2369, RFC 2919, RFC 8058, RFC 3834).

Rendering is split from sending: `render_digest_for` needs no saved delivery, so a
preview command can render a digest for any subscriber and any list of papers.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, make_msgid
from django.urls import reverse
from django.utils import timezone

from paperboy.text import list_phrase, long_date, one_line, plural, short_date, shorten, squash
from subscriptions.links import absolute, digest_url, feedback_url, manage_url, unsubscribe_url
from subscriptions.models import Subscriber
from subscriptions.tokens import CONFIRM_MAX_AGE, Purpose, make_token

from .jinja import mjml_template, text_env
from .mime import sender_domain, stable_message_id
from .models import Delivery, Paper

HTML_LAYOUT = "digest.mjml"
TEXT_TEMPLATE = "digest.txt"
SUBJECT_TEMPLATE = "digest_subject.txt"

SUMMARY_LIMIT = 300  # characters of abstract shown when HF has no ai_summary
AI_SUMMARY_LIMIT = 420  # HF's summaries are one sentence; this only stops a runaway
SUBJECT_TITLE_LIMIT = 60
AUTHORS_SHOWN = 3
HEADER_TOPICS_SHOWN = 6

# Which field a reason names, as a reader would say it. The matcher already lists a
# paper's reasons best field first; sorting by field again (stably) keeps its order and
# makes reasons from any other caller read the same way.
_FIELD_WORDS: dict[str, str] = {
    "title": "the title",
    "keywords": "the paper’s keywords",
    "abstract": "the abstract",
}
_FIELD_ORDER: dict[str, int] = {"title": 0, "keywords": 1, "abstract": 2}

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9“\"(\[])")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class DigestItemLike(Protocol):
    """What the renderer needs of one paper in a digest; DeliveryPaper fits."""

    @property
    def paper(self) -> Paper: ...

    @property
    def reasons(self) -> Any: ...  # list of {"interest", "field", "before", "match", "after"}

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
    interest: str
    where: str  # "the abstract"
    snippet: Snippet | None  # None when it would only repeat the interest or the title
    also: list[str]  # the other interests this paper matched
    # "keyword" (a phrase matched: interest, where, snippet), "described" (close to their
    # sentence), "liked" (like the paper titled `interest` they liked) or "related" (close
    # in meaning to their phrase `interest`, though the words differ).
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
    # The reader's "more like this" / "less like this" links; "" where there is no
    # reader to ask (the manage page's preview).
    more_url: str = ""
    less_url: str = ""


# --- Text helpers -----------------------------------------------------------------------


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
    interest = one_line(best.get("interest", ""))
    others: list[str] = []
    for reason in reasons:
        other = one_line(reason.get("interest", ""))
        if other and other.lower() != interest.lower() and other not in others:
            others.append(other)
    field_name = best.get("field", "")
    if field_name in ("described", "liked", "related", "trending"):
        return Why(interest=interest, where="", snippet=None, also=[], kind=field_name)
    snippet: Snippet | None = Snippet(
        squash(best.get("before", "")).lstrip(),
        one_line(best.get("match", "")),
        squash(best.get("after", "")).rstrip(),
    )
    if field_name == "title" and title_parts.match:
        snippet = None  # highlighted in the title itself, just above
    elif (
        snippet
        and not (snippet.before or snippet.after)
        and snippet.match.lower() == interest.lower()
    ):
        snippet = None  # a keyword that is exactly the interest: nothing to add
    return Why(
        interest=interest,
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


# --- Rendering --------------------------------------------------------------------------


def _feed_url(subscriber: Subscriber) -> str:
    return settings.SITE_URL + reverse("feed_atom", args=[subscriber.feed_key])


def _top_papers_link(items: Sequence[DigestItemLike], edition_date: dt.date) -> Link | None:
    """The public page of the day the digest's trending picks were listed; None for a
    digest without any (a topics-only reader's)."""
    days = [
        item.paper.batch_date
        for item in items
        if any(isinstance(r, dict) and r.get("field") == "trending" for r in item.reasons or [])
    ]
    if not days:
        return None
    day = max(days)
    label = "Today’s top papers" if day == edition_date else f"Top papers of {short_date(day)}"
    return Link(label, papers_day_url(day))


@functools.lru_cache(maxsize=64)
def papers_day_url(day: dt.date) -> str:
    return absolute(reverse("papers_day", args=[day.isoformat()]))


def digest_context(
    *,
    subscriber: Subscriber,
    edition_date: dt.date,
    items: Sequence[DigestItemLike],
    interests: Sequence[str] | None = None,
    for_browser: bool = False,
) -> dict[str, Any]:
    """`interests`: the topics the papers were picked for, if not the subscriber's today.
    `for_browser`: the web copy, which needs no link to itself."""
    papers = [
        paper_entry(item, subscriber=subscriber) for item in sorted(items, key=lambda i: i.rank)
    ]
    context = frame_context(
        subscriber=subscriber,
        edition_date=edition_date,
        items=items,
        first_title=papers[0].title if papers else "",
        interests=interests,
        links=ReaderLinks.of(subscriber, edition_date, for_browser=for_browser),
    )
    context["papers"] = papers
    return context


@dataclass(frozen=True)
class ReaderLinks:
    """A digest's links that belong to its reader, not to a paper."""

    unsubscribe: str
    manage: str
    feed: str
    view_in_browser: str  # "" in the web copy itself

    @classmethod
    def of(cls, subscriber: Subscriber, edition_date: dt.date, *, for_browser: bool) -> ReaderLinks:
        return cls(
            unsubscribe=unsubscribe_url(subscriber),
            manage=manage_url(subscriber),
            feed=_feed_url(subscriber),
            view_in_browser="" if for_browser else digest_url(subscriber, edition_date),
        )


def frame_context(
    *,
    subscriber: Subscriber,
    edition_date: dt.date,
    items: Sequence[DigestItemLike],
    first_title: str,
    interests: Sequence[str] | None,
    links: ReaderLinks,
) -> dict[str, Any]:
    """Everything the digest's templates show around its papers; `first_title` is the
    top paper's title as shown (one line), "" for a digest without papers."""
    chosen_for = subscriber.interests if interests is None else interests
    topics = [t for t in chosen_for if not t.startswith("-")]
    excluded = [t[1:] for t in chosen_for if t.startswith("-")]
    count = len(items)
    period = "this week" if subscriber.frequency == Subscriber.Frequency.WEEKLY else "today"
    if topics:
        headline = f"{plural(count, 'paper')} picked for your topics: " + list_phrase(
            topics, HEADER_TOPICS_SHOWN
        )
        picked_for = f"picked for {list_phrase(topics, 3)}"
    else:  # a trending-only reader
        headline = f"The {plural(count, 'paper')} most upvoted {period}"
        picked_for = f"the most upvoted {period}"
    if count:
        rest = f" + {count - 1} more" if count > 1 else ""
        preview = f"{first_title}{rest}, {picked_for}"
    else:
        preview = "No new papers matched your topics today."
    return {
        "edition_long_date": long_date(edition_date),
        "edition_short_date": short_date(edition_date),
        "count": count,
        "headline": headline,
        "preview": preview,
        "subject_title": shorten(first_title, SUBJECT_TITLE_LIMIT) if count else "",
        "topics": topics,
        "excluded_topics": excluded,
        "frequency": subscriber.get_frequency_display().lower(),
        "max_papers": subscriber.max_papers,
        "unsubscribe_url": links.unsubscribe,
        "manage_url": links.manage,
        "feed_url": links.feed,
        "top_papers": _top_papers_link(items, edition_date),
        "view_in_browser_url": links.view_in_browser,
        "site_url": settings.SITE_URL,
        "site_name": settings.SITE_URL.split("://", 1)[-1],
    }


def render_digest_for(
    *,
    subscriber: Subscriber,
    edition_date: dt.date,
    items: Sequence[DigestItemLike],
    interests: Sequence[str] | None = None,
    for_browser: bool = False,
) -> RenderedEmail:
    """Render a digest from any papers; no Delivery row needed (previews use this)."""
    context = digest_context(
        subscriber=subscriber,
        edition_date=edition_date,
        items=items,
        interests=interests,
        for_browser=for_browser,
    )
    env = text_env()
    return RenderedEmail(
        subject=one_line(env.get_template(SUBJECT_TEMPLATE).render(context)),
        text=env.get_template(TEXT_TEMPLATE).render(context),
        html=mjml_template(HTML_LAYOUT).render(context),
    )


def render_digest(*, delivery: Delivery, for_browser: bool = False) -> RenderedEmail:
    items = list(delivery.items.select_related("paper").order_by("rank"))
    # The topics as they were when it was planned, so a copy viewed later in the browser
    # still says what this digest was picked for.
    return render_digest_for(
        subscriber=delivery.subscriber,
        edition_date=delivery.edition.date,
        items=items,
        interests=delivery.interests or None,
        for_browser=for_browser,
    )


# --- Messages ---------------------------------------------------------------------------


def build_message(
    *, to: str, rendered: RenderedEmail, headers: Mapping[str, str]
) -> EmailMultiAlternatives:
    """The one builder of every email: From, To, Date, Message-ID, text then HTML.

    The Message-ID is made here (not by Django at send time) so the caller can record it
    on the Delivery before sending; read it back with `message_id(msg)`.
    """
    all_headers = {
        "Date": format_datetime(timezone.now()),  # "+0000": UTC, said plainly
        # Our own domain, not the host's name, so Message-IDs are stable across machines.
        "Message-ID": make_msgid(domain=sender_domain()),
        **headers,
    }
    message = EmailMultiAlternatives(
        subject=one_line(rendered.subject),
        body=rendered.text,
        from_email=settings.PAPERBOY_FROM_EMAIL,
        to=[to],
        headers=all_headers,
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


def message_id(message: EmailMultiAlternatives) -> str:
    return str(message.extra_headers["Message-ID"])


def digest_headers(*, subscriber: Subscriber) -> dict[str, str]:
    return list_headers(unsubscribe=unsubscribe_url(subscriber))


def list_headers(*, unsubscribe: str) -> dict[str, str]:
    return {
        # Only the https URL: a mailto: would need a mailbox we read, and Gmail and Yahoo
        # use the one-click POST (RFC 8058) when List-Unsubscribe-Post is present.
        "List-Unsubscribe": f"<{unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": settings.PAPERBOY_LIST_ID,
        # Vacation responders and ticket systems stay quiet (RFC 3834).
        "Auto-Submitted": "auto-generated",
        "Precedence": "bulk",
    }


def digest_message(*, delivery: Delivery) -> EmailMultiAlternatives:
    """One delivery's digest as a message (the sender makes the same, faster, in batches:
    digest/sending.py); every attempt at it carries the same Message-ID."""
    subscriber = delivery.subscriber
    return build_message(
        to=subscriber.email,
        rendered=render_digest(delivery=delivery),
        headers={
            "Message-ID": stable_message_id(delivery.id),
            **digest_headers(subscriber=subscriber),
        },
    )


# --- Signup emails ----------------------------------------------------------------------
# Sent because someone typed an address into the public form, so they echo nothing typed
# but that address (never the topics: the form must not carry a stranger's words to
# someone's inbox). They are not list emails: no List-Unsubscribe, just "ignore this".

SIGNUP_TEMPLATE = "confirm"  # confirm.mjml, confirm.txt, confirm_subject.txt


def render_email(*, name: str, context: Mapping[str, Any]) -> RenderedEmail:
    """Subject, text and HTML of one kind of email from its three templates."""
    env = text_env()
    return RenderedEmail(
        subject=one_line(env.get_template(f"{name}_subject.txt").render(context)),
        text=env.get_template(f"{name}.txt").render(context),
        html=mjml_template(f"{name}.mjml").render(context),
    )


def confirm_url(subscriber: Subscriber) -> str:
    """A fresh confirmation link: its token's clock starts now (valid CONFIRM_MAX_AGE)."""
    token = make_token(subscriber, Purpose.CONFIRM)
    return absolute(reverse("subscriptions:confirm", args=[token]))


def signup_headers() -> dict[str, str]:
    # Vacation responders and ticket systems stay quiet (RFC 3834).
    return {"Auto-Submitted": "auto-generated"}


def _signup_context(*, subscriber: Subscriber, kind: str, action_url: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "email": subscriber.email,
        "action_url": action_url,
        "valid_days": CONFIRM_MAX_AGE.days,
        "site_url": settings.SITE_URL,
        "site_name": settings.SITE_URL.split("://", 1)[-1],
    }


def confirmation_message(*, subscriber: Subscriber) -> EmailMultiAlternatives:
    """Double opt-in: the link that turns a pending subscriber into an active one."""
    context = _signup_context(
        subscriber=subscriber, kind="confirm", action_url=confirm_url(subscriber)
    )
    return build_message(
        to=subscriber.email,
        rendered=render_email(name=SIGNUP_TEMPLATE, context=context),
        headers=signup_headers(),
    )


def already_subscribed_message(*, subscriber: Subscriber) -> EmailMultiAlternatives:
    """Someone signed up an address that already gets the digest: send its settings link.

    The page after the form says "check your inbox" whatever the address's state, so
    that a stranger learns nothing; this email is what the owner finds there.
    """
    context = _signup_context(
        subscriber=subscriber, kind="already_subscribed", action_url=manage_url(subscriber)
    )
    return build_message(
        to=subscriber.email,
        rendered=render_email(name=SIGNUP_TEMPLATE, context=context),
        headers=signup_headers(),
    )
