"""The campaigns pages of the dashboard, through Django's test client: who may open what, the broadcast
flow from the form to approval, errors shown on the forms naming the field, the live progress fragment,
segments with their live count, the template library, the outbox, the frequency policy, automations
and follow-up tasks."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns import sending, services
from campaigns.models import (
    Automation,
    Broadcast,
    FollowUpTask,
    FrequencyCap,
    FrequencyPolicy,
    MessageTemplate,
    OutboxMessage,
    Segment,
)
from contacts.services import purchase_record
from tests.campaigns.factories import MessageTemplateFactory
from tests.factories import CommunityFactory, ContactFactory, MembershipFactory, TagFactory, UserFactory


@pytest.fixture(autouse=True)
def _english(settings):
    """These tests read the English messages; the Chinese ones are the catalogue's job."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


pytestmark = pytest.mark.urls("tests.campaigns.urls_for_tests")

PASSWORD = "pass-word-123"
EVERYONE = {"op": "and", "rules": []}
SHANGHAI = {"op": "and", "rules": [{"field": "region", "operator": "in", "value": ["上海"]}]}


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture(autouse=True)
def _no_quiet_hours(db):
    FrequencyPolicy.objects.update_or_create(pk=1, defaults={"quiet_hours_enabled": False})


@pytest.fixture
def manager_client(manager):
    return logged_in(manager)


@pytest.fixture
def operator_client(operator):
    return logged_in(operator)


@pytest.fixture
def template(db):
    return MessageTemplate.objects.create(name="双12", category="活动通知", body="{name}，双十二会员专享券 {coupon}")


@pytest.fixture
def segment(db):
    return Segment.objects.create(name="上海客户", rules=SHANGHAI)


def _broadcast(user, template, segment, **fields) -> Broadcast:
    return services.broadcast_create(
        created_by=user,
        name=fields.pop("name", "双12 群发"),
        template=template,
        segment=segment,
        variables=fields.pop("variables", {"coupon": "DD12"}),
        **fields,
    )


def _send(broadcast: Broadcast, user) -> Broadcast:
    services.broadcast_submit(broadcast=broadcast, user=user)
    sending.broadcasts_tick()
    sending.broadcast_start(broadcast_id=broadcast.pk)
    while sending.deliveries_send(broadcast_id=broadcast.pk)["more"]:
        pass
    broadcast.refresh_from_db()
    return broadcast


def _form_data(segment=None, template=None, **overrides) -> dict:
    data = {
        "name": "会员日群发",
        "segment": segment.pk if segment else "",
        "template": template.pk if template else "",
        "variables": "coupon=VIP88",
        "medium": "wecom",
        "when": "now",
        "scheduled_at": "",
        "defer_quiet_hours": "on",
        "conversion_window_days": "7",
    }
    data.update(overrides)
    return data


# --- Access ---------------------------------------------------------------------------------------

EVERYONE_PAGES = [
    "campaigns:broadcast_list",
    "campaigns:broadcast_create",
    "campaigns:segment_list",
    "campaigns:segment_create",
    "campaigns:template_list",
    "campaigns:template_create",
    "campaigns:outbox",
    "campaigns:automation_list",
    "campaigns:task_list",
]
MANAGER_PAGES = ["campaigns:policy", "campaigns:broadcast_pending", "campaigns:automation_create"]


@pytest.mark.parametrize("name", EVERYONE_PAGES + MANAGER_PAGES)
def test_campaign_pages_redirect_anonymous_visitors_to_login(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", EVERYONE_PAGES + MANAGER_PAGES)
def test_every_campaign_page_renders_for_a_manager(manager_client, template, segment, name):
    response = manager_client.get(reverse(name))
    assert response.status_code == 200
    assert b'data-testid="campaign-tabs"' in response.content


@pytest.mark.parametrize("name", EVERYONE_PAGES)
def test_operator_pages_render_for_an_operator(operator_client, template, segment, name):
    assert operator_client.get(reverse(name)).status_code == 200


@pytest.mark.parametrize("name", MANAGER_PAGES)
def test_manager_pages_are_forbidden_to_operators(operator_client, name):
    assert operator_client.get(reverse(name)).status_code == 403


def test_a_user_without_a_role_is_forbidden(db):
    nobody = UserFactory(username="nobody")
    assert logged_in(nobody).get(reverse("campaigns:broadcast_list")).status_code == 403


def test_operator_tabs_leave_out_the_manager_pages(operator_client):
    content = operator_client.get(reverse("campaigns:broadcast_list")).content.decode()
    assert reverse("campaigns:segment_list") in content
    assert reverse("campaigns:policy") not in content
    assert reverse("campaigns:broadcast_pending") not in content


def test_operator_lists_only_own_broadcasts(operator, other_operator, operator_client, template, segment):
    mine = _broadcast(operator, template, segment, name="我的群发")
    _broadcast(other_operator, template, segment, name="同事的群发")
    response = operator_client.get(reverse("campaigns:broadcast_list"))
    assert [b.pk for b in response.context["broadcasts"]] == [mine.pk]
    assert "同事的群发" not in response.content.decode()


@pytest.mark.parametrize(
    "name,method",
    [
        ("campaigns:broadcast_detail", "get"),
        ("campaigns:broadcast_progress", "get"),
        ("campaigns:broadcast_edit", "get"),
        ("campaigns:broadcast_submit", "post"),
        ("campaigns:broadcast_cancel", "post"),
    ],
)
def test_a_colleagues_broadcast_id_is_a_404_for_an_operator(
    other_operator, operator_client, template, segment, name, method
):
    theirs = _broadcast(other_operator, template, segment)
    response = getattr(operator_client, method)(reverse(name, args=[theirs.pk]))
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Broadcast.Status.DRAFT


def test_actions_are_post_only(manager, manager_client, template, segment):
    broadcast = _broadcast(manager, template, segment)
    for name in ("broadcast_submit", "broadcast_approve", "broadcast_reject", "broadcast_cancel"):
        assert manager_client.get(reverse(f"campaigns:{name}", args=[broadcast.pk])).status_code == 405


def test_actions_need_the_csrf_token(manager, template, segment):
    broadcast = _broadcast(manager, template, segment)
    client = Client(enforce_csrf_checks=True)
    client.login(username=manager.username, password=PASSWORD)
    response = client.post(reverse("campaigns:broadcast_cancel", args=[broadcast.pk]))
    assert response.status_code == 403
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.DRAFT


# --- The broadcast flow through the pages ---------------------------------------------------------


def test_operator_creates_and_submits_and_a_manager_approves(operator, manager, template, segment):
    ContactFactory(owner=operator, region="上海")
    operator_client, manager_client = logged_in(operator), logged_in(manager)

    response = operator_client.post(reverse("campaigns:broadcast_create"), _form_data(segment, template, submit="1"))
    broadcast = Broadcast.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("campaigns:broadcast_detail", args=[broadcast.pk])
    assert broadcast.status == Broadcast.Status.PENDING_APPROVAL
    assert broadcast.variables == {"coupon": "VIP88"}
    assert broadcast.created_by == operator

    page = operator_client.get(response["Location"]).content.decode()
    assert 'data-testid="broadcast-approve"' not in page
    assert 'data-testid="broadcast-cancel"' in page
    assert operator_client.post(reverse("campaigns:broadcast_approve", args=[broadcast.pk])).status_code == 403

    queue = manager_client.get(reverse("campaigns:broadcast_pending"))
    assert [b.pk for b in queue.context["broadcasts"]] == [broadcast.pk]
    assert 'data-testid="broadcast-approve"' in queue.content.decode()
    assert 'data-testid="broadcast-approve"' in manager_client.get(response["Location"]).content.decode()

    approved = manager_client.post(
        reverse("campaigns:broadcast_approve", args=[broadcast.pk]),
        {"next": reverse("campaigns:broadcast_pending")},
        follow=True,
    )
    assert approved.redirect_chain[-1][0] == reverse("campaigns:broadcast_pending")
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.SCHEDULED
    assert broadcast.approved_by == manager
    assert list(approved.context["broadcasts"]) == []


def test_manager_rejects_a_pending_broadcast_back_to_a_draft(operator, manager, template, segment):
    ContactFactory(owner=operator, region="上海")
    broadcast = _broadcast(operator, template, segment)
    services.broadcast_submit(broadcast=broadcast, user=operator)
    logged_in(manager).post(reverse("campaigns:broadcast_reject", args=[broadcast.pk]))
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.DRAFT


def test_a_manager_saving_and_submitting_schedules_directly(manager, manager_client, template, segment):
    ContactFactory(region="上海")
    response = manager_client.post(reverse("campaigns:broadcast_create"), _form_data(segment, template, submit="1"))
    assert response.status_code == 302
    assert Broadcast.objects.get().status == Broadcast.Status.SCHEDULED


def test_saving_a_draft_at_a_time_and_editing_it(manager, manager_client, template, segment):
    later = timezone.localtime() + dt.timedelta(hours=2)
    data = _form_data(segment, template, when="later", scheduled_at=later.strftime("%Y-%m-%dT%H:%M"))
    manager_client.post(reverse("campaigns:broadcast_create"), data)
    broadcast = Broadcast.objects.get()
    assert broadcast.status == Broadcast.Status.DRAFT
    assert timezone.localtime(broadcast.scheduled_at).strftime("%Y-%m-%d %H:%M") == later.strftime("%Y-%m-%d %H:%M")

    edit_url = reverse("campaigns:broadcast_edit", args=[broadcast.pk])
    form_page = manager_client.get(edit_url).content.decode()
    assert later.strftime("%Y-%m-%dT%H:%M") in form_page
    manager_client.post(edit_url, {**data, "name": "改名了", "variables": "coupon=NEW1"})
    broadcast.refresh_from_db()
    assert (broadcast.name, broadcast.variables) == ("改名了", {"coupon": "NEW1"})


def test_a_broadcast_that_is_not_a_draft_cannot_be_edited(manager, manager_client, template, segment):
    ContactFactory(region="上海")
    broadcast = _broadcast(manager, template, segment)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    response = manager_client.get(reverse("campaigns:broadcast_edit", args=[broadcast.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("campaigns:broadcast_detail", args=[broadcast.pk])
    assert "draft" in " ".join(str(m) for m in response.context["messages"])


def test_cancel_button_cancels(manager, manager_client, template, segment):
    broadcast = _broadcast(manager, template, segment)
    manager_client.post(reverse("campaigns:broadcast_cancel", args=[broadcast.pk]))
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.CANCELLED


def test_submitting_with_an_empty_audience_says_so(manager, manager_client, template, segment):
    broadcast = _broadcast(manager, template, segment)  # nobody lives in 上海
    response = manager_client.post(reverse("campaigns:broadcast_submit", args=[broadcast.pk]), follow=True)
    text = " ".join(str(m) for m in response.context["messages"])
    assert "Audience" in text and "empty" in text
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.DRAFT


# --- Errors on the broadcast form ------------------------------------------------------------------


def test_a_broadcast_without_an_audience_names_the_audience(manager_client, template):
    response = manager_client.post(reverse("campaigns:broadcast_create"), _form_data(None, template))
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert any(error.startswith("Audience: ") for error in errors)
    assert 'data-testid="form-errors"' in response.content.decode()
    assert not Broadcast.objects.exists()


def test_a_missing_variable_is_an_error_on_the_variables_field(manager_client, template, segment):
    response = manager_client.post(reverse("campaigns:broadcast_create"), _form_data(segment, template, variables=""))
    form = response.context["form"]
    assert "coupon" in " ".join(form.errors["variables"])
    assert not Broadcast.objects.exists()


def test_a_malformed_variables_line_names_its_line(manager_client, template, segment):
    response = manager_client.post(
        reverse("campaigns:broadcast_create"), _form_data(segment, template, variables="coupon=A\nno equals sign")
    )
    assert "Line 2" in " ".join(response.context["form"].errors["variables"])


def test_a_time_in_the_past_is_an_error_on_the_time_field(manager_client, template, segment):
    past = (timezone.localtime() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = manager_client.post(
        reverse("campaigns:broadcast_create"), _form_data(segment, template, when="later", scheduled_at=past)
    )
    assert "past" in " ".join(response.context["form"].errors["scheduled_at"])


def test_at_a_time_without_a_time_asks_for_one(manager_client, template, segment):
    response = manager_client.post(reverse("campaigns:broadcast_create"), _form_data(segment, template, when="later"))
    assert response.context["form"].errors["scheduled_at"]


def test_the_template_is_required(manager_client, segment):
    response = manager_client.post(reverse("campaigns:broadcast_create"), _form_data(segment, None))
    assert response.context["form"].errors["template"]


def test_an_operator_cannot_choose_a_colleagues_community(operator, other_operator, operator_client, template):
    theirs = CommunityFactory(owner=other_operator)
    response = operator_client.post(
        reverse("campaigns:broadcast_create"), {**_form_data(None, template), "communities": [theirs.pk]}
    )
    assert response.context["form"].errors["communities"]
    assert not Broadcast.objects.exists()


def test_use_in_a_broadcast_preselects_the_template(manager_client, template):
    response = manager_client.get(reverse("campaigns:broadcast_create") + f"?template={template.pk}")
    assert response.context["form"]["template"].value() == str(template.pk)


# --- Progress and results --------------------------------------------------------------------------


def test_progress_fragment_polls_while_sending(manager, manager_client, template, segment):
    ContactFactory(region="上海")
    ContactFactory(region="上海")
    broadcast = _broadcast(manager, template, segment)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    sending.broadcasts_tick()
    sending.broadcast_start(broadcast_id=broadcast.pk)

    response = manager_client.get(reverse("campaigns:broadcast_progress", args=[broadcast.pk]))
    content = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in content
    assert 'data-status="sending"' in content
    assert 'hx-trigger="every 2s"' in content
    assert response.context["progress"]["targeted"] == 2
    assert 'data-testid="broadcast-percent">0.0%' in content


def test_progress_fragment_after_sending_shows_counts_reasons_and_results(manager, manager_client, template, segment):
    buyer = ContactFactory(region="上海")
    ContactFactory(region="上海")
    ContactFactory(region="上海", marketing_consent=False)
    broadcast = _send(_broadcast(manager, template, segment), manager)
    purchase_record(
        contact=buyer,
        external_order_id="JD-1",
        purchased_at=timezone.now() + dt.timedelta(minutes=1),
        amount=Decimal("99.00"),
    )

    response = manager_client.get(reverse("campaigns:broadcast_progress", args=[broadcast.pk]))
    content = response.content.decode()
    assert 'data-status="sent"' in content
    assert "hx-trigger" not in content  # finished: no more polling
    assert 'data-testid="broadcast-percent">100.0%' in content
    assert 'data-testid="count-sent">2<' in content
    assert 'data-reason="no_consent"' in content
    assert 'data-testid="converted-contacts">1<' in content
    assert 'data-testid="conversion-rate">50.0%<' in content
    assert 'data-testid="broadcast-results"' in content


def test_detail_page_includes_the_progress_and_the_audience_now(manager, manager_client, template, segment):
    ContactFactory(region="上海")
    broadcast = _broadcast(manager, template, segment)
    response = manager_client.get(reverse("campaigns:broadcast_detail", args=[broadcast.pk]))
    content = response.content.decode()
    assert 'id="broadcast-live"' in content
    assert response.context["audience_now"] == 1
    assert 'data-testid="broadcast-submit"' in content


# --- Outbox ---------------------------------------------------------------------------------------


def test_outbox_shows_the_rendered_messages_newest_first_and_filters_by_broadcast(
    manager, manager_client, template, segment
):
    first = ContactFactory(region="上海", name="王小二")
    broadcast = _send(_broadcast(manager, template, segment), manager)
    ContactFactory(region="上海", name="李四")
    other = _send(_broadcast(manager, template, segment, name="第二次", variables={"coupon": "SECOND"}), manager)

    response = manager_client.get(reverse("campaigns:outbox"))
    bodies = [m.body for m in response.context["outbox_messages"]]
    assert len(bodies) == 3
    assert bodies[0].endswith("SECOND")
    assert "王小二，双十二会员专享券 DD12" in response.content.decode()

    filtered = manager_client.get(reverse("campaigns:outbox"), {"broadcast": broadcast.pk})
    assert [m.contact_id for m in filtered.context["outbox_messages"]] == [first.pk]
    assert other.pk != broadcast.pk


def test_operator_sees_only_messages_to_own_contacts_in_the_outbox(
    manager, operator, operator_client, template, segment
):
    mine = ContactFactory(region="上海", owner=operator)
    ContactFactory(region="上海")
    _send(_broadcast(manager, template, segment), manager)
    assert OutboxMessage.objects.count() == 2
    response = operator_client.get(reverse("campaigns:outbox"))
    assert [m.contact_id for m in response.context["outbox_messages"]] == [mine.pk]


# --- Frequency policy ------------------------------------------------------------------------------


def _policy_data(caps: list[dict], **fields) -> dict:
    data = {
        "quiet_hours_enabled": "on",
        "quiet_start": "22:00",
        "quiet_end": "08:00",
        "exempt_service_messages": "on",
        "caps-TOTAL_FORMS": str(len(caps)),
        "caps-INITIAL_FORMS": "0",
        "caps-MIN_NUM_FORMS": "0",
        "caps-MAX_NUM_FORMS": "1000",
    }
    for index, cap in enumerate(caps):
        for key, value in cap.items():
            data[f"caps-{index}-{key}"] = value
    data.update(fields)
    return data


def test_policy_page_saves_quiet_hours_and_caps(manager, manager_client):
    caps = [
        {"medium": "", "window": "rolling", "window_days": "7", "max_messages": "3"},
        {"medium": "sms", "window": "month", "window_days": "", "max_messages": ""},
        {"medium": "", "window": "rolling", "window_days": "", "max_messages": ""},  # the blank extra row
    ]
    response = manager_client.post(reverse("campaigns:policy"), _policy_data(caps, quiet_start="21:30"))
    assert response.status_code == 302
    policy = FrequencyPolicy.objects.get(pk=1)
    assert (policy.quiet_start, policy.quiet_hours_enabled, policy.updated_by) == (dt.time(21, 30), True, manager)
    assert sorted(FrequencyCap.objects.values_list("medium", "window", "window_days", "max_messages")) == [
        ("", "rolling", 7, 3),
        ("sms", "month", None, None),
    ]
    page = manager_client.get(reverse("campaigns:policy")).content.decode()
    assert page.count('data-testid="cap-row"') == 3  # two caps and an empty row to add one


def test_policy_page_removes_a_ticked_cap(manager_client):
    FrequencyCap.objects.create(window="rolling", window_days=1, max_messages=1)
    caps = [
        {"medium": "", "window": "rolling", "window_days": "1", "max_messages": "1", "DELETE": "on"},
        {"medium": "", "window": "rolling", "window_days": "30", "max_messages": "4"},
    ]
    manager_client.post(reverse("campaigns:policy"), _policy_data(caps))
    assert list(FrequencyCap.objects.values_list("window_days", "max_messages")) == [(30, 4)]


def test_a_rolling_cap_without_days_is_named_in_the_errors(manager_client):
    before = sorted(FrequencyCap.objects.values_list("medium", "window", "window_days", "max_messages"))
    caps = [
        {"medium": "", "window": "rolling", "window_days": "7", "max_messages": "2"},
        {"medium": "wecom", "window": "rolling", "window_days": "", "max_messages": "2"},
    ]
    response = manager_client.post(reverse("campaigns:policy"), _policy_data(caps))
    assert response.status_code == 200
    errors = " ".join(response.context["form"].non_field_errors())
    assert "Cap 2 · window (days): " in errors
    content = response.content.decode()
    assert "Cap 2" in content
    assert content.count('aria-invalid="true"') == 1  # the days input of that row is outlined
    after = sorted(FrequencyCap.objects.values_list("medium", "window", "window_days", "max_messages"))
    assert after == before  # nothing half-written


def test_a_bad_quiet_hours_time_is_an_error_on_its_field(manager_client):
    response = manager_client.post(reverse("campaigns:policy"), _policy_data([], quiet_end="25:99"))
    assert response.context["form"].errors["quiet_end"]


@pytest.mark.parametrize(
    "preset,expected",
    [
        ("wecom_monthly", [("", "month", None, None)]),
        ("weekly_7", [("", "rolling", 7, 7)]),
        ("daily_1", [("", "rolling", 1, 1)]),
    ],
)
def test_preset_buttons_replace_the_caps_and_keep_quiet_hours(manager_client, preset, expected):
    FrequencyPolicy.objects.filter(pk=1).update(quiet_hours_enabled=True, quiet_start=dt.time(23, 0))
    FrequencyCap.objects.create(medium="sms", window="rolling", window_days=3, max_messages=1)
    response = manager_client.post(reverse("campaigns:policy"), {"preset": preset})
    assert response.status_code == 302
    assert list(FrequencyCap.objects.values_list("medium", "window", "window_days", "max_messages")) == expected
    policy = FrequencyPolicy.objects.get(pk=1)
    assert (policy.quiet_hours_enabled, policy.quiet_start) == (True, dt.time(23, 0))


def test_policy_posts_are_forbidden_to_operators(operator_client):
    assert operator_client.post(reverse("campaigns:policy"), {"preset": "daily_1"}).status_code == 403
    assert not FrequencyCap.objects.filter(window_days=1).exists()


# --- Segments --------------------------------------------------------------------------------------


def test_live_count_counts_only_the_users_contacts(operator, operator_client):
    ContactFactory(owner=operator, region="上海")
    ContactFactory(owner=operator, region="北京")
    ContactFactory(region="上海")  # a colleague's contact
    response = operator_client.post(reverse("campaigns:segment_count"), {"rules": json.dumps(SHANGHAI)})
    assert response.status_code == 200
    assert response.context["count"] == 1
    assert 'data-testid="segment-count-value">1<' in response.content.decode()


def test_live_count_names_the_problem_in_the_rules(manager_client):
    rules = {"op": "and", "rules": [{"field": "stage", "operator": "contains", "value": ["lead"]}]}
    response = manager_client.post(reverse("campaigns:segment_count"), {"rules": json.dumps(rules)})
    content = response.content.decode()
    assert response.status_code == 200
    assert 'data-path="rules[0].operator"' in content
    assert "contains" in content


def test_live_count_of_malformed_json_says_where(manager_client):
    response = manager_client.post(reverse("campaigns:segment_count"), {"rules": '{"op": "and", '})
    assert "not valid JSON" in response.content.decode()


def test_creating_a_segment_through_the_page(manager, manager_client):
    tag = TagFactory()
    rules = {"op": "or", "rules": [{"field": "tags", "operator": "any", "value": [tag.pk]}, SHANGHAI]}
    response = manager_client.post(
        reverse("campaigns:segment_create"), {"name": "高意向", "description": "", "rules": json.dumps(rules)}
    )
    segment = Segment.objects.get()
    assert response["Location"] == reverse("campaigns:segment_edit", args=[segment.pk])
    assert segment.rules["op"] == "or" and segment.created_by == manager
    page = manager_client.get(response["Location"])
    assert page.context["count"] == 0
    assert 'id="segment-fields"' in page.content.decode()  # the field registry for the builder


def test_invalid_rules_are_shown_on_the_rules_field(manager_client):
    rules = {"op": "and", "rules": [{"field": "tags", "operator": "any", "value": [999999]}]}
    response = manager_client.post(reverse("campaigns:segment_create"), {"name": "坏规则", "rules": json.dumps(rules)})
    assert "999999" in " ".join(response.context["form"].errors["rules"])
    assert not Segment.objects.exists()


def test_editing_a_segment(manager_client, segment):
    url = reverse("campaigns:segment_edit", args=[segment.pk])
    manager_client.post(url, {"name": "上海老客", "description": "复购", "rules": json.dumps(EVERYONE)})
    segment.refresh_from_db()
    assert (segment.name, segment.description, segment.rules) == ("上海老客", "复购", EVERYONE)


def test_segment_list_counts_each_row_lazily(manager_client, segment):
    ContactFactory(region="上海")
    page = manager_client.get(reverse("campaigns:segment_list")).content.decode()
    row_url = reverse("campaigns:segment_row_count", args=[segment.pk])
    assert f'hx-get="{row_url}"' in page
    assert 'data-testid="segment-count-value">1<' in manager_client.get(row_url).content.decode()


def test_the_builder_offers_the_users_communities_only(operator, other_operator, operator_client):
    mine = CommunityFactory(owner=operator, name="我的群")
    CommunityFactory(owner=other_operator, name="别人的群")
    data = operator_client.get(reverse("campaigns:segment_create")).context["builder_data"]
    community = next(field for field in data["fields"] if field["field"] == "community")
    assert community["choices"] == [{"value": mine.pk, "label": "我的群"}]


# --- Templates -------------------------------------------------------------------------------------


def test_template_library_lists_by_category(manager_client, template):
    MessageTemplateFactory(name="生日祝福", category="节日关怀")
    response = manager_client.get(reverse("campaigns:template_list"))
    content = response.content.decode()
    assert content.count('data-testid="template-category"') == 2
    assert "活动通知" in content and "节日关怀" in content
    filtered = manager_client.get(reverse("campaigns:template_list"), {"category": "节日关怀"})
    assert [t.name for t in filtered.context["templates"]] == ["生日祝福"]


def test_creating_a_template_shows_the_placeholders_and_rejects_unknown_ones(operator_client):
    page = operator_client.get(reverse("campaigns:template_create")).content.decode()
    assert "{coupon}" in page and "{name}" in page
    bad = operator_client.post(
        reverse("campaigns:template_create"), {"name": "坏模板", "kind": "message", "body": "{name} {nickname}"}
    )
    assert "nickname" in " ".join(bad.context["form"].errors["body"])
    good = operator_client.post(
        reverse("campaigns:template_create"),
        {"name": "复购提醒", "category": "复购", "kind": "message", "body": "{name}，该补货啦 {coupon}"},
    )
    template = MessageTemplate.objects.get(name="复购提醒")
    assert good["Location"] == reverse("campaigns:template_detail", args=[template.pk])


def test_editing_a_template_needs_the_change_permission(operator_client, manager_client, template):
    url = reverse("campaigns:template_edit", args=[template.pk])
    assert operator_client.get(url).status_code == 403
    manager_client.post(
        url,
        {"name": "双12 v2", "category": "活动", "kind": "message", "body": "{name} 专享 {coupon}", "is_active": "on"},
    )
    template.refresh_from_db()
    assert (template.name, template.body) == ("双12 v2", "{name} 专享 {coupon}")


def test_template_preview_for_a_chosen_contact(operator, operator_client, template):
    contact = ContactFactory(owner=operator, name="陈小姐", phone="+8613900001234")
    url = reverse("campaigns:template_detail", args=[template.pk])
    response = operator_client.get(url, {"contact": "1234", "variables": "coupon=VIP"}, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert "<html" not in content  # the fragment only
    assert response.context["preview_contact"] == contact
    assert "陈小姐，双十二会员专享券 VIP" in content


def test_template_preview_warns_about_variables_without_a_value(operator, operator_client, template):
    ContactFactory(owner=operator, name="陈小姐")
    response = operator_client.get(reverse("campaigns:template_detail", args=[template.pk]))
    assert response.context["preview_missing"] == ["coupon"]
    assert "陈小姐，双十二会员专享券 " in response.content.decode()


def test_template_preview_never_shows_a_colleagues_contact(operator_client, other_operator, template):
    theirs = ContactFactory(owner=other_operator, name="同事的客户")
    response = operator_client.get(
        reverse("campaigns:template_detail", args=[template.pk]), {"contact": str(theirs.pk)}
    )
    content = response.content.decode()
    assert "同事的客户" not in content
    assert 'data-testid="preview-error"' in content


# --- Follow-up tasks --------------------------------------------------------------------------------


@pytest.fixture
def tasks(operator, other_operator):
    mine = FollowUpTask.objects.create(assignee=operator, contact=ContactFactory(owner=operator), title="回访陈小姐")
    theirs = FollowUpTask.objects.create(
        assignee=other_operator, contact=ContactFactory(owner=other_operator), title="回访同事的客户"
    )
    return {"mine": mine, "theirs": theirs}


def test_operator_sees_only_own_tasks(operator_client, tasks):
    response = operator_client.get(reverse("campaigns:task_list"))
    assert [t.pk for t in response.context["tasks"]] == [tasks["mine"].pk]
    assert "assignee" not in response.context["filter_form"].fields


def test_manager_sees_everyones_tasks_and_filters_by_assignee(manager_client, other_operator, tasks):
    assert len(manager_client.get(reverse("campaigns:task_list")).context["tasks"]) == 2
    response = manager_client.get(reverse("campaigns:task_list"), {"assignee": other_operator.pk})
    assert [t.pk for t in response.context["tasks"]] == [tasks["theirs"].pk]


def test_marking_a_task_done(operator_client, tasks):
    response = operator_client.post(reverse("campaigns:task_done", args=[tasks["mine"].pk]))
    assert response.status_code == 302
    tasks["mine"].refresh_from_db()
    assert tasks["mine"].status == FollowUpTask.Status.DONE
    open_tasks = operator_client.get(reverse("campaigns:task_list")).context["tasks"]
    assert list(open_tasks) == []
    done = operator_client.get(reverse("campaigns:task_list"), {"status": "done"}).context["tasks"]
    assert [t.pk for t in done] == [tasks["mine"].pk]


def test_a_colleagues_task_is_a_404(operator_client, tasks):
    assert operator_client.post(reverse("campaigns:task_done", args=[tasks["theirs"].pk])).status_code == 404
    tasks["theirs"].refresh_from_db()
    assert tasks["theirs"].status == FollowUpTask.Status.OPEN


# --- Automations -----------------------------------------------------------------------------------


def _automation_data(**overrides) -> dict:
    data = {
        "name": "沉睡唤醒",
        "trigger": "inactive",
        "trigger_days": "30",
        "delay_minutes": "0",
        "action": "create_task",
        "task_title": "打电话唤醒",
        "medium": "wecom",
        "is_active": "on",
    }
    data.update(overrides)
    return data


def test_manager_creates_an_automation_and_switches_it_off_and_on(manager_client):
    response = manager_client.post(reverse("campaigns:automation_create"), _automation_data())
    assert response.status_code == 302, response.context["form"].errors
    automation = Automation.objects.get()
    assert (automation.trigger, automation.trigger_config, automation.task_title) == (
        "inactive",
        {"days": 30},
        "打电话唤醒",
    )
    assert automation.is_active

    manager_client.post(reverse("campaigns:automation_toggle", args=[automation.pk]), {"active": "0"})
    automation.refresh_from_db()
    assert not automation.is_active
    manager_client.post(reverse("campaigns:automation_toggle", args=[automation.pk]), {"active": "1"})
    automation.refresh_from_db()
    assert automation.is_active


def test_an_automation_sending_a_template_needs_its_variables(manager_client, template):
    response = manager_client.post(
        reverse("campaigns:automation_create"),
        _automation_data(trigger="contact_created", action="send_template", template=template.pk, variables=""),
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors
    assert "coupon" in " ".join(str(e) for errors in form.errors.values() for e in errors)
    assert not Automation.objects.exists()


def test_editing_an_automation_keeps_the_trigger_settings(manager_client):
    manager_client.post(reverse("campaigns:automation_create"), _automation_data())
    automation = Automation.objects.get()
    url = reverse("campaigns:automation_edit", args=[automation.pk])
    assert manager_client.get(url).context["form"]["trigger_days"].value() == 30
    manager_client.post(url, _automation_data(trigger_days="60"))
    automation.refresh_from_db()
    assert automation.trigger_config == {"days": 60}


def test_operators_see_automations_but_cannot_change_them(operator_client, manager_client):
    manager_client.post(reverse("campaigns:automation_create"), _automation_data())
    automation = Automation.objects.get()
    page = operator_client.get(reverse("campaigns:automation_list")).content.decode()
    assert "沉睡唤醒" in page and 'data-testid="automation-toggle"' not in page
    assert operator_client.post(reverse("campaigns:automation_toggle", args=[automation.pk])).status_code == 403
    assert operator_client.get(reverse("campaigns:automation_edit", args=[automation.pk])).status_code == 403


def test_community_trigger_offers_the_communities(manager_client):
    community = CommunityFactory(name="宝妈群")
    MembershipFactory(community=community)
    assert "宝妈群" in manager_client.get(reverse("campaigns:automation_create")).content.decode()


# --- Query counts ----------------------------------------------------------------------------------


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize(
    "name", ["campaigns:broadcast_list", "campaigns:outbox", "campaigns:task_list", "campaigns:segment_list"]
)
def test_list_pages_run_as_many_queries_for_many_rows_as_for_one(manager, manager_client, template, segment, name):
    community = CommunityFactory()

    def add_rows():
        contact = ContactFactory(region="上海")
        MembershipFactory(community=community, contact=contact)
        broadcast = _broadcast(manager, template, segment, communities=[community])
        _send(broadcast, manager)
        FollowUpTask.objects.create(assignee=manager, contact=contact, title="回访")
        Segment.objects.create(name=f"人群{contact.pk}", rules=EVERYONE)

    add_rows()
    url = reverse(name)
    one = _queries(manager_client, url)
    for _ in range(4):
        add_rows()
    assert _queries(manager_client, url) == one
