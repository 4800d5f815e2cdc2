"""When a subscriber's digest is owed: their hour, in their time zone, daily or on their weekday.

Times are stepped by the subscriber's *local date*, never by adding 24 hours to a UTC time:
on the night clocks change, the hour still comes once a day. An hour that does not exist
that night (02:30 when clocks jump from 02:00 to 03:00) falls an hour later by the wall
clock; an hour that happens twice (when clocks go back) counts the first time only.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

DAILY, WEEKLY = "daily", "weekly"


@lru_cache(maxsize=1024)
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone `name`, or UTC if it is not one this machine knows."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def is_timezone(name: str) -> bool:
    """An IANA time-zone name this machine knows ("Europe/Berlin", "UTC")."""
    if not name or len(name) > 64:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    """Every IANA zone name, sorted, for a select list."""
    return tuple(sorted(zoneinfo.available_timezones()))


@dataclass(frozen=True)
class Schedule:
    """When one subscriber's digest comes: `hour` (0–23) local time in `timezone`, every day
    or (weekly) on ISO `weekday` (1 = Monday)."""

    timezone: str
    hour: int
    frequency: str = DAILY
    weekday: int = 1

    def occurrence(self, day: dt.date) -> dt.datetime:
        """The digest's time on local date `day`, in UTC."""
        local = dt.datetime.combine(day, dt.time(self.hour), tzinfo=zone(self.timezone))
        return local.astimezone(dt.UTC)

    def _is_day(self, day: dt.date) -> bool:
        return self.frequency != WEEKLY or day.isoweekday() == self.weekday

    def next_after(self, moment: dt.datetime, *, not_before: dt.date | None = None) -> dt.datetime:
        """The first time strictly after `moment` (on a local date not before
        `not_before`, if given) that this subscriber's digest is owed."""
        day = moment.astimezone(zone(self.timezone)).date() - dt.timedelta(days=1)
        if not_before is not None and day < not_before:
            day = not_before
        for _ in range(16):  # a week and a bit covers every weekday, with DST to spare
            if self._is_day(day):
                at = self.occurrence(day)
                if at > moment:
                    return at
            day += dt.timedelta(days=1)
        raise AssertionError("a schedule always comes within a fortnight")

    def local_date(self, moment: dt.datetime) -> dt.date:
        return moment.astimezone(zone(self.timezone)).date()


def default_timezone() -> str:
    return str(settings.PAPERBOY_DEFAULT_TIMEZONE)


def default_hour() -> int:
    return int(settings.PAPERBOY_SEND_HOUR)


def default_weekday() -> int:
    return int(settings.PAPERBOY_WEEKLY_WEEKDAY)
