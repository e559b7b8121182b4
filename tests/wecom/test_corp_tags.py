"""Tag definitions in a group linked to WeCom are created, renamed and deleted in WeCom too (the stand-in
over HTTP); a group is linked with ``manage.py wecom_link_tag_group``."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from contacts.models import Tag
from tests.factories import TagFactory, TagGroupFactory
from tests.wecom import test_client
from wecom import tasks
from wecom.models import CorpTagGroupLink, CorpTagLink

pytestmark = pytest.mark.django_db
wecom_standin = test_client.wecom_standin


@pytest.fixture
def run_tasks_inline(monkeypatch):
    for name in ("corp_tag_push", "corp_tag_remove"):
        task = getattr(tasks, name)
        monkeypatch.setattr(task, "delay", task.run)


def _wecom_tags(standin, group_id) -> list[str]:
    return sorted(t["name"] for t in standin.groups[group_id]["tag"])


def test_a_linked_groups_tags_are_created_renamed_and_deleted_in_wecom(
    wecom_standin, run_tasks_inline, django_capture_on_commit_callbacks
):
    group = TagGroupFactory(name="会员等级")
    TagFactory(group=group, name="金卡")
    TagFactory(group=group, name="银卡")
    call_command("wecom_link_tag_group", "会员等级")
    link = CorpTagGroupLink.objects.get(group=group)
    assert _wecom_tags(wecom_standin, link.wecom_id) == ["金卡", "银卡"]
    assert CorpTagLink.objects.count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        platinum = TagFactory(group=group, name="白金卡")
    assert _wecom_tags(wecom_standin, link.wecom_id) == ["白金卡", "金卡", "银卡"]
    with django_capture_on_commit_callbacks(execute=True):
        platinum.name = "黑金卡"
        platinum.save()
    assert _wecom_tags(wecom_standin, link.wecom_id) == ["金卡", "银卡", "黑金卡"]
    with django_capture_on_commit_callbacks(execute=True):
        Tag.objects.get(name="银卡").delete()
    assert _wecom_tags(wecom_standin, link.wecom_id) == ["金卡", "黑金卡"]


def test_tags_of_unlinked_groups_stay_here(wecom_standin, run_tasks_inline, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        TagFactory(name="仅本地")
    assert wecom_standin.groups == {}


def test_tags_the_pull_brings_from_wecom_are_not_pushed_back(
    wecom_standin, monkeypatch, django_capture_on_commit_callbacks
):
    from wecom.sync_tags import corp_tags_pull

    pushed = []
    monkeypatch.setattr(tasks.corp_tag_push, "delay", lambda *args: pushed.append(args))
    wecom_standin._add_corp_tag(body={"group_name": "会员等级", "tag": [{"name": "金卡"}, {"name": "银卡"}]})
    with django_capture_on_commit_callbacks(execute=True):
        corp_tags_pull(client=test_client.fast_client())
    assert Tag.objects.filter(group__name="会员等级").count() == 2
    assert pushed == []
