from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from communities.models import Membership
from communities.services import membership_join
from contacts import services
from contacts.models import Contact, ContactTag, Purchase, Touchpoint
from tests.factories import (
    CommunityFactory,
    ContactFactory,
    ProductFactory,
    TagFactory,
    TagGroupFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)


def record(contact, order, amount="100.00", at=T0, **kwargs):
    return services.purchase_record(
        contact=contact, external_order_id=order, purchased_at=at, amount=Decimal(amount), **kwargs
    )


def test_contact_create_normalises_phone_and_defaults_owner_to_the_operator(operator):
    contact = services.contact_create(actor=operator, name="王芳", phone="138 0013 8000")
    assert contact.phone == "+8613800138000"
    assert contact.owner == operator
    assert contact.stage == Contact.Stage.LEAD


def test_contact_create_keeps_owner_empty_for_a_manager(manager):
    contact = services.contact_create(actor=manager, name="李娜", phone="13900139000")
    assert contact.owner is None


def test_contact_create_rejects_a_duplicate_phone_naming_the_field():
    services.contact_create(name="A", phone="13800138000")
    with pytest.raises(ValidationError) as exc:
        services.contact_create(name="B", phone="+86 138 0013 8000")
    assert "phone" in exc.value.message_dict
    assert Contact.objects.count() == 1


def test_contact_create_with_consent_records_time_and_source():
    contact = services.contact_create(
        name="A", phone="13800138001", marketing_consent=True, consent_source="小程序授权"
    )
    assert contact.marketing_consent and contact.consent_at and contact.consent_source == "小程序授权"
    assert contact.can_receive_marketing


def test_contact_create_rejects_unknown_fields():
    with pytest.raises(ValidationError) as exc:
        services.contact_create(name="A", stage="advocate")
    assert "stage" in exc.value.message_dict


def test_empty_external_ids_are_stored_as_null_so_they_never_collide():
    a = services.contact_create(name="A", external_id="", phone="13800138002")
    b = services.contact_create(name="B", external_id="  ", phone="13800138003")
    assert a.external_id is None and b.external_id is None


def test_paid_purchase_makes_a_customer_and_second_makes_a_repeat_customer():
    contact = ContactFactory()
    record(contact, "O1", "100.00", T0)
    contact.refresh_from_db()
    assert (contact.stage, contact.purchase_count, contact.total_spent) == ("customer", 1, Decimal("100.00"))
    record(contact, "O2", "50.50", T0 + dt.timedelta(days=30))
    contact.refresh_from_db()
    assert contact.stage == Contact.Stage.REPEAT
    assert contact.purchase_count == 2
    assert contact.total_spent == Decimal("150.50")
    assert contact.first_purchase_at == T0
    assert contact.last_purchase_at == T0 + dt.timedelta(days=30)


def test_recording_the_same_order_twice_returns_the_same_purchase_and_counts_once():
    contact = ContactFactory()
    first, created = record(contact, "DUP-1")
    again, created_again = record(contact, "DUP-1")
    assert created and not created_again
    assert first.pk == again.pk
    contact.refresh_from_db()
    assert contact.purchase_count == 1
    assert Purchase.objects.count() == 1


def test_resending_an_order_with_another_amount_is_a_conflict_naming_amount():
    contact = ContactFactory()
    record(contact, "C-1", "100.00")
    with pytest.raises(services.ConflictError) as exc:
        record(contact, "C-1", "120.00")
    assert exc.value.field == "amount"


def test_resending_an_order_for_another_contact_is_a_conflict_naming_contact():
    record(ContactFactory(), "C-2")
    with pytest.raises(services.ConflictError) as exc:
        record(ContactFactory(), "C-2")
    assert exc.value.field == "contact"


def test_refund_removes_the_purchase_from_the_facts_and_is_idempotent():
    contact = ContactFactory()
    record(contact, "R1", "80.00")
    purchase, _ = record(contact, "R2", "20.00", T0 + dt.timedelta(days=1))
    services.purchase_refund(purchase=purchase)
    services.purchase_refund(purchase=purchase)
    contact.refresh_from_db()
    assert (contact.purchase_count, contact.total_spent, contact.stage) == (1, Decimal("80.00"), "customer")
    assert contact.last_purchase_at == T0


def test_resending_a_paid_order_as_refunded_applies_the_refund():
    contact = ContactFactory()
    record(contact, "R3")
    purchase, created = record(contact, "R3", status=Purchase.Status.REFUNDED)
    assert not created and purchase.status == Purchase.Status.REFUNDED
    contact.refresh_from_db()
    assert contact.purchase_count == 0 and contact.stage == Contact.Stage.LEAD


def test_purchase_with_items_stores_lines_at_the_given_or_catalogue_price():
    product = ProductFactory(price=Decimal("99.00"))
    purchase, _ = record(
        ContactFactory(),
        "I1",
        "149.00",
        items=[{"product": product, "quantity": 1}, {"product": product, "unit_price": "50.00"}],
    )
    assert sorted(item.unit_price for item in purchase.items.all()) == [Decimal("50.00"), Decimal("99.00")]


def test_purchase_with_negative_amount_is_rejected():
    with pytest.raises(ValidationError) as exc:
        record(ContactFactory(), "N1", "-1")
    assert "amount" in exc.value.message_dict
    assert not Purchase.objects.exists()


def test_purchase_for_a_merged_contact_lands_on_the_surviving_contact():
    primary, duplicate = ContactFactory(), ContactFactory()
    services.contact_merge(primary=primary, duplicate=duplicate)
    purchase, _ = record(Contact.objects.get(pk=duplicate.pk), "M-1")
    assert purchase.contact_id == primary.pk


def test_inbound_touchpoint_makes_a_lead_engaged_but_an_outbound_message_does_not():
    contact = ContactFactory()
    services.touchpoint_record(contact=contact, medium="wecom", kind="message_out")
    contact.refresh_from_db()
    assert contact.stage == Contact.Stage.LEAD and contact.last_interaction_at is None
    services.touchpoint_record(contact=contact, medium="wecom", kind="message_in")
    contact.refresh_from_db()
    assert contact.stage == Contact.Stage.ENGAGED and contact.last_interaction_at is not None


def test_touchpoint_with_unknown_medium_and_kind_names_both_fields():
    with pytest.raises(ValidationError) as exc:
        services.touchpoint_record(contact=ContactFactory(), medium="fax", kind="shout")
    assert set(exc.value.message_dict) == {"medium", "kind"}
    assert not Touchpoint.objects.exists()


def test_a_customer_who_refers_someone_becomes_an_advocate():
    referrer = ContactFactory()
    record(referrer, "A1")
    services.contact_create(name="朋友", phone="13700137000", referred_by=referrer)
    referrer.refresh_from_db()
    assert referrer.referral_count == 1
    assert referrer.stage == Contact.Stage.ADVOCATE


def test_stage_derivation_is_the_same_from_a_full_refresh():
    contact = ContactFactory()
    record(contact, "S1")
    record(contact, "S2")
    services.touchpoint_record(contact=contact, medium="chat", kind="message_in")
    contact.refresh_from_db()
    before = (contact.stage, contact.purchase_count, contact.total_spent, contact.last_interaction_at)
    Contact.objects.filter(pk=contact.pk).update(
        stage="lead", purchase_count=0, total_spent=0, last_interaction_at=None
    )
    services.contact_facts_refresh(contact_ids=[contact.pk])
    contact.refresh_from_db()
    assert (contact.stage, contact.purchase_count, contact.total_spent, contact.last_interaction_at) == before


def test_bulk_tag_is_idempotent_and_records_who_tagged(operator):
    contacts = ContactFactory.create_batch(3)
    tag = TagFactory()
    ids = [c.pk for c in contacts]
    assert services.contacts_tag(contact_ids=ids, tags=[tag], actor=operator) == 3
    assert services.contacts_tag(contact_ids=ids, tags=[tag], actor=operator) == 0
    link = ContactTag.objects.filter(tag=tag).first()
    assert link.tagged_by == operator and link.source == ContactTag.Source.MANUAL


def test_tag_in_an_exclusive_group_replaces_the_other_tag_of_that_group():
    group = TagGroupFactory(name="意向度", exclusive=True)
    strong, weak = TagFactory(group=group, name="强意向"), TagFactory(group=group, name="弱意向")
    contact = ContactFactory()
    services.contacts_tag(contact_ids=[contact.pk], tags=[weak])
    services.contacts_tag(contact_ids=[contact.pk], tags=[strong])
    assert list(contact.tags.all()) == [strong]


def test_two_tags_of_one_exclusive_group_at_once_are_rejected():
    group = TagGroupFactory(name="意向度", exclusive=True)
    with pytest.raises(ValidationError):
        services.contacts_tag(
            contact_ids=[ContactFactory().pk], tags=[TagFactory(group=group), TagFactory(group=group)]
        )


def test_untag_removes_only_the_given_tags():
    contact = ContactFactory()
    keep, drop = TagFactory(), TagFactory()
    services.contacts_tag(contact_ids=[contact.pk], tags=[keep, drop])
    assert services.contacts_untag(contact_ids=[contact.pk], tags=[drop]) == 1
    assert list(contact.tags.all()) == [keep]


def test_merge_moves_purchases_tags_memberships_and_referrals_and_frees_identifiers():
    primary = ContactFactory(name="", email="")
    duplicate = ContactFactory(name="张伟", email="zw@example.com", external_id="SHOP-9")
    shared, only_dup = TagFactory(), TagFactory()
    services.contacts_tag(contact_ids=[primary.pk, duplicate.pk], tags=[shared])
    services.contacts_tag(contact_ids=[duplicate.pk], tags=[only_dup])
    record(duplicate, "MERGE-1", "30.00")
    record(primary, "MERGE-2", "70.00")
    friend = ContactFactory(referred_by=duplicate)
    community = CommunityFactory()
    membership_join(community=community, contact=duplicate)
    membership_join(community=community, contact=primary)

    merged = services.contact_merge(primary=primary, duplicate=duplicate)

    assert merged.name == "张伟" and merged.email == "zw@example.com" and merged.external_id == "SHOP-9"
    assert merged.purchase_count == 2 and merged.total_spent == Decimal("100.00")
    assert set(merged.tags.all()) == {shared, only_dup}
    assert Membership.objects.filter(contact=merged, left_at__isnull=True).count() == 1
    friend.refresh_from_db()
    assert friend.referred_by_id == merged.pk
    assert merged.stage == Contact.Stage.ADVOCATE
    tombstone = Contact.objects.get(pk=duplicate.pk)
    assert tombstone.merged_into_id == merged.pk
    assert tombstone.phone is None and tombstone.external_id is None


def test_merge_keeps_an_opt_out_from_either_record():
    primary = ContactFactory(marketing_consent=True)
    duplicate = ContactFactory(marketing_consent=False, opted_out_at=timezone.now())
    merged = services.contact_merge(primary=primary, duplicate=duplicate)
    assert merged.opted_out_at is not None and not merged.can_receive_marketing


def test_merging_a_contact_into_itself_is_rejected():
    contact = ContactFactory()
    with pytest.raises(ValidationError):
        services.contact_merge(primary=contact, duplicate=contact)


def test_erase_removes_personal_data_but_keeps_purchases_for_totals():
    contact = ContactFactory(name="赵敏", email="zm@example.com", external_id="X1")
    services.contacts_tag(contact_ids=[contact.pk], tags=[TagFactory()])
    record(contact, "E1", "42.00")
    services.touchpoint_record(contact=contact, medium="chat", kind="message_in", metadata={"text": "你好"})
    erased = services.contact_erase(contact=contact)
    assert erased.erased_at and erased.name == "" and erased.phone is None and erased.external_id is None
    assert not erased.tags.exists()
    assert Touchpoint.objects.get(contact=erased).metadata == {}
    assert Purchase.objects.get(contact=erased).amount == Decimal("42.00")
    assert erased.total_spent == Decimal("42.00")


def test_opt_out_is_idempotent_and_keeps_the_first_time():
    contact = ContactFactory(marketing_consent=True)
    first = services.contact_opt_out(contact=contact).opted_out_at
    second = services.contact_opt_out(contact=contact, at=first + dt.timedelta(days=1)).opted_out_at
    assert first == second and not contact.marketing_consent


def test_giving_consent_again_after_opt_out_opts_back_in():
    contact = services.contact_opt_out(contact=ContactFactory())
    contact = services.contact_consent_give(contact=contact, source="公众号表单")
    assert contact.can_receive_marketing and contact.opted_out_at is None


def test_handover_moves_all_contacts_and_communities_of_a_departing_operator(operator, other_operator):
    ContactFactory.create_batch(3, owner=operator)
    ContactFactory(owner=other_operator)
    CommunityFactory(owner=operator)
    result = services.contacts_handover(from_user=operator, to_user=other_operator)
    assert result == {"contacts": 3, "communities": 1}
    assert Contact.objects.filter(owner=other_operator).count() == 4
    assert services.contacts_handover(from_user=operator, to_user=other_operator) == {"contacts": 0, "communities": 0}


def test_handover_to_an_inactive_user_is_rejected(operator):
    gone = UserFactory(username="gone", is_active=False)
    with pytest.raises(ValidationError) as exc:
        services.contacts_handover(from_user=operator, to_user=gone)
    assert "to_user" in exc.value.message_dict
