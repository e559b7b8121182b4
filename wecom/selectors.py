"""Reads of the WeCom connection for the pages and the API: querysets with their joins in place, built on
each model's ``visible_to`` (follow relationships are seen with their contact), and the summaries of the
connection page (which settings are set, the callback inbox by status, the latest sync run)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Prefetch, QuerySet

from .models import CallbackEvent, FollowRelationship, LiveCode, LiveCodeStaff, StaffAccount, SyncRun

# The settings the connection needs, in the order the connection page lists them. Only whether each is
# set is ever shown, never its value.
CONNECTION_SETTINGS = ("WECOM_CORP_ID", "WECOM_CORP_SECRET", "WECOM_CALLBACK_TOKEN", "WECOM_ENCODING_AES_KEY")
FAILED_SHOWN = 20


def live_code_list(user) -> QuerySet[LiveCode]:
    """The live codes ``user`` may see, with channel, pool (in order), tags and welcome template loaded."""
    return (
        LiveCode.objects.visible_to(user)
        .select_related("channel", "backup_staff", "welcome_template", "created_by")
        .prefetch_related(
            Prefetch("pool", queryset=LiveCodeStaff.objects.select_related("staff").order_by("position", "id")),
            "tags__group",
        )
    )


def follow_list(user) -> QuerySet[FollowRelationship]:
    """The follow relationships of the contacts ``user`` may see."""
    return FollowRelationship.objects.visible_to(user).select_related("contact", "staff", "live_code")


def live_code_latest_follows(*, live_code: LiveCode, user, limit: int = 20) -> list[FollowRelationship]:
    return list(follow_list(user).filter(live_code=live_code).order_by("-added_at", "-id")[:limit])


def staff_account_list(user) -> QuerySet[StaffAccount]:
    return StaffAccount.objects.visible_to(user).select_related("user")


def callback_event_list(user) -> QuerySet[CallbackEvent]:
    return CallbackEvent.objects.visible_to(user)


def sync_run_list(user) -> QuerySet[SyncRun]:
    return SyncRun.objects.visible_to(user).select_related("started_by")


def connection_settings() -> list[tuple[str, bool]]:
    """Each connection setting with whether it is set (never its value)."""
    return [(name, bool(getattr(settings, name, ""))) for name in CONNECTION_SETTINGS]


@dataclass
class InboxSummary:
    last: CallbackEvent | None
    counts: dict[str, int] = field(default_factory=dict)
    failed: list[CallbackEvent] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count_rows(self) -> list[tuple[str, str, int]]:
        """(status, label, count) for every status, in the order of the choices."""
        return [(value, label, self.counts.get(value, 0)) for value, label in CallbackEvent.Status.choices]


def callback_inbox_summary(user) -> InboxSummary:
    events = callback_event_list(user)
    counts = dict(events.order_by().values("status").annotate(n=Count("id")).values_list("status", "n"))
    failed = list(
        events.filter(status=CallbackEvent.Status.FAILED)
        .defer("message", "payload")
        .order_by("-received_at")[:FAILED_SHOWN]
    )
    last = events.defer("message", "payload").order_by("-received_at", "-id").first()
    return InboxSummary(last=last, counts=counts, failed=failed)


def sync_run_latest(user) -> SyncRun | None:
    return sync_run_list(user).order_by("-started_at", "-id").first()


def sync_run_progress(run: SyncRun) -> tuple[int, int] | None:
    """(members read, members in all) from the run's resume position, when it has one."""
    position = run.position or {}
    userids = position.get("userids") if isinstance(position, dict) else None
    if not isinstance(userids, list) or not userids:
        return None
    try:
        index = int(position.get("index") or 0)
    except (TypeError, ValueError):
        index = 0
    total = len(userids)
    done = total if run.status == SyncRun.Status.DONE else max(0, min(index, total))
    return done, total
