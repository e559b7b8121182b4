"""CSV export of contact lists (contacts.exports) and the export_contacts command."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone, translation

from contacts.exports import contact_csv_rows
from contacts.imports import CONTACT_COLUMNS, import_csv
from contacts.models import Contact, ContactTag
from contacts.services import contact_opt_out
from tests.factories import ChannelFactory, ContactFactory, TagFactory, TagGroupFactory, UserFactory


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def export(queryset=None) -> str:
    return "".join(contact_csv_rows(Contact.objects.all() if queryset is None else queryset))


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


@pytest.fixture
def tagged(db):
    intent = TagGroupFactory(name="意向度", exclusive=True, sort_order=0)
    interest = TagGroupFactory(name="兴趣", sort_order=1)
    return {
        "strong": TagFactory(group=intent, name="强意向"),
        "skincare": TagFactory(group=interest, name="护肤"),
        "makeup": TagFactory(group=interest, name="彩妆"),
    }


def test_the_export_starts_with_a_bom_and_the_import_columns(db):
    text = export()

    assert text.startswith("\ufeff")
    assert text.removeprefix("\ufeff").splitlines()[0].split(",") == list(CONTACT_COLUMNS)


def test_every_column_of_a_contact_is_exported(db, tagged):
    owner = UserFactory(username="alice")
    contact = ContactFactory(
        external_id="C001",
        phone="+8613812345678",
        name="张三",
        email="zs@example.com",
        gender="male",
        birthday=dt.date(1990, 5, 6),
        region="广东",
        city="深圳",
        occupation="教师",
        channel=ChannelFactory(name="抖音"),
        acquired_at=dt.datetime(2024, 3, 1, 1, 30, tzinfo=dt.UTC),
        owner=owner,
        intent_level="high",
        marketing_consent=True,
        consent_source="wecom",
        wecom_external_userid="wmABC",
        wechat_unionid="oUNION1",
    )
    for tag in (tagged["makeup"], tagged["strong"], tagged["skincare"]):
        ContactTag.objects.create(contact=contact, tag=tag)

    [row] = rows_of(export())

    assert row == {
        "external_id": "C001",
        "phone": "+8613812345678",
        "name": "张三",
        "email": "zs@example.com",
        "gender": "male",
        "birthday": "1990-05-06",
        "region": "广东",
        "city": "深圳",
        "occupation": "教师",
        "channel": "抖音",
        "acquired_at": "2024-03-01T09:30:00+08:00",
        "owner": "alice",
        "intent_level": "high",
        "tags": "意向度:强意向|兴趣:彩妆|兴趣:护肤",
        "marketing_consent": "true",
        "consent_source": "wecom",
        "wecom_external_userid": "wmABC",
        "wechat_unionid": "oUNION1",
    }


def test_only_the_contacts_of_the_queryset_are_exported(db):
    ContactFactory(external_id="A", stage=Contact.Stage.CUSTOMER)
    ContactFactory(external_id="B", stage=Contact.Stage.LEAD)

    rows = rows_of(export(Contact.objects.filter(stage=Contact.Stage.CUSTOMER)))

    assert [row["external_id"] for row in rows] == ["A"]


def test_the_export_walks_the_contacts_in_chunks(db):
    ContactFactory.create_batch(7)

    pieces = list(contact_csv_rows(Contact.objects.all(), chunk_size=3))

    assert len(pieces) == 1 + 3  # header, then chunks of 3, 3 and 1
    assert len(rows_of("".join(pieces))) == 7


def test_the_number_of_queries_does_not_grow_with_the_contacts(db, tagged, django_assert_max_num_queries):
    for contact in ContactFactory.create_batch(30):
        ContactTag.objects.create(contact=contact, tag=tagged["skincare"])
        ContactTag.objects.create(contact=contact, tag=tagged["strong"])

    with django_assert_max_num_queries(2 * 4 + 1):  # contacts + tags per chunk of 10, one empty probe at most
        text = "".join(contact_csv_rows(Contact.objects.all(), chunk_size=10))

    assert len(rows_of(text)) == 30


def test_cells_that_a_spreadsheet_would_run_as_formulas_are_defused(db):
    ContactFactory(name='=HYPERLINK("http://evil")', occupation="+1", city="@x", region="-2")

    [row] = rows_of(export())

    assert row["name"] == '\'=HYPERLINK("http://evil")'
    assert (row["occupation"], row["city"], row["region"]) == ("'+1", "'@x", "'-2")


def test_an_export_imports_back_without_changing_anything(db, tagged):
    owner = UserFactory(username="alice")
    channel = ChannelFactory(name="抖音")
    full = ContactFactory(
        external_id="C001",
        name="=张三",
        email="zs@example.com",
        gender="female",
        birthday=dt.date(1990, 5, 6),
        city="深圳",
        occupation="教师",
        channel=channel,
        owner=owner,
        intent_level="high",
        marketing_consent=True,
        consent_source="wecom",
        consent_at=timezone.now(),
        wecom_external_userid="wmABC",
    )
    ContactTag.objects.create(contact=full, tag=tagged["strong"])
    ContactTag.objects.create(contact=full, tag=tagged["makeup"])
    ContactFactory(external_id=None, name="'quoted", channel=None, marketing_consent=False)
    contact_opt_out(contact=ContactFactory(external_id="C003", marketing_consent=True))
    before = list(Contact.objects.order_by("pk").values())
    links = list(ContactTag.objects.order_by("pk").values_list("contact_id", "tag_id"))

    report = import_csv(kind="contacts", fileobj=io.BytesIO(export().encode("utf-8")))

    assert (report.created, report.updated, report.unchanged, report.error_count) == (0, 0, 3, 0)
    assert list(Contact.objects.order_by("pk").values()) == before
    assert list(ContactTag.objects.order_by("pk").values_list("contact_id", "tag_id")) == links


def test_an_export_recreates_the_same_contacts_in_an_empty_book(db, tagged):
    UserFactory(username="alice")
    ChannelFactory(name="抖音")
    ContactFactory(
        external_id="C001",
        name="张三",
        owner=UserFactory(username="bob"),
        channel=ChannelFactory(name="门店"),
        consent_source="wecom",
    )
    contact = ContactFactory(
        external_id=None, phone="+8613912345678", name="李四", channel=None, marketing_consent=False
    )
    ContactTag.objects.create(contact=contact, tag=tagged["skincare"])
    text_before = export()
    Contact.objects.all().delete()

    report = import_csv(kind="contacts", fileobj=io.BytesIO(text_before.encode("utf-8")))

    assert report.created == 2
    assert export() == text_before


def test_a_wechat_unionid_is_imported_and_exported_back(db):
    text = "external_id,phone,wechat_unionid\nC001,13812345678,oAbC123unionid\n"

    report = import_csv(kind="contacts", fileobj=io.BytesIO(text.encode("utf-8")))

    assert report.created == 1
    assert Contact.objects.get().wechat_unionid == "oAbC123unionid"
    [row] = rows_of(export())
    assert (row["external_id"], row["wechat_unionid"]) == ("C001", "oAbC123unionid")


def test_the_export_command_writes_the_filtered_contacts(db, tmp_path):
    ContactFactory(external_id="A", channel=ChannelFactory(name="门店"), stage=Contact.Stage.CUSTOMER)
    ContactFactory(external_id="B", channel=ChannelFactory(name="抖音"), stage=Contact.Stage.CUSTOMER)
    ContactFactory(external_id="C", channel=ChannelFactory(name="门店"), stage=Contact.Stage.LEAD)
    path = tmp_path / "out.csv"

    call_command("export_contacts", "-o", str(path), "--stage", "customer", "--channel", "门店", stderr=io.StringIO())

    assert [row["external_id"] for row in rows_of(path.read_text(encoding="utf-8"))] == ["A"]


def test_the_export_command_limits_an_operator_to_their_own_contacts(db, operator, other_operator):
    ContactFactory(external_id="MINE", owner=operator)
    ContactFactory(external_id="THEIRS", owner=other_operator)
    out = io.StringIO()

    call_command("export_contacts", "-o", "-", "--as", operator.username, stdout=out)

    assert [row["external_id"] for row in rows_of(out.getvalue())] == ["MINE"]
