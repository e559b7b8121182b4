"""A tag of a WeCom-linked group, put on or taken off a contact here, is marked on the customer in WeCom
(through the stand-in over HTTP); tags of unlinked groups and tags that came from WeCom stay here."""

from __future__ import annotations

import pytest

from contacts import services
from contacts.models import Contact, ContactTag
from tests.factories import TagFactory
from tests.wecom import test_client
from tests.wecom.test_sync import _sync
from wecom import tasks
from wecom.models import CorpTagLink

pytestmark = pytest.mark.django_db
wecom_standin = test_client.wecom_standin


@pytest.fixture
def run_tasks_inline(monkeypatch):
    calls = []

    def delay(*args):
        calls.append(args)
        return tasks.tags_push.run(*args)

    monkeypatch.setattr(tasks.tags_push, "delay", delay)
    return calls


def test_tagging_here_marks_the_linked_tag_in_wecom(
    wecom_standin, run_tasks_inline, django_capture_on_commit_callbacks
):
    group = wecom_standin._add_corp_tag(body={"group_name": "会员等级", "tag": [{"name": "金卡"}]})["tag_group"]
    gold = group["tag"][0]["id"]
    eid = wecom_standin.customer_add(name="王姐")
    wecom_standin.follow_add(userid="manager", external_userid=eid)
    _sync()
    contact = Contact.objects.get()
    linked = CorpTagLink.objects.get(wecom_id=gold).tag
    local_only = TagFactory(name="仅本地")

    with django_capture_on_commit_callbacks(execute=True):
        services.contacts_tag(contact_ids=[contact.pk], tags=[linked, local_only])
    assert wecom_standin.follows["manager"][eid]["tag_id"] == [gold]
    assert run_tasks_inline == [([contact.pk], [linked.pk], [])]

    with django_capture_on_commit_callbacks(execute=True):
        services.contacts_untag(contact_ids=[contact.pk], tags=[linked])
    assert wecom_standin.follows["manager"][eid]["tag_id"] == []

    run_tasks_inline.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.contacts_tag(contact_ids=[contact.pk], tags=[linked], source=ContactTag.Source.WECOM)
        services.contacts_tag(contact_ids=[contact.pk], tags=[local_only])  # already there: no change, no push
    assert run_tasks_inline == []
