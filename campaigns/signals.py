"""What campaigns do when something happens to a contact."""

from __future__ import annotations

from django.dispatch import receiver

from contacts.models import Contact
from contacts.privacy import personal_data_section
from contacts.signals import contact_erased

from .models import AutomationRun, Delivery, FollowUpTask, OutboxMessage

ERASED = "—"


@receiver(contact_erased, sender=Contact)
def contact_messages_scrub(sender, *, contact_id: int, **kwargs) -> None:
    """The erased person's rendered messages, follow-up task texts and error texts: scrubbed. The rows stay
    (what was sent when, for the caps and the reports), without what they said about the person."""
    OutboxMessage.objects.filter(contact_id=contact_id).update(subject="", body=ERASED)
    FollowUpTask.objects.filter(contact_id=contact_id).update(title=ERASED, note="", outcome="")
    Delivery.objects.filter(contact_id=contact_id).update(error="")
    # The text a staff member wrote in a one-off message (no template) goes too; the row stays.
    Delivery.objects.filter(contact_id=contact_id, template__isnull=True).update(subject="", body=ERASED)
    AutomationRun.objects.filter(contact_id=contact_id).update(error="")


@personal_data_section("messages")
def _messages(contact) -> list[dict]:
    """What was sent to the person (or held back, and why), with the text as rendered."""
    return list(
        Delivery.objects.filter(contact=contact)
        .order_by("created_at", "pk")
        .values("created_at", "medium", "status", "reason", "sent_at", "outbox_message__body")
    )


@personal_data_section("follow_up_tasks")
def _tasks(contact) -> list[dict]:
    return list(
        FollowUpTask.objects.filter(contact=contact)
        .order_by("created_at", "pk")
        .values("created_at", "title", "note", "due_at", "remind_at", "status", "done_at", "outcome")
    )
