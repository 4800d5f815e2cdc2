"""A digest's MIME bytes, written in one pass.

Django builds a message by assembling `email.mime` objects and flattening them through
the standard library's generator: about 1.5 ms a digest, more than rendering it. A
digest always has the same shape — a few ASCII headers, the subject, and a
multipart/alternative of UTF-8 text and HTML — so `PrebuiltEmail` writes those bytes
directly, with the same encodings Django would choose (8bit, or quoted-printable when a
line is over RFC 5322's 998 octets; RFC 2047 words for a non-ASCII subject). It is still
an `EmailMultiAlternatives`: ESP backends, which read the subject, bodies and headers
rather than the bytes, and the test backend see an ordinary message.
"""

from __future__ import annotations

import binascii
import itertools
import re
import secrets
from collections.abc import Mapping
from functools import lru_cache

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import sanitize_address

# RFC 5322 §2.1.1: a line must not be longer than 998 octets, CRLF excluded.
LINE_LIMIT = 998
# UTF-8 octets per RFC 2047 word: 45 encode to 60 base64 characters, and with
# "=?utf-8?b?" and "?=" the word stays under the RFC's 75.
ENCODED_WORD_OCTETS = 45


def _header_value(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("header values may not contain line breaks")
    if value.isascii():
        return value
    return encoded_words(value)


def encoded_words(value: str) -> str:
    """RFC 2047 base64 words, each within the 75 characters the RFC allows, on folded
    lines. (email.header.Header does the same at ten times the cost.)"""
    data = value.encode("utf-8")
    words: list[bytes] = []
    start = 0
    while start < len(data) or not words:
        end = min(start + ENCODED_WORD_OCTETS, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # not inside a character
            end -= 1
        words.append(data[start:end])
        start = end
    return "\r\n ".join(
        f"=?utf-8?b?{binascii.b2a_base64(w, newline=False).decode()}?=" for w in words
    )


def _part(text: str, subtype: str) -> bytes:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    data = text.encode("utf-8")
    if len(data) > LINE_LIMIT and max(map(len, data.split(b"\n"))) > LINE_LIMIT:
        encoding = "quoted-printable"
        data = binascii.b2a_qp(data, istext=True)
    else:
        encoding = "8bit"
    data = data.replace(b"\n", b"\r\n")
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return head.encode("ascii") + data


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


def is_plain_address(address: str) -> bool:
    """An ASCII local@domain with nothing to quote, encode or parse."""
    return _PLAIN_ADDRESS.fullmatch(address) is not None


def header_address(address: str) -> str:
    """The address as Django's sanitize_address writes it (in a header or the SMTP
    envelope), parsing only what is not a plain ASCII address."""
    if is_plain_address(address):
        return address  # what sanitize_address would return, without parsing it
    return _sanitised(address)


@lru_cache(maxsize=64)
def _sanitised(address: str) -> str:
    # Django's own rules (IDNA domains, encoded display names, no line breaks); the From
    # recurs on every message, so it is worked out once.
    return sanitize_address(address, "utf-8")


# Boundaries: a random prefix drawn once per process, then a counter. Drawing 12 random
# bytes for every message was a system call a digest; a boundary need only be absent
# from the message's parts, and since a subscriber sees the prefix in every digest, each
# boundary is checked against the parts (scraped text could hold one on purpose).
_BOUNDARY_PREFIX = f"===============pb{secrets.token_hex(8)}"
_boundary_serial = itertools.count()


def _boundary(*parts: str) -> str:
    boundary = f"{_BOUNDARY_PREFIX}.{next(_boundary_serial)}=="
    while any(boundary in part for part in parts):
        boundary = f"===============pb{secrets.token_hex(12)}=="
    return boundary


class _Serialised:
    """What `EmailMessage.message()` returns, as far as the SMTP backend uses it."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\n") -> bytes:
        return self.data if linesep == "\r\n" else self.data.replace(b"\r\n", linesep.encode())

    def as_string(self, unixfrom: bool = False, linesep: str = "\n") -> str:
        return self.as_bytes(linesep=linesep).decode("utf-8", "surrogateescape")


class PrebuiltEmail(EmailMultiAlternatives):
    """Subject, text and HTML with extra headers, serialised once, on first use."""

    def __init__(
        self, *, subject: str, text: str, html: str, to: str, headers: Mapping[str, str]
    ) -> None:
        super().__init__(
            subject=subject,
            body=text,
            from_email=settings.PAPERBOY_FROM_EMAIL,
            to=[to],
            headers=dict(headers),
        )
        self.attach_alternative(html, "text/html")
        self._serialised: _Serialised | None = None

    def message(self) -> _Serialised:  # type: ignore[override]
        if self._serialised is None:
            self._serialised = _Serialised(self._bytes())
        return self._serialised

    def _bytes(self) -> bytes:
        html = str(self.alternatives[0][0])
        boundary = _boundary(str(self.body), html)
        head = [
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "MIME-Version: 1.0",
            f"Subject: {_header_value(str(self.subject))}",
            f"From: {header_address(self.from_email)}",
            f"To: {', '.join(header_address(a) for a in self.to)}",
        ]
        head += [f"{name}: {_header_value(str(v))}" for name, v in self.extra_headers.items()]
        separator = f"\r\n--{boundary}\r\n".encode("ascii")
        return b"".join(
            (
                "\r\n".join(head).encode("ascii"),
                b"\r\n",
                separator,
                _part(str(self.body), "plain"),
                separator,
                _part(html, "html"),
                f"\r\n--{boundary}--\r\n".encode("ascii"),
            )
        )
