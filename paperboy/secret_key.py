"""What makes a SECRET_KEY unfit for production.

Everything a subscriber clicks in an email (confirm, manage, unsubscribe, feedback) is signed
with it: a key anyone can read (the development one, a placeholder from an example file)
lets anyone forge those links for any address.
"""

from __future__ import annotations

# Words of the placeholders people leave in example files and compose files.
PLACEHOLDER_WORDS = (
    "change-me",
    "changeme",
    "change_me",
    "placeholder",
    "your-secret",
    "secret-key",
)
MIN_LENGTH = 50  # Django's own deploy check asks for 50 characters
MIN_UNIQUE = 5


def secret_key_problem(key: str, *, development: str) -> str:
    """Why `key` must not be used in production, or "" when it may."""
    if not key:
        return "is not set"
    if key == development:
        return "is the development key, which is public"
    lowered = key.lower()
    if any(word in lowered for word in PLACEHOLDER_WORDS) or lowered.startswith("django-insecure"):
        return "is a placeholder"
    if len(key) < MIN_LENGTH or len(set(key)) < MIN_UNIQUE:
        return f"is too short or too plain (at least {MIN_LENGTH} varied characters)"
    return ""
