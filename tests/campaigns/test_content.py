"""The safe placeholder formatter: syntax and escaping, injection attempts, unknown placeholders and
variables, the values taken from a contact row, the preview, and the template services."""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from campaigns import content
from campaigns.content import (
    PLACEHOLDERS,
    RUN_PLACEHOLDERS,
    VARIABLE_PLACEHOLDERS,
    contact_values,
    template_placeholders,
    template_preview,
    template_render,
    template_validate,
)
from campaigns.models import Broadcast, MessageTemplate
from campaigns.services import message_template_create, message_template_update
from tests.campaigns.factories import BroadcastFactory, MessageTemplateFactory
from tests.factories import ContactFactory, UserFactory

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


@pytest.fixture(autouse=True)
def _english():
    # The messages are asserted in their source language (the project's default is zh-hans).
    with translation.override("en"):
        yield


def errors_of(body: str, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as exc:
        template_validate(body, **kwargs)
    return exc.value.message_dict


# --- Syntax, escaping, rendering -------------------------------------------------------------------


def test_placeholders_are_replaced_by_their_values():
    body = "{name}您好，{owner}为您准备了券码 {coupon}。"
    assert template_render(body, values={"name": "王芳", "owner": "李娜", "coupon": "DD12"}) == (
        "王芳您好，李娜为您准备了券码 DD12。"
    )


def test_a_missing_or_empty_value_renders_as_nothing():
    assert template_render("Hi {name}, {city}!", values={"name": None}) == "Hi , !"


def test_double_braces_are_literal_braces():
    assert template_render("{{name}} is {name}", values={"name": "王芳"}) == "{name} is 王芳"
    assert template_render("{{{name}}}", values={"name": "王芳"}) == "{王芳}"
    assert template_render("}}{{", values={}) == "}{"
    assert template_placeholders("{{name}} {{coupon}}") == set()


def test_text_without_placeholders_is_returned_unchanged():
    body = "限时 50% off — 100\\% 正品 ${price} %(name)s"
    assert (
        template_render(body.replace("{price}", "{{price}}"), values={})
        == "限时 50% off — 100\\% 正品 ${price} %(name)s"
    )


def test_values_are_never_expanded_again():
    values = {"name": "{coupon} {name.__class__} {{ %(x)s", "coupon": "SECRET"}
    assert template_render("Hi {name}", values=values) == "Hi {coupon} {name.__class__} {{ %(x)s"


def test_non_text_values_are_shown_as_text():
    assert template_render("{coupon}/{link}", values={"coupon": 12, "link": 1.5}) == "12/1.5"


def test_template_placeholders_lists_names_known_or_not():
    assert template_placeholders("{name}，{coupon}，又是 {name}，{shoe_size}") == {"name", "coupon", "shoe_size"}


@pytest.mark.parametrize(
    "placeholder",
    [
        "{name.__class__.__mro__}",
        "{name.__class__}",
        "{name.__init__.__globals__}",
        "{name[0]}",
        "{0}",
        "{0.__class__}",
        "{}",
        "{name!r}",
        "{name!s:>10}",
        "{name:>10}",
        "{name:{coupon}}",
        "{ name }",
        "{Name}",
        "{名字}",
        "{name-x}",
    ],
)
def test_anything_but_a_plain_name_is_rejected_by_name(placeholder):
    body = f"您好 {placeholder}，欢迎"
    with pytest.raises(ValidationError) as exc:
        template_placeholders(body)
    messages = exc.value.message_dict["body"]
    assert len(messages) == 1
    assert placeholder in messages[0]
    with pytest.raises(ValidationError):
        template_validate(body)
    with pytest.raises(ValidationError):
        template_render(body, values={"name": "x"})


def test_injection_attempt_never_reaches_an_object():
    # Even where str.format would have walked the attribute chain, the formatter refuses the body.
    body = "{name.__class__.__mro__}"
    with pytest.raises(ValidationError) as exc:
        template_render(body, values={"name": "王芳"})
    assert "Invalid placeholder {name.__class__.__mro__}" in exc.value.message_dict["body"][0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("您好 {name", "Unclosed or nested brace in “{name”"),
        ("您好 {", "Unclosed or nested brace"),
        ("{{name}", "Unmatched } in “{{name}”"),
        ("价格 } 元", "Unmatched } in “价格 }”"),
        ("{name}}", "Unmatched }"),
        ("{na{me}", "Unclosed or nested brace"),
    ],
)
def test_stray_braces_are_reported(body, expected):
    messages = errors_of(body)["body"]
    assert len(messages) == 1
    assert messages[0].startswith(expected), messages


def test_parse_is_cached_per_body():
    body = "缓存测试 {name} {coupon} 独一无二的正文"
    template_render(body, values={})
    before = content._parse.cache_info()
    for _ in range(1000):
        template_render(body, values={"name": "王芳"})
    after = content._parse.cache_info()
    assert after.misses == before.misses
    assert after.hits == before.hits + 1000


def test_rendering_a_large_broadcast_stays_cheap():
    # Sanity, not a benchmark: 200k renders of a typical body, each correct. No assertion on time.
    body = "{name}您好！{owner}提醒您：您在{city}购买的商品已到复购周期，券码 {coupon}，{{限时}}使用。"
    started = time.perf_counter()
    rendered = [
        template_render(body, values={"name": f"客户{i}", "owner": "李娜", "city": "上海", "coupon": "DD12"})
        for i in range(200_000)
    ]
    elapsed = time.perf_counter() - started
    assert rendered[-1] == "客户199999您好！李娜提醒您：您在上海购买的商品已到复购周期，券码 DD12，{限时}使用。"
    print(f"200k renders in {elapsed:.2f}s")


# --- Validation of placeholders and variables ------------------------------------------------------


def test_known_placeholders_pass():
    template_validate(" ".join("{" + name + "}" for name in PLACEHOLDERS))


def test_unknown_placeholders_are_named_with_the_known_ones():
    messages = errors_of("{name} {shoe_size} {vip_level}")["body"]
    assert len(messages) == 2
    assert messages[0].startswith("Unknown placeholder {shoe_size}; known: {name}, {owner}")
    assert messages[1].startswith("Unknown placeholder {vip_level}; known:")


def test_subject_errors_use_the_field_name():
    assert set(errors_of("{shoe_size}", field="subject")) == {"subject"}
    assert set(errors_of("{0}", field="subject")) == {"subject"}


def test_required_variables_must_be_given():
    body = "{name}，券码 {coupon}，活动 {event}"
    errors = errors_of(body, variables={"coupon": "DD12"}, require_variables=True)
    assert errors == {"variables": ["The template uses {event}: give it a value in the variables."]}
    errors = errors_of(body, variables={"coupon": "  ", "event": "双12"}, require_variables=True)
    assert errors == {"variables": ["The template uses {coupon}: give it a value in the variables."]}
    template_validate(body, variables={"coupon": "DD12", "event": "双12"}, require_variables=True)
    template_validate(body, variables={}, require_variables=False)


def test_placeholders_supplied_by_the_run_can_be_exempted():
    body = "{name}，您购买的 {product} 该补货了"
    assert "variables" in errors_of(body, variables={}, require_variables=True)
    template_validate(body, variables={}, require_variables=True, provided=RUN_PLACEHOLDERS)


def test_unknown_or_non_text_variables_are_rejected():
    errors = errors_of("{coupon}", variables={"coupon": "A", "cuopon": "B", "link": ["x"], "gift": True})
    assert errors == {
        "variables": [
            "Unknown variable “cuopon”; one of " + ", ".join(sorted(VARIABLE_PLACEHOLDERS)) + ".",
            "The variable “link” must be text.",
            "The variable “gift” must be text.",
        ]
    }
    assert errors_of("{coupon}", variables=["coupon"]) == {"variables": ["Variables are a mapping of names to text."]}


def test_contact_placeholders_cannot_be_overridden_by_variables():
    assert "variables" in errors_of("{name}", variables={"name": "假名"})
    values = contact_values({"name": "王芳"}, variables={"name": "假名", "coupon": "DD12"})
    assert values["name"] == "王芳"
    assert values["coupon"] == "DD12"


def test_a_body_that_is_not_text_is_rejected():
    with pytest.raises(ValidationError):
        template_placeholders(None)  # type: ignore[arg-type]


# --- Values from a contact row ---------------------------------------------------------------------


def test_contact_values_reads_the_sender_row():
    row = {
        "id": 7,
        "name": "王芳",
        "region": "上海",
        "city": None,
        "first_purchase_at": dt.datetime(2026, 3, 1, 17, 0, tzinfo=dt.UTC),  # 2 March in Shanghai
        "owner_name": "李娜",
    }
    values = contact_values(row, variables={"coupon": "DD12"}, extra={"product": "面霜"})
    assert values == {
        "name": "王芳",
        "owner": "李娜",
        "region": "上海",
        "city": "",
        "first_purchase_date": "2026-03-02",
        "coupon": "DD12",
        "product": "面霜",
    }


def test_owner_name_falls_back_to_the_selected_owner_columns():
    full = {"owner__last_name": "李", "owner__first_name": "娜", "owner__username": "lina"}
    assert contact_values(full, variables={})["owner"] == "李娜"
    username_only = {"owner__last_name": "", "owner__first_name": "", "owner__username": "lina"}
    assert contact_values(username_only, variables={})["owner"] == "lina"
    assert contact_values({"owner__username": None}, variables=None)["owner"] == ""


def test_extra_wins_over_variables_unless_empty():
    assert contact_values({}, variables={"product": "精华"}, extra={"product": "面霜"})["product"] == "面霜"
    assert contact_values({}, variables={"product": "精华"}, extra={"product": ""})["product"] == "精华"
    assert "shoe_size" not in contact_values({}, variables={}, extra={"shoe_size": "42"})


def test_missing_row_keys_give_empty_values():
    values = contact_values({}, variables=None)
    assert values == {"name": "", "owner": "", "region": "", "city": "", "first_purchase_date": ""}


@pytest.mark.django_db
def test_preview_renders_for_one_contact():
    owner = UserFactory(username="lina", first_name="娜", last_name="李")
    contact = ContactFactory(
        name="王芳", owner=owner, city="杭州", first_purchase_at=dt.datetime(2026, 3, 1, 0, 30, tzinfo=SHANGHAI)
    )
    template = MessageTemplateFactory(body="{name}您好，我是{owner}。{city}首单 {first_purchase_date}，券 {coupon}")
    assert template_preview(template, contact, variables={"coupon": "DD12"}) == (
        "王芳您好，我是李娜。杭州首单 2026-03-01，券 DD12"
    )
    assert template_preview("{owner}|{coupon}", ContactFactory(owner=None)) == "|"


# --- Services ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_message_template_create_saves_a_valid_template(manager):
    template = message_template_create(
        name=" 双12预热 ",
        body="{name}，双12券 {coupon}",
        category="大促",
        subject="给 {name} 的礼物",
        created_by=manager,
    )
    template.refresh_from_db()
    assert (template.name, template.category, template.kind, template.created_by) == (
        "双12预热",
        "大促",
        MessageTemplate.Kind.MESSAGE,
        manager,
    )


@pytest.mark.django_db
def test_message_template_create_reports_each_bad_field(manager):
    with pytest.raises(ValidationError) as exc:
        message_template_create(
            name="",
            body="{name.__class__}",
            kind="poem",
            subject="{shoe_size}",
            created_by=manager,
        )
    errors = exc.value.message_dict
    assert set(errors) == {"name", "body", "kind", "subject"}
    assert "{name.__class__}" in errors["body"][0]
    assert errors["subject"][0].startswith("Unknown placeholder {shoe_size}")
    assert not MessageTemplate.objects.exists()


@pytest.mark.django_db
def test_message_template_create_needs_a_body(manager):
    with pytest.raises(ValidationError) as exc:
        message_template_create(name="空", body="", created_by=manager)
    assert "body" in exc.value.message_dict


@pytest.mark.django_db
def test_message_template_update_validates(manager):
    template = MessageTemplateFactory(body="{name}")
    message_template_update(template=template, body="{name}，{link}", category="通知", is_active=False)
    template.refresh_from_db()
    assert (template.body, template.category, template.is_active) == ("{name}，{link}", "通知", False)

    with pytest.raises(ValidationError) as bad:
        message_template_update(template=template, body="{0}")
    assert "body" in bad.value.message_dict
    with pytest.raises(ValidationError) as unknown:
        message_template_update(template=template, created_by=manager)
    assert "created_by" in unknown.value.message_dict
    template.refresh_from_db()
    assert template.body == "{name}，{link}"


@pytest.mark.django_db
def test_message_template_update_keeps_scheduled_broadcasts_sendable(manager):
    template = MessageTemplateFactory(body="{name}，券码 {coupon}")
    BroadcastFactory(name="双12", template=template, variables={"coupon": "DD12"}, status=Broadcast.Status.SCHEDULED)
    BroadcastFactory(template=template, variables={}, status=Broadcast.Status.DRAFT)
    BroadcastFactory(template=template, variables={}, status=Broadcast.Status.SENT)

    message_template_update(template=template, body="{name}，新券码 {coupon}")  # still covered
    with pytest.raises(ValidationError) as exc:
        message_template_update(template=template, body="{name}，券码 {coupon}，活动 {event}")
    assert exc.value.message_dict["body"] == [
        "The broadcast “双12” (Scheduled) uses this template: The template uses {event}: give it a value in the variables."
    ]
    template.refresh_from_db()
    assert template.body == "{name}，新券码 {coupon}"
