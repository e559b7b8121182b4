"""Segments are shared for reading and use, but only their author and managers change or delete them; a
broadcast's audience is frozen when it is approved (or submitted by a manager) and planned from that copy."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import translation

from campaigns import selectors, sending, services
from campaigns.models import Broadcast, FrequencyPolicy, MessageTemplate, Segment
from tests.factories import ContactFactory

EVERYONE = {"op": "and", "rules": []}
SHANGHAI_ONLY = {"op": "and", "rules": [{"field": "region", "operator": "in", "value": ["上海"]}]}


@pytest.fixture(autouse=True)
def _no_quiet_hours(db):
    FrequencyPolicy.objects.update_or_create(pk=1, defaults={"quiet_hours_enabled": False})


@pytest.fixture
def template(db):
    return MessageTemplate.objects.create(name="Promo", body="{name}，您好")


@pytest.fixture
def managers_segment(manager):
    return Segment.objects.create(name="上海", rules=SHANGHAI_ONLY, created_by=manager)


def _broadcast(user, template, segment) -> Broadcast:
    return services.broadcast_create(created_by=user, name="Double 12", template=template, segment=segment)


def test_an_operator_cannot_change_a_managers_segment_through_the_api(operator_api, managers_segment):
    url = f"/api/v1/segments/{managers_segment.pk}/"
    assert operator_api.get(url).status_code == 200
    response = operator_api.patch(url, {"rules": EVERYONE}, format="json")
    assert response.status_code == 403
    assert operator_api.put(url, {"name": "x", "rules": EVERYONE}, format="json").status_code == 403
    assert operator_api.delete(url).status_code == 403
    managers_segment.refresh_from_db()
    assert managers_segment.rules == SHANGHAI_ONLY


def test_an_operator_cannot_change_a_managers_segment_on_the_dashboard(client, operator, managers_segment):
    client.force_login(operator)
    url = reverse("campaigns:segment_edit", args=[managers_segment.pk])
    page = client.get(url)
    assert page.status_code == 200 and not page.context["can_change"]
    response = client.post(url, {"name": "all", "description": "", "rules": '{"op": "and", "rules": []}'})
    assert response.status_code == 403
    managers_segment.refresh_from_db()
    assert managers_segment.rules == SHANGHAI_ONLY


def test_the_author_and_managers_may_change_a_segment(operator, other_operator, manager, operator_api):
    segment = Segment.objects.create(name="mine", rules=EVERYONE, created_by=operator)
    response = operator_api.patch(f"/api/v1/segments/{segment.pk}/", {"rules": SHANGHAI_ONLY}, format="json")
    assert response.status_code == 200
    assert services.segment_update(segment=segment, user=manager, name="renamed").name == "renamed"
    with pytest.raises(PermissionDenied):
        services.segment_update(segment=segment, user=other_operator, name="theirs")
    with pytest.raises(PermissionDenied):
        services.segment_delete(segment=segment, user=other_operator)


def test_a_manager_submitting_freezes_the_audience_and_planning_uses_the_frozen_rules(manager, template):
    ContactFactory(region="上海", marketing_consent=True)
    ContactFactory(region="北京", marketing_consent=True)
    segment = Segment.objects.create(name="上海", rules=SHANGHAI_ONLY, created_by=manager)
    broadcast = _broadcast(manager, template, segment)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.SCHEDULED
    assert broadcast.audience_rules == SHANGHAI_ONLY and broadcast.audience_count == 1
    # Even if the segment were widened behind the lock's back, planning reads the frozen copy.
    Segment.objects.filter(pk=segment.pk).update(rules=EVERYONE)
    broadcast.refresh_from_db()
    assert sending.broadcast_plan(broadcast=broadcast) == 1


def test_approval_freezes_the_count_the_approver_saw(operator, manager, template):
    ContactFactory(owner=operator, region="上海")
    ContactFactory(owner=operator, region="北京")
    segment = Segment.objects.create(name="上海", rules=SHANGHAI_ONLY, created_by=operator)
    broadcast = _broadcast(operator, template, segment)
    services.broadcast_submit(broadcast=broadcast, user=operator)
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_APPROVAL and broadcast.audience_frozen_at is None
    services.broadcast_approve(broadcast=broadcast, user=manager)
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.SCHEDULED
    assert (broadcast.audience_rules, broadcast.audience_count) == (SHANGHAI_ONLY, 1)


def test_rules_changed_after_submission_need_a_new_approval(operator, manager, template):
    ContactFactory(owner=operator, region="上海")
    segment = Segment.objects.create(name="上海", rules=SHANGHAI_ONLY, created_by=operator)
    broadcast = _broadcast(operator, template, segment)
    services.broadcast_submit(broadcast=broadcast, user=operator)
    Segment.objects.filter(pk=segment.pk).update(rules=EVERYONE)  # past the service's lock
    with pytest.raises(ValidationError) as refused:
        services.broadcast_approve(broadcast=broadcast, user=manager)
    assert "audience" in refused.value.message_dict
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.DRAFT and broadcast.audience_rules is None


def test_a_draft_follows_its_segment_until_it_is_submitted(manager, template):
    segment = Segment.objects.create(name="上海", rules=SHANGHAI_ONLY, created_by=manager)
    broadcast = _broadcast(manager, template, segment)
    services.segment_update(segment=segment, user=manager, rules=EVERYONE)
    broadcast.refresh_from_db()
    assert selectors.broadcast_segment_rules(broadcast) == EVERYONE


def test_the_lock_message_names_only_broadcasts_the_user_may_see(operator, other_operator, manager, template):
    ContactFactory(owner=operator)
    ContactFactory(owner=other_operator)
    segment = Segment.objects.create(name="all", rules=EVERYONE, created_by=operator)
    mine = services.broadcast_create(created_by=operator, name="Mine", template=template, segment=segment)
    theirs = services.broadcast_create(
        created_by=other_operator, name="Secret plan", template=template, segment=segment
    )
    services.broadcast_submit(broadcast=mine, user=operator)
    services.broadcast_submit(broadcast=theirs, user=other_operator)
    with translation.override("en"):
        with pytest.raises(ValidationError) as refused:
            services.segment_update(segment=segment, user=operator, rules=SHANGHAI_ONLY)
        message = str(refused.value.message_dict["rules"][0])
    assert "Mine" in message and "Secret plan" not in message
    assert "1 of other users" in message


def test_rules_naming_another_operators_community_read_as_unknown_everywhere(operator, other_operator, manager):
    from tests.factories import CommunityFactory

    theirs = CommunityFactory(owner=other_operator)
    rules = {"op": "and", "rules": [{"field": "community", "operator": "in", "value": [theirs.pk]}]}
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.segment_create(name="x", rules=rules, created_by=operator)
    with translation.override("en"), pytest.raises(ValidationError) as unknown:
        services.segment_create(
            name="x",
            rules={**rules, "rules": [{**rules["rules"][0], "value": [theirs.pk + 1000]}]},
            created_by=operator,
        )
    assert str(refused.value.message_dict["rules"][0]).replace(str(theirs.pk), "ID") == str(
        unknown.value.message_dict["rules"][0]
    ).replace(str(theirs.pk + 1000), "ID")
    # A manager sees every community: the same rules are fine.
    assert services.segment_create(name="x", rules=rules, created_by=manager).pk
