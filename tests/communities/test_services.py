from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from communities.models import Community, Membership
from communities.services import community_create, membership_join, membership_leave
from contacts.models import Contact, Touchpoint
from tests.factories import CommunityFactory, ContactFactory

pytestmark = pytest.mark.django_db


def test_joining_records_a_join_touchpoint_and_engages_the_contact():
    community = CommunityFactory(platform=Community.Platform.WECOM_GROUP)
    contact = ContactFactory()
    membership, created = membership_join(community=community, contact=contact)
    assert created and membership.is_active
    touchpoint = Touchpoint.objects.get(contact=contact)
    assert (touchpoint.kind, touchpoint.medium, touchpoint.community_id) == ("join_group", "wecom", community.pk)
    contact.refresh_from_db()
    assert contact.stage == Contact.Stage.ENGAGED


def test_joining_twice_returns_the_open_membership():
    community, contact = CommunityFactory(), ContactFactory()
    first, _ = membership_join(community=community, contact=contact)
    again, created = membership_join(community=community, contact=contact)
    assert not created and again.pk == first.pk
    assert Membership.objects.count() == 1


def test_leaving_then_rejoining_keeps_the_history():
    community, contact = CommunityFactory(), ContactFactory()
    first, _ = membership_join(community=community, contact=contact, joined_at=timezone.now() - dt.timedelta(days=3))
    membership_leave(membership=first)
    second, created = membership_join(community=community, contact=contact)
    assert created and second.pk != first.pk
    assert Membership.objects.filter(contact=contact).count() == 2
    assert Touchpoint.objects.filter(contact=contact, kind="leave_group").count() == 1


def test_leaving_twice_keeps_the_first_leaving_time():
    membership, _ = membership_join(community=CommunityFactory(), contact=ContactFactory())
    left = membership_leave(membership=membership).left_at
    assert membership_leave(membership=membership, left_at=left + dt.timedelta(hours=1)).left_at == left


def test_a_full_community_refuses_another_member():
    community = CommunityFactory(capacity=1)
    membership_join(community=community, contact=ContactFactory())
    with pytest.raises(ValidationError) as exc:
        membership_join(community=community, contact=ContactFactory())
    assert "community" in exc.value.message_dict


def test_an_archived_community_refuses_members():
    with pytest.raises(ValidationError):
        membership_join(community=CommunityFactory(status="archived"), contact=ContactFactory())


def test_operator_creating_a_community_runs_it(operator):
    community = community_create(actor=operator, name="新品体验官")
    assert community.owner == operator
