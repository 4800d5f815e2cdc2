"""Topics are keyword phrases; this keeps them tidy and bounded."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MAX_TOPICS = 20
MAX_TOPIC_LENGTH = 80

# Room for MAX_TOPICS phrases of MAX_TOPIC_LENGTH and their separators; longer text
# is not a list of topics, and forms refuse it before parsing.
MAX_TOPICS_TEXT = MAX_TOPICS * (MAX_TOPIC_LENGTH + 2)

_SPACE = re.compile(r"\s+")
# One topic per line; commas separate too, because people paste "a, b, c".
_TOPIC_SEPARATORS = re.compile(r"[\n,]")
# Right-to-left overrides and isolates would make a topic display as other text on the
# settings page and in the digest (clean_topic refuses the other control characters).
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")

ONLY_EXCLUSIONS = (
    "Add at least one topic to look for; a topic starting with “-” only leaves papers out."
)


class InvalidTopic(ValueError):
    pass


def clean_topic(raw: str) -> str:
    """Collapse white space; reject control characters and over-long phrases."""
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in raw):
        raise InvalidTopic("Topics cannot contain control characters.")
    phrase = _SPACE.sub(" ", raw).strip()
    if phrase.startswith("-"):
        phrase = "-" + phrase[1:].strip()
    if len(phrase) > MAX_TOPIC_LENGTH:
        raise InvalidTopic(f"“{phrase[:30]}…” is longer than {MAX_TOPIC_LENGTH} characters.")
    if phrase in ("", "-"):
        return ""
    return phrase


def clean_topic_list(raw: Iterable[str]) -> list[str]:
    """Clean each phrase, drop blanks and case-insensitive repeats, keep the order typed."""
    seen: set[str] = set()
    topics: list[str] = []
    for item in raw:
        phrase = clean_topic(item)
        if phrase and phrase.lower() not in seen:
            seen.add(phrase.lower())
            topics.append(phrase)
    if len(topics) > MAX_TOPICS:
        raise InvalidTopic(f"At most {MAX_TOPICS} topics, please.")
    return topics


def split_topics(text: str) -> list[str]:
    return _TOPIC_SEPARATORS.split(text)


def topics_from_text(text: str) -> list[str]:
    """The topics a person typed in a form's box, cleaned; InvalidTopic says what is wrong.

    None at all is fine (a trending-only subscriber); but exclusions alone are refused: they
    would look like topics and match nothing.
    """
    if _BIDI_CONTROLS.search(text):
        raise InvalidTopic("Topics cannot contain text-direction control characters.")
    topics = clean_topic_list(split_topics(text))
    if not topics:
        return []  # no topics: the subscriber gets the trending papers
    if all(topic.startswith("-") for topic in topics):
        raise InvalidTopic(ONLY_EXCLUSIONS)
    return topics
