"""The admin of what ESPs report: importing the module registers its admin. The subscriber
admin, which shows digests too, is in `pages.admin`."""

from . import events

__all__ = ["events"]
