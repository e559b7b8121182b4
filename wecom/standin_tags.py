"""The corp tag endpoints of the WeCom stand-in (``wecom.standin``): a mixin of ``WeComStandIn``."""

from __future__ import annotations

import time

from .standin_base import _Answer, _ok


class CorpTagsMixin:
    """``get_corp_tag_list``, ``add_corp_tag``, ``edit_corp_tag``, ``del_corp_tag`` and ``mark_tag`` on the
    stand-in's ``groups`` and follows (call with the lock held)."""

    def _get_corp_tag_list(self, *, body, **_) -> dict:
        group_ids, tag_ids = body.get("group_id") or [], body.get("tag_id") or []
        result = []
        for group_id, group in self.groups.items():
            if group_ids and group_id not in group_ids:
                continue
            tags = group["tag"]
            if tag_ids and not group_ids:  # with both, WeCom filters by group_id only
                tags = [t for t in tags if t["id"] in tag_ids]
                if not tags:
                    continue
            result.append({"group_id": group_id, **{k: v for k, v in group.items() if k != "tag"}, "tag": tags})
        return _ok(tag_group=result)

    def _add_corp_tag(self, *, body, **_) -> dict:
        new_tags = body.get("tag") or []
        if not isinstance(new_tags, list) or not new_tags:
            raise _Answer(40063, "tag is empty")
        group_id = body.get("group_id")
        if group_id:
            if group_id not in self.groups:
                raise _Answer(40068)
        else:
            name = str(body.get("group_name") or "")
            if not name:
                raise _Answer(40063, "group_id and group_name are empty")
            group_id = next((g for g, v in self.groups.items() if v["group_name"] == name), None)
            if group_id is None:
                group_id = "et" + self._id("grp", 27)
                self.groups[group_id] = {
                    "group_name": name,
                    "create_time": int(time.time()),
                    "order": int(body.get("order") or 0),
                    "tag": [],
                }
        group = self.groups[group_id]
        names = {t["name"] for t in group["tag"]}
        created = []
        for item in new_tags:
            name = str((item or {}).get("name") or "")
            if not name or len(name) > 30:
                raise _Answer(40058, "invalid tag name")
            if name in names:
                raise _Answer(40071)
            tag = {"id": "et" + self._id("tag", 27), "name": name, "create_time": int(time.time()), "order": 0}
            group["tag"].append(tag)
            names.add(name)
            created.append(tag)
        meta = {k: v for k, v in group.items() if k != "tag"}
        return _ok(tag_group={"group_id": group_id, **meta, "tag": created})

    def _edit_corp_tag(self, *, body, **_) -> dict:
        target, name = str(body.get("id") or ""), str(body.get("name") or "")
        if target in self.groups:
            if name:
                self.groups[target]["group_name"] = name
            return _ok()
        for group in self.groups.values():
            for tag in group["tag"]:
                if tag["id"] == target:
                    if name:
                        tag["name"] = name
                    return _ok()
        raise _Answer(40068)

    def _del_corp_tag(self, *, body, **_) -> dict:
        tag_ids, group_ids = set(body.get("tag_id") or []), set(body.get("group_id") or [])
        if not tag_ids and not group_ids:
            raise _Answer(40063, "tag_id and group_id are empty")
        known = {t["id"] for g in self.groups.values() for t in g["tag"]}
        if (tag_ids - known) or (group_ids - set(self.groups)):
            raise _Answer(40068)
        for group_id in group_ids:
            tag_ids |= {t["id"] for t in self.groups.pop(group_id)["tag"]}
        for group_id in list(self.groups):
            group = self.groups[group_id]
            group["tag"] = [t for t in group["tag"] if t["id"] not in tag_ids]
            if not group["tag"]:  # a group without tags is deleted
                del self.groups[group_id]
        for follows in self.follows.values():
            for follow in follows.values():
                if follow["tag_id"]:
                    follow["tag_id"] = [t for t in follow["tag_id"] if t not in tag_ids]
        return _ok()

    def _mark_tag(self, *, body, **_) -> dict:
        userid, eid = str(body.get("userid") or ""), str(body.get("external_userid") or "")
        if userid not in self.staff:
            raise _Answer(60111)
        if eid not in self.customers:
            raise _Answer(40096)
        follow = self.follows[userid].get(eid)
        if follow is None:
            raise _Answer(84061)
        add, remove = list(body.get("add_tag") or []), list(body.get("remove_tag") or [])
        if not add and not remove:
            raise _Answer(40063, "add_tag and remove_tag are empty")
        known = {t["id"] for g in self.groups.values() for t in g["tag"]}
        if any(t not in known for t in add + remove):
            raise _Answer(40068)
        follow["tag_id"] = [t for t in follow["tag_id"] if t not in remove] + [
            t for t in dict.fromkeys(add) if t not in follow["tag_id"]
        ]
        return _ok()
