"""The subscriber's "What are you looking for?": one sentence in their own words.

Checked like topics (it is shown back on the settings page and read by the matcher):
no control characters, no text-direction overrides, white space collapsed, and at most
MAX_INTENT_LENGTH characters once tidied.
"""

from __future__ import annotations

import re
import unicodedata

MAX_INTENT_LENGTH = 300  # Subscriber.intent's max_length
# What a form accepts before tidying: a paste with extra spaces or line breaks is
# tidied, and only then held to MAX_INTENT_LENGTH; more than this is not one sentence.
MAX_INTENT_TEXT = 2 * MAX_INTENT_LENGTH

INTENT_LABEL = "What are you looking for?"
INTENT_PLACEHOLDER = (
    "e.g. using reinforcement learning to make LLMs reason better in maths and code"
)
INTENT_HELP = (
    f"Optional: one sentence in your own words, up to {MAX_INTENT_LENGTH} characters. "
    "Paperboy uses it to rank the papers it finds for you."
)
TOO_LONG = f"Keep it to one sentence of at most {MAX_INTENT_LENGTH} characters"


_SPACE = re.compile(r"\s+")
# As for topics: overrides and isolates would make the sentence display as other text.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


class InvalidIntent(ValueError):
    pass


def clean_intent(raw: str) -> str:
    """The sentence tidied to one line; InvalidIntent says what is wrong with it."""
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in raw):
        raise InvalidIntent("The sentence cannot contain control characters.")
    if _BIDI_CONTROLS.search(raw):
        raise InvalidIntent("The sentence cannot contain text-direction control characters.")
    sentence = _SPACE.sub(" ", raw).strip()
    if len(sentence) > MAX_INTENT_LENGTH:
        raise InvalidIntent(f"{TOO_LONG} (this has {len(sentence)}).")
    return sentence
