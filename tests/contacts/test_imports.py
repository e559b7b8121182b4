"""CSV import of contacts and purchases (contacts.imports), its management commands and its jobs.

Every test that imports runs once per write path available on the database: on PostgreSQL both the COPY
path and the portable bulk_create/bulk_update path, which must give identical results."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone, translation

from contacts import imports
from contacts.imports import ImportFileError, import_csv
from contacts.models import Contact, ContactTag, ImportJob, Purchase, PurchaseItem
from contacts.services import contact_facts_refresh, contact_opt_out
from scrm import roles
from tests.factories import ChannelFactory, ContactFactory, ProductFactory, TagFactory, TagGroupFactory, UserFactory

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
CONTACT_HEADER = (
    "external_id,phone,name,email,gender,birthday,region,city,occupation,channel,acquired_at,owner,"
    "intent_level,tags,marketing_consent,consent_source,wecom_external_userid"
)


def _postgres() -> bool:
    return "postgresql" in django_settings.DATABASES["default"]["ENGINE"]


def pytest_generate_tests(metafunc):
    if "write_path" in metafunc.fixturenames:
        metafunc.parametrize("write_path", ["copy", "portable"] if _postgres() else ["portable"])


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def run(db, write_path):
    """Import CSV text and return the report."""

    def run(text, *, kind="contacts", actor=None, encoding="utf-8", batch_size=imports.BATCH_SIZE, bom=False):
        data = text.encode(encoding)
        if bom:
            data = b"\xef\xbb\xbf" + data
        return import_csv(
            kind=kind,
            fileobj=io.BytesIO(data),
            actor=actor,
            batch_size=batch_size,
            use_copy=write_path == "copy",
        )

    return run


def csv_text(*lines: str, header: str = CONTACT_HEADER) -> str:
    return "\n".join([header, *lines]) + "\n"


def problems(report) -> list[tuple[int, str]]:
    return [(error["line"], error["field"]) for error in report.errors]


@pytest.fixture
def reference(db):
    intent = TagGroupFactory(name="意向度", exclusive=True)
    interest = TagGroupFactory(name="兴趣")
    return {
        "channel": ChannelFactory(name="抖音信息流"),
        "strong": TagFactory(group=intent, name="强意向"),
        "weak": TagFactory(group=intent, name="弱意向"),
        "skincare": TagFactory(group=interest, name="护肤"),
        "makeup": TagFactory(group=interest, name="彩妆"),
        "alice": UserFactory(username="alice", role=roles.OPERATOR),
    }


# --- Contacts: creating and matching ----------------------------------------------------------


def test_a_good_file_creates_contacts_with_every_column(run, reference):
    report = run(
        csv_text(
            "C001,138 1234 5678,张三,zs@example.com,男,1990-05-06,广东,深圳,教师,抖音信息流,2024-03-01 09:30,alice,"
            "high,意向度:强意向|兴趣:护肤,是,wecom_welcome,wmABC",
            ",+86 139-1234-5678,李四,,female,,上海,上海,,,2024-03-02,,,,false,,",
        )
    )

    assert (report.created, report.updated, report.unchanged, report.error_count) == (2, 0, 0, 0)
    zhang = Contact.objects.get(external_id="C001")
    assert zhang.phone == "+8613812345678"
    assert (zhang.name, zhang.email, zhang.gender, zhang.birthday) == (
        "张三",
        "zs@example.com",
        "male",
        dt.date(1990, 5, 6),
    )
    assert (zhang.region, zhang.city, zhang.occupation, zhang.intent_level) == ("广东", "深圳", "教师", "high")
    assert zhang.channel == reference["channel"]
    assert zhang.owner == reference["alice"]
    assert zhang.acquired_at == dt.datetime(2024, 3, 1, 9, 30, tzinfo=SHANGHAI)
    assert zhang.wecom_external_userid == "wmABC"
    assert zhang.marketing_consent and zhang.consent_source == "wecom_welcome" and zhang.consent_at is not None
    assert set(zhang.tags.values_list("name", flat=True)) == {"强意向", "护肤"}
    assert set(zhang.tag_links.values_list("source", flat=True)) == {ContactTag.Source.IMPORT}
    li = Contact.objects.get(phone="+8613912345678")
    assert li.external_id is None and li.owner is None and not li.marketing_consent
    assert li.acquired_at == dt.datetime(2024, 3, 2, tzinfo=SHANGHAI)


def test_only_the_key_columns_are_needed(run, db):
    report = run("phone\n13812345678\n")

    assert report.created == 1
    contact = Contact.objects.get()
    assert contact.gender == "unknown" and contact.intent_level == "none" and contact.stage == "lead"
    assert contact.acquired_at is not None


def test_a_row_with_a_known_external_id_updates_that_contact(run, reference):
    contact = ContactFactory(external_id="C001", name="旧名字", phone="+8613812345678", city="广州")

    report = run(csv_text("C001,,新名字,,,,,北京,,,,,,,,,"))

    assert (report.created, report.updated) == (0, 1)
    contact.refresh_from_db()
    assert (contact.name, contact.city, contact.phone) == ("新名字", "北京", "+8613812345678")


def test_keys_with_quotes_backslashes_and_commas_match_on_the_next_import(run, db):
    text = 'external_id,name\n"a""b\\c,{d} e",张三\n'
    run(text)

    report = run(text.replace("张三", "李四"))

    assert (report.created, report.updated) == (0, 1)
    assert Contact.objects.values_list("external_id", "name").get() == ('a"b\\c,{d} e', "李四")


def test_a_row_without_external_id_matches_by_normalised_phone(run, reference):
    contact = ContactFactory(phone="+8613812345678", name="旧")

    report = run(csv_text(",+86 138-1234-5678,新,,,,,,,,,,,,,,"))

    assert (report.created, report.updated) == (0, 1)
    contact.refresh_from_db()
    assert contact.name == "新"


def test_a_phone_match_gives_the_contact_its_new_external_id(run, reference):
    contact = ContactFactory(phone="+8613812345678", external_id=None)

    report = run(csv_text("CRM-9,13812345678,,,,,,,,,,,,,,,"))

    assert report.updated == 1
    contact.refresh_from_db()
    assert contact.external_id == "CRM-9"


def test_a_row_can_change_the_phone_of_the_contact_its_external_id_names(run, reference):
    contact = ContactFactory(external_id="C001", phone="+8613812345678")

    run(csv_text("C001,13912345678,,,,,,,,,,,,,,,"))

    contact.refresh_from_db()
    assert contact.phone == "+8613912345678"


def test_empty_cells_keep_the_stored_values(run, reference):
    contact = ContactFactory(
        external_id="C001", name="张三", email="a@b.cn", region="上海", birthday=dt.date(1990, 1, 1)
    )

    report = run(csv_text("C001,,,,,,,,,,,,,,,,"))

    assert report.unchanged == 1
    contact.refresh_from_db()
    assert (contact.name, contact.email, contact.region, contact.birthday) == (
        "张三",
        "a@b.cn",
        "上海",
        dt.date(1990, 1, 1),
    )


def test_importing_the_same_file_again_changes_nothing(run, reference):
    text = csv_text(
        "C001,13812345678,张三,zs@example.com,男,1990-05-06,广东,深圳,教师,抖音信息流,2024-03-01 09:30,alice,"
        "high,意向度:强意向|兴趣:护肤,是,wecom_welcome,wmABC",
        ",13912345678,李四,,,,,,,,,,,兴趣:彩妆,0,,",
    )
    run(text)
    before = {c["id"]: c for c in Contact.objects.values()}
    links_before = set(ContactTag.objects.values_list("pk", "contact_id", "tag_id"))

    report = run(text)

    assert (report.created, report.updated, report.unchanged, report.error_count) == (0, 0, 2, 0)
    assert {c["id"]: c for c in Contact.objects.values()} == before  # updated_at included
    assert set(ContactTag.objects.values_list("pk", "contact_id", "tag_id")) == links_before


def test_naive_times_are_shanghai_time_and_offsets_are_kept(run, db):
    run(
        csv_text(
            "A,13812345678,,,,,,,,,2024-03-01T23:30:00,,,,,,",
            "B,13812345679,,,,,,,,,2024-03-01T23:30:00+00:00,,,,,,",
            "C,13812345670,,,,,,,,,2024/3/1 8:05,,,,,,",
        )
    )

    assert Contact.objects.get(external_id="A").acquired_at == dt.datetime(2024, 3, 1, 15, 30, tzinfo=dt.UTC)
    assert Contact.objects.get(external_id="B").acquired_at == dt.datetime(2024, 3, 1, 23, 30, tzinfo=dt.UTC)
    assert Contact.objects.get(external_id="C").acquired_at == dt.datetime(2024, 3, 1, 8, 5, tzinfo=SHANGHAI)


def test_imported_contacts_have_current_facts_and_stage(run, db):
    run(csv_text("A,13812345678,,,,,,,,,,,,,,,", "B,13812345679,,,,,,,,,,,,,,,"))
    before = list(Contact.objects.order_by("pk").values("stage", "purchase_count", "total_spent", "referral_count"))

    contact_facts_refresh(contact_ids=Contact.objects.values_list("pk", flat=True))

    assert (
        list(Contact.objects.order_by("pk").values("stage", "purchase_count", "total_spent", "referral_count"))
        == before
    )


# --- Contacts: rejected rows --------------------------------------------------------------------


def test_a_bad_phone_rejects_the_row_and_writes_nothing_of_it(run, reference):
    report = run(csv_text("C001,12345,张三,,,,,,,,,,,兴趣:护肤,,,", "C002,13812345678,李四,,,,,,,,,,,,,,"))

    assert problems(report) == [(2, "phone")]
    assert report.error_count == 1 and report.created == 1
    assert "12345" in report.errors[0]["message"]
    assert list(Contact.objects.values_list("external_id", flat=True)) == ["C002"]
    assert not ContactTag.objects.exists()


def test_bad_dates_are_reported_with_their_field(run, db):
    report = run(
        csv_text("C001,13812345678,,,,1990-02-30,,,,,yesterday,,,,,,", "C002,13812345679,,,,2999-01-01,,,,,,,,,,,")
    )

    assert problems(report) == [(2, "birthday"), (2, "acquired_at"), (3, "birthday")]
    assert not Contact.objects.exists()


def test_every_problem_of_a_row_is_reported_together(run, reference):
    report = run(
        csv_text("C001,13812345678,,not-an-email,robot,,,,,no such channel,,nobody,extreme,兴趣:旅行|随便,maybe,,")
    )

    assert report.error_count == 1
    assert problems(report) == [
        (2, "email"),
        (2, "gender"),
        (2, "channel"),
        (2, "owner"),
        (2, "intent_level"),
        (2, "tags"),
        (2, "marketing_consent"),
    ]
    messages = {error["field"]: error["message"] for error in report.errors}
    assert "no such channel" in messages["channel"]
    assert "nobody" in messages["owner"]


def test_unknown_tags_are_rejected_not_created(run, reference):
    report = run(csv_text("C001,13812345678,,,,,,,,,,,,兴趣:旅行,,,"))

    assert problems(report) == [(2, "tags")]
    assert "兴趣:旅行" in report.errors[0]["message"]
    assert not Contact.objects.exists()


def test_an_inactive_owner_is_rejected(run, reference):
    UserFactory(username="gone", is_active=False)

    report = run(csv_text("C001,13812345678,,,,,,,,,,gone,,,,,"))

    assert problems(report) == [(2, "owner")]


def test_a_row_without_external_id_or_phone_is_rejected(run, db):
    report = run(csv_text(",,张三,,,,,,,,,,,,,,"))

    assert problems(report) == [(2, "external_id")]
    assert not Contact.objects.exists()


def test_a_value_longer_than_the_column_is_rejected(run, db):
    report = run(csv_text(f"C001,13812345678,{'名' * 101},,,,,,,,,,,,,,"))

    assert problems(report) == [(2, "name")]


def test_a_row_with_more_cells_than_the_header_is_rejected(run, db):
    report = run("phone,name\n13812345678,张三,extra\n13812345679,李四\n")

    assert problems(report) == [(2, "row")]
    assert Contact.objects.count() == 1


def test_a_later_row_with_the_same_external_id_is_a_duplicate_of_the_first(run, db):
    report = run(csv_text("C001,13812345678,第一,,,,,,,,,,,,,,", "C001,13812345679,第二,,,,,,,,,,,,,,"))

    assert problems(report) == [(3, "external_id")]
    assert report.errors[0]["message"] == "Duplicate of line 2."
    assert Contact.objects.get().name == "第一"


def test_a_later_row_with_the_same_phone_is_a_duplicate_of_the_first(run, db):
    report = run(csv_text(",13812345678,第一,,,,,,,,,,,,,,", ",+8613812345678,第二,,,,,,,,,,,,,,"))

    assert problems(report) == [(3, "phone")]
    assert report.errors[0]["message"] == "Duplicate of line 2."


def test_rows_reaching_the_same_contact_by_different_keys_are_duplicates(run, db):
    ContactFactory(external_id="C001", phone="+8613812345678")

    report = run(csv_text("C001,,甲,,,,,,,,,,,,,,", ",13812345678,乙,,,,,,,,,,,,,,"))

    assert problems(report) == [(3, "phone")]
    assert report.errors[0]["message"] == "Duplicate of line 2."


@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_duplicates_are_found_wherever_the_batches_end(run, db, batch_size):
    text = csv_text(
        "C001,13812345678,,,,,,,,,,,,,,,wm1",
        "C002,13812345679,,,,,,,,,,,,,,,",
        "C003,13812345678,,,,,,,,,,,,,,,",
        "C004,,,,,,,,,,,,,,,,wm1",
        "C002,,,,,,,,,,,,,,,,",
    )

    report = run(text, batch_size=batch_size)

    assert problems(report) == [(4, "phone"), (5, "wecom_external_userid"), (6, "external_id")]
    assert {e["message"] for e in report.errors} == {"Duplicate of line 2.", "Duplicate of line 3."}
    assert report.created == 2


def test_a_rejected_row_does_not_block_a_later_row_with_the_same_key(run, db):
    report = run(csv_text("C001,13812345678,,,,bad-date,,,,,,,,,,,", "C001,13812345678,,,,,,,,,,,,,,,"))

    assert problems(report) == [(2, "birthday")]
    assert report.created == 1


def test_a_phone_that_belongs_to_another_contact_is_rejected(run, db):
    ContactFactory(external_id="C001", phone="+8613812345678")
    ContactFactory(external_id="C002", phone="+8613812345679")

    report = run(csv_text("C002,13812345678,,,,,,,,,,,,,,,", "C003,13812345678,,,,,,,,,,,,,,,"))

    assert problems(report) == [(2, "phone"), (3, "phone")]
    assert Contact.objects.get(external_id="C002").phone == "+8613812345679"
    assert not Contact.objects.filter(external_id="C003").exists()


def test_a_wecom_id_that_belongs_to_another_contact_is_rejected(run, db):
    ContactFactory(external_id="C001", wecom_external_userid="wm1")

    report = run(csv_text("C002,13812345678,,,,,,,,,,,,,,,wm1"))

    assert problems(report) == [(2, "wecom_external_userid")]


def test_a_wechat_unionid_that_belongs_to_another_contact_is_rejected(run, db):
    ContactFactory(external_id="C001", wechat_unionid="oUNION1")

    report = run("external_id,phone,wechat_unionid\nC002,13812345678,oUNION1\nC003,13812345679,oUNION2\n")

    assert problems(report) == [(2, "wechat_unionid")]
    assert report.errors[0]["message"] == "This WeChat unionid belongs to another contact."
    assert Contact.objects.get(external_id="C003").wechat_unionid == "oUNION2"


def test_an_external_id_given_by_a_phone_match_makes_a_later_row_with_it_a_duplicate(run, db):
    ContactFactory(external_id=None, phone="+8613812345678")

    report = run("external_id,phone,name\nE1,13812345678,甲\nE1,,乙\n")

    assert problems(report) == [(3, "external_id")]
    assert report.errors[0]["message"] == "Duplicate of line 2."
    assert list(Contact.objects.values_list("external_id", "name")) == [("E1", "甲")]


def test_every_editable_contact_field_is_an_import_column():
    """One list governs what an import writes: contacts.services.CONTACT_EDITABLE_FIELDS."""
    from contacts.imports.contacts import EXTRA_COLUMNS, NOT_IMPORTED_FIELDS
    from contacts.services import CONTACT_EDITABLE_FIELDS

    assert set(imports.IMPORTED_FIELDS) == set(CONTACT_EDITABLE_FIELDS) - NOT_IMPORTED_FIELDS
    assert set(imports.CONTACT_COLUMNS) == {*imports.IMPORTED_FIELDS, *EXTRA_COLUMNS}


def test_a_phone_moved_away_by_an_earlier_row_cannot_be_reused_in_the_same_file(run, db):
    ContactFactory(external_id="C001", phone="+8613812345678")

    report = run(csv_text("C001,13912345678,,,,,,,,,,,,,,,", "C002,13812345678,,,,,,,,,,,,,,,"), batch_size=1)

    assert problems(report) == [(3, "phone")]
    assert "Line 2 of this file" in report.errors[0]["message"]


def test_line_numbers_count_blank_lines_and_multiline_cells(run, db):
    report = run('phone,name\n13812345678,"two\nlines"\n\n12345,bad\n')

    assert problems(report) == [(5, "phone")]


# --- Contacts: operators ------------------------------------------------------------------------


def test_an_operator_owns_the_contacts_they_import(run, operator):
    run(csv_text("C001,13812345678,,,,,,,,,,,,,,,"), actor=operator)

    assert Contact.objects.get().owner == operator


def test_an_operator_updates_their_own_contacts(run, operator):
    contact = ContactFactory(external_id="C001", owner=operator, name="旧")

    report = run(csv_text("C001,,新,,,,,,,,,,,,,,"), actor=operator)

    assert report.updated == 1
    contact.refresh_from_db()
    assert contact.name == "新"


def test_an_operator_cannot_import_over_another_owners_contact(run, operator, other_operator):
    contact = ContactFactory(external_id="C001", phone="+8613812345678", owner=other_operator, name="别人的")

    report = run(csv_text("C001,,改,,,,,,,,,,,,,,", ",13812345678,改,,,,,,,,,,,,,,"), actor=operator)

    assert problems(report) == [(2, "external_id"), (3, "phone")]
    assert all(other_operator.username not in e["message"] for e in report.errors)
    contact.refresh_from_db()
    assert contact.name == "别人的"


def test_an_operator_cannot_give_contacts_to_someone_else(run, operator, other_operator):
    report = run(csv_text(f"C001,13812345678,,,,,,,,,,{other_operator.username},,,,,"), actor=operator)

    assert problems(report) == [(2, "owner")]
    assert not Contact.objects.exists()


def test_a_manager_can_assign_owners(run, manager, operator):
    run(csv_text(f"C001,13812345678,,,,,,,,,,{operator.username},,,,,"), actor=manager)

    assert Contact.objects.get().owner == operator


# --- Contacts: tags and consent -----------------------------------------------------------------


def test_tags_are_added_and_an_exclusive_group_keeps_one_tag(run, reference):
    contact = ContactFactory(external_id="C001")
    ContactTag.objects.create(contact=contact, tag=reference["weak"])
    ContactTag.objects.create(contact=contact, tag=reference["makeup"])

    report = run(csv_text("C001,,,,,,,,,,,,,意向度:强意向|兴趣:护肤,,,"))

    assert report.updated == 1
    assert set(contact.tags.values_list("name", flat=True)) == {"强意向", "护肤", "彩妆"}


def test_two_tags_of_an_exclusive_group_in_one_row_are_rejected(run, reference):
    report = run(csv_text("C001,13812345678,,,,,,,,,,,,意向度:强意向|意向度:弱意向,,,"))

    assert problems(report) == [(2, "tags")]


def test_tags_the_contact_already_has_leave_it_unchanged(run, reference):
    contact = ContactFactory(external_id="C001")
    ContactTag.objects.create(contact=contact, tag=reference["strong"])

    report = run(csv_text("C001,,,,,,,,,,,,,意向度:强意向,,,"))

    assert report.unchanged == 1


def test_consent_false_withdraws_the_consent(run, db):
    contact = ContactFactory(external_id="C001", marketing_consent=True)

    run(csv_text("C001,,,,,,,,,,,,,,否,,"))

    contact.refresh_from_db()
    assert not contact.marketing_consent


def test_an_import_never_resubscribes_a_contact_who_opted_out(run, db):
    contact = contact_opt_out(contact=ContactFactory(external_id="C001", marketing_consent=True))

    report = run(csv_text("C001,,,,,,,,,,,,,,true,wecom,"))

    assert report.unchanged == 1
    contact.refresh_from_db()
    assert not contact.marketing_consent and contact.opted_out_at is not None


def test_consent_is_recorded_once_with_its_first_source(run, db):
    run(csv_text("C001,13812345678,,,,,,,,,,,,,1,mini_program,"))
    first = Contact.objects.get()

    report = run(csv_text("C001,13812345678,,,,,,,,,,,,,1,offline_form,"))

    assert report.unchanged == 1
    assert Contact.objects.values_list("consent_source", "consent_at").get() == ("mini_program", first.consent_at)


# --- Header and encoding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, fragment",
    [
        ("phone,name,nickname", "Unknown column(s): nickname"),
        ("name,city", "Required column missing: external_id or phone"),
        ("phone,name,name", "Column(s) named more than once: name"),
        ("phone,,name", "have no name"),
    ],
)
def test_a_bad_header_fails_the_whole_import_and_writes_nothing(run, db, header, fragment):
    with pytest.raises(ImportFileError, match=re.escape(fragment)):
        run(f"{header}\n13812345678,张三,x\n")

    assert not Contact.objects.exists()


def test_an_empty_file_is_refused(run, db):
    with pytest.raises(ImportFileError, match="empty"):
        run("")


def test_header_names_ignore_case_and_spaces(run, db):
    report = run(" Phone , NAME \n13812345678,张三\n")

    assert report.created == 1


def test_a_gbk_file_from_excel_is_read(run, db):
    report = run("phone,name,region\n13812345678,张三,广东\n", encoding="gbk")

    assert report.encoding == "gb18030"
    assert Contact.objects.values_list("name", "region").get() == ("张三", "广东")


def test_a_utf8_file_with_a_bom_is_read(run, db):
    report = run("phone,name\n13812345678,张三\n", bom=True)

    assert report.created == 1
    assert Contact.objects.get().name == "张三"


def test_excels_unicode_text_export_is_read(run, db):
    report = run("phone\tname\n13812345678\t张三\n", encoding="utf-16")  # UTF-16 with BOM, tab-separated

    assert report.created == 1
    assert Contact.objects.get().name == "张三"


def test_a_semicolon_separated_file_is_read(run, db):
    report = run("phone;name\n13812345678;张三\n")

    assert Contact.objects.get().name == "张三" and report.created == 1


def test_a_file_whose_header_is_neither_utf8_nor_gbk_is_refused(run, db):
    with pytest.raises(ImportFileError, match="neither GBK nor UTF-8"):
        import_csv(kind="contacts", fileobj=io.BytesIO(b"\xfd\xff\xfd\xff\n13812345678\n"))


def test_a_line_in_neither_utf8_nor_gbk_is_rejected_with_its_line(run, db):
    report = import_csv(kind="contacts", fileobj=io.BytesIO(b"phone\n\xff\xfe\xfd\xff\n"))

    assert problems(report) == [(2, "row")]
    assert "Line 2" in report.errors[0]["message"] and "neither GBK nor UTF-8" in report.errors[0]["message"]


def test_a_broken_csv_line_refuses_the_whole_file_before_anything_is_written(run, db):
    text = 'phone,name\n13812345678,张三\n13812345679,"' + "长" * 200_000 + '"\n13812345670,王五\n'

    with pytest.raises(ImportFileError, match="Line 3 is not valid CSV.*Nothing was imported"):
        run(text, batch_size=1)

    assert not Contact.objects.exists()


def test_a_failing_write_stops_the_parsing_too(run, db, monkeypatch):
    def fail(self, rows):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(imports._ContactImporter, "write", fail)

    with pytest.raises(RuntimeError, match="database on fire"):
        run(csv_text(*[f"C{i},,,,,,,,,,,,,,,," for i in range(100)]), batch_size=1)


def test_a_batch_that_collides_with_a_concurrent_write_is_resolved_again(run, db, monkeypatch):
    ContactFactory(external_id="C001", phone="+8613812345678", name="旧")
    fetch = imports._ContactImporter._fetch
    calls = []

    def stale_first_read(self, keys):  # as if C001 was created just after our read
        calls.append(keys)
        return [] if len(calls) == 1 else fetch(self, keys)

    monkeypatch.setattr(imports._ContactImporter, "_fetch", stale_first_read)

    report = run(csv_text("C001,13812345678,新,,,,,,,,,,,,,,"))

    assert len(calls) == 2
    assert (report.created, report.updated, report.error_count) == (0, 1, 0)
    assert Contact.objects.get().name == "新"


# --- Both write paths ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_copy_path_and_the_portable_path_give_identical_results(db, reference):
    ContactFactory(external_id="C009", phone="+8613900000001", name="旧", owner=reference["alice"])
    text = csv_text(
        "C001,138 1234 5678,张三,zs@example.com,男,1990-05-06,广东,深圳,教师,抖音信息流,2024-03-01 09:30,alice,"
        "high,意向度:强意向|兴趣:护肤,是,wecom_welcome,wmABC",
        ",13912345678,李四,,,,,,,,,,,兴趣:彩妆,0,,",
        "C009,13900000001,新,,female,,,,,,,,low,意向度:弱意向,,,",
        "C002,bad,,,,,,,,,,,,,,,",
    )
    # Times set to "now" by the import differ between the two runs.
    now_fields = ("id", "created_at", "updated_at", "consent_at", "acquired_at")
    fields = [f.attname for f in Contact._meta.concrete_fields if f.attname not in now_fields]

    def snapshot():
        rows = sorted(Contact.objects.values_list(*fields), key=str)
        links = sorted(
            ContactTag.objects.values_list("contact__external_id", "contact__phone", "tag_id", "source"), key=str
        )
        return rows, links

    results = []
    for use_copy in (True, False):
        sid = connection.savepoint()
        report = import_csv(kind="contacts", fileobj=io.BytesIO(text.encode()), use_copy=use_copy)
        results.append(((report.created, report.updated, report.unchanged, report.errors), snapshot()))
        connection.savepoint_rollback(sid)

    (copy_outcome, (copy_rows, copy_links)), (portable_outcome, (portable_rows, portable_links)) = results
    assert copy_outcome == portable_outcome
    assert copy_rows == portable_rows
    assert copy_links == portable_links


# --- Purchases ----------------------------------------------------------------------------------

PURCHASE_HEADER = "external_order_id,contact_external_id,contact_phone,purchased_at,amount,status,items,source"


@pytest.fixture
def buyers(db):
    return {
        "zhang": ContactFactory(external_id="C001", phone="+8613812345678"),
        "li": ContactFactory(external_id="C002", phone="+8613812345679"),
    }


def test_purchases_are_recorded_and_the_buyers_facts_and_stage_follow(run, buyers):
    sku = ProductFactory(sku="SKU-1", price=Decimal("50.00"))
    report = run(
        csv_text(
            "O-1,C001,,2024-03-01 10:00,100.00,paid,SKU-1*2,天猫",
            "O-2,C001,,2024-04-01 10:00,¥1,299.50,,,",
            "O-3,,138 1234 5679,2024-05-01,20,,,",
            header=PURCHASE_HEADER,
        ).replace("¥1,299.50", '"¥1,299.50"'),
        kind="purchases",
    )

    assert (report.created, report.error_count) == (3, 0)
    zhang = Contact.objects.get(pk=buyers["zhang"].pk)
    assert (zhang.purchase_count, zhang.total_spent, zhang.stage) == (2, Decimal("1399.50"), Contact.Stage.REPEAT)
    assert zhang.first_purchase_at == dt.datetime(2024, 3, 1, 10, tzinfo=SHANGHAI)
    li = Contact.objects.get(pk=buyers["li"].pk)
    assert (li.purchase_count, li.stage) == (1, Contact.Stage.CUSTOMER)
    order = Purchase.objects.get(external_order_id="O-1")
    assert (order.source, order.status) == ("天猫", "paid")
    assert list(PurchaseItem.objects.values_list("product_id", "quantity", "unit_price")) == [
        (sku.pk, 2, Decimal("50.00"))
    ]


def test_importing_the_same_purchases_again_changes_nothing(run, buyers):
    text = csv_text(
        "O-1,C001,,2024-03-01 10:00,100.00,paid,,", "O-2,C002,,2024-03-02,50,refunded,,", header=PURCHASE_HEADER
    )
    run(text, kind="purchases")
    before = list(Purchase.objects.order_by("pk").values())
    facts = list(Contact.objects.order_by("pk").values("purchase_count", "total_spent", "stage", "updated_at"))

    report = run(text, kind="purchases")

    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
    assert list(Purchase.objects.order_by("pk").values()) == before
    assert list(Contact.objects.order_by("pk").values("purchase_count", "total_spent", "stage", "updated_at")) == facts


def test_a_refunded_row_for_a_recorded_order_applies_the_refund(run, buyers):
    run(csv_text("O-1,C001,,2024-03-01 10:00,100.00,paid,,", header=PURCHASE_HEADER), kind="purchases")

    report = run(csv_text("O-1,C001,,2024-03-01 10:00,100.00,已退款,,", header=PURCHASE_HEADER), kind="purchases")

    assert report.updated == 1
    purchase = Purchase.objects.get()
    assert purchase.status == Purchase.Status.REFUNDED and purchase.refunded_at is not None
    zhang = Contact.objects.get(pk=buyers["zhang"].pk)
    assert (zhang.purchase_count, zhang.total_spent, zhang.stage) == (0, Decimal("0"), Contact.Stage.LEAD)


def test_a_paid_row_does_not_undo_a_refund(run, buyers):
    run(csv_text("O-1,C001,,2024-03-01 10:00,100.00,refunded,,", header=PURCHASE_HEADER), kind="purchases")

    report = run(csv_text("O-1,C001,,2024-03-01 10:00,100.00,paid,,", header=PURCHASE_HEADER), kind="purchases")

    assert report.unchanged == 1
    assert Purchase.objects.get().status == Purchase.Status.REFUNDED


def test_a_recorded_order_with_another_amount_is_rejected_as_a_conflict(run, buyers):
    run(csv_text("O-1,C001,,2024-03-01 10:00,100.00,,,", header=PURCHASE_HEADER), kind="purchases")

    report = run(csv_text("O-1,C001,,2024-03-01 10:00,120.00,,,", header=PURCHASE_HEADER), kind="purchases")

    assert problems(report) == [(2, "amount")]
    assert "100.00" in report.errors[0]["message"]
    assert Purchase.objects.get().amount == Decimal("100.00")


def test_a_recorded_order_for_another_contact_is_rejected_as_a_conflict(run, buyers):
    run(csv_text("O-1,C001,,2024-03-01 10:00,100.00,,,", header=PURCHASE_HEADER), kind="purchases")

    report = run(csv_text("O-1,C002,,2024-03-01 10:00,100.00,,,", header=PURCHASE_HEADER), kind="purchases")

    assert problems(report) == [(2, "contact_external_id")]
    assert Purchase.objects.get().contact_id == buyers["zhang"].pk


def test_a_later_row_with_the_same_order_id_is_a_duplicate(run, buyers):
    report = run(
        csv_text(
            "O-1,C001,,2024-03-01 10:00,100.00,,,",
            "O-1,C001,,2024-03-01 10:00,100.00,refunded,,",
            header=PURCHASE_HEADER,
        ),
        kind="purchases",
        batch_size=1,
    )

    assert problems(report) == [(3, "external_order_id")]
    assert Purchase.objects.get().status == Purchase.Status.PAID


def test_bad_purchase_rows_are_reported_by_field(run, buyers):
    ProductFactory(sku="SKU-1")
    report = run(
        csv_text(
            "O-1,C404,,2024-03-01,10,,,",
            "O-2,,,2024-03-01,10,,,",
            "O-3,C001,,someday,-5,lost,SKU-1*0,",
            "O-4,C001,,2024-03-01,10.001,,NOPE*1,",
            ",C001,,2024-03-01,10,,,",
            header=PURCHASE_HEADER,
        ),
        kind="purchases",
    )

    assert problems(report) == [
        (2, "contact_external_id"),
        (3, "contact_external_id"),
        (4, "purchased_at"),
        (4, "amount"),
        (4, "status"),
        (4, "items"),
        (5, "amount"),
        (6, "external_order_id"),
    ]
    assert report.error_count == 5
    assert not Purchase.objects.exists()


def test_an_unknown_sku_rejects_the_row(run, buyers):
    report = run(csv_text("O-1,C001,,2024-03-01,10,,NOPE*1,", header=PURCHASE_HEADER), kind="purchases")

    assert problems(report) == [(2, "items")]
    assert "NOPE" in report.errors[0]["message"]


def test_an_operator_imports_purchases_only_for_their_own_contacts(run, operator, other_operator):
    ContactFactory(external_id="C001", owner=operator)
    ContactFactory(external_id="C002", owner=other_operator)

    report = run(
        csv_text("O-1,C001,,2024-03-01,10,,,", "O-2,C002,,2024-03-01,10,,,", header=PURCHASE_HEADER),
        kind="purchases",
        actor=operator,
    )

    assert problems(report) == [(3, "contact_external_id")]
    assert report.errors[0]["message"] == "No contact you can see has this external ID."
    assert list(Purchase.objects.values_list("external_order_id", flat=True)) == ["O-1"]


def test_a_purchases_file_without_an_amount_column_is_refused(run, db):
    with pytest.raises(ImportFileError, match="amount"):
        run("external_order_id,contact_phone,purchased_at\nO-1,13812345678,2024-03-01\n", kind="purchases")


# --- Management commands ------------------------------------------------------------------------


def _write(tmp_path, text: str, name: str = "in.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_import_command_prints_a_summary(db, tmp_path):
    out = io.StringIO()

    call_command(
        "import_contacts",
        _write(tmp_path, csv_text("C001,13812345678,张三,,,,,,,,,,,,,,")),
        stdout=out,
        stderr=io.StringIO(),
    )

    assert "1 created, 0 updated, 0 unchanged, 0 rejected" in out.getvalue()
    assert Contact.objects.count() == 1


def test_the_import_command_reports_rejected_rows_and_exits_with_status_2(db, tmp_path):
    out = io.StringIO()
    errors = tmp_path / "errors.csv"
    path = _write(
        tmp_path,
        csv_text("C001,123,,,,,,,,,,,,,,,", "C002,13812345678,,,,,,,,,,,,,,,", "C003,,,,,1990-99-99,,,,,,,,,,,"),
    )

    with pytest.raises(CommandError) as raised:
        call_command("import_contacts", path, "--errors-csv", str(errors), stdout=out, stderr=io.StringIO())

    assert raised.value.returncode == 2
    assert "2 rows were rejected" in str(raised.value)
    assert "line 2: phone:" in out.getvalue()
    assert errors.read_text(encoding="utf-8-sig").splitlines()[0].startswith("line,field,message,external_id,phone,")
    assert len(errors.read_text(encoding="utf-8-sig").splitlines()) == 3
    assert Contact.objects.count() == 1


def test_the_import_command_refuses_a_bad_header_with_status_1(db, tmp_path):
    with pytest.raises(CommandError) as raised:
        call_command("import_contacts", _write(tmp_path, "name\n张三\n"), stdout=io.StringIO())

    assert raised.value.returncode == 1
    assert "Required column missing" in str(raised.value)


def test_the_import_command_acts_as_the_given_operator(db, tmp_path, operator):
    call_command(
        "import_contacts",
        _write(tmp_path, "phone\n13812345678\n"),
        "--as",
        operator.username,
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )

    assert Contact.objects.get().owner == operator


def test_the_purchases_command_imports_purchases(db, tmp_path, buyers):
    out = io.StringIO()

    call_command(
        "import_purchases",
        _write(tmp_path, csv_text("O-1,C001,,2024-03-01,99,,,", header=PURCHASE_HEADER)),
        stdout=out,
        stderr=io.StringIO(),
    )

    assert "1 created" in out.getvalue()
    assert Contact.objects.get(pk=buyers["zhang"].pk).stage == Contact.Stage.CUSTOMER


def test_the_import_command_help_lists_the_columns(db, capsys):
    with pytest.raises(SystemExit):
        call_command("import_contacts", "--help")

    help_text = capsys.readouterr().out
    assert "marketing_consent" in help_text and "wecom_external_userid" in help_text


# --- Jobs ---------------------------------------------------------------------------------------


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _job(user, text: str, kind: str = "contacts") -> ImportJob:
    from django.core.files.base import ContentFile

    job = ImportJob(kind=kind, created_by=user, filename="x.csv")
    job.file.save("x.csv", ContentFile(text.encode()), save=True)
    return job


def test_a_job_is_claimed_once_so_a_second_delivery_does_nothing(db, media, manager):
    job = _job(manager, csv_text("C001,13812345678,,,,,,,,,,,,,,,"))

    first = imports.import_job_run(job_id=job.pk)
    second = imports.import_job_run(job_id=job.pk)

    assert first.status == ImportJob.Status.DONE and first.created_count == 1
    assert second is None
    job.refresh_from_db()
    assert (job.created_count, job.unchanged_count, job.processed_rows, job.total_rows) == (1, 0, 1, 1)


def test_a_job_with_a_bad_header_ends_failed_with_the_reason(db, media, manager):
    job = _job(manager, "nickname\nx\n")

    job = imports.import_job_run(job_id=job.pk)

    assert job.status == ImportJob.Status.FAILED
    assert "Unknown column(s): nickname" in job.message and job.finished_at is not None


def test_a_job_stores_the_rejected_rows(db, media, manager):
    job = _job(manager, csv_text("C001,123,,,,,,,,,,,,,,,", "C002,13812345678,,,,,,,,,,,,,,,"))

    job = imports.import_job_run(job_id=job.pk)

    assert (job.status, job.created_count, job.error_count) == (ImportJob.Status.DONE, 1, 1)
    assert job.errors == [
        {
            "line": 2,
            "field": "phone",
            "message": "123 is not a valid phone number.",
            "row": {"external_id": "C001", "phone": "123"},
        }
    ]


def test_a_job_keeps_only_the_first_errors_but_counts_them_all(db, media, manager, monkeypatch):
    monkeypatch.setattr(imports.driver, "STORED_ERRORS", 2)
    job = _job(manager, csv_text(*[f"C{i},123,,,,,,,,,,,,,,," for i in range(5)]))

    job = imports.import_job_run(job_id=job.pk)

    assert (job.error_count, len(job.errors)) == (5, 2)
    assert "Only the first 2 problems" in job.message


def test_the_sweeper_requeues_forgotten_jobs_and_fails_abandoned_ones(db, media, manager, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    forgotten = _job(manager, "phone\n13812345678\n")
    abandoned = _job(manager, "phone\n13812345679\n")
    ImportJob.objects.filter(pk=abandoned.pk).update(status=ImportJob.Status.RUNNING)
    ImportJob.objects.update(created_at=timezone.now() - dt.timedelta(days=2))

    result = imports.import_jobs_sweep()

    assert result == {"requeued": 1, "failed": 1, "files_deleted": 0}
    assert ImportJob.objects.get(pk=forgotten.pk).status == ImportJob.Status.DONE
    assert ImportJob.objects.get(pk=abandoned.pk).status == ImportJob.Status.FAILED
