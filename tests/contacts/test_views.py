"""Dashboard pages for contacts, through Django's test client."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from communities.services import membership_join
from contacts.models import Contact, ContactTag, ImportJob
from contacts.phones import mask_phone
from contacts.services import contact_facts_refresh, purchase_record, purchase_refund, touchpoint_record
from tests.factories import (
    ChannelFactory,
    CommunityFactory,
    ContactFactory,
    ProductFactory,
    TagFactory,
    TagGroupFactory,
    UserFactory,
)

PASSWORD = "pass-word-123"
LIST_URL = reverse("contacts:list")


def logged_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def row_ids(response) -> list[int]:
    return [c.pk for c in response.context["contacts"]]


@pytest.fixture
def operator_client(operator):
    return logged_in(operator)


@pytest.fixture
def manager_client(manager):
    return logged_in(manager)


# --- Access ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        reverse("contacts:list"),
        reverse("contacts:detail", args=[1]),
        reverse("contacts:import"),
        reverse("contacts:exports"),
        reverse("contacts:export_detail", args=[1]),
        reverse("contacts:import_detail", args=[1]),
    ],
)
def test_dashboard_pages_redirect_anonymous_visitors_to_login(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_login_page_logs_in_and_lands_on_the_workbench(client, operator):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b'name="username"' in page.content
    response = client.post(reverse("login"), {"username": "operator", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")


def test_login_page_shows_an_error_for_a_wrong_password(client, operator):
    response = client.post(reverse("login"), {"username": "operator", "password": "wrong"})
    assert response.status_code == 200
    assert b'data-testid="login-error"' in response.content


def test_logout_is_a_post_form_and_ends_the_session(operator_client):
    page = operator_client.get(LIST_URL)
    assert f'action="{reverse("logout")}" method="post"'.encode() in page.content
    response = operator_client.post(reverse("logout"))
    assert response.status_code == 302
    assert operator_client.get(LIST_URL).status_code == 302


def test_a_user_without_a_role_is_forbidden(db):
    nobody = UserFactory(username="nobody")
    response = logged_in(nobody).get(LIST_URL)
    assert response.status_code == 403


# --- The list -------------------------------------------------------------------------------------


def test_operator_sees_only_own_contacts_in_the_list(operator, other_operator, operator_client):
    mine = ContactFactory(owner=operator, name="我的客户")
    ContactFactory(owner=other_operator, name="别人的客户")
    response = operator_client.get(LIST_URL)
    assert response.status_code == 200
    assert row_ids(response) == [mine.pk]
    assert response.content.count(b'data-testid="contact-row"') == 1
    assert "别人的客户" not in response.content.decode()


def test_manager_sees_every_contact(manager_client, operator, other_operator):
    ContactFactory(owner=operator)
    ContactFactory(owner=other_operator)
    response = manager_client.get(LIST_URL)
    assert len(row_ids(response)) == 2


def test_list_rows_show_the_columns_and_link_to_the_contact(operator, operator_client):
    tag = TagFactory(name="强意向")
    contact = ContactFactory(owner=operator, name="王小丫", phone="+8613812345678")
    ContactTag.objects.create(contact=contact, tag=tag)
    purchase_record(contact=contact, external_order_id="A1", purchased_at=timezone.now(), amount=Decimal("1234.50"))
    html = operator_client.get(LIST_URL).content.decode()
    assert "王小丫" in html
    assert "138****5678" in html
    assert "+8613812345678" not in html
    assert "强意向" in html
    assert "¥1,234.50" in html  # thousands separators on Chinese pages too (scrm/formats/zh_Hans)
    assert reverse("contacts:detail", args=[contact.pk]) in html


def test_phone_is_masked_in_the_middle():
    assert mask_phone("+8613812345678") == "138****5678"
    assert mask_phone("+14155550123") == "+141****0123"
    assert mask_phone(None) == ""


def test_list_filters_by_stage(operator, operator_client):
    lead = ContactFactory(owner=operator)
    customer = ContactFactory(owner=operator)
    purchase_record(contact=customer, external_order_id="S1", purchased_at=timezone.now(), amount=Decimal("10"))
    assert row_ids(operator_client.get(LIST_URL, {"stage": "customer"})) == [customer.pk]
    assert row_ids(operator_client.get(LIST_URL, {"stage": "lead"})) == [lead.pk]


def test_list_searches_name_and_phone(operator, operator_client):
    zhang = ContactFactory(owner=operator, name="张三", phone="+8613900001111")
    li = ContactFactory(owner=operator, name="李四", phone="+8613700002222")
    assert row_ids(operator_client.get(LIST_URL, {"search": "张"})) == [zhang.pk]
    assert row_ids(operator_client.get(LIST_URL, {"search": "0002222"})) == [li.pk]


def test_list_filters_by_tag_channel_community_and_acquired_dates(operator, operator_client):
    tag = TagFactory()
    douyin = ChannelFactory(name="抖音")
    community = CommunityFactory(owner=operator)
    old = ContactFactory(owner=operator, acquired_at=timezone.now() - dt.timedelta(days=40))
    tagged = ContactFactory(owner=operator, channel=douyin)
    ContactTag.objects.create(contact=tagged, tag=tag)
    member = ContactFactory(owner=operator)
    membership_join(community=community, contact=member)

    assert row_ids(operator_client.get(LIST_URL, {"tag": tag.pk})) == [tagged.pk]
    assert row_ids(operator_client.get(LIST_URL, {"channel": douyin.pk})) == [tagged.pk]
    assert row_ids(operator_client.get(LIST_URL, {"community": community.pk})) == [member.pk]
    cutoff = (timezone.localdate() - dt.timedelta(days=10)).isoformat()
    assert row_ids(operator_client.get(LIST_URL, {"acquired_to": cutoff})) == [old.pk]
    assert set(row_ids(operator_client.get(LIST_URL, {"acquired_from": cutoff}))) == {tagged.pk, member.pk}


def test_owner_filter_is_only_offered_to_those_who_see_all_contacts(
    operator, other_operator, operator_client, manager_client
):
    mine = ContactFactory(owner=operator)
    ContactFactory(owner=other_operator)
    assert b'name="owner"' not in operator_client.get(LIST_URL).content
    # An operator's forged owner filter cannot widen what they see.
    assert row_ids(operator_client.get(LIST_URL, {"owner": other_operator.pk})) == [mine.pk]
    response = manager_client.get(LIST_URL, {"owner": operator.pk})
    assert b'name="owner"' in response.content
    assert row_ids(response) == [mine.pk]


def test_list_is_paginated_and_page_links_keep_the_filters(operator, operator_client):
    for _ in range(55):
        ContactFactory(owner=operator, name="批量客户")
    response = operator_client.get(LIST_URL, {"search": "批量"})
    assert len(row_ids(response)) == 50
    assert response.context["page_obj"].paginator.num_pages == 2
    assert "?search=%E6%89%B9%E9%87%8F&amp;page=2" in response.content.decode()
    second = operator_client.get(LIST_URL, {"search": "批量", "page": 2})
    assert len(row_ids(second)) == 5


def test_list_query_count_does_not_grow_with_the_rows(operator, operator_client, django_assert_max_num_queries):
    tags = [TagFactory(group=TagGroupFactory(name=f"组{i}")) for i in range(3)]

    def add_contacts(n):
        for _ in range(n):
            contact = ContactFactory(owner=operator, channel=ChannelFactory())
            for tag in tags:
                ContactTag.objects.create(contact=contact, tag=tag)

    add_contacts(3)
    with django_assert_max_num_queries(14) as few:
        operator_client.get(LIST_URL, {"stage": "lead"})
    add_contacts(47)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = operator_client.get(LIST_URL, {"stage": "lead"})
    assert len(row_ids(response)) == 50


# --- Bulk tagging ---------------------------------------------------------------------------------


def test_bulk_tag_tags_own_contacts_and_returns_to_the_list(operator, operator_client):
    tag = TagFactory(name="复购意向")
    mine = [ContactFactory(owner=operator) for _ in range(2)]
    response = operator_client.post(
        reverse("contacts:bulk_tag"),
        {"contact_ids": [mine[0].pk, mine[1].pk], "tags": [tag.pk], "next": f"{LIST_URL}?stage=lead"},
        follow=True,
    )
    assert response.redirect_chain[-1] == (f"{LIST_URL}?stage=lead", 302)
    assert set(ContactTag.objects.filter(tag=tag).values_list("contact_id", flat=True)) == {m.pk for m in mine}
    link = ContactTag.objects.filter(tag=tag).first()
    assert link.tagged_by == operator and link.source == ContactTag.Source.MANUAL
    messages = [str(m) for m in response.context["messages"]]
    assert len(messages) == 1 and "2" in messages[0]


def test_bulk_tag_with_a_forged_id_is_rejected_whole_like_the_api(operator, other_operator, operator_client):
    """The dashboard and the API treat ids the user may not see the same way: the request is rejected,
    naming the ids, and nothing is written (not even the user's own contacts)."""
    tag = TagFactory()
    mine, theirs = ContactFactory(owner=operator), ContactFactory(owner=other_operator)
    response = operator_client.post(
        reverse("contacts:bulk_tag"), {"contact_ids": [mine.pk, theirs.pk], "tags": [tag.pk]}, follow=True
    )
    assert not ContactTag.objects.exists()
    messages = [str(m) for m in response.context["messages"]]
    assert len(messages) == 1 and str(theirs.pk) in messages[0]


def test_bulk_tag_with_only_forged_ids_tags_nobody(other_operator, operator_client):
    tag = TagFactory()
    theirs = ContactFactory(owner=other_operator)
    operator_client.post(reverse("contacts:bulk_tag"), {"contact_ids": [theirs.pk], "tags": [tag.pk]})
    assert not ContactTag.objects.exists()


def test_bulk_tag_ignores_an_offsite_next_url(operator, operator_client):
    contact = ContactFactory(owner=operator)
    response = operator_client.post(
        reverse("contacts:bulk_tag"),
        {"contact_ids": [contact.pk], "tags": [TagFactory().pk], "next": "https://evil.example/"},
    )
    assert response["Location"] == LIST_URL


def test_bulk_tag_without_a_tag_reports_the_problem(operator, operator_client):
    contact = ContactFactory(owner=operator)
    response = operator_client.post(reverse("contacts:bulk_tag"), {"contact_ids": [contact.pk]}, follow=True)
    assert not ContactTag.objects.exists()
    assert [m.level_tag for m in response.context["messages"]] == ["error"]


def test_bulk_tag_enforces_csrf(operator):
    client = logged_in(operator, enforce_csrf_checks=True)
    contact = ContactFactory(owner=operator)
    tag = TagFactory()
    data = {"contact_ids": [contact.pk], "tags": [tag.pk]}
    assert client.post(reverse("contacts:bulk_tag"), data).status_code == 403
    assert not ContactTag.objects.exists()

    page = client.get(LIST_URL)
    token = page.context["csrf_token"]
    assert client.post(reverse("contacts:bulk_tag"), {**data, "csrfmiddlewaretoken": token}).status_code == 302
    assert ContactTag.objects.filter(contact=contact, tag=tag).exists()


def test_bulk_tag_only_accepts_post(operator_client):
    assert operator_client.get(reverse("contacts:bulk_tag")).status_code == 405


# --- Export ---------------------------------------------------------------------------------------


# --- One contact ----------------------------------------------------------------------------------


def test_operator_gets_404_for_another_operators_contact(other_operator, operator_client):
    theirs = ContactFactory(owner=other_operator)
    assert operator_client.get(reverse("contacts:detail", args=[theirs.pk])).status_code == 404


def test_merged_contact_is_not_found(operator, operator_client):
    primary = ContactFactory(owner=operator)
    merged = ContactFactory(owner=operator, merged_into=primary)
    assert operator_client.get(reverse("contacts:detail", args=[merged.pk])).status_code == 404


@pytest.fixture
def rich_contact(operator, other_operator):
    """A contact with tags, purchases (one refunded), touchpoints, a community and referrals."""
    referrer = ContactFactory(owner=operator, name="推荐人")
    contact = ContactFactory(
        owner=operator, name="老客户", referred_by=referrer, occupation="教师", attributes={"宝宝月龄": "6"}
    )
    group = TagGroupFactory(name="意向度")
    TagFactory(group=group, name="强意向")
    ContactTag.objects.create(contact=contact, tag=TagFactory(group=group, name="已加微信"), tagged_by=operator)
    product = ProductFactory(name="婴儿奶粉")
    purchase_record(
        contact=contact,
        external_order_id="ORD-PAID",
        purchased_at=timezone.now() - dt.timedelta(days=3),
        amount=Decimal("298.00"),
        items=[{"product": product, "quantity": 2, "unit_price": Decimal("149.00")}],
    )
    refunded, _ = purchase_record(
        contact=contact, external_order_id="ORD-REFUND", purchased_at=timezone.now(), amount=Decimal("99.00")
    )
    purchase_refund(purchase=refunded)
    community = CommunityFactory(owner=operator, name="宝妈交流群")
    membership_join(community=community, contact=contact, staff=operator)
    touchpoint_record(contact=contact, medium="chat", kind="message_in", staff=operator)
    ContactFactory(owner=operator, name="被推荐的朋友", referred_by=contact)
    ContactFactory(owner=other_operator, name="别人名下的朋友", referred_by=contact)
    contact_facts_refresh(contact_ids=[contact.pk])
    contact.refresh_from_db()
    return contact


def test_contact_page_shows_the_whole_relationship(rich_contact, operator_client):
    response = operator_client.get(reverse("contacts:detail", args=[rich_contact.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "老客户",
        "教师",
        "宝宝月龄",
        "意向度",
        "已加微信",
        "ORD-PAID",
        "ORD-REFUND",
        "婴儿奶粉 × 2",
        "宝妈交流群",
    ):
        assert text in html, text
    assert html.count('data-testid="refunded"') == 1
    assert html.count('data-testid="purchase-row"') == 2
    assert html.count('data-testid="touchpoint"') == 2  # the join and the message
    assert "被推荐的朋友" in html
    assert "别人名下的朋友" not in html
    assert reverse("contacts:detail", args=[rich_contact.referred_by_id]) in html
    assert reverse("communities:detail", args=[rich_contact.memberships.get().community_id]) in html
    assert rich_contact.purchase_count == 1
    assert "298.00" in html


def test_contact_page_hides_a_referrer_owned_by_someone_else(operator, other_operator, operator_client):
    referrer = ContactFactory(owner=other_operator, name="别人的推荐人")
    contact = ContactFactory(owner=operator, referred_by=referrer)
    html = operator_client.get(reverse("contacts:detail", args=[contact.pk])).content.decode()
    assert "别人的推荐人" not in html
    assert reverse("contacts:detail", args=[referrer.pk]) not in html


def test_contact_page_query_count_does_not_grow(rich_contact, operator, operator_client, django_assert_max_num_queries):
    url = reverse("contacts:detail", args=[rich_contact.pk])
    with django_assert_max_num_queries(20) as few:
        operator_client.get(url)
    product = ProductFactory()
    for i in range(15):
        purchase_record(
            contact=rich_contact,
            external_order_id=f"MORE-{i}",
            purchased_at=timezone.now(),
            amount=Decimal("10"),
            items=[{"product": product}, {"product": ProductFactory()}],
        )
        touchpoint_record(contact=rich_contact, medium="wecom", kind="comment", staff=UserFactory())
        ContactTag.objects.create(contact=rich_contact, tag=TagFactory(group=TagGroupFactory()), tagged_by=operator)
        membership_join(community=CommunityFactory(owner=UserFactory()), contact=rich_contact)
        ContactFactory(owner=operator, referred_by=rich_contact)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = operator_client.get(url)
    assert response.content.decode().count('data-testid="purchase-row"') == 17


def test_tag_can_be_added_and_removed_on_the_contact_page(operator, operator_client):
    contact = ContactFactory(owner=operator)
    tag = TagFactory(name="生日月")
    url = reverse("contacts:tag_change", args=[contact.pk])
    operator_client.post(url, {"action": "add", "tag": tag.pk})
    assert contact.tag_links.get().tagged_by == operator
    assert "生日月" in operator_client.get(reverse("contacts:detail", args=[contact.pk])).content.decode()
    operator_client.post(url, {"action": "remove", "tag": tag.pk})
    assert not contact.tag_links.exists()


def test_tag_change_on_another_operators_contact_is_not_found(other_operator, operator_client):
    theirs = ContactFactory(owner=other_operator)
    response = operator_client.post(
        reverse("contacts:tag_change", args=[theirs.pk]), {"action": "add", "tag": TagFactory().pk}
    )
    assert response.status_code == 404
    assert not ContactTag.objects.exists()


# --- Import ---------------------------------------------------------------------------------------


def test_import_page_documents_the_columns(operator_client):
    html = operator_client.get(reverse("contacts:import")).content.decode()
    assert 'enctype="multipart/form-data"' in html
    for column in ("phone", "external_order_id", "amount"):
        assert f'<td class="mono">{column}</td>' in html


def test_import_upload_starts_a_job_and_redirects_to_its_progress(operator, operator_client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    upload = SimpleUploadedFile("contacts.csv", "name,phone\n李雷,13800138000\n".encode(), content_type="text/csv")
    response = operator_client.post(reverse("contacts:import"), {"kind": "contacts", "file": upload})
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("contacts:import_detail", args=[job.pk])
    assert job.created_by == operator


def test_import_rejects_a_file_that_is_not_csv(operator_client):
    upload = SimpleUploadedFile("contacts.xlsx", b"PK\x03\x04", content_type="application/octet-stream")
    response = operator_client.post(reverse("contacts:import"), {"kind": "contacts", "file": upload})
    assert response.status_code == 200
    assert response.context["form"].errors["file"]
    assert not ImportJob.objects.exists()


def _job(user, **values) -> ImportJob:
    values.setdefault("kind", ImportJob.Kind.CONTACTS)
    values.setdefault("file", "imports/test.csv")
    return ImportJob.objects.create(created_by=user, filename="test.csv", **values)


def test_import_progress_polls_while_running_and_stops_when_done(operator, operator_client):
    job = _job(operator, status=ImportJob.Status.RUNNING, total_rows=10, processed_rows=4)
    partial = operator_client.get(reverse("contacts:import_progress", args=[job.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in partial
    assert "40%" in partial
    assert "<html" not in partial

    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.DONE,
        processed_rows=10,
        created_count=7,
        updated_count=1,
        error_count=2,
        errors=[
            {"line": 3, "field": "phone", "message": "12345 is not a valid phone number."},
            {"line": 8, "field": "birthday", "message": "Enter a valid date."},
        ],
    )
    partial = operator_client.get(reverse("contacts:import_progress", args=[job.pk])).content.decode()
    assert "hx-trigger" not in partial
    assert "100%" in partial
    assert partial.count('data-testid="import-error-row"') == 2
    assert "12345 is not a valid phone number." in partial


def test_import_detail_page_is_a_full_page_with_the_polling_block(operator, operator_client):
    job = _job(operator)
    html = operator_client.get(reverse("contacts:import_detail", args=[job.pk])).content.decode()
    assert "<html" in html
    assert reverse("contacts:import_progress", args=[job.pk]) in html


def test_rejected_rows_download_as_csv(operator, operator_client):
    error = {"line": 2, "field": "phone", "message": "坏号码", "row": {"name": "=cmd|' /C calc'!A0", "phone": "123"}}
    job = _job(operator, status=ImportJob.Status.DONE, errors=[error])
    response = operator_client.get(reverse("contacts:import_errors", args=[job.pk]))
    lines = b"".join(response.streaming_content).decode("utf-8-sig").splitlines()
    assert lines[0].startswith("line,field,message,external_id,phone,")
    assert lines[1].startswith("2,phone,坏号码,,123,")
    assert "'=cmd" in lines[1]  # the original cell, defused against spreadsheet formulas


def test_operators_see_only_their_own_import_jobs(operator, other_operator, manager, operator_client):
    theirs = _job(other_operator)
    assert operator_client.get(reverse("contacts:import_detail", args=[theirs.pk])).status_code == 404
    assert operator_client.get(reverse("contacts:import_progress", args=[theirs.pk])).status_code == 404
    assert operator_client.get(reverse("contacts:import_errors", args=[theirs.pk])).status_code == 404
    assert logged_in(manager).get(reverse("contacts:import_detail", args=[theirs.pk])).status_code == 200


# --- Language -------------------------------------------------------------------------------------


def test_pages_render_in_chinese_by_default(operator_client):
    response = operator_client.get(LIST_URL)
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html
    assert "客户" in html
    assert "退出登录" in html


def test_language_switch_renders_english_and_back(operator_client):
    response = operator_client.post(reverse("set_language"), {"language": "en", "next": LIST_URL}, follow=True)
    html = response.content.decode()
    assert '<html lang="en">' in html
    assert ">Contacts<" in html and "Log out" in html
    response = operator_client.post(reverse("set_language"), {"language": "zh-hans", "next": LIST_URL}, follow=True)
    assert '<html lang="zh-hans">' in response.content.decode()


def test_stage_names_are_translated(operator, operator_client):
    ContactFactory(owner=operator)
    with translation.override("en"):
        assert str(Contact.Stage.LEAD.label) == "Lead"  # the source string is English
    assert "线索" in operator_client.get(LIST_URL).content.decode()
