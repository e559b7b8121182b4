"""The intake report (加粉与流失) on its page and in the API: adds, losses, removals and net adds per day and
per channel, live code or staff member; operators see their own contacts' figures; bad dates are a 400."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from tests.factories import ChannelFactory, ContactFactory
from wecom.models import FollowRelationship, LiveCode, StaffAccount

pytestmark = pytest.mark.django_db


@pytest.fixture
def follows(manager, operator):
    channel = ChannelFactory(name="抖音")
    code = LiveCode.objects.create(name="直播间", channel=channel, state="lcX")
    li = StaffAccount.objects.create(userid="li", user=manager)
    now = timezone.now()
    rows = []
    for i, (owner, deleted, ended_by) in enumerate(
        [(manager, None, ""), (manager, now, "customer"), (operator, now, "staff"), (operator, None, "")]
    ):
        rows.append(
            FollowRelationship.objects.create(
                contact=ContactFactory(owner=owner, channel=channel),
                staff=li,
                external_userid=f"wm{i}",
                live_code=code,
                added_at=now - dt.timedelta(hours=1),
                deleted_at=deleted,
                ended_by=ended_by,
            )
        )
    return rows


def test_the_api_counts_per_channel_with_totals(manager_api, follows):
    body = manager_api.get("/api/v1/wecom/follows/intake/").json()
    assert body["by"] == "channel"
    assert [(t["label"], t["adds"], t["lost"], t["removed"], t["net"]) for t in body["totals"]] == [
        ("抖音", 4, 1, 1, 2)
    ]
    assert sum(d["adds"] for d in body["days"]) == 4
    per_code = manager_api.get("/api/v1/wecom/follows/intake/", {"by": "live_code"}).json()
    assert per_code["totals"][0]["label"] == "直播间"


def test_an_operator_sees_only_their_contacts(operator_api, follows):
    body = operator_api.get("/api/v1/wecom/follows/intake/").json()
    assert [(t["adds"], t["lost"], t["removed"]) for t in body["totals"]] == [(2, 0, 1)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date_from": "2026-02-30"}, "date_from"),
        ({"date_from": "2026-05-02", "date_to": "2026-05-01"}, "date_from"),
        ({"date_from": "2020-01-01", "date_to": "2026-01-01"}, "date_from"),
        ({"by": "region"}, "by"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(manager_api, params, field):
    response = manager_api.get("/api/v1/wecom/follows/intake/", params)
    assert response.status_code == 400
    assert field in {e["field"] for e in response.json()["errors"]}


def test_the_page_shows_the_totals_and_refuses_bad_dates(manager, follows):
    client = Client()
    client.force_login(manager)
    page = client.get("/wecom/intake/")
    assert page.status_code == 200
    assert [(t["adds"], t["net"]) for t in page.context["totals"]] == [(4, 2)]
    assert "抖音" in page.content.decode()
    bad = client.get("/wecom/intake/", {"date_from": "2026-05-02", "date_to": "2026-05-01"})
    assert bad.status_code == 400
    assert "The start is after the end." in bad.content.decode() or "开始" in bad.content.decode()


@pytest.mark.parametrize("params", [{"date_to": "0001-01-01"}, {"date_from": "9999-12-31", "date_to": "9999-12-31"}])
def test_dates_at_the_ends_of_the_calendar_are_a_400_not_a_500(manager_api, manager, params):
    response = manager_api.get("/api/v1/wecom/follows/intake/", params)
    assert response.status_code == 400
    client = Client()
    client.force_login(manager)
    assert client.get("/wecom/intake/", params).status_code == 400
