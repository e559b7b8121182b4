"""The workbench page (工作台, ``/``): what a staff member acts on today, each item linking to where one acts.

* Operators get their own day: tasks due, this week's figures against the same days of last week, new
  contacts, customers due to buy again, birthdays, customers lost, WeCom messages waiting for their
  confirmation.
* Those who see every contact (managers) get the team: a table per staff member, broadcasts to approve,
  failed imports, failed or stalled WeCom syncs and callbacks, groups needing attention; and their own day
  under "My work" (``?view=mine``), over the contacts they own.

The page runs a fixed number of queries (``queries`` and ``team``). Three blocks whose cost grows with the
volume of data whatever the index — customers due to buy again (the purchases of a dozen past weeks joined
to their items), WeCom messages waiting for confirmation (every WeCom message of the week: nothing records
the confirmation nor the sender), groups needing attention (every open membership of every group) — are
loaded by their own requests (``block``, htmx) once the page is shown, so that they never hold it up.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from campaigns.models import Broadcast
from contacts.models import Contact

from . import queries, team
from .week import WorkWeek

TEAM, MINE = "team", "mine"


def runs_the_team(user) -> bool:
    """Those who see every contact (managers, admins) get the team view."""
    return Contact.objects.sees_all(user)


# --- Links to where one acts -----------------------------------------------------------------------


def _url(name: str, params: dict[str, Any] | None = None, *args) -> str:
    query = urlencode({key: _param(value) for key, value in (params or {}).items() if value is not None})
    return reverse(name, args=args) + (f"?{query}" if query else "")


def _param(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def contacts_acquired_url(first: dt.date, last: dt.date, owner_id: int | None) -> str:
    """The contact list of the contacts acquired from ``first`` to ``last`` (of one owner)."""
    return _url("contacts:list", {"owner": owner_id, "acquired_from": first, "acquired_to": last})


def drill_url(metric: str, first: dt.date, last: dt.date, owner_id: int | None) -> str:
    """The contact list narrowed to the contacts behind a report number (``analytics.forms.DrillDownForm``)."""
    return _url(
        "contacts:list",
        {"drill-metric": metric, "drill-date_from": first, "drill-date_to": last, "drill-owner": owner_id},
    )


def tasks_due_url(week: WorkWeek, assignee_id: int | None) -> str:
    """The task list of the open tasks due by the end of today (of one assignee)."""
    return _url("campaigns:task_list", {"status": "open", "due_to": week.today, "assignee": assignee_id})


def intake_url(week: WorkWeek) -> str:
    """WeCom adds and losses (加粉与流失) of this week, per staff member."""
    return _url("wecom:intake", {"date_from": week.monday, "date_to": week.today, "by": "staff"})


# --- The figures of the week ------------------------------------------------------------------------


def _change(now: Any, before: Any) -> dict[str, Any]:
    """This week against last week: the difference and its direction."""
    difference = now - before
    return {"difference": difference, "direction": "up" if difference > 0 else "down" if difference < 0 else "flat"}


def figure_cards(figures: queries.Figures, week: WorkWeek, owner_id: int | None) -> list[dict[str, Any]]:
    """The four figures of the week as cards, each with last week's value, the change and its link."""
    this_week = (week.monday, week.today)
    return [
        {
            "key": "adds",
            "label": _("New contacts"),
            "value": figures.adds,
            "last": figures.adds_last,
            "change": _change(figures.adds, figures.adds_last),
            "good": "up",
            "url": contacts_acquired_url(*this_week, owner_id),
            "note": _("acquired this week"),
        },
        {
            "key": "conversions",
            "label": _("Conversions"),
            "value": figures.conversions,
            "last": figures.conversions_last,
            "change": _change(figures.conversions, figures.conversions_last),
            "good": "up",
            "url": drill_url("new_customers", *this_week, owner_id),
            "note": _("first paid purchase this week"),
        },
        {
            "key": "revenue",
            "label": _("Revenue"),
            "value": figures.revenue,
            "last": figures.revenue_last,
            "change": _change(figures.revenue, figures.revenue_last),
            "good": "up",
            "money": True,
            "url": drill_url("buyers", *this_week, owner_id),
            "note": _("paid orders this week, refunds excluded"),
        },
        {
            "key": "losses",
            "label": _("Losses"),
            "value": figures.losses,
            "last": figures.losses_last,
            "change": _change(figures.losses, figures.losses_last),
            "good": "down",
            "url": intake_url(week),
            "note": _("WeCom friendships ended this week"),
        },
    ]


# --- The page ---------------------------------------------------------------------------------------


def _personal_context(request: HttpRequest, week: WorkWeek) -> dict[str, Any]:
    user = request.user
    me = user.pk
    figures = queries.staff_figures(user, week, owner_id=me).get(me, queries.Figures())
    return {
        "figures": figures,
        "figure_cards": figure_cards(figures, week, me),
        "tasks": queries.tasks_due(user, week, assignee_id=me),
        "tasks_url": tasks_due_url(week, me if runs_the_team(user) else None),
        "new_today_url": contacts_acquired_url(week.today, week.today, me),
        "new_week_url": contacts_acquired_url(week.monday, week.today, me),
        "newest": queries.newest_contacts(user, week, owner_id=me),
        "birthdays": queries.birthdays(user, week, owner_id=me),
        "ended": queries.friendships_ended(user, week, owner_id=me),
        "quiet": queries.went_quiet(user, week, owner_id=me),
        "intake_url": intake_url(week),
        "repurchase_url": _url("workbench:block", None, "repurchase"),
        "awaiting_url": _url("workbench:block", None, "awaiting"),
        "inactive_days": queries.INACTIVE_DAYS,
        "can_complete": user.has_perm("campaigns.change_followuptask"),
    }


def _awaiting_rows(rows: list[dict[str, Any]], user) -> list[dict[str, Any]]:
    """Each group of waiting messages with a link to its broadcast when the user may open it."""
    sees_all_broadcasts = Broadcast.objects.sees_all(user)
    for row in rows:
        row["url"] = (
            reverse("campaigns:broadcast_detail", args=[row["broadcast_id"]])
            if row["broadcast_id"] and (sees_all_broadcasts or row["broadcast_author"] == user.pk)
            else None
        )
    return rows


def _team_context(request: HttpRequest, week: WorkWeek) -> dict[str, Any]:
    user = request.user
    rows, total = team.team_table(user, week)
    staff = [
        {
            "row": row,
            "tasks_url": tasks_due_url(week, row.user_id) if row.user_id else None,
            "new_url": contacts_acquired_url(week.monday, week.today, row.user_id) if row.user_id else None,
            "conversions_url": drill_url("new_customers", week.monday, week.today, row.user_id)
            if row.user_id
            else None,
            "revenue_url": drill_url("buyers", week.monday, week.today, row.user_id) if row.user_id else None,
        }
        for row in rows
    ]
    context: dict[str, Any] = {
        "figure_cards": figure_cards(total, week, None),
        "staff": staff,
        "team_total": total,
        "team_total_overdue": sum(row.overdue for row in rows),
        "team_total_later": sum(row.later_today for row in rows),
        "team_tasks_url": tasks_due_url(week, None),
        "intake_url": intake_url(week),
        "quiet_group_days": team.QUIET_GROUP_DAYS,
        "recent_days": team.RECENT_DAYS,
    }
    if user.has_perm("campaigns.approve_broadcast"):
        context["pending"] = team.pending_broadcasts(user)
    if user.has_perm("contacts.view_importjob"):
        context["failed_imports"] = team.failed_imports(user, week)
    if user.has_perm("wecom.view_syncrun"):
        context["syncs"] = team.sync_problems(user, week)
    if user.has_perm("wecom.view_callbackevent"):
        context["callbacks"] = team.callback_problems(user, week)
    if user.has_perm("communities.view_community"):
        context["groups_url"] = _url("workbench:block", None, "groups")
    return context


@require_GET
@login_required
def workbench(request: HttpRequest) -> HttpResponse:
    """The landing page: the team (managers) or one's own day (everyone else, and managers' "My work")."""
    week = WorkWeek.at()
    leads = runs_the_team(request.user)
    view = TEAM if leads and request.GET.get("view") != MINE else MINE
    context: dict[str, Any] = {
        "week": week,
        "view": view,
        "leads_team": leads,
        "here": request.get_full_path(),
        "team_url": reverse("home"),
        "mine_url": _url("home", {"view": MINE}),
    }
    context.update(_team_context(request, week) if view == TEAM else _personal_context(request, week))
    return render(request, "analytics/workbench.html", context)


# --- The blocks loaded after the page ---------------------------------------------------------------


def _repurchase_block(request: HttpRequest, week: WorkWeek) -> dict[str, Any]:
    return {"repurchase": queries.repurchase_due(request.user, week, owner_id=request.user.pk)}


def _awaiting_block(request: HttpRequest, week: WorkWeek) -> dict[str, Any]:
    user = request.user
    return {
        "awaiting": _awaiting_rows(queries.awaiting_confirmation(user, week, owner_id=user.pk), user),
        "awaiting_days": queries.AWAITING_DAYS,
    }


def _groups_block(request: HttpRequest, week: WorkWeek) -> dict[str, Any]:
    return {"groups": team.groups_needing_attention(request.user, week), "quiet_group_days": team.QUIET_GROUP_DAYS}


#: The blocks whose cost grows with the volume of data rather than with what they show (see the module
#: docstring and docs/reports.md): name → (template, context, permission needed or None).
BLOCKS = {
    "repurchase": ("analytics/workbench/repurchase.html", _repurchase_block, None),
    "awaiting": ("analytics/workbench/awaiting.html", _awaiting_block, None),
    "groups": ("analytics/workbench/groups.html", _groups_block, "communities.view_community"),
}


@require_GET
@login_required
def block(request: HttpRequest, name: str) -> HttpResponse:
    """One block loaded after the page (htmx swaps it in); without JavaScript, the same block on a page of
    its own. Scoped like the page: an operator's blocks are their own contacts'."""
    if name not in BLOCKS:
        raise Http404
    template, build, permission = BLOCKS[name]
    if permission is not None and not request.user.has_perm(permission):
        raise Http404
    week = WorkWeek.at()
    context = {
        "week": week,
        "base_template": "analytics/workbench/bare.html"
        if request.headers.get("HX-Request") == "true"
        else "analytics/workbench/standalone.html",
        **build(request, week),
    }
    return render(request, template, context)
