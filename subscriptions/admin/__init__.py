"""The operator's admin for subscribers: importing the modules registers their admins."""

from . import events, subscriber

__all__ = ["events", "subscriber"]
