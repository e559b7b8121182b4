"""What the WeCom connection does when something changes here."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from contacts.models import ContactTag
from contacts.signals import contact_tags_changed

from .models import CorpTagLink

logger = logging.getLogger(__name__)

PUSH_CHUNK = 1000  # contacts per mark_tag task


@receiver(contact_tags_changed)
def tags_mirror_to_wecom(sender, *, contact_ids, added_tag_ids, removed_tag_ids, source, **kwargs) -> None:
    """Tags of a group linked to WeCom, put on or taken off here, are marked on the customers in WeCom
    (``mark_tag`` per follow, in Celery, batched). Tags that came from WeCom are not sent back."""
    if source == ContactTag.Source.WECOM:
        return
    linked = set(
        CorpTagLink.objects.filter(tag_id__in=[*added_tag_ids, *removed_tag_ids]).values_list("tag_id", flat=True)
    )
    if not linked:
        return
    from .tasks import tags_push

    add = [t for t in added_tag_ids if t in linked]
    remove = [t for t in removed_tag_ids if t in linked]
    ids = list(contact_ids)
    for start in range(0, len(ids), PUSH_CHUNK):
        try:
            tags_push.delay(ids[start : start + PUSH_CHUNK], add, remove)
        except Exception:  # the broker being down must not fail the tagging that already committed
            logger.warning("could not enqueue the WeCom tag push", exc_info=True)
