"""The operator's admin for subscribers: importing the modules registers their admins."""

from . import subscriber

__all__ = ["subscriber"]
