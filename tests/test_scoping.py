"""One scoping rule, checked everywhere: two operators with disjoint books, and every model, every API
list and detail endpoint and every dashboard page that shows owned rows must keep each one's rows from
the other. A new model or endpoint has to be placed in one of the lists below, or these tests fail."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from analytics.models import ClvFit, CohortActivity, ContactScore, Layer
from campaigns.api.urls import router as campaigns_router
from campaigns.models import (
    Automation,
    AutomationRun,
    Broadcast,
    Delivery,
    FollowUpTask,
    FrequencyCap,
    FrequencyPolicy,
    Medium,
    MessageTemplate,
    OutboxMessage,
    Segment,
)
from communities.models import Community, Membership
from contacts.models import (
    Channel,
    ChannelSpend,
    Contact,
    ContactTag,
    ExportJob,
    ImportJob,
    Product,
    Purchase,
    PurchaseItem,
    SavedView,
    Tag,
    TagGroup,
    Touchpoint,
)
from scrm.api_urls import router as core_router
from scrm.querysets import RestrictedQuerySet
from wecom.api.urls import router as wecom_router
from wecom.models import (
    CallbackEvent,
    CorpTagGroupLink,
    CorpTagLink,
    FollowRelationship,
    LiveCode,
    LiveCodeStaff,
    StaffAccount,
    SyncRun,
)

pytestmark = pytest.mark.django_db

APPS = ("contacts", "communities", "campaigns", "analytics", "wecom")

# Reference data and definitions every staff member reads and uses (what they *reach* is scoped).
SHARED = {
    Channel,
    ChannelSpend,
    TagGroup,
    Tag,
    Product,
    Segment,
    MessageTemplate,
    FrequencyPolicy,
    FrequencyCap,
    Automation,
    ClvFit,
    # WeCom: the members, the live codes and their pools, the corp tag links (what a code *brings* is
    # scoped: its follow relationships and figures count the contacts the user may see).
    StaffAccount,
    LiveCode,
    LiveCodeStaff,
    CorpTagGroupLink,
    CorpTagLink,
}

# Not owned by anyone, and not for operators at all: the permission keeps them out (pages and API 403).
MANAGER_ONLY = {
    CallbackEvent: "wecom.view_callbackevent",
    SyncRun: "wecom.view_syncrun",
}


@pytest.fixture
def shared_rows(db):
    return make_shared_rows()


def make_shared_rows() -> dict:
    """The reference data both books use (also the schema fuzz's, tests/test_schema_fuzz.py)."""
    group = TagGroup.objects.create(name="意向度")
    tag = Tag.objects.create(group=group, name="强意向")
    product = Product.objects.create(sku="SKU-1", name="面霜", price=Decimal("99.00"))
    segment = Segment.objects.create(name="全部", rules={"op": "and", "rules": []})
    template = MessageTemplate.objects.create(name="问候", body="{name}，您好")
    automation = Automation.objects.create(
        name="首购感谢",
        trigger=Automation._meta.get_field("trigger").choices[0][0],
        action=Automation.Action.SEND_TEMPLATE,
        template=template,
    )
    staff_account = StaffAccount.objects.create(userid="li", name="李娜")
    live_code = LiveCode.objects.create(name="门店活码", channel=Channel.objects.create(name="门店"), state="lc-shared")
    LiveCodeStaff.objects.create(live_code=live_code, staff=staff_account)
    return {
        "tag": tag,
        "product": product,
        "segment": segment,
        "template": template,
        "automation": automation,
        "staff_account": staff_account,
        "live_code": live_code,
    }


def _book(owner, label: str, shared: dict) -> None:
    """One of every owned row, for ``owner``. ``label`` makes the book's names findable in a page."""
    now = timezone.now()
    contact = Contact.objects.create(name=f"{label}-客户", phone=None, acquired_at=now, owner=owner)
    ContactTag.objects.create(contact=contact, tag=shared["tag"])
    Touchpoint.objects.create(contact=contact, medium="chat", kind="message_in", occurred_at=now)
    purchase = Purchase.objects.create(
        contact=contact, external_order_id=f"{label}-order", purchased_at=now, amount=Decimal("99.00")
    )
    PurchaseItem.objects.create(purchase=purchase, product=shared["product"], quantity=1, unit_price=Decimal("99.00"))
    ImportJob.objects.create(kind=ImportJob.Kind.CONTACTS, file=f"imports/{label}.csv", created_by=owner)
    ExportJob.objects.create(created_by=owner, status=ExportJob.Status.DONE, file=f"exports/{label}.csv")
    SavedView.objects.create(owner=owner, name=f"{label}-视图", query="stage=lead")
    community = Community.objects.create(name=f"{label}-社群", owner=owner)
    Membership.objects.create(community=community, contact=contact, joined_at=now)
    broadcast = Broadcast.objects.create(
        name=f"{label}-群发", segment=shared["segment"], template=shared["template"], created_by=owner
    )
    delivery = Delivery.objects.create(
        broadcast=broadcast, contact=contact, medium=Medium.WECOM, template=shared["template"]
    )
    OutboxMessage.objects.create(delivery=delivery, contact=contact, medium=Medium.WECOM, body=f"{label}-消息")
    run = AutomationRun.objects.create(automation=shared["automation"], contact=contact, key="k", due_at=now)
    FollowUpTask.objects.create(assignee=owner, contact=contact, title=f"{label}-任务", automation_run=run)
    ContactScore.objects.create(contact=contact, layer=Layer.NONE, as_of=dt.date.today(), computed_at=now)
    CohortActivity.objects.create(
        by="acquisition",
        kind="size",
        cohort_month=dt.date.today().replace(day=1),
        month=dt.date.today().replace(day=1),
        owner_id=owner.pk,
        contacts=1,
        refreshed_at=now,
    )
    FollowRelationship.objects.create(
        contact=contact,
        staff=shared["staff_account"],
        external_userid=f"wm-{label}",
        live_code=shared["live_code"],
        added_at=now,
    )


def _models():
    return [m for m in apps.get_models() if m._meta.app_label in APPS]


def _pks(model) -> set:
    return set(model._base_manager.values_list("pk", flat=True))


@pytest.fixture
def books(operator, other_operator, shared_rows):
    """The rows of each operator's book, by model: A's made first, then B's (the difference)."""
    _book(operator, "AAA", shared_rows)
    mine = {model: _pks(model) for model in _models()}
    _book(other_operator, "BBB", shared_rows)
    theirs = {model: _pks(model) - mine[model] for model in _models()}
    return mine, theirs


def test_every_model_declares_who_may_see_its_rows(books, operator):
    mine, theirs = books
    for model in _models():
        assert isinstance(model.objects.all(), RestrictedQuerySet), f"{model.__name__} has no visible_to()"
        if model in SHARED:
            assert model.objects.sees_all(operator), f"{model.__name__} is listed as shared"
            continue
        if model in MANAGER_ONLY:
            assert not operator.has_perm(MANAGER_ONLY[model]), f"{model.__name__} is listed as manager-only"
            continue
        assert theirs[model], f"{model.__name__}: add one row of it to _book() or list it as SHARED"
        visible = set(model.objects.visible_to(operator).values_list("pk", flat=True))
        assert not visible & theirs[model], f"{model.__name__}: an operator sees another operator's rows"
        assert visible >= mine[model] - theirs[model], f"{model.__name__}: an operator cannot see their own rows"


def test_anonymous_users_see_nothing(books):
    from django.contrib.auth.models import AnonymousUser

    for model in _models():
        assert not model.objects.visible_to(AnonymousUser()).exists(), model.__name__
        assert not model.objects.visible_to(None).exists(), model.__name__


def _registrations():
    for prefix, viewset, _basename in [*core_router.registry, *campaigns_router.registry, *wecom_router.registry]:
        serializer = viewset(action="retrieve", kwargs={}).get_serializer_class()
        yield prefix, serializer.Meta.model


def test_every_api_list_and_detail_hides_the_other_operators_rows(books, operator_api):
    mine, theirs = books
    checked = set()
    for prefix, model in _registrations():
        if prefix == "frequency-policy":  # a singleton without ids
            continue
        response = operator_api.get(f"/api/v1/{prefix}/", {"page_size": 500})
        if response.status_code == 403:  # operators may not read this at all (channel spend, the outbox)
            continue
        assert response.status_code == 200, prefix
        body = response.json()
        rows = body["results"] if isinstance(body, dict) else body
        listed = {row["id"] for row in rows}
        if model in SHARED:
            continue
        assert not listed & theirs[model], f"/api/v1/{prefix}/ lists another operator's rows"
        assert listed, f"/api/v1/{prefix}/ lists none of the operator's own rows"
        for pk in theirs[model]:
            detail = operator_api.get(f"/api/v1/{prefix}/{pk}/")
            assert detail.status_code == 404, f"/api/v1/{prefix}/{pk}/ answered {detail.status_code}"
        checked.add(prefix)
    assert checked == {
        "contacts",
        "imports",
        "exports",
        "saved-views",
        "purchases",
        "touchpoints",
        "communities",
        "memberships",
        "broadcasts",
        "deliveries",
        "tasks",
        "wecom/follows",
    }


@pytest.fixture
def operator_client(operator, client):
    client.force_login(operator)
    return client


def test_every_dashboard_page_hides_the_other_operators_rows(books, operator_client):
    mine, theirs = books
    for name in (
        "contacts:list",
        "communities:list",
        "campaigns:broadcast_list",
        "campaigns:outbox",
        "campaigns:task_list",
        "campaigns:task_contact_options",
        "wecom:live_code_list",
        "home",
        *(f"analytics:{report}" for report in ("overview", "cohorts", "funnel", "channels", "decomposition")),
        *(f"analytics:{report}" for report in ("layers", "communities", "koc", "trend")),
    ):
        page = operator_client.get(reverse(name))
        assert page.status_code == 200, name
        text = page.content.decode()
        assert "BBB-" not in text, f"{name} shows another operator's rows"
    details = {
        "contacts:detail": Contact,
        "contacts:import_detail": ImportJob,
        "contacts:import_progress": ImportJob,
        "contacts:import_errors": ImportJob,
        "contacts:export_detail": ExportJob,
        "contacts:export_progress": ExportJob,
        "contacts:export_download": ExportJob,
        "communities:detail": Community,
        "campaigns:broadcast_detail": Broadcast,
        "campaigns:broadcast_progress": Broadcast,
        "campaigns:broadcast_edit": Broadcast,
        "campaigns:broadcast_deliveries": Broadcast,
        "campaigns:contact_message": Contact,
        "campaigns:delivery_status": Delivery,
    }
    for name, model in details.items():
        for pk in theirs[model]:
            response = operator_client.get(reverse(name, args=[pk]))
            assert response.status_code == 404, f"{name} {pk} answered {response.status_code}"
    # A live code is shared; the adds it lists are the operator's own.
    live_code = LiveCode.objects.get()
    text = operator_client.get(reverse("wecom:live_code_detail", args=[live_code.pk])).content.decode()
    assert "AAA-" in text and "BBB-" not in text, "a live code's page shows another operator's adds"
    # The workbench's blocks that load on their own.
    for block in ("repurchase", "awaiting", "groups"):
        page = operator_client.get(reverse("workbench:block", args=[block]), HTTP_HX_REQUEST="true")
        assert page.status_code == 200, block
        assert "BBB-" not in page.content.decode(), f"the workbench's {block} block shows another operator's rows"
    # An automation is shared; its run history lists the operator's own contacts only.
    automation = Automation.objects.get()
    text = operator_client.get(reverse("campaigns:automation_runs", args=[automation.pk])).content.decode()
    assert "AAA-" in text and "BBB-" not in text, "an automation's run history shows another operator's runs"
