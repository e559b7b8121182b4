"""Writes are scoped like reads. Operator A walks every write operation of the API schema (POST, PUT,
PATCH, DELETE and the POST actions) against operator B's book (the two books of tests/test_scoping.py):

- a detail or action URL with B's id answers 404 (403 where the operation is not for operators at all),
  and nothing in the database changes;
- a body that names B's contact, community or user (a referrer, a membership's community, an owner, the
  communities of a segment rule...) answers exactly as it does for an id that does not exist (400, or 404
  where the endpoint says so), and nothing is written.

Segments, templates, tags, products and the other reference data are shared: naming them is allowed.

Every write operation of the schema must have a row in ``BODIES`` (its minimal valid payload as A) and,
for detail URLs, its resource in ``DETAIL_ROWS``. A new write endpoint fails the test until it is added.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from campaigns.models import Broadcast, FollowUpTask, MessageTemplate, Segment
from communities.models import Community, Membership
from contacts.models import Channel, ChannelSpend, Contact, Product, Purchase, SavedView, TagGroup
from tests.test_scoping import APPS, books, shared_rows  # noqa: F401 - the two books are fixtures
from wecom.models import LiveCode, StaffAccount

pytestmark = pytest.mark.django_db

User = get_user_model()
UNKNOWN_ID = 987_654_321  # an id no row has (and within a 32-bit integer)
UNKNOWN_EXTERNAL_ID = "no-such-external-id"

Ctx = dict
Body = Callable[[Ctx], dict | None]


def _rules(community) -> dict:
    return {"op": "and", "rules": [{"field": "community", "operator": "in", "value": [community]}]}


# The minimal valid payload of every write operation, as A, naming A's own rows (``ctx["a"]``) and the
# shared ones. ``None``: the operation takes no body.
BODIES: dict[tuple[str, str], Body | None] = {
    # contacts
    ("POST", "/api/v1/contacts/"): lambda c: {"name": "新客户"},
    ("PUT", "/api/v1/contacts/{id}/"): lambda c: {"name": "改名"},
    ("PATCH", "/api/v1/contacts/{id}/"): lambda c: {"name": "改名"},
    ("POST", "/api/v1/contacts/{id}/consent/"): lambda c: {"source": "门店"},
    ("POST", "/api/v1/contacts/{id}/erase/"): None,
    ("POST", "/api/v1/contacts/{id}/merge/"): lambda c: {"duplicate": c["a"]["contact"]},
    ("POST", "/api/v1/contacts/{id}/opt-out/"): None,
    ("POST", "/api/v1/contacts/bulk-tag/"): lambda c: {"contact_ids": [c["a"]["contact"]], "tag_ids": [c["tag"]]},
    ("POST", "/api/v1/contacts/bulk-untag/"): lambda c: {"contact_ids": [c["a"]["contact"]], "tag_ids": [c["tag"]]},
    ("POST", "/api/v1/contacts/handover/"): lambda c: {"from_user": c["a"]["user"], "to_user": c["a"]["user"]},
    ("POST", "/api/v1/contacts/import/"): None,  # multipart upload; names no row
    ("POST", "/api/v1/contacts/export/"): None,  # the list's filters in the query string; no body
    ("POST", "/api/v1/contacts/reassign/"): lambda c: {"contact_ids": [c["a"]["contact"]], "owner": c["a"]["user"]},
    ("POST", "/api/v1/purchases/"): lambda c: {
        "contact": c["a"]["contact"],
        "external_order_id": "new-order",
        "purchased_at": c["now"],
        "amount": "10.00",
    },
    ("POST", "/api/v1/purchases/{id}/refund/"): lambda c: {},
    ("POST", "/api/v1/touchpoints/"): lambda c: {"contact": c["a"]["contact"], "medium": "chat", "kind": "message_in"},
    ("POST", "/api/v1/saved-views/"): lambda c: {"name": "新视图", "query": "stage=lead"},
    ("PUT", "/api/v1/saved-views/{id}/"): lambda c: {"name": "新视图", "query": "stage=lead"},
    ("PATCH", "/api/v1/saved-views/{id}/"): lambda c: {"name": "新视图"},
    ("DELETE", "/api/v1/saved-views/{id}/"): None,
    # reference data (shared)
    ("POST", "/api/v1/tag-groups/"): lambda c: {"name": "新分组"},
    ("PUT", "/api/v1/tag-groups/{id}/"): lambda c: {"name": "新分组"},
    ("PATCH", "/api/v1/tag-groups/{id}/"): lambda c: {"name": "新分组"},
    ("DELETE", "/api/v1/tag-groups/{id}/"): None,
    ("POST", "/api/v1/tags/"): lambda c: {"group": c["tag_group"], "name": "新标签"},
    ("PUT", "/api/v1/tags/{id}/"): lambda c: {"group": c["tag_group"], "name": "新标签"},
    ("PATCH", "/api/v1/tags/{id}/"): lambda c: {"name": "新标签"},
    ("DELETE", "/api/v1/tags/{id}/"): None,
    ("POST", "/api/v1/channels/"): lambda c: {"name": "新渠道"},
    ("PUT", "/api/v1/channels/{id}/"): lambda c: {"name": "新渠道"},
    ("PATCH", "/api/v1/channels/{id}/"): lambda c: {"name": "新渠道"},
    ("DELETE", "/api/v1/channels/{id}/"): None,
    ("POST", "/api/v1/channel-spend/"): lambda c: {
        "channel": c["channel"],
        "start_date": "2024-01-01",
        "end_date": "2024-01-31",
        "amount": "1.00",
    },
    ("PUT", "/api/v1/channel-spend/{id}/"): lambda c: {
        "channel": c["channel"],
        "start_date": "2024-01-01",
        "end_date": "2024-01-31",
        "amount": "1.00",
    },
    ("PATCH", "/api/v1/channel-spend/{id}/"): lambda c: {"amount": "2.00"},
    ("DELETE", "/api/v1/channel-spend/{id}/"): None,
    ("POST", "/api/v1/products/"): lambda c: {"sku": "SKU-NEW", "name": "新品", "price": "1.00"},
    ("PUT", "/api/v1/products/{id}/"): lambda c: {"sku": "SKU-NEW", "name": "新品", "price": "1.00"},
    ("PATCH", "/api/v1/products/{id}/"): lambda c: {"name": "新品"},
    ("DELETE", "/api/v1/products/{id}/"): None,
    # communities
    ("POST", "/api/v1/communities/"): lambda c: {"name": "新社群"},
    ("PUT", "/api/v1/communities/{id}/"): lambda c: {"name": "新社群"},
    ("PATCH", "/api/v1/communities/{id}/"): lambda c: {"name": "新社群"},
    ("DELETE", "/api/v1/communities/{id}/"): None,
    ("POST", "/api/v1/memberships/"): lambda c: {"community": c["a"]["community"], "contact": c["a"]["contact"]},
    ("POST", "/api/v1/memberships/{id}/leave/"): lambda c: {},
    # campaigns
    ("POST", "/api/v1/segments/"): lambda c: {"name": "新分群", "rules": _rules(c["a"]["community"])},
    ("PUT", "/api/v1/segments/{id}/"): lambda c: {"name": "新分群", "rules": _rules(c["a"]["community"])},
    ("PATCH", "/api/v1/segments/{id}/"): lambda c: {"rules": _rules(c["a"]["community"])},
    ("DELETE", "/api/v1/segments/{id}/"): None,
    ("POST", "/api/v1/segments/preview/"): lambda c: {"rules": _rules(c["a"]["community"])},
    ("POST", "/api/v1/templates/"): lambda c: {"name": "新话术", "body": "您好"},
    ("PUT", "/api/v1/templates/{id}/"): lambda c: {"name": "新话术", "body": "您好"},
    ("PATCH", "/api/v1/templates/{id}/"): lambda c: {"body": "您好"},
    ("DELETE", "/api/v1/templates/{id}/"): None,
    ("POST", "/api/v1/templates/{id}/preview/"): lambda c: {"contact": c["a"]["contact"]},
    ("POST", "/api/v1/broadcasts/"): lambda c: {
        "name": "新群发",
        "segment": c["segment"],
        "template": c["template"],
        "communities": [c["a"]["community"]],
    },
    ("PUT", "/api/v1/broadcasts/{id}/"): lambda c: {
        "name": "新群发",
        "segment": c["segment"],
        "template": c["template"],
        "communities": [c["a"]["community"]],
    },
    ("PATCH", "/api/v1/broadcasts/{id}/"): lambda c: {"communities": [c["a"]["community"]]},
    ("POST", "/api/v1/broadcasts/{id}/submit/"): lambda c: {},
    ("POST", "/api/v1/broadcasts/{id}/approve/"): None,
    ("POST", "/api/v1/broadcasts/{id}/reject/"): None,
    ("POST", "/api/v1/broadcasts/{id}/cancel/"): None,
    ("PUT", "/api/v1/frequency-policy/"): lambda c: {"preset": next(iter(c["presets"]))},
    ("POST", "/api/v1/automations/"): lambda c: {"name": "新SOP", "trigger": c["trigger"], "owner": c["a"]["user"]},
    ("PUT", "/api/v1/automations/{id}/"): lambda c: {"name": "新SOP", "trigger": c["trigger"]},
    ("PATCH", "/api/v1/automations/{id}/"): lambda c: {"owner": c["a"]["user"]},
    ("POST", "/api/v1/automations/{id}/activate/"): None,
    ("POST", "/api/v1/automations/{id}/deactivate/"): None,
    ("POST", "/api/v1/tasks/"): lambda c: {"contact": c["a"]["contact"], "title": "回访"},
    ("POST", "/api/v1/tasks/{id}/complete/"): None,
    # wecom
    ("POST", "/api/v1/wecom/live-codes/"): lambda c: {"name": "新活码", "channel": c["channel"], "pool": []},
    ("PUT", "/api/v1/wecom/live-codes/{id}/"): lambda c: {"name": "新活码", "channel": c["channel"], "pool": []},
    ("PATCH", "/api/v1/wecom/live-codes/{id}/"): lambda c: {"name": "新活码"},
    ("DELETE", "/api/v1/wecom/live-codes/{id}/"): None,
    ("POST", "/api/v1/wecom/live-codes/{id}/archive/"): None,
    ("PATCH", "/api/v1/wecom/staff/{id}/"): lambda c: {"user": c["a"]["user"]},
    ("POST", "/api/v1/wecom/sync-runs/"): None,
}

# The row behind ``{id}`` of each resource: B's own row for owned data; for shared data a row B made or any
# shared row (operators may not change those: 403, or the author-only rule of segments).
DETAIL_ROWS: dict[str, Callable[[Ctx], int]] = {
    "contacts": lambda c: c["b"]["contact"],
    "purchases": lambda c: c["b"]["purchase"],
    "saved-views": lambda c: c["b"]["saved_view"],
    "communities": lambda c: c["b"]["community"],
    "memberships": lambda c: c["b"]["membership"],
    "broadcasts": lambda c: c["b"]["broadcast"],
    "tasks": lambda c: c["b"]["task"],
    "segments": lambda c: c["b"]["segment"],
    "templates": lambda c: c["b"]["template"],
    "tag-groups": lambda c: c["tag_group"],
    "tags": lambda c: c["tag"],
    "channels": lambda c: c["channel"],
    "channel-spend": lambda c: c["channel_spend"],
    "products": lambda c: c["product"],
    "automations": lambda c: c["automation"],
    "wecom/live-codes": lambda c: c["live_code"],
    "wecom/staff": lambda c: c["staff_account"],
}

# Operations an operator may not do at all (no permission: 403 whatever the id or body).
OPERATOR_FORBIDDEN = {
    ("POST", "/api/v1/contacts/{id}/erase/"),
    ("POST", "/api/v1/contacts/{id}/merge/"),
    ("POST", "/api/v1/contacts/handover/"),
    ("POST", "/api/v1/contacts/reassign/"),
    ("PUT", "/api/v1/tag-groups/{id}/"),
    ("PATCH", "/api/v1/tag-groups/{id}/"),
    ("DELETE", "/api/v1/tag-groups/{id}/"),
    ("POST", "/api/v1/tag-groups/"),
    ("PUT", "/api/v1/tags/{id}/"),
    ("PATCH", "/api/v1/tags/{id}/"),
    ("DELETE", "/api/v1/tags/{id}/"),
    ("POST", "/api/v1/channels/"),
    ("PUT", "/api/v1/channels/{id}/"),
    ("PATCH", "/api/v1/channels/{id}/"),
    ("DELETE", "/api/v1/channels/{id}/"),
    ("POST", "/api/v1/channel-spend/"),
    ("PUT", "/api/v1/channel-spend/{id}/"),
    ("PATCH", "/api/v1/channel-spend/{id}/"),
    ("DELETE", "/api/v1/channel-spend/{id}/"),
    ("POST", "/api/v1/products/"),
    ("PUT", "/api/v1/products/{id}/"),
    ("PATCH", "/api/v1/products/{id}/"),
    ("DELETE", "/api/v1/products/{id}/"),
    ("DELETE", "/api/v1/communities/{id}/"),
    ("PUT", "/api/v1/templates/{id}/"),
    ("PATCH", "/api/v1/templates/{id}/"),
    ("DELETE", "/api/v1/templates/{id}/"),
    ("POST", "/api/v1/broadcasts/{id}/approve/"),
    ("POST", "/api/v1/broadcasts/{id}/reject/"),
    ("PUT", "/api/v1/frequency-policy/"),
    ("POST", "/api/v1/automations/"),
    ("PUT", "/api/v1/automations/{id}/"),
    ("PATCH", "/api/v1/automations/{id}/"),
    ("POST", "/api/v1/automations/{id}/activate/"),
    ("POST", "/api/v1/automations/{id}/deactivate/"),
    ("POST", "/api/v1/wecom/live-codes/"),
    ("PUT", "/api/v1/wecom/live-codes/{id}/"),
    ("PATCH", "/api/v1/wecom/live-codes/{id}/"),
    ("DELETE", "/api/v1/wecom/live-codes/{id}/"),
    ("POST", "/api/v1/wecom/live-codes/{id}/archive/"),
    ("PATCH", "/api/v1/wecom/staff/{id}/"),
    ("POST", "/api/v1/wecom/sync-runs/"),
}

# Detail operations on a shared row that the operator may see: not 404, by design.
DETAIL_EXPECTED = {
    # Segments are shared for reading; changing or deleting one is for its author (or a manager).
    ("PUT", "/api/v1/segments/{id}/"): 403,
    ("PATCH", "/api/v1/segments/{id}/"): 403,
    ("DELETE", "/api/v1/segments/{id}/"): 403,
    # A shared template rendered for A's own contact is a read (nothing written); B's contact: FOREIGN.
    ("POST", "/api/v1/templates/{id}/preview/"): 200,
}


# Bodies naming B's rows: (operation, the field the error is on, the kind of row, the body given that row's
# id). ``{id}`` in the path is A's own row. The answer must be the one for an id that does not exist.
def _with(operation: tuple[str, str], **fields) -> Body:
    return lambda c: {**BODIES[operation](c), **fields}


FOREIGN: list[tuple[tuple[str, str], str, str, Callable[[Ctx, object], dict]]] = [
    (("POST", "/api/v1/contacts/"), "referred_by", "contact", lambda c, ref: {"name": "新客户", "referred_by": ref}),
    (("POST", "/api/v1/contacts/"), "owner", "user", lambda c, ref: {"name": "新客户", "owner": ref}),
    (("PATCH", "/api/v1/contacts/{id}/"), "referred_by", "contact", lambda c, ref: {"referred_by": ref}),
    (("PATCH", "/api/v1/contacts/{id}/"), "owner", "user", lambda c, ref: {"owner": ref}),
    (("PUT", "/api/v1/contacts/{id}/"), "referred_by", "contact", lambda c, ref: {"name": "改名", "referred_by": ref}),
    (
        ("POST", "/api/v1/contacts/bulk-tag/"),
        "contact_ids",
        "contact",
        lambda c, ref: {"contact_ids": [c["a"]["contact"], ref], "tag_ids": [c["tag"]]},
    ),
    (
        ("POST", "/api/v1/contacts/bulk-untag/"),
        "contact_ids",
        "contact",
        lambda c, ref: {"contact_ids": [c["a"]["contact"], ref], "tag_ids": [c["tag"]]},
    ),
    (
        ("POST", "/api/v1/purchases/"),
        "contact",
        "contact",
        lambda c, ref: {**BODIES["POST", "/api/v1/purchases/"](c), "contact": ref},
    ),
    (
        ("POST", "/api/v1/purchases/"),
        "contact_external_id",
        "external_id",
        lambda c, ref: {
            key: value
            for key, value in {**BODIES["POST", "/api/v1/purchases/"](c), "contact_external_id": ref}.items()
            if key != "contact"
        },
    ),
    (
        ("POST", "/api/v1/touchpoints/"),
        "contact",
        "contact",
        lambda c, ref: {**BODIES["POST", "/api/v1/touchpoints/"](c), "contact": ref},
    ),
    (
        ("POST", "/api/v1/touchpoints/"),
        "community",
        "community",
        lambda c, ref: {**BODIES["POST", "/api/v1/touchpoints/"](c), "community": ref},
    ),
    (("POST", "/api/v1/communities/"), "owner", "user", lambda c, ref: {"name": "新社群", "owner": ref}),
    (("PATCH", "/api/v1/communities/{id}/"), "owner", "user", lambda c, ref: {"owner": ref}),
    (
        ("POST", "/api/v1/memberships/"),
        "community",
        "community",
        lambda c, ref: {"community": ref, "contact": c["a"]["contact"]},
    ),
    (
        ("POST", "/api/v1/memberships/"),
        "contact",
        "contact",
        lambda c, ref: {"community": c["a"]["community"], "contact": ref},
    ),
    (
        ("POST", "/api/v1/memberships/"),
        "invited_by",
        "contact",
        lambda c, ref: {"community": c["a"]["community"], "contact": c["a"]["contact"], "invited_by": ref},
    ),
    (("POST", "/api/v1/segments/"), "rules", "community", lambda c, ref: {"name": "新分群", "rules": _rules(ref)}),
    (("PATCH", "/api/v1/segments/{id}/"), "rules", "community", lambda c, ref: {"rules": _rules(ref)}),
    (("POST", "/api/v1/segments/preview/"), "rules", "community", lambda c, ref: {"rules": _rules(ref)}),
    (
        ("POST", "/api/v1/broadcasts/"),
        "communities",
        "community",
        lambda c, ref: {**BODIES["POST", "/api/v1/broadcasts/"](c), "communities": [ref]},
    ),
    (("PATCH", "/api/v1/broadcasts/{id}/"), "communities", "community", lambda c, ref: {"communities": [ref]}),
    (("POST", "/api/v1/tasks/"), "contact", "contact", lambda c, ref: {"contact": ref, "title": "回访"}),
    (
        ("POST", "/api/v1/tasks/"),
        "assignee",
        "user",
        lambda c, ref: {"contact": c["a"]["contact"], "title": "回访", "assignee": ref},
    ),
    (("POST", "/api/v1/templates/{id}/preview/"), "contact", "contact", lambda c, ref: {"contact": ref}),
    (
        ("POST", "/api/v1/saved-views/"),
        "query",
        "community",
        lambda c, ref: {"name": "新视图", "query": f"community={ref}"},
    ),
    (("PATCH", "/api/v1/saved-views/{id}/"), "query", "community", lambda c, ref: {"query": f"community={ref}"}),
]

# Answers other than 400 for a row that is not the caller's (documented on the endpoint).
FOREIGN_STATUS = {("POST", "/api/v1/templates/{id}/preview/"): 404}

# Writes that name no owned row in their body (nothing to walk for (b)), each with the reason.
NO_OWNED_REFERENCE = {
    ("POST", "/api/v1/contacts/import/"): "a CSV upload; its rows are scoped by the import (tests/contacts)",
    ("POST", "/api/v1/contacts/export/"): "filters only; the file holds what the list shows (tests/contacts)",
    ("POST", "/api/v1/contacts/{id}/consent/"): "text only",
    ("POST", "/api/v1/purchases/{id}/refund/"): "a date only",
    ("POST", "/api/v1/memberships/{id}/leave/"): "a date only",
    ("POST", "/api/v1/broadcasts/{id}/submit/"): "a date only",
    ("POST", "/api/v1/tags/"): "names a shared tag group",
    ("POST", "/api/v1/templates/"): "text only",
    ("PUT", "/api/v1/segments/{id}/"): "same fields as PATCH",
    ("PUT", "/api/v1/communities/{id}/"): "same fields as PATCH",
    ("PUT", "/api/v1/broadcasts/{id}/"): "same fields as PATCH",
    ("PUT", "/api/v1/saved-views/{id}/"): "same fields as PATCH",
}


# The row of A's behind ``{id}`` in FOREIGN.
A_ROWS = {
    "contacts": "contact",
    "communities": "community",
    "segments": "segment",
    "broadcasts": "broadcast",
    "templates": "template",
    "saved-views": "saved_view",
}


def _write_operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in ("post", "put", "patch", "delete")
        if method in item
    ]


def _resource(path: str) -> str:
    return path.removeprefix("/api/v1/").split("/{id}/")[0]


def _snapshot() -> dict:
    models = [m for m in apps.get_models() if m._meta.app_label in APPS] + [User]
    return {m._meta.label: list(m._base_manager.order_by("pk").values()) for m in models}


def _changed(before: dict, after: dict) -> list[str]:
    return [label for label in before if before[label] != after[label]]


@pytest.fixture
def ctx(books, operator, other_operator, shared_rows):  # noqa: F811 - fixtures imported above
    from campaigns.policy import PRESETS

    mine, theirs = books

    def one(model, rows):
        return min(rows[model])

    Contact.objects.filter(pk=one(Contact, theirs)).update(external_id="B-ext-1")
    channel = Channel.objects.get()
    return {
        "now": timezone.now().isoformat(),
        "a": {
            "user": operator.pk,
            "contact": one(Contact, mine),
            "community": one(Community, mine),
            "broadcast": one(Broadcast, mine),
            "saved_view": one(SavedView, mine),
            "template": shared_rows["template"].pk,
            "segment": Segment.objects.create(name="A的分群", rules={"op": "and", "rules": []}, created_by=operator).pk,
        },
        "b": {
            "user": other_operator.pk,
            "contact": one(Contact, theirs),
            "external_id": "B-ext-1",
            "purchase": one(Purchase, theirs),
            "community": one(Community, theirs),
            "membership": one(Membership, theirs),
            "broadcast": one(Broadcast, theirs),
            "task": one(FollowUpTask, theirs),
            "saved_view": one(SavedView, theirs),
            "segment": Segment.objects.create(
                name="B的分群", rules={"op": "and", "rules": []}, created_by=other_operator
            ).pk,
            "template": MessageTemplate.objects.create(name="B的话术", body="您好", created_by=other_operator).pk,
        },
        "unknown": {
            "user": UNKNOWN_ID,
            "contact": UNKNOWN_ID,
            "community": UNKNOWN_ID,
            "external_id": UNKNOWN_EXTERNAL_ID,
        },
        "tag": shared_rows["tag"].pk,
        "tag_group": TagGroup.objects.get().pk,
        "product": Product.objects.get().pk,
        "channel": channel.pk,
        "channel_spend": ChannelSpend.objects.create(
            channel=channel, start_date="2024-01-01", end_date="2024-01-31", amount="1.00"
        ).pk,
        "segment": shared_rows["segment"].pk,
        "template": shared_rows["template"].pk,
        "automation": shared_rows["automation"].pk,
        "trigger": shared_rows["automation"].trigger,
        "live_code": LiveCode.objects.get().pk,
        "staff_account": StaffAccount.objects.get().pk,
        "presets": PRESETS,
    }


def _call(api, method: str, url: str, body: dict | None):
    return api.generic(method, url, json.dumps(body) if body is not None else "", content_type="application/json")


def test_every_write_operation_is_in_the_table():
    operations = set(_write_operations())
    assert len(operations) > 60
    missing = sorted(operations - set(BODIES))
    assert not missing, f"add these write operations to BODIES (and FOREIGN / DETAIL_ROWS): {missing}"
    stale = sorted(set(BODIES) - operations)
    assert not stale, f"no longer in the schema: {stale}"
    unplaced = sorted(
        op
        for op in operations
        if "{id}" in op[1]
        and _resource(op[1]) not in DETAIL_ROWS
        or "{id}" not in op[1]
        and op not in OPERATOR_FORBIDDEN
        and op not in NO_OWNED_REFERENCE
        and op not in {operation for operation, *_ in FOREIGN}
    )
    assert not unplaced, f"say which row each names (DETAIL_ROWS, FOREIGN or NO_OWNED_REFERENCE): {unplaced}"


def test_detail_writes_on_the_other_operators_rows_answer_404(ctx, operator_api):
    problems = []
    walked = 0
    for method, path in _write_operations():
        if "{id}" not in path:
            continue
        body_fn = BODIES[method, path]
        body = body_fn(ctx) if body_fn else None
        url = path.replace("{id}", str(DETAIL_ROWS[_resource(path)](ctx)))
        if (method, path) in OPERATOR_FORBIDDEN:
            expected = 403
        else:
            expected = DETAIL_EXPECTED.get((method, path), 404)
        before = _snapshot()
        response = _call(operator_api, method, url, body)
        walked += 1
        if response.status_code != expected:
            problems.append(f"{method} {url}: {response.status_code}, expected {expected}: {response.content[:200]!r}")
        changed = _changed(before, _snapshot())
        if changed:
            problems.append(f"{method} {url} changed {changed}")
    assert walked >= 45
    assert not problems, "\n".join(problems)


def _normalised(response, ref) -> str:
    return response.content.decode().replace(str(ref), "<ref>")


def test_bodies_naming_the_other_operators_rows_read_as_unknown(ctx, operator_api):
    problems = []
    for (method, path), field, kind, body_fn in FOREIGN:
        assert (method, path) in BODIES, (method, path)
        if "{id}" in path:
            url = path.replace("{id}", str(ctx["a"][A_ROWS[_resource(path)]]))
        else:
            url = path
        expected = FOREIGN_STATUS.get((method, path), 400)
        answers = {}
        for who in ("b", "unknown"):
            ref = ctx[who][kind]
            before = _snapshot()
            response = _call(operator_api, method, url, body_fn(ctx, ref))
            changed = _changed(before, _snapshot())
            label = f"{method} {url} {field}={ref} ({who})"
            if changed:
                problems.append(f"{label} changed {changed}")
            if response.status_code != expected:
                problems.append(f"{label}: {response.status_code}, expected {expected}: {response.content[:300]!r}")
                continue
            if expected == 400:
                fields = {error["field"] or "" for error in response.json()["errors"]}
                if not any(f == field or f.startswith(f"{field}.") for f in fields):
                    problems.append(f"{label}: the error is not on {field}: {response.content[:300]!r}")
            answers[who] = _normalised(response, ref)
        if len(answers) == 2 and answers["b"] != answers["unknown"]:
            problems.append(
                f"{method} {url} {field}: another operator's row is told apart from an unknown one:\n"
                f"    theirs:  {answers['b']}\n    unknown: {answers['unknown']}"
            )
    assert not problems, "\n".join(problems)
