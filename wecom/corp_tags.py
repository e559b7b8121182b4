"""Tag definitions pushed to WeCom: a tag created, renamed or deleted here in a tag group linked to a WeCom
corp tag group is created, renamed or deleted there too (``add_corp_tag``, ``edit_corp_tag``,
``del_corp_tag``), by Celery after commit. ``tag_group_link`` makes a tag group here a WeCom group.

The pull (``sync_tags.corp_tags_pull``) runs the other way; its own writes come back here as saves of
already-linked tags (a harmless rename to the same name) or deletes of tags already gone in WeCom (an
"invalid id" answer, ignored).
"""

from __future__ import annotations

import contextlib
import logging
import threading

from django.db import transaction

from contacts.models import Tag, TagGroup

from .client import WeComClient, WeComError
from .models import CorpTagGroupLink, CorpTagLink

logger = logging.getLogger(__name__)
_pull = threading.local()


@contextlib.contextmanager
def pulling():
    """Around the pull's own writes: tags it creates or renames are WeCom's already, not to be pushed back."""
    _pull.active = True
    try:
        yield
    finally:
        _pull.active = False


def is_pulling() -> bool:
    return getattr(_pull, "active", False)


def _tag_id_named(tag_group: dict, name: str) -> str:
    return next((str(t.get("id")) for t in tag_group.get("tag") or [] if t.get("name") == name), "")


def corp_tag_push(*, tag_id: int, client: WeComClient) -> str:
    """Create (or rename) one tag of a linked group in WeCom; returns what was done."""
    tag = Tag.objects.select_related("group__wecom_link").filter(pk=tag_id).first()
    group_link = getattr(tag.group, "wecom_link", None) if tag else None
    if tag is None or group_link is None:
        return "not linked"
    link = CorpTagLink.objects.filter(tag=tag).first()
    if link is not None:
        client.corp_tag_edit(link.wecom_id, tag.name)
        return "renamed"
    created = client.corp_tag_add(group_id=group_link.wecom_id, tags=[tag.name])
    wecom_id = _tag_id_named(created, tag.name)
    if not wecom_id:
        raise WeComError(f"add_corp_tag answered without the tag {tag.name!r}", kind="fatal")
    CorpTagLink.objects.get_or_create(tag=tag, defaults={"wecom_id": wecom_id})
    return "created"


def corp_tag_remove(*, wecom_id: str, client: WeComClient) -> str:
    try:
        client.corp_tag_delete(tag_ids=[wecom_id])
    except WeComError as exc:
        if exc.kind == "invalid":  # already gone in WeCom (e.g. the pull deleted it here because of that)
            return "already gone"
        raise
    return "deleted"


def tag_group_link(*, group: TagGroup, client: WeComClient | None = None) -> CorpTagGroupLink:
    """Make ``group`` a WeCom corp tag group: WeCom creates a group of that name with its tags (or adds
    them to the group of that name it has), and every tag is linked. Safe to run again."""
    existing = CorpTagGroupLink.objects.filter(group=group).first()
    if existing is not None:
        return existing
    client = client or WeComClient()
    tags = list(group.tags.all())
    answer = client.corp_tag_add(group_name=group.name, tags=[t.name for t in tags])
    group_id = str(answer.get("group_id") or "")
    if not group_id:
        raise WeComError("add_corp_tag answered without a group_id", kind="fatal")
    with transaction.atomic():
        link, _created = CorpTagGroupLink.objects.get_or_create(group=group, defaults={"wecom_id": group_id})
        for tag in tags:
            wecom_id = _tag_id_named(answer, tag.name)
            if wecom_id:
                CorpTagLink.objects.get_or_create(tag=tag, defaults={"wecom_id": wecom_id})
    return link
