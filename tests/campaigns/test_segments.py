"""The segment rule language: every field and operator against generated contacts, nesting, the
validation messages, scoping by the asking user, and the shape of the SQL (one query, no duplicates)."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from analytics.models import Layer
from campaigns import segments
from campaigns.models import Segment
from campaigns.segments import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    SEGMENT_FIELDS,
    SegmentField,
    segment_contacts,
    segment_count,
    segment_q,
    segment_rules_validate,
)
from campaigns.services import segment_create, segment_update
from contacts.models import Contact, ContactTag
from tests.campaigns.factories import ContactScoreFactory, SegmentFactory
from tests.factories import (
    ChannelFactory,
    CommunityFactory,
    ContactFactory,
    MembershipFactory,
    TagFactory,
    UserFactory,
)

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=SHANGHAI)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    # The messages are asserted in their source language (the project's default is zh-hans).
    with translation.override("en"):
        yield


def rule(field: str, operator: str, value=None) -> dict:
    condition = {"field": field, "operator": operator}
    if value is not None:
        condition["value"] = value
    return condition


def group(op: str, *rules) -> dict:
    return {"op": op, "rules": list(rules)}


def matching(rules, **kwargs) -> set[int]:
    return set(segment_contacts(rules, now=NOW, **kwargs).values_list("pk", flat=True))


def one(field: str, operator: str, value=None) -> set[int]:
    return matching(group("and", rule(field, operator, value)))


def problems(rules) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        segment_rules_validate(rules)
    return exc.value.message_dict["rules"]


def tag_contact(contact, *tags) -> None:
    for tag in tags:
        ContactTag.objects.create(contact=contact, tag=tag)


# --- Fields and operators ----------------------------------------------------------------------


def test_tags_any_all_none():
    vip, new, cold = TagFactory(), TagFactory(), TagFactory()
    both = ContactFactory()
    tag_contact(both, vip, new)
    only_vip = ContactFactory()
    tag_contact(only_vip, vip)
    only_cold = ContactFactory()
    tag_contact(only_cold, cold)
    untagged = ContactFactory()

    assert one("tags", "any", [vip.pk, new.pk]) == {both.pk, only_vip.pk}
    assert one("tags", "all", [vip.pk, new.pk]) == {both.pk}
    assert one("tags", "none", [vip.pk, new.pk]) == {only_cold.pk, untagged.pk}


def test_tags_all_compiles_to_one_exists_per_tag():
    tags = [TagFactory() for _ in range(3)]
    sql = str(Contact.objects.filter(segment_q(group("and", rule("tags", "all", [t.pk for t in tags])))).query)
    assert sql.count("EXISTS") == 3
    assert "JOIN" not in sql


def test_multi_tag_rules_never_duplicate_contacts():
    tags = [TagFactory() for _ in range(3)]
    contact = ContactFactory()
    tag_contact(contact, *tags)
    other = ContactFactory()
    tag_contact(other, tags[0], tags[1])
    community = CommunityFactory()
    MembershipFactory(contact=contact, community=community)
    rules = group(
        "or",
        rule("tags", "any", [t.pk for t in tags]),
        rule("tags", "all", [t.pk for t in tags]),
        rule("community", "in", [community.pk]),
    )
    rows = list(segment_contacts(rules, now=NOW).values_list("pk", flat=True))
    assert sorted(rows) == sorted({contact.pk, other.pk})
    assert segment_count(rules) == 2


def test_stage_in_and_not_in():
    lead = ContactFactory(stage=Contact.Stage.LEAD)
    customer = ContactFactory(stage=Contact.Stage.CUSTOMER)
    repeat = ContactFactory(stage=Contact.Stage.REPEAT)
    assert one("stage", "in", ["customer", "repeat"]) == {customer.pk, repeat.pk}
    assert one("stage", "not_in", ["customer", "repeat"]) == {lead.pk}


def test_channel_in_not_in_and_is_empty():
    ads, store = ChannelFactory(), ChannelFactory()
    from_ads = ContactFactory(channel=ads)
    from_store = ContactFactory(channel=store)
    unknown = ContactFactory(channel=None)
    assert one("channel", "in", [ads.pk]) == {from_ads.pk}
    # "not from the ads channel" includes contacts whose channel is unknown.
    assert one("channel", "not_in", [ads.pk]) == {from_store.pk, unknown.pk}
    assert one("channel", "is_empty") == {unknown.pk}


def test_owner_in_not_in_and_is_empty():
    alice, bob = UserFactory(), UserFactory()
    of_alice = ContactFactory(owner=alice)
    of_bob = ContactFactory(owner=bob)
    unowned = ContactFactory(owner=None)
    assert one("owner", "in", [alice.pk]) == {of_alice.pk}
    assert one("owner", "not_in", [alice.pk]) == {of_bob.pk, unowned.pk}
    assert one("owner", "is_empty") == {unowned.pk}


def test_community_counts_only_open_memberships():
    group_a, group_b = CommunityFactory(), CommunityFactory()
    member = ContactFactory()
    MembershipFactory(contact=member, community=group_a)
    left = ContactFactory()
    MembershipFactory(contact=left, community=group_a, joined_at=NOW - dt.timedelta(days=9), left_at=NOW)
    in_b = ContactFactory()
    MembershipFactory(contact=in_b, community=group_b)
    outsider = ContactFactory()
    assert one("community", "in", [group_a.pk]) == {member.pk}
    assert one("community", "in", [group_a.pk, group_b.pk]) == {member.pk, in_b.pk}
    assert one("community", "not_in", [group_a.pk]) == {left.pk, in_b.pk, outsider.pk}


def test_rfm_layer_in_and_not_in():
    core = ContactScoreFactory(layer=Layer.CORE).contact
    dormant = ContactScoreFactory(layer=Layer.DORMANT).contact
    layered_none = ContactScoreFactory(layer=Layer.NONE).contact
    unscored = ContactFactory()
    assert one("rfm_layer", "in", ["core", "dormant"]) == {core.pk, dormant.pk}
    assert one("rfm_layer", "not_in", ["core"]) == {dormant.pk, layered_none.pk, unscored.pk}
    # Not scored yet counts as "not layered".
    assert one("rfm_layer", "in", ["none"]) == {layered_none.pk, unscored.pk}
    assert one("rfm_layer", "not_in", ["none"]) == {core.pk, dormant.pk}


def test_predicted_clv_ranges_skip_contacts_without_a_prediction():
    low = ContactScoreFactory(predicted_clv=Decimal("100.00")).contact
    high = ContactScoreFactory(predicted_clv=Decimal("900.50")).contact
    ContactScoreFactory(predicted_clv=None)
    ContactFactory()
    assert one("predicted_clv", "gte", "900.50") == {high.pk}
    assert one("predicted_clv", "lte", 100) == {low.pk}
    assert one("predicted_clv", "between", [50, "1000"]) == {low.pk, high.pk}
    assert one("predicted_clv", "gte", 0) == {low.pk, high.pk}


def test_days_since_last_purchase_counts_whole_days_in_the_business_time_zone():
    # "Today" is 2026-11-23 in Shanghai.
    late_on_the_20th = ContactFactory(last_purchase_at=dt.datetime(2026, 11, 20, 23, 59, tzinfo=SHANGHAI))
    early_on_the_20th = ContactFactory(last_purchase_at=dt.datetime(2026, 11, 20, 0, 0, tzinfo=SHANGHAI))
    on_the_21st = ContactFactory(last_purchase_at=dt.datetime(2026, 11, 21, 0, 1, tzinfo=SHANGHAI))
    this_morning = ContactFactory(last_purchase_at=dt.datetime(2026, 11, 23, 0, 0, tzinfo=SHANGHAI))
    ContactFactory(last_purchase_at=None)  # never bought: matches none of them
    three_days = {late_on_the_20th.pk, early_on_the_20th.pk}

    assert one("days_since_last_purchase", "gte", 3) == three_days
    assert one("days_since_last_purchase", "lte", 2) == {on_the_21st.pk, this_morning.pk}
    assert one("days_since_last_purchase", "between", [2, 3]) == three_days | {on_the_21st.pk}
    assert one("days_since_last_purchase", "lte", 0) == {this_morning.pk}
    assert one("days_since_last_purchase", "gte", 0) == three_days | {on_the_21st.pk, this_morning.pk}


def test_days_since_last_purchase_is_relative_to_now():
    bought = ContactFactory(last_purchase_at=dt.datetime(2026, 11, 1, 10, 0, tzinfo=SHANGHAI))
    rules = group("and", rule("days_since_last_purchase", "gte", 30))
    assert not matching(rules)
    later = NOW + dt.timedelta(days=8)
    assert set(segment_contacts(rules, now=later).values_list("pk", flat=True)) == {bought.pk}


def test_purchase_count_eq_gte_lte_between():
    never = ContactFactory(purchase_count=0)
    once = ContactFactory(purchase_count=1)
    thrice = ContactFactory(purchase_count=3)
    assert one("purchase_count", "eq", 0) == {never.pk}
    assert one("purchase_count", "gte", 1) == {once.pk, thrice.pk}
    assert one("purchase_count", "lte", 1) == {never.pk, once.pk}
    assert one("purchase_count", "between", [1, 2]) == {once.pk}


def test_total_spent_compares_decimals():
    cheap = ContactFactory(total_spent=Decimal("99.99"))
    exact = ContactFactory(total_spent=Decimal("100.00"))
    big = ContactFactory(total_spent=Decimal("2500.50"))
    assert one("total_spent", "gte", "100") == {exact.pk, big.pk}
    assert one("total_spent", "lte", 99.99) == {cheap.pk}
    assert one("total_spent", "between", ["99.995", "2500.50"]) == {exact.pk, big.pk}


def test_region_eq_in_not_in():
    shanghai = ContactFactory(region="上海")
    hangzhou = ContactFactory(region="杭州")
    blank = ContactFactory(region="")
    assert one("region", "eq", "上海") == {shanghai.pk}
    assert one("region", "in", ["上海", "杭州"]) == {shanghai.pk, hangzhou.pk}
    assert one("region", "not_in", ["上海"]) == {hangzhou.pk, blank.pk}


def test_region_values_are_parameters_not_sql():
    ContactFactory(region="上海")
    hostile = "上海'); DELETE FROM contacts_contact; --"
    assert one("region", "in", [hostile[:64]]) == set()
    assert one("region", "eq", "' OR '1'='1") == set()
    assert Contact.objects.count() == 1


def test_gender_in():
    woman = ContactFactory(gender=Contact.Gender.FEMALE)
    ContactFactory(gender=Contact.Gender.MALE)
    unknown = ContactFactory(gender=Contact.Gender.UNKNOWN)
    assert one("gender", "in", ["female", "unknown"]) == {woman.pk, unknown.pk}


def test_birthday_month_in():
    march = ContactFactory(birthday=dt.date(1990, 3, 31))
    december = ContactFactory(birthday=dt.date(1985, 12, 1))
    ContactFactory(birthday=dt.date(1990, 4, 1))
    ContactFactory(birthday=None)
    assert one("birthday_month", "in", [3, 12]) == {march.pk, december.pk}


def test_acquired_at_uses_whole_days_in_the_business_time_zone():
    # 00:30 on 1 March in Shanghai is still 28 February in UTC: it belongs to 1 March.
    first_minutes = ContactFactory(acquired_at=dt.datetime(2026, 3, 1, 0, 30, tzinfo=SHANGHAI))
    last_minute = ContactFactory(acquired_at=dt.datetime(2026, 3, 31, 23, 59, tzinfo=SHANGHAI))
    before = ContactFactory(acquired_at=dt.datetime(2026, 2, 28, 23, 59, tzinfo=SHANGHAI))
    after = ContactFactory(acquired_at=dt.datetime(2026, 4, 1, 0, 0, tzinfo=SHANGHAI))
    march = {first_minutes.pk, last_minute.pk}
    assert one("acquired_at", "between", ["2026-03-01", "2026-03-31"]) == march
    assert one("acquired_at", "gte", "2026-03-01") == march | {after.pk}
    assert one("acquired_at", "lte", "2026-03-31") == march | {before.pk}
    assert one("acquired_at", "between", ["2026-03-01", "2026-03-01"]) == {first_minutes.pk}


def test_acquired_at_is_a_range_on_the_column_not_a_date_cast():
    sql = str(
        Contact.objects.filter(
            segment_q(group("and", rule("acquired_at", "between", ["2026-03-01", "2026-03-31"])))
        ).query
    )
    assert '"acquired_at" >=' in sql and '"acquired_at" <' in sql
    assert "django_datetime_cast_date" not in sql and "::date" not in sql and "AT TIME ZONE" not in sql


def test_consent_means_given_and_not_opted_out():
    consented = ContactFactory(marketing_consent=True)
    never_asked = ContactFactory(marketing_consent=False)
    opted_out = ContactFactory(marketing_consent=True, opted_out_at=timezone.now())
    assert one("consent", "is_true") == {consented.pk}
    assert one("consent", "is_false") == {never_asked.pk, opted_out.pk}
    assert one("opted_out", "is_true") == {opted_out.pk}
    assert one("opted_out", "is_false") == {consented.pk, never_asked.pk}


# --- Groups, liveness, scoping ----------------------------------------------------------------------


def test_and_or_nesting():
    vip = TagFactory()
    a = ContactFactory(region="上海", stage="customer")
    tag_contact(a, vip)
    b = ContactFactory(region="杭州", stage="customer", total_spent=Decimal("800"))
    c = ContactFactory(region="杭州", stage="lead", total_spent=Decimal("800"))
    ContactFactory(region="北京", stage="customer")
    rules = group(
        "and",
        rule("stage", "in", ["customer"]),
        group(
            "or",
            rule("tags", "any", [vip.pk]),
            group("and", rule("region", "eq", "杭州"), rule("total_spent", "gte", 500)),
        ),
    )
    assert matching(rules) == {a.pk, b.pk}
    assert c.pk not in matching(rules)


def test_or_group_at_the_root():
    a = ContactFactory(region="上海")
    b = ContactFactory(purchase_count=5)
    ContactFactory(region="北京")
    assert matching(group("or", rule("region", "eq", "上海"), rule("purchase_count", "gte", 5))) == {a.pk, b.pk}


def test_never_bought_contacts_can_be_added_with_an_or_group():
    lapsed = ContactFactory(purchase_count=1, last_purchase_at=NOW - dt.timedelta(days=100))
    never = ContactFactory(purchase_count=0)
    rules = group("or", rule("days_since_last_purchase", "gte", 90), rule("purchase_count", "eq", 0))
    assert matching(rules) == {lapsed.pk, never.pk}


def test_an_empty_group_means_every_live_contact():
    live = ContactFactory()
    erased = ContactFactory(erased_at=timezone.now())
    ContactFactory(merged_into=live)
    assert erased.pk not in matching(group("and"))
    assert matching(group("and")) == {live.pk}
    assert matching({}) == {live.pk}


def test_merged_and_erased_contacts_never_match():
    live = ContactFactory(region="上海")
    ContactFactory(region="上海", erased_at=timezone.now())
    ContactFactory(region="上海", merged_into=live)
    assert one("region", "eq", "上海") == {live.pk}


def test_operators_see_only_their_own_contacts(operator, other_operator, manager):
    mine = ContactFactory(owner=operator, region="上海")
    theirs = ContactFactory(owner=other_operator, region="上海")
    rules = group("and", rule("region", "eq", "上海"))
    assert matching(rules, user=operator) == {mine.pk}
    assert matching(rules, user=manager) == {mine.pk, theirs.pk}
    assert segment_count(rules, user=operator) == 1
    assert segment_count(rules, user=manager) == 2
    # Even a rule naming another operator's contacts' owner reveals nothing.
    assert segment_count(group("and", rule("owner", "in", [other_operator.pk])), user=operator) == 0


def test_a_saved_segment_can_be_passed_instead_of_rules():
    contact = ContactFactory(region="杭州")
    ContactFactory(region="上海")
    segment = SegmentFactory(rules=group("and", rule("region", "eq", "杭州")))
    assert set(segment_contacts(segment).values_list("pk", flat=True)) == {contact.pk}
    assert segment_count(segment) == 1


def test_segment_count_is_one_query(manager):
    tags = [TagFactory() for _ in range(3)]
    for tag in tags:
        tag_contact(ContactFactory(), tag)
    community = CommunityFactory()
    rules = group(
        "and",
        rule("tags", "all", [tags[0].pk]),
        group("or", rule("community", "not_in", [community.pk]), rule("rfm_layer", "in", ["core"])),
    )
    with CaptureQueriesContext(connection) as queries:
        assert segment_count(rules) == 1
    assert len(queries) == 1
    assert "COUNT(" in queries[0]["sql"].upper()
    assert "DISTINCT" not in queries[0]["sql"].upper()

    manager.has_perm("contacts.view_all_contacts")  # the permission cache lives on the user object
    with CaptureQueriesContext(connection) as queries:
        assert segment_count(rules, user=manager) == 1
    assert len(queries) == 1


def test_segment_q_runs_no_query_and_ids_deleted_later_match_nothing():
    tag = TagFactory()
    tag_contact(ContactFactory(), tag)
    rules = segment_rules_validate(group("and", rule("tags", "any", [tag.pk])))
    tag.delete()
    with CaptureQueriesContext(connection) as queries:
        q = segment_q(rules, now=NOW)
    assert len(queries) == 0
    assert isinstance(q, Q)
    assert not Contact.objects.filter(q).exists()


def test_segment_q_rejects_malformed_rules():
    with pytest.raises(ValidationError):
        segment_q(group("and", rule("shoe_size", "eq", 42)))


def test_a_new_field_is_one_registry_entry(monkeypatch):
    monkeypatch.setitem(
        SEGMENT_FIELDS,
        "occupation",
        SegmentField(
            label="Occupation",
            operators={"eq": segments.Operator(segments.fields._text, lambda value, **ctx: Q(occupation=value))},
        ),
    )
    nurse = ContactFactory(occupation="护士")
    ContactFactory(occupation="教师")
    assert one("occupation", "eq", "护士") == {nurse.pk}
    assert any(field["field"] == "occupation" for field in segments.segment_fields_describe())


def test_fields_describe_lists_every_field_with_its_operators():
    described = {field["field"]: field for field in segments.segment_fields_describe()}
    assert set(described) >= {
        "tags",
        "stage",
        "channel",
        "owner",
        "community",
        "rfm_layer",
        "predicted_clv",
        "days_since_last_purchase",
        "purchase_count",
        "total_spent",
        "region",
        "gender",
        "birthday_month",
        "acquired_at",
        "consent",
        "opted_out",
    }
    assert described["tags"]["operators"] == ["any", "all", "none"]
    assert {c["value"] for c in described["rfm_layer"]["choices"]} == set(Layer.values)
    json.dumps(list(described.values()))


# --- Validation --------------------------------------------------------------------------------


def test_validation_returns_normalised_rules():
    tag = TagFactory()
    channel = ChannelFactory()
    rules = group(
        "and",
        rule("tags", "any", [tag.pk, str(tag.pk), tag.pk]),
        rule("total_spent", "between", [100, "250.5"]),
        rule("acquired_at", "gte", " 2026-03-01 "),
        rule("channel", "in", [channel.pk]),
        {"field": "consent", "operator": "is_true", "value": None},
        group("or", rule("region", "in", [" 上海 ", "上海"]), rule("predicted_clv", "gte", 0)),
    )
    normalised = segment_rules_validate(rules)
    assert normalised == {
        "op": "and",
        "rules": [
            {"field": "tags", "operator": "any", "value": [tag.pk]},
            {"field": "total_spent", "operator": "between", "value": ["100.00", "250.50"]},
            {"field": "acquired_at", "operator": "gte", "value": "2026-03-01"},
            {"field": "channel", "operator": "in", "value": [channel.pk]},
            {"field": "consent", "operator": "is_true", "value": None},
            {
                "op": "or",
                "rules": [
                    {"field": "region", "operator": "in", "value": ["上海"]},
                    {"field": "predicted_clv", "operator": "gte", "value": "0.00"},
                ],
            },
        ],
    }
    assert json.loads(json.dumps(normalised)) == normalised
    assert segment_rules_validate(normalised) == normalised


def test_unknown_operator_message_names_the_place_and_the_choices():
    assert problems(group("and", rule("region", "eq", "上海"), rule("stage", "contains", ["lead"]))) == [
        "rules[1].operator: unknown operator 'contains' for field 'stage'; one of in, not_in"
    ]


def test_nested_paths_are_reported():
    messages = problems(group("and", group("or", rule("region", "eq", "上海"), rule("purchase_count", "gte", -1))))
    assert messages == ["rules[0].rules[1].value: expected a number from 0 to 1000000000, got -1"]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([], "rules: expected a group"),
        ("and", "rules: expected a group"),
        ({"op": "xor", "rules": []}, "op: expected “and” or “or”, got 'xor'"),
        ({"op": "and"}, "rules: expected a list of rules"),
        ({"op": "and", "rules": {}}, "rules: expected a list of rules"),
        ({"op": "and", "rules": [], "limit": 5}, "limit: unknown key"),
        ({"op": "and", "rules": ["stage"]}, "rules[0]: expected a condition"),
        ({"op": "and", "rules": [{"operator": "in"}]}, "rules[0]: expected a condition"),
        (group("and", group("or")), "rules[0].rules: an empty group"),
        (group("and", {"field": "stage", "operator": "in", "value": ["lead"], "x": 1}), "rules[0].x: unknown key"),
        (group("and", rule("shoe_size", "eq", 42)), "rules[0].field: unknown field 'shoe_size'; one of tags, stage"),
        (group("and", {"field": ["stage"], "operator": "in"}), 'rules[0].field: unknown field ["stage"]'),
        (
            group("and", rule("tags", "in", [1])),
            "rules[0].operator: unknown operator 'in' for field 'tags'; one of any, all, none",
        ),
        (group("and", rule("stage", "in", "lead")), "rules[0].value: expected a list, got 'lead'"),
        (group("and", rule("stage", "in", [])), "rules[0].value: choose at least one value"),
        (group("and", rule("stage", "in", ["vip"])), "rules[0].value: unknown value 'vip'; one of lead, engaged"),
        (group("and", rule("stage", "in", [1])), "rules[0].value: unknown value 1"),
        (group("and", rule("tags", "any", ["x"])), "rules[0].value: expected ids (positive integers), got 'x'"),
        (group("and", rule("tags", "any", [0])), "rules[0].value: expected ids"),
        (group("and", rule("tags", "any", [True])), "rules[0].value: expected ids"),
        (group("and", rule("tags", "any", list(range(1, 600)))), "rules[0].value: at most 500 values, got 599"),
        (group("and", rule("channel", "is_empty", True)), "rules[0].value: this operator takes no value"),
        (group("and", rule("consent", "is_true", "yes")), "rules[0].value: this operator takes no value"),
        (group("and", rule("purchase_count", "gte", "3")), "rules[0].value: expected a whole number, got '3'"),
        (group("and", rule("purchase_count", "gte", 2.5)), "rules[0].value: expected a whole number, got 2.5"),
        (group("and", rule("purchase_count", "eq", True)), "rules[0].value: expected a whole number, got true"),
        (group("and", rule("days_since_last_purchase", "between", [30])), "rules[0].value: expected [from, to]"),
        (group("and", rule("days_since_last_purchase", "between", [90, 30])), "rules[0].value: the range is reversed"),
        (
            group("and", rule("total_spent", "gte", "abc")),
            "rules[0].value: expected an amount such as 199.00, got 'abc'",
        ),
        (group("and", rule("total_spent", "gte", -5)), "rules[0].value: expected an amount from 0 to"),
        (group("and", rule("total_spent", "gte", "NaN")), "rules[0].value: expected an amount from 0 to"),
        (group("and", rule("total_spent", "gte", "1e400")), "rules[0].value: expected an amount from 0 to"),
        (group("and", rule("predicted_clv", "between", ["500", "100"])), "rules[0].value: the range is reversed"),
        (group("and", rule("region", "eq", ["上海"])), "rules[0].value: expected text"),
        (group("and", rule("region", "eq", "x" * 65)), "rules[0].value: at most 64 characters"),
        (group("and", rule("gender", "not_in", ["male"])), "rules[0].operator: unknown operator 'not_in'"),
        (group("and", rule("birthday_month", "in", [13])), "rules[0].value: expected a number from 1 to 12, got 13"),
        (group("and", rule("acquired_at", "gte", "2026-02-30")), "rules[0].value: expected a date as YYYY-MM-DD"),
        (group("and", rule("acquired_at", "gte", "01/03/2026")), "rules[0].value: expected a date as YYYY-MM-DD"),
        (
            group("and", rule("acquired_at", "between", ["2026-04-01", "2026-03-01"])),
            "rules[0].value: the range is reversed: 2026-04-01 is after 2026-03-01",
        ),
        (group("and", rule("rfm_layer", "in", ["gold"])), "rules[0].value: unknown value 'gold'; one of core"),
    ],
)
def test_bad_input_is_named_precisely(rules, expected):
    messages = problems(rules)
    assert len(messages) == 1, messages
    assert messages[0].startswith(expected), messages


def test_every_problem_is_reported_at_once():
    messages = problems(
        group(
            "and",
            rule("stage", "in", ["vip"]),
            rule("shoe_size", "eq", 1),
            {"op": "nand", "rules": [rule("region", "eq", "上海")]},
        )
    )
    assert [m.split(":")[0] for m in messages] == ["rules[0].value", "rules[1].field", "rules[2].op"]


@pytest.mark.parametrize(
    ("field", "operator", "noun"),
    [("tags", "any", "tag"), ("channel", "in", "channel"), ("owner", "in", "user"), ("community", "in", "community")],
)
def test_unknown_ids_are_reported(field, operator, noun):
    messages = problems(group("and", rule(field, operator, [999_998, 999_999])))
    assert messages == [f"rules[0].value: unknown {noun} ids: 999998, 999999"]


def test_unknown_ids_are_checked_with_one_query_per_model():
    tags = [TagFactory() for _ in range(3)]
    channel = ChannelFactory()
    rules = group(
        "and",
        rule("tags", "any", [tags[0].pk, tags[1].pk]),
        rule("tags", "none", [tags[2].pk, 424242]),
        rule("channel", "not_in", [channel.pk]),
    )
    with CaptureQueriesContext(connection) as queries:
        messages = problems(rules)
    assert messages == ["rules[1].value: unknown tag ids: 424242"]
    assert len(queries) == 2


def test_groups_nest_at_most_five_deep():
    leaf = rule("region", "eq", "上海")
    tree = leaf
    for _ in range(MAX_DEPTH):
        tree = group("and", tree)
    segment_rules_validate(tree)  # the root plus four nested groups: five levels
    messages = problems(group("and", tree))
    assert messages == ["rules[0].rules[0].rules[0].rules[0].rules[0]: groups nest at most 5 deep"]


def test_at_most_a_hundred_conditions():
    segment_rules_validate(group("and", *[rule("purchase_count", "gte", i) for i in range(MAX_CONDITIONS)]))
    too_many = group("or", *[group("and", rule("purchase_count", "gte", i)) for i in range(MAX_CONDITIONS + 1)])
    assert problems(too_many) == ["rules: too many conditions; at most 100"]


def test_error_lists_are_bounded():
    messages = problems(group("and", *[rule("shoe_size", "eq", i) for i in range(60)]))
    assert len(messages) == segments.MAX_ERRORS


# --- Services ----------------------------------------------------------------------------------


def test_segment_create_validates_and_normalises(manager):
    tag = TagFactory()
    segment = segment_create(
        name="  高价值老客 ",
        rules=group("and", rule("tags", "any", [str(tag.pk)]), rule("total_spent", "gte", 1000)),
        description="复购提醒",
        created_by=manager,
    )
    segment.refresh_from_db()
    assert segment.name == "高价值老客"
    assert segment.created_by == manager
    assert segment.rules["rules"] == [
        {"field": "tags", "operator": "any", "value": [tag.pk]},
        {"field": "total_spent", "operator": "gte", "value": "1000.00"},
    ]


def test_segment_create_reports_every_bad_field(manager):
    with pytest.raises(ValidationError) as exc:
        segment_create(
            name=" ", rules=group("and", rule("tags", "any", [999_999])), description="x" * 301, created_by=manager
        )
    errors = exc.value.message_dict
    assert set(errors) == {"name", "description", "rules"}
    assert errors["rules"] == ["rules[0].value: unknown tag ids: 999999"]
    assert not Segment.objects.exists()


def test_segment_update_validates_rules_and_refuses_unknown_fields(manager):
    segment = SegmentFactory(name="旧", created_by=manager)
    segment_update(segment=segment, user=manager, name="新", rules=group("or", rule("region", "in", ["上海"])))
    segment.refresh_from_db()
    assert segment.name == "新"
    assert segment.rules == {"op": "or", "rules": [{"field": "region", "operator": "in", "value": ["上海"]}]}

    with pytest.raises(ValidationError) as bad_rules:
        segment_update(segment=segment, user=manager, rules=group("and", rule("stage", "contains", ["lead"])))
    assert "rules" in bad_rules.value.message_dict
    with pytest.raises(ValidationError) as bad_field:
        segment_update(segment=segment, user=manager, created_by=None)
    assert "created_by" in bad_field.value.message_dict
    segment.refresh_from_db()
    assert segment.rules["op"] == "or"
