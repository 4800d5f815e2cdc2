"""Closing a connection at the end of some work, whatever state it was left in."""

from __future__ import annotations

import logging
from typing import Protocol

logger = logging.getLogger(__name__)


class Closable(Protocol):
    def close(self) -> None: ...


def close_quietly(thing: Closable, what: str) -> None:
    """Close `thing`, logging rather than raising: closing a connection that died or never
    opened must not hide the outcome of the work done with it."""
    try:
        thing.close()
    except Exception:  # any backend's or driver's error means the same thing here
        logger.debug("closing %s failed", what, exc_info=True)
