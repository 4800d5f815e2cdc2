"""Jinja2 environments for emails, and the MJML layout compiled once.

As in zulip, every email is three templates: the subject and plain text go through an
environment with autoescape off (they are not HTML), the HTML through one with autoescape
on, so scraped paper text is escaped by default and nothing is marked safe. Both use
StrictUndefined: a missing variable fails the render instead of sending a hole.

The HTML layout is MJML. Compiling MJML is far slower than filling a template, so each
layout is compiled once per process (on first use) and Jinja2 fills the compiled HTML
per subscriber. Jinja2 control tags sit inside <mj-raw> so MJML passes them through.
"""

from __future__ import annotations

import functools
import re
import textwrap
from pathlib import Path

import jinja2
from django.conf import settings
from mjml import mjml2html

EMAIL_TEMPLATES_DIR = Path(settings.BASE_DIR) / "templates" / "email"

# MJML puts a whole email on one line. A line over 998 bytes makes Django send the HTML
# part quoted-printable, which grows it by a tenth or more towards Gmail's 102 KB clip;
# a line break before these block-level tags changes nothing on screen and keeps the
# part 8-bit. (Whitespace before an inline-block column would, but the parent cells of
# MJML columns set font-size: 0, and our layouts use one column.)
_BREAK_BEFORE = re.compile(
    r"(?<!\n)(?=<(?:/?table|/?tbody|tr|/tr|td|/td|div|/div|p|h1|h2|!--\[if)\b)"
)


# Paragraphs wrapped once a process: a paper's title and summary recur in every digest
# that shows them.
WRAPPED_KEPT = 8192
# The plain-text part's width: what mail clients show without wrapping again.
TEXT_WIDTH = 72


@functools.lru_cache(maxsize=WRAPPED_KEPT)
def wrap_text(
    text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None
) -> str:
    """Wrap a paragraph for the plain-text part; `first` replaces the first line's indent.

    Long words (URLs) stay whole rather than break where a subscriber could not click them.
    Kept: a day's digests wrap the same headlines and footers again and again.
    """
    first = indent if first is None else first
    if _simple(text) and len(indent) < width and len(first) < width:
        return _fill_words(text, width, indent, first)
    return textwrap.fill(
        text,
        width=width,
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _simple(text: str) -> bool:
    """Words between single spaces, and no other white space or control character: the
    text `_fill_words` wraps as textwrap does."""
    return text.isprintable() and "  " not in text and text[:1] not in ("", " ") and text[-1] != " "


def _fill_words(text: str, width: int, indent: str, first: str) -> str:
    """textwrap.fill(text, width, initial_indent=first, subsequent_indent=indent,
    break_long_words=False, break_on_hyphens=False) for a `_simple` text, at a fifth of
    its cost: each subscriber's headline and footer are wrapped afresh for every digest."""
    lines: list[str] = []
    words: list[str] = []
    lead, room, used = first, width - len(first), 0
    for word in text.split(" "):
        if words and used + 1 + len(word) <= room:
            words.append(word)
            used += 1 + len(word)
        elif not words:  # a line's first word goes on it even if too long to fit
            words, used = [word], len(word)
        else:
            lines.append(lead + " ".join(words))
            lead, room = indent, width - len(indent)
            words, used = [word], len(word)
    lines.append(lead + " ".join(words))
    return "\n".join(lines)


def _environment(*, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(EMAIL_TEMPLATES_DIR),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        # Control tags on their own lines leave no blank lines behind: the plain text is
        # read as is, and the HTML stays small.
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates are read once per process: a deploy that changes them mid-run must not
        # hand half a batch the new template with the old code (and the MJML layout is
        # compiled once anyway).
        auto_reload=settings.DEBUG,
    )
    env.filters["wrap"] = wrap_text
    return env


@functools.cache
def html_env() -> jinja2.Environment:
    """Autoescape on: for the HTML part."""
    return _environment(autoescape=True)


@functools.cache
def text_env() -> jinja2.Environment:
    """Autoescape off: for subjects and plain text, which are not HTML."""
    return _environment(autoescape=False)


def compile_mjml(source: str) -> str:
    """MJML to HTML, with no web-font link (we use the system font stack)."""
    html = mjml2html(source, disable_comments=True, fonts={})
    return _BREAK_BEFORE.sub("\n", html).lstrip("\n")


@functools.cache
def compiled_mjml(name: str) -> str:
    """The MJML layout `name` (under templates/email/) compiled to HTML: Jinja2 source."""
    env = html_env()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, name)
    return compile_mjml(source)


@functools.cache
def mjml_template(name: str) -> jinja2.Template:
    """The MJML layout `name`, compiled once, as a Jinja2 template."""
    return html_env().from_string(compiled_mjml(name))
