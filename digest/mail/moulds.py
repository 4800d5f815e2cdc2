"""A digest's frame rendered once with stand-ins, then filled in for each subscriber.

Around its paper cards, one subscriber's frame (subject, headline, links, footer) differs
from the next only by a few strings: the headline and preview, the sentence saying what
they subscribed to, their links, and the cards themselves. Rendering the three frame
templates through Jinja for every digest was the largest share of a sender's time. A
`Mould` is a frame template rendered once per shape (edition date, number of papers, the
top-papers link, which of the strings are empty) with a stand-in for each string, cut at
the stand-ins; a digest's part is then the mould's pieces joined with its own strings,
escaped for the HTML part and wrapped where the text template wraps them.

A stand-in may only be shown as `{{ value }}` or `{{ value|wrap(...) }}` (or joined to
constant text). A test, a comparison or another filter would read the stand-in, not the
value, and bake the result into the mould: `if` tests are safe because the shape records
which strings are empty; a stand-in reaching `wrap` inside a longer string raises
`MouldError`; tests/test_digest_render.py holds filled frames byte for byte to the
templates rendered whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from markupsafe import Markup, escape

from .templates import TEXT_WIDTH, wrap_text

# A stand-in: a number between NULs, which no template, URL or scraped text holds (scraped
# text is made one line and printable before it reaches a template).
_STAND_IN = re.compile("\x00([0-9]+)\x00")
# What the casting is called in the context the mould is rendered with.
_CASTING = "__casting"

# Moulds kept per template: a day has a few dozen shapes (numbers of papers, top-papers
# links); a worker that lives for weeks starts afresh past this.
MOULDS_KEPT = 1000

Values = Mapping[str, str]
Filler = Callable[[Values], str]


class MouldError(Exception):
    """A template uses a stand-in in a way filling could not reproduce."""


@dataclass(frozen=True)
class Mould:
    pieces: tuple[str, ...]  # constant text around the fillers: one more than them
    fillers: tuple[Filler, ...]

    def fill(self, values: Values) -> str:
        parts = [self.pieces[0]]
        for filler, piece in zip(self.fillers, self.pieces[1:], strict=True):
            parts.append(filler(values))
            parts.append(piece)
        return "".join(parts)


class _Casting:
    """The fillers of one mould as it is rendered, numbered by their stand-ins."""

    def __init__(self, *, html: bool) -> None:
        self.html = html
        self.fillers: list[Filler] = []

    def stand_in(self, filler: Filler) -> str:
        self.fillers.append(filler)
        return f"\x00{len(self.fillers) - 1}\x00"

    def value(self, name: str, *, markup: bool) -> str:
        """The stand-in for `name`'s value: escaped when filled into HTML, unless it is
        markup already (the cards)."""
        if self.html and not markup:
            return self.stand_in(lambda values: str(escape(values[name])))
        stand_in = self.stand_in(lambda values: values[name])
        return Markup(stand_in) if markup else stand_in

    def wrapped(self, stand_in: str, width: int, indent: str, first: str | None) -> str:
        match = _STAND_IN.fullmatch(stand_in)
        if match is None:
            raise MouldError(f"a stand-in wrapped inside a longer text: {stand_in!r}")
        inner = self.fillers[int(match[1])]
        return self.stand_in(lambda values: wrap_text(inner(values), width, indent, first))

    def mould(self, rendered: str) -> Mould:
        cut = _STAND_IN.split(rendered)  # text, number, text, number, …, text
        pieces = tuple(cut[0::2])
        if any("\x00" in piece for piece in pieces):
            raise MouldError("a stand-in was changed by the template")
        return Mould(pieces, tuple(self.fillers[int(n)] for n in cut[1::2]))


@jinja2.pass_context
def _wrap(
    context: jinja2.runtime.Context,
    text: str,
    width: int = TEXT_WIDTH,
    indent: str = "",
    first: str | None = None,
) -> str:
    """The `wrap` filter while casting: constant text is wrapped now, a stand-in when the
    mould is filled."""
    if "\x00" not in text:
        return wrap_text(text, width, indent, first)
    casting: _Casting = context[_CASTING]
    return casting.wrapped(text, width, indent, first)


def casting_environment(env: jinja2.Environment) -> jinja2.Environment:
    """`env` with a `wrap` filter that defers wrapping stand-ins to the filling."""
    overlay = env.overlay()
    overlay.filters = {**env.filters, "wrap": _wrap}
    return overlay


class Moulds:
    """One template's moulds, cast on first use of each shape; keep one per sender."""

    def __init__(
        self, template: jinja2.Template, *, slots: Sequence[str], markup: Sequence[str] = ()
    ) -> None:
        """`template` was compiled in a `casting_environment`; `slots` are the context
        names filled per subscriber, `markup` those of them that are markup already."""
        self.template = template
        self.slots = tuple(slots)
        self.markup = frozenset(markup)
        self.html = bool(template.environment.autoescape)
        self._moulds: dict[Hashable, Mould] = {}

    def render(self, shape: Mapping[str, Hashable], values: Values) -> str:
        """The template rendered with `shape` (the context's values the mould is cast
        with) and `values` (the slots' strings)."""
        key = (tuple(shape.items()), tuple(not values[name] for name in self.slots))
        mould = self._moulds.get(key)
        if mould is None:
            if len(self._moulds) >= MOULDS_KEPT:
                self._moulds.clear()
            mould = self._moulds[key] = self._cast(shape, values)
        return mould.fill(values)

    def _cast(self, shape: Mapping[str, Any], values: Values) -> Mould:
        casting = _Casting(html=self.html)
        context: dict[str, Any] = {**shape, _CASTING: casting}
        for name in self.slots:
            # An empty string stays empty: `{% if value %}` then reads it as it is.
            context[name] = casting.value(name, markup=name in self.markup) if values[name] else ""
        return casting.mould(self.template.render(context))
