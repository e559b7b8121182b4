"""What the WeCom connection does when something changes here."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat
from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

from contacts.models import Contact, ContactTag, Tag
from contacts.privacy import personal_data_section
from contacts.signals import contact_erased, contact_tags_changed

from .corp_tags import is_pulling
from .models import CallbackEvent, CorpTagGroupLink, CorpTagLink, FollowRelationship

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


@receiver(post_save, sender=Tag)
def tag_saved(sender, instance: Tag, **kwargs) -> None:
    """A tag created or renamed in a group linked to WeCom: the same in WeCom, after commit."""
    if is_pulling() or not CorpTagGroupLink.objects.filter(group_id=instance.group_id).exists():
        return
    from .tasks import corp_tag_push

    tag_id = instance.pk
    transaction.on_commit(lambda: _enqueue(corp_tag_push, tag_id))


@receiver(pre_delete, sender=Tag)
def tag_deleted(sender, instance: Tag, **kwargs) -> None:
    """A linked tag deleted here: deleted in WeCom too, after commit (its link goes with the tag)."""
    if is_pulling():
        return
    wecom_id = CorpTagLink.objects.filter(tag_id=instance.pk).values_list("wecom_id", flat=True).first()
    if wecom_id is None:
        return
    from .tasks import corp_tag_remove

    transaction.on_commit(lambda: _enqueue(corp_tag_remove, wecom_id))


def _enqueue(task, *args) -> None:
    try:
        task.delay(*args)
    except Exception:  # the broker being down must not fail the write that committed; the next pull repairs
        logger.warning("could not enqueue %s", task.name, exc_info=True)


@receiver(contact_erased, sender=Contact)
def contact_wecom_scrub(sender, *, contact_id: int, **kwargs) -> None:
    """The erased person's WeCom traces: the members' remarks and descriptions of them, their
    external_userid on the follow rows (replaced by a placeholder that keeps the rows distinct), and the
    inbox rows about them."""
    follows = FollowRelationship.objects.filter(contact_id=contact_id)
    external_ids = list(follows.values_list("external_userid", flat=True).distinct())
    follows.update(remark="", description="", external_userid=Concat(Value("erased-"), Cast("pk", CharField())))
    if external_ids:
        CallbackEvent.objects.filter(external_userid__in=external_ids).delete()


@personal_data_section("wecom_follows")
def _wecom_follows(contact) -> list[dict]:
    """Who follows the person in WeCom, with their remarks."""
    return list(
        FollowRelationship.objects.filter(contact=contact)
        .order_by("added_at", "pk")
        .values(
            "staff__userid", "external_userid", "remark", "description", "state", "added_at", "deleted_at", "ended_by"
        )
    )
