"""What naming another operator's object tells an operator (docs/security.md, "What an answer reveals").

Identifiers that are unique across the brand (phone, external id, WeCom external userid, WeChat unionid,
order id) answer "already exists" whoever holds them: an operator learns that the key is taken, which
keeps two staff members from adding the same customer (撞单), and never by whom or anything else about
it. The answer is the same whether the holder is in the operator's own book or another's, so it says
nothing about the other book. Everything else named by id answers exactly like an id that does not exist
(tests/test_write_scoping.py)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.utils import timezone, translation

from contacts.imports import import_csv
from tests.factories import ContactFactory, PurchaseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def _body(response) -> tuple[int, object]:
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("field", "stored", "sent"),
    [
        ("phone", "+8613900000001", "13900000001"),
        ("external_id", "SHOP-1", "SHOP-1"),
        ("wecom_external_userid", "wmABC", "wmABC"),
        ("wechat_unionid", "unABC", "unABC"),
    ],
)
def test_a_taken_key_answers_the_same_whoever_holds_it(operator, other_operator, operator_api, field, stored, sent):
    mine = ContactFactory(owner=operator, **{field: stored})
    mine_answer = _body(operator_api.post("/api/v1/contacts/", {"name": "新客", field: sent}, format="json"))
    type(mine).objects.filter(pk=mine.pk).update(owner=other_operator)
    theirs_answer = _body(operator_api.post("/api/v1/contacts/", {"name": "新客", field: sent}, format="json"))
    assert mine_answer == theirs_answer
    assert mine_answer[0] == 400
    text = str(theirs_answer[1])
    assert str(mine.pk) not in text and other_operator.username not in text


def test_a_taken_key_on_update_answers_the_same_whoever_holds_it(operator, other_operator, operator_api):
    holder = ContactFactory(owner=operator, phone="+8613900000002")
    editing = ContactFactory(owner=operator)
    url = f"/api/v1/contacts/{editing.pk}/"
    mine_answer = _body(operator_api.patch(url, {"phone": "13900000002"}, format="json"))
    type(holder).objects.filter(pk=holder.pk).update(owner=other_operator)
    theirs_answer = _body(operator_api.patch(url, {"phone": "13900000002"}, format="json"))
    assert mine_answer == theirs_answer and mine_answer[0] == 400


def test_a_recorded_order_id_answers_the_same_whoever_holds_it_and_shows_nothing_of_it(
    operator, other_operator, operator_api
):
    buyer = ContactFactory(owner=operator)
    someone = ContactFactory(owner=operator)
    PurchaseFactory(contact=someone, external_order_id="ORD-9", amount=Decimal("123.45"))
    body = {"contact": buyer.pk, "external_order_id": "ORD-9", "amount": "10.00", "purchased_at": timezone.now()}
    mine_answer = _body(operator_api.post("/api/v1/purchases/", body, format="json"))
    type(someone).objects.filter(pk=someone.pk).update(owner=other_operator)
    theirs_answer = _body(operator_api.post("/api/v1/purchases/", body, format="json"))
    assert mine_answer == theirs_answer
    assert mine_answer[0] == 409
    assert "123.45" not in str(theirs_answer[1])  # neither the amount nor the contact of the stored order


def test_an_import_row_naming_a_taken_key_says_only_that_it_is_taken(operator, other_operator):
    ContactFactory(owner=other_operator, phone="+8613900000003", name="别人的客户")
    report = import_csv(kind="contacts", fileobj=io.BytesIO(b"phone,name\n13900000003,x\n"), actor=operator)
    (error,) = report.errors
    assert error["field"] == "phone"
    assert "别人的客户" not in error["message"] and other_operator.username not in error["message"]


def test_ids_of_other_books_answer_like_ids_that_do_not_exist(operator, other_operator, operator_api):
    theirs = ContactFactory(owner=other_operator)
    missing = theirs.pk + 1000
    for path in ("/api/v1/contacts/{}/", "/api/v1/contacts/{}/personal-data/"):
        assert _body(operator_api.get(path.format(theirs.pk))) == _body(operator_api.get(path.format(missing)))
    body = {"external_order_id": "N-1", "amount": "1.00", "purchased_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    answers = [
        _body(operator_api.post("/api/v1/purchases/", {**body, "contact": pk}, format="json"))
        for pk in (theirs.pk, missing)
    ]
    assert answers[0][0] == 400
    assert answers[0][1]["errors"][0]["code"] == answers[1][1]["errors"][0]["code"]
