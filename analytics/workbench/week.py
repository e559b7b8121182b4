"""The workbench's calendar: today, this week to date (Monday to today) and the same days of last week,
as whole days in the business time zone (``TIME_ZONE``, Asia/Shanghai by default).

This week is compared with the same days of last week (Monday to the same weekday), not with the whole of
last week, so that a Monday morning does not read as a collapse. Both are ``metrics.Filters`` periods, so
the figures are the reports' own (``metrics.kpis`` of the same period gives the same numbers)."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils import timezone

from analytics.metrics import Filters, business_timezone, day_start

ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class WorkWeek:
    """The days the workbench looks at, as seen at ``now``."""

    now: dt.datetime
    today: dt.date

    @classmethod
    def at(cls, now: dt.datetime | None = None) -> WorkWeek:
        now = now or timezone.now()
        return cls(now=now, today=timezone.localtime(now, business_timezone()).date())

    # --- days -----------------------------------------------------------------------------------

    @property
    def monday(self) -> dt.date:
        return self.today - dt.timedelta(days=self.today.weekday())

    @property
    def sunday(self) -> dt.date:
        return self.monday + dt.timedelta(days=6)

    @property
    def days(self) -> list[dt.date]:
        """Monday to Sunday of this week."""
        return [self.monday + dt.timedelta(days=i) for i in range(7)]

    @property
    def last_monday(self) -> dt.date:
        return self.monday - dt.timedelta(days=7)

    @property
    def last_same_day(self) -> dt.date:
        """Today's weekday last week: the end of the comparison period."""
        return self.today - dt.timedelta(days=7)

    # --- instants (aware, business time zone) ---------------------------------------------------

    @property
    def today_start(self) -> dt.datetime:
        return day_start(self.today)

    @property
    def tomorrow_start(self) -> dt.datetime:
        return day_start(self.today + ONE_DAY)

    @property
    def week_start(self) -> dt.datetime:
        return day_start(self.monday)

    @property
    def next_week_start(self) -> dt.datetime:
        return day_start(self.monday + dt.timedelta(days=7))

    # --- report periods -------------------------------------------------------------------------

    def this_week(self, user: Any, owner_id: int | None = None) -> Filters:
        """Monday to today."""
        return Filters(date_from=self.monday, date_to=self.today, user=user, owner_id=owner_id)

    def last_week(self, user: Any, owner_id: int | None = None) -> Filters:
        """Monday to today's weekday, last week."""
        return Filters(date_from=self.last_monday, date_to=self.last_same_day, user=user, owner_id=owner_id)

    def both_weeks(self, user: Any, owner_id: int | None = None) -> Filters:
        """Last Monday to today: the span the figures read, each figure then split into its two periods."""
        return Filters(date_from=self.last_monday, date_to=self.today, user=user, owner_id=owner_id)

    def today_only(self, user: Any, owner_id: int | None = None) -> Filters:
        return Filters(date_from=self.today, date_to=self.today, user=user, owner_id=owner_id)

    # --- birthdays ------------------------------------------------------------------------------

    def birthday_days(self) -> list[tuple[dt.date, Q]]:
        """Each day of this week with the condition on ``birthday`` of the contacts whose birthday it is.
        As the birthday automation does (``campaigns.automations.triggers``), people born on 29 February
        celebrate on 28 February in a year that has no 29th."""
        days = []
        for day in self.days:
            born = Q(birthday__month=day.month, birthday__day=day.day)
            if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
                born |= Q(birthday__month=2, birthday__day=29)
            days.append((day, born))
        return days
