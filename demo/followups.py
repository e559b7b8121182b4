"""Demo follow-ups for ``seed_demo``: each demo operator starts with a working day of follow-up tasks
(跟进任务) — due today, overdue with a reminder that fired, coming up — one task done with its outcome,
and a few follow-up notes (跟进记录) on the timeline; the manager gets two unassigned contacts (公海) to
place. Everything goes through the services of ``campaigns.followups`` and ``contacts.notes``, so the
rows are exactly what the pages make."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from campaigns.followups import (
    follow_up_reminders_mark,
    follow_up_task_add,
    follow_up_task_finish,
    follow_up_tasks_create,
)
from campaigns.models import FollowUpTask
from contacts.models import Contact, Touchpoint
from contacts.notes import contact_note_add

from .staff import STAFF

NOTES = (
    "客户说最近在出差，下周一再联系，对新品精华比较感兴趣。",
    "电话沟通：上次买的面膜用完了，想等双十二活动再囤货。",
    "企微回复很积极，愿意拉闺蜜进群，可以重点培养成KOC。",
)


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


def followups_demo_seed(*, users: dict) -> dict[str, int]:
    """Create the demo follow-ups (see the module docstring); returns the rows made."""
    today = timezone.localdate()
    yesterday, in_two_days, in_three_days = (today + dt.timedelta(days=d) for d in (-1, 2, 3))
    tasks = notes = 0
    for member in STAFF:
        if not member.share:
            continue
        user = users[member.username]
        mine = list(
            Contact.objects.live()
            .filter(owner=user, erased_at__isnull=True, last_interaction_at__isnull=False)
            .order_by("-last_interaction_at", "-id")
            .values_list("pk", flat=True)[:6]
        )
        if len(mine) < 6:
            continue
        tasks += follow_up_tasks_create(
            actor=user, contact_ids=mine[0:2], title="电话回访：了解使用感受", due_at=_at(today, 15)
        )
        tasks += follow_up_tasks_create(
            actor=user,
            contact_ids=mine[2:3],
            title="发送老客复购券 VIP20",
            due_at=_at(yesterday, 18),
            remind_at=_at(yesterday, 9, 30),
            note="上次购买已满一个复购周期",
        )
        tasks += follow_up_tasks_create(
            actor=user,
            contact_ids=mine[3:4],
            title="邀请加入会员社群",
            due_at=_at(in_three_days, 11),
            remind_at=_at(in_two_days, 10),
        )
        done = follow_up_task_add(
            actor=user, contact=Contact.objects.get(pk=mine[4]), title="确认物流签收", due_at=_at(yesterday, 12)
        )
        if done.status == FollowUpTask.Status.OPEN:
            follow_up_task_finish(
                task=done,
                user=user,
                outcome="客户已签收，反馈包装很用心，约好下周再买两盒。",
                medium=Touchpoint.Medium.WECOM,
                occurred_at=_at(yesterday, 14, 30),
            )
            tasks += 1
        for index, pk in enumerate((mine[0], mine[5])):
            contact_note_add(
                contact=Contact.objects.get(pk=pk),
                actor=user,
                text=NOTES[(index + len(member.username)) % len(NOTES)],
                medium=Touchpoint.Medium.WECOM if index == 0 else Touchpoint.Medium.CHAT,
                # Fixed times (yesterday afternoon): the same seed makes the same timeline.
                occurred_at=_at(yesterday, 16 + index, 20),
            )
            notes += 1
    manager = users["manager"]
    unowned = list(
        Contact.objects.live()
        .filter(owner__isnull=True, erased_at__isnull=True)
        .order_by("-id")
        .values_list("pk", flat=True)[:2]
    )
    if unowned:
        tasks += follow_up_tasks_create(
            actor=manager, contact_ids=unowned, title="公海客户：分配跟进人", due_at=_at(today, 17)
        )
    follow_up_reminders_mark()
    return {"follow-up tasks": tasks, "follow-up notes": notes}
