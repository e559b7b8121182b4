"""Corp tags (企业客户标签) both ways.

- ``corp_tags_pull``: WeCom's tag groups and tags mirrored into ``TagGroup``/``Tag``, linked by
  ``CorpTagGroupLink``/``CorpTagLink``: new ones created (or an unlinked group/tag of the same name
  adopted), renamed ones renamed, ones deleted in WeCom deleted here (with their contacts' links).
- ``tags_push``: a tag of a linked group put on (or taken off) contacts here is marked on every active
  follow relationship of those contacts in WeCom (``mark_tag``, one call per member and customer).
"""

from __future__ import annotations

from collections import defaultdict

from django.db import transaction
from django.db.models import Q

from contacts.models import Tag, TagGroup

from .client import WeComClient, WeComError
from .corp_tags import pulling
from .models import CorpTagGroupLink, CorpTagLink, FollowRelationship

NAME_MAX = 64


def _free_group_name(name: str, exclude_pk: int | None = None) -> str:
    """``name``, or ``name (2)``... when another group already has it (group names are unique here)."""
    candidate, n = name, 1
    while TagGroup.objects.filter(name=candidate).exclude(pk=exclude_pk).exists():
        n += 1
        suffix = f" ({n})"
        candidate = name[: NAME_MAX - len(suffix)] + suffix
    return candidate


def _free_tag_name(group: TagGroup, name: str, wecom_id: str, exclude_pk: int | None = None) -> str:
    """``name``, or ``name (<end of the WeCom id>)`` when another tag of the group has it."""
    if not Tag.objects.filter(group=group, name=name).exclude(pk=exclude_pk).exists():
        return name
    return f"{name[: NAME_MAX - 9]} ({wecom_id[-6:]})"


def corp_tags_pull(*, client: WeComClient | None = None) -> dict:
    """Mirror WeCom's corp tags; returns counts of what changed. Writes nothing when nothing changed."""
    own = client is None
    client = client or WeComClient()
    try:
        groups = client.corp_tags()
    finally:
        if own:
            client.close()
    counts = defaultdict(int)
    with pulling(), transaction.atomic():
        group_links = {link.wecom_id: link for link in CorpTagGroupLink.objects.select_related("group")}
        tag_links = {link.wecom_id: link for link in CorpTagLink.objects.select_related("tag")}
        seen_groups, seen_tags = set(), set()
        for wecom_group in groups:
            group_id = str(wecom_group.get("group_id") or "")
            if not group_id:
                continue
            seen_groups.add(group_id)
            name = str(wecom_group.get("group_name") or group_id)[:NAME_MAX]
            link = group_links.get(group_id)
            if link is not None:
                group = link.group
                new_name = _free_group_name(name, exclude_pk=group.pk) if group.name != name else name
                if new_name != group.name:
                    group.name = new_name
                    group.save(update_fields=["name"])
                    counts["groups_renamed"] += 1
            else:
                group = TagGroup.objects.filter(name=name, wecom_link__isnull=True).first()
                if group is None:
                    group = TagGroup.objects.create(name=_free_group_name(name))
                    counts["groups_created"] += 1
                CorpTagGroupLink.objects.create(group=group, wecom_id=group_id)
                counts["groups_linked"] += 1
            for wecom_tag in wecom_group.get("tag") or []:
                tag_id = str(wecom_tag.get("id") or "")
                if not tag_id:
                    continue
                seen_tags.add(tag_id)
                tag_name = str(wecom_tag.get("name") or tag_id)[:NAME_MAX]
                tag_link = tag_links.get(tag_id)
                if tag_link is not None:
                    tag = tag_link.tag
                    if (tag.name, tag.group_id) != (tag_name, group.pk):
                        new_name = _free_tag_name(group, tag_name, tag_id, exclude_pk=tag.pk)
                        if (tag.name, tag.group_id) != (new_name, group.pk):
                            tag.group, tag.name = group, new_name
                            tag.save(update_fields=["group", "name"])
                            counts["tags_renamed"] += 1
                    continue
                tag = Tag.objects.filter(group=group, name=tag_name, wecom_link__isnull=True).first()
                if tag is None:
                    tag = Tag.objects.create(group=group, name=_free_tag_name(group, tag_name, tag_id))
                    counts["tags_created"] += 1
                CorpTagLink.objects.create(tag=tag, wecom_id=tag_id)
                counts["tags_linked"] += 1
        gone_tags = [wecom_id for wecom_id in tag_links if wecom_id not in seen_tags]
        if gone_tags:
            counts["tags_deleted"] += (
                Tag.objects.filter(wecom_link__wecom_id__in=gone_tags).delete()[1].get(Tag._meta.label, 0)
            )
        gone_groups = [wecom_id for wecom_id in group_links if wecom_id not in seen_groups]
        if gone_groups:
            counts["groups_deleted"] += (
                TagGroup.objects.filter(wecom_link__wecom_id__in=gone_groups).delete()[1].get(TagGroup._meta.label, 0)
            )
    return dict(counts)


def tags_push(
    *,
    contact_ids: list[int],
    add_tag_ids: list[int] = (),
    remove_tag_ids: list[int] = (),
    client: WeComClient | None = None,
) -> dict:
    """Mark the linked ones of ``add_tag_ids``/``remove_tag_ids`` (our tag ids) on every active follow of
    ``contact_ids`` in WeCom: one ``mark_tag`` per (member, customer), busy answers retried by the client.
    Ids WeCom no longer knows are skipped and listed; returns ``{"marked", "skipped", "failed"}``. Safe to
    run again (``mark_tag`` is idempotent)."""
    wecom_of = dict(
        CorpTagLink.objects.filter(tag_id__in=[*add_tag_ids, *remove_tag_ids]).values_list("tag_id", "wecom_id")
    )
    add = [wecom_of[t] for t in add_tag_ids if t in wecom_of]
    remove = [wecom_of[t] for t in remove_tag_ids if t in wecom_of]
    outcome = {"marked": 0, "skipped": [], "failed": []}
    if not (add or remove) or not contact_ids:
        return outcome
    pairs = (
        FollowRelationship.objects.filter(contact_id__in=list(contact_ids), deleted_at__isnull=True)
        .filter(~Q(external_userid=""))
        .order_by("staff__userid", "external_userid")
        .values_list("staff__userid", "external_userid")
    )
    own = client is None
    client = client or WeComClient()
    try:
        for userid, external_userid in pairs:
            try:
                client.tags_mark(userid, external_userid, add=add, remove=remove)
            except WeComError as exc:
                entry = {
                    "userid": userid,
                    "external_userid": external_userid,
                    "errcode": exc.errcode,
                    "error": str(exc),
                }
                if exc.kind == "invalid":
                    outcome["skipped"].append(entry)
                    continue
                outcome["failed"].append(entry)
                if exc.kind != "busy":  # a wrong secret or a revoked permission fails every pair alike
                    break
                continue
            outcome["marked"] += 1
    finally:
        if own:
            client.close()
    return outcome
