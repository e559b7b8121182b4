"""The campaign gateways against real local stand-ins (tests/campaigns/standins.py): a WeCom API server,
a webhook receiver that checks signatures, and an SMTP server. No part of the gateways is mocked."""

from __future__ import annotations

import time

import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from campaigns.gateways import Gateway, OutgoingMessage, SendResult, gateway_for
from campaigns.gateways.email import EmailGateway
from campaigns.gateways.webhook import webhook_signature, webhook_signature_verify
from campaigns.gateways.wecom import WeComGateway
from campaigns.models import Broadcast, Delivery, MessageTemplate, OutboxMessage
from tests.campaigns.standins import (  # noqa: F401 - pytest fixtures
    closed_port,
    smtp_server_fixture,
    webhook_receiver_fixture,
    wecom_fixture,
)
from tests.factories import ContactFactory, UserFactory


def _message(
    delivery_id: int, *, medium="wecom", address=None, sender="alice", body="双十二会员专享券 DD12", subject=""
):
    return OutgoingMessage(
        delivery_id=delivery_id,
        contact_id=1000 + delivery_id,
        medium=medium,
        subject=subject,
        body=body,
        address=f"wm-ext-{delivery_id}" if address is None else address,
        sender=sender,
    )


def _by_id(results: list[SendResult]) -> dict[int, SendResult]:
    return {r.delivery_id: r for r in results}


# --- gateway_for ---------------------------------------------------------------------------------


def test_gateway_for_builds_the_backend_configured_for_each_medium(wecom, webhook_receiver):
    gateways = {"wecom": "wecom", "group": "outbox", "official_account": "webhook", "sms": "webhook", "email": "email"}
    with override_settings(SCRM_GATEWAYS=gateways, **wecom.settings(), **webhook_receiver.settings()):
        assert gateway_for("wecom").name == "wecom"
        assert gateway_for("email").name == "email"
        assert gateway_for("sms") is gateway_for("official_account")  # one instance per backend and process
        outbox = gateway_for("group")
        assert (outbox.name, outbox.transactional, outbox.needs_address) == ("outbox", True, False)
        assert all(not gateway_for(m).transactional and gateway_for(m).needs_address for m in ("wecom", "email", "sms"))
        assert all(isinstance(gateway_for(m), Gateway) for m in gateways)


def test_gateway_for_refuses_an_unknown_backend_name():
    with override_settings(SCRM_GATEWAYS={"sms": "carrier-pigeon"}):
        with pytest.raises(ImproperlyConfigured, match="Unknown gateway 'carrier-pigeon'"):
            gateway_for("sms")


def test_wecom_gateway_without_corp_id_or_secret_is_improperly_configured():
    with override_settings(SCRM_GATEWAYS={"wecom": "wecom"}, WECOM_CORP_ID="ww123", WECOM_CORP_SECRET=""):
        with pytest.raises(ImproperlyConfigured, match="WECOM_CORP_ID .* and WECOM_CORP_SECRET"):
            gateway_for("wecom")


def test_webhook_gateway_without_url_or_secret_is_improperly_configured():
    with override_settings(SCRM_GATEWAYS={"sms": "webhook"}, SCRM_WEBHOOK_URL="", SCRM_WEBHOOK_SECRET="s"):
        with pytest.raises(ImproperlyConfigured, match="SCRM_WEBHOOK_URL"):
            gateway_for("sms")


# --- outbox ------------------------------------------------------------------------------------


def _deliveries(n: int, *, medium: str = "wecom") -> list[Delivery]:
    """Pending deliveries of one broadcast to ``n`` new contacts."""
    user = UserFactory()
    template = MessageTemplate.objects.create(name="Promo", subject="会员日", body="{name}，会员日快乐")
    broadcast = Broadcast.objects.create(name="Member day", template=template, medium=medium, created_by=user)
    return [
        Delivery.objects.create(
            broadcast=broadcast, contact=ContactFactory(owner=user), medium=medium, template=template
        )
        for _ in range(n)
    ]


def _outgoing(delivery: Delivery, body: str) -> OutgoingMessage:
    return OutgoingMessage(
        delivery_id=delivery.pk,
        contact_id=delivery.contact_id,
        medium=delivery.medium,
        subject="会员日",
        body=body,
        address="",
        sender="",
    )


def test_outbox_records_each_delivery_once_even_when_sent_twice(db):
    deliveries = _deliveries(3)
    messages = [_outgoing(d, f"第{i}条") for i, d in enumerate(deliveries)]
    gateway = gateway_for("wecom")  # the default: every medium goes to the outbox

    first = gateway.send(messages)
    again = gateway.send(messages[:1] + [_outgoing(deliveries[0], "changed")])

    assert [r.ok for r in first + again] == [True] * 5
    assert [r.delivery_id for r in first] == [d.pk for d in deliveries]
    rows = OutboxMessage.objects.order_by("delivery_id")
    assert [(o.delivery_id, o.contact_id, o.medium, o.subject, o.body) for o in rows] == [
        (d.pk, d.contact_id, "wecom", "会员日", f"第{i}条") for i, d in enumerate(deliveries)
    ]


# --- email ------------------------------------------------------------------------------------


@override_settings(
    EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    SCRM_GATEWAYS={"email": "email"},
    DEFAULT_FROM_EMAIL="Brand 会员中心 <crm@brand.example>",
)
def test_email_goes_through_djangos_backend_with_a_message_id_derived_from_the_delivery():
    messages = [
        _message(7, medium="email", address="li@example.com", subject="会员日", body="你好"),
        _message(8, medium="email", address="", subject="会员日", body="你好"),
    ]

    results = gateway_for("email").send(messages)

    assert results == [
        SendResult(7, ok=True, message_id="<delivery-7@brand.example>"),
        SendResult(8, ok=False, error="no email address"),
    ]
    [sent] = mail.outbox
    assert (sent.to, sent.subject, sent.body) == (["li@example.com"], "会员日", "你好")
    assert sent.message()["Message-ID"] == "<delivery-7@brand.example>"
    assert sent.from_email == "Brand 会员中心 <crm@brand.example>"


def test_email_chunk_goes_over_one_smtp_connection_and_a_refused_recipient_fails_for_good(smtp_server):
    smtp_server.reject.add("gone@example.com")
    messages = [
        _message(1, medium="email", address="a@example.com", subject="Hi", body="第一封"),
        _message(2, medium="email", address="gone@example.com", subject="Hi", body="第二封"),
        _message(3, medium="email", address="c@example.com", subject="Hi", body="第三封"),
    ]
    with override_settings(
        SCRM_GATEWAYS={"email": "email"}, DEFAULT_FROM_EMAIL="crm@brand.example", **smtp_server.settings()
    ):
        results = _by_id(gateway_for("email").send(messages))

    assert results[1].ok and results[3].ok
    assert not results[2].ok and not results[2].transient
    assert results[2].error.startswith("recipient refused: 550")
    assert smtp_server.connections == 1
    assert [
        (m.rcpt_to, m.message()["Message-ID"], m.message().get_content().strip()) for m in smtp_server.received
    ] == [
        (["a@example.com"], "<delivery-1@brand.example>", "第一封"),
        (["c@example.com"], "<delivery-3@brand.example>", "第三封"),
    ]


def test_email_recipient_deferred_by_the_server_is_transient(smtp_server):
    smtp_server.defer.add("busy@example.com")
    with override_settings(SCRM_GATEWAYS={"email": "email"}, **smtp_server.settings()):
        [result] = gateway_for("email").send([_message(1, medium="email", address="busy@example.com")])

    assert (result.ok, result.transient) == (False, True)
    assert "451" in result.error


def test_email_connection_dropped_mid_chunk_is_transient_and_the_rest_goes_over_a_new_connection(smtp_server):
    smtp_server.hang_up.add("flaky@example.com")
    messages = [_message(i, medium="email", address=a) for i, a in enumerate(["a@x.cn", "flaky@example.com", "c@x.cn"])]
    with override_settings(SCRM_GATEWAYS={"email": "email"}, **smtp_server.settings()):
        results = gateway_for("email").send(messages)

    assert [(r.ok, r.transient) for r in results] == [(True, False), (False, True), (True, False)]
    assert results[1].error.startswith("email not sent: SMTPServerDisconnected")
    assert [m.rcpt_to for m in smtp_server.received] == [["a@x.cn"], ["c@x.cn"]]
    assert smtp_server.connections == 2


def test_email_server_that_cannot_be_reached_is_transient():
    settings = {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1"}
    with override_settings(SCRM_GATEWAYS={"email": "email"}, EMAIL_PORT=closed_port(), **settings):
        results = EmailGateway().send([_message(i, medium="email", address=f"u{i}@example.com") for i in (1, 2)])

    assert [(r.ok, r.transient) for r in results] == [(False, True), (False, True)]
    assert results[0].error.startswith("email server unavailable: ConnectionRefusedError")


# --- webhook ----------------------------------------------------------------------------------


def _webhook(receiver, **extra):
    return override_settings(**{"SCRM_GATEWAYS": {"sms": "webhook"}, **receiver.settings(), **extra})


def test_webhook_sends_signed_batches_of_at_most_100_that_the_receiver_verifies(webhook_receiver):
    messages = [_message(i, medium="sms", address=f"+86138{i:08d}", body=f"验证码 {i}") for i in range(1, 151)]
    with _webhook(webhook_receiver):
        results = gateway_for("sms").send(messages)

    assert [r.ok for r in results] == [True] * 150
    first, second = webhook_receiver.requests
    assert first.signature_ok and second.signature_ok
    assert [len(r.payload["messages"]) for r in (first, second)] == [100, 50]
    assert first.payload["messages"][0] == {
        "delivery_id": 1,
        "contact_id": 1001,
        "medium": "sms",
        "address": "+8613800000001",
        "sender": "alice",
        "subject": "",
        "body": "验证码 1",
    }
    assert first.headers["X-SCRM-Signature"].startswith("sha256=")
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]


def test_webhook_signature_verify_accepts_only_the_right_secret_body_and_a_fresh_timestamp():
    body = b'{"messages":[]}'
    now = int(time.time())
    signature = webhook_signature("s3cret", now, body)

    assert webhook_signature_verify("s3cret", str(now), body, signature)
    assert webhook_signature_verify("s3cret", now, body.decode(), signature)
    assert not webhook_signature_verify("other", now, body, signature)
    assert not webhook_signature_verify("s3cret", now, b'{"messages":[1]}', signature)
    assert not webhook_signature_verify("s3cret", now + 1, body, signature)
    stale = now - 3600
    assert not webhook_signature_verify("s3cret", stale, body, webhook_signature("s3cret", stale, body))
    assert webhook_signature_verify("s3cret", stale, body, webhook_signature("s3cret", stale, body), tolerance=None)


def test_webhook_retries_a_500_with_the_same_idempotency_key_then_succeeds(webhook_receiver):
    webhook_receiver.answer(500, {"error": "database down"}, times=2)
    with _webhook(webhook_receiver):
        results = gateway_for("sms").send([_message(1, medium="sms"), _message(2, medium="sms")])

    assert [r.ok for r in results] == [True, True]
    assert [r.status for r in webhook_receiver.requests] == [500, 500, 200]
    assert len({r.headers["Idempotency-Key"] for r in webhook_receiver.requests}) == 1
    assert all(r.signature_ok for r in webhook_receiver.requests)


def test_webhook_429_is_retried_after_the_receivers_retry_after(webhook_receiver):
    webhook_receiver.answer(429, headers={"Retry-After": "0"})
    with _webhook(webhook_receiver):
        [result] = gateway_for("sms").send([_message(1, medium="sms")])

    assert result.ok
    assert [r.status for r in webhook_receiver.requests] == [429, 200]


def test_webhook_client_error_fails_the_batch_for_good_without_retrying(webhook_receiver):
    webhook_receiver.answer(400, {"error": "unknown medium"})
    with _webhook(webhook_receiver):
        results = gateway_for("sms").send([_message(1, medium="sms"), _message(2, medium="sms")])

    assert [(r.ok, r.transient) for r in results] == [(False, False), (False, False)]
    assert results[0].error == 'webhook answered HTTP 400: {"error": "unknown medium"}'
    assert len(webhook_receiver.requests) == 1


def test_webhook_wrong_secret_is_refused_by_the_receiver_and_fails_for_good(webhook_receiver):
    with _webhook(webhook_receiver, SCRM_WEBHOOK_SECRET="not-the-shared-secret"):
        [result] = gateway_for("sms").send([_message(1, medium="sms")])

    assert (result.ok, result.transient) == (False, False)
    assert result.error.startswith("webhook answered HTTP 401")
    assert [r.signature_ok for r in webhook_receiver.requests] == [False]


def test_webhook_timeout_is_transient_after_the_retries_and_later_batches_are_not_tried(webhook_receiver):
    webhook_receiver.answer(200, delay=1.0, times=3)
    messages = [_message(i, medium="sms") for i in range(1, 121)]  # two batches
    with _webhook(webhook_receiver, SCRM_GATEWAY_TIMEOUT=0.2):
        results = gateway_for("sms").send(messages)

    assert all(not r.ok and r.transient for r in results)
    assert results[0].error.startswith("webhook unavailable after 3 attempts: ReadTimeout")
    assert results[-1].error.startswith("not tried: webhook unavailable")
    assert len(webhook_receiver.requests) == 3  # the first batch, three times


def test_webhook_receiver_that_is_down_is_transient():
    url = f"http://127.0.0.1:{closed_port()}/hooks?token=do-not-store"
    with override_settings(SCRM_GATEWAYS={"sms": "webhook"}, SCRM_WEBHOOK_URL=url, SCRM_WEBHOOK_SECRET="s"):
        [result] = gateway_for("sms").send([_message(1, medium="sms")])

    assert (result.ok, result.transient) == (False, True)
    assert "ConnectionError" in result.error
    assert "do-not-store" not in result.error


def test_webhook_per_message_results_in_the_answer_are_honoured(webhook_receiver):
    webhook_receiver.answer(
        200,
        {
            "results": [
                {"delivery_id": 1, "ok": True, "message_id": "sms-9001"},
                {"delivery_id": 2, "ok": False, "error": "number is not a mobile number"},
                {"delivery_id": 3, "ok": False, "error": "carrier busy", "transient": True},
            ]
        },
    )
    with _webhook(webhook_receiver):
        results = gateway_for("sms").send([_message(i, medium="sms") for i in (1, 2, 3, 4)])

    assert results == [
        SendResult(1, ok=True, message_id="sms-9001"),
        SendResult(2, ok=False, error="number is not a mobile number"),
        SendResult(3, ok=False, transient=True, error="carrier busy"),
        SendResult(4, ok=True),  # not in the results: accepted with the batch
    ]


# --- WeCom ------------------------------------------------------------------------------------


def _wecom(standin, **extra):
    return override_settings(**{"SCRM_GATEWAYS": {"wecom": "wecom", "group": "wecom"}, **standin.settings(), **extra})


def test_wecom_sends_one_task_per_sender_and_text_and_awaits_the_staff_members_confirmation(wecom):
    messages = [
        _message(1, sender="alice", body="会员日 8 折"),
        _message(2, sender="alice", body="会员日 8 折"),
        _message(3, sender="alice", body="生日快乐"),
        _message(4, sender="bob", body="会员日 8 折"),
    ]
    with _wecom(wecom):
        results = gateway_for("wecom").send(messages)

    assert [t["external_userid"] for t in wecom.templates] == [["wm-ext-1", "wm-ext-2"], ["wm-ext-3"], ["wm-ext-4"]]
    assert {k: v for k, v in wecom.templates[0].items() if k != "msgid"} == {
        "chat_type": "single",
        "external_userid": ["wm-ext-1", "wm-ext-2"],
        "sender": "alice",
        "text": {"content": "会员日 8 折"},
    }
    assert [(r.delivery_id, r.ok, r.message_id, r.state) for r in results] == [
        (1, True, "msg0001", "awaiting_confirmation"),
        (2, True, "msg0001", "awaiting_confirmation"),
        (3, True, "msg0002", "awaiting_confirmation"),
        (4, True, "msg0003", "awaiting_confirmation"),
    ]


def test_wecom_access_token_is_fetched_once_and_shared_through_the_cache(wecom):
    with _wecom(wecom):
        for i in range(3):
            gateway_for("wecom").send([_message(i)])
        WeComGateway().send([_message(9)])  # another process's instance: same cache, same token

    assert wecom.gettoken_calls == 1
    assert len(wecom.templates) == 4
    assert {c["token"] for c in wecom.calls} == {"token-1"}


def test_wecom_expired_token_is_refreshed_once_and_the_call_repeated(wecom):
    with _wecom(wecom):
        gateway = gateway_for("wecom")
        gateway.send([_message(1)])
        wecom.expire_tokens()
        [result] = gateway.send([_message(2)])

    assert result.ok and result.state == "awaiting_confirmation"
    assert wecom.gettoken_calls == 2
    assert [c["token"] for c in wecom.calls] == ["token-1", "token-1", "token-2"]
    assert len(wecom.templates) == 2


def test_wecom_fail_list_fails_those_contacts_for_good_and_the_others_await_confirmation(wecom):
    wecom.not_customers = {"wm-ext-2"}
    with _wecom(wecom):
        results = _by_id(gateway_for("wecom").send([_message(1), _message(2), _message(3)]))

    assert (results[2].ok, results[2].transient) == (False, False)
    assert results[2].error == "not a customer of sender 'alice' in WeCom (fail_list)"
    assert [(results[i].ok, results[i].state, results[i].message_id) for i in (1, 3)] == [
        (True, "awaiting_confirmation", "msg0001"),
        (True, "awaiting_confirmation", "msg0001"),
    ]


@pytest.mark.parametrize(
    ("trouble", "error"),
    [
        ("busy", "WeCom add_msg_template: system busy (errcode -1)"),
        ("http_500", "WeCom add_msg_template answered HTTP 500"),
    ],
)
def test_wecom_busy_or_server_error_is_transient(wecom, trouble, error):
    setattr(wecom, trouble, 1)
    with _wecom(wecom):
        results = gateway_for("wecom").send([_message(1, body="a"), _message(2, body="b")])

    assert [(r.ok, r.transient) for r in results] == [(False, True), (False, True)]
    assert results[0].error == error
    assert results[1].error == f"not tried: {error}"
    assert len(wecom.calls) == 1


def test_wecom_other_errors_fail_for_good_with_wecoms_errmsg(wecom):
    with _wecom(wecom):
        [result] = gateway_for("wecom").send([_message(1, sender="carol")])

    assert (result.ok, result.transient) == (False, False)
    assert result.error == "WeCom add_msg_template error 60111: invalid userid: sender not found"


def test_wecom_message_without_a_sender_or_address_fails_without_calling_wecom(wecom):
    with _wecom(wecom):
        results = gateway_for("wecom").send([_message(1, sender=""), _message(2, address="")])

    assert [(r.ok, r.transient) for r in results] == [(False, False), (False, False)]
    assert results[0].error.startswith("no sender")
    assert wecom.calls == [] and wecom.gettoken_calls == 0


def test_wecom_wrong_secret_fails_for_good(wecom):
    with _wecom(wecom, WECOM_CORP_SECRET="wrong"):
        [result] = gateway_for("wecom").send([_message(1)])

    assert (result.ok, result.transient) == (False, False)
    assert result.error == "WeCom gettoken error 40001: invalid credential"


def test_wecom_unreachable_is_transient_and_the_secret_stays_out_of_the_error(wecom):
    with _wecom(wecom, WECOM_API_BASE=f"http://127.0.0.1:{closed_port()}/cgi-bin"):
        [result] = gateway_for("wecom").send([_message(1)])

    assert (result.ok, result.transient) == (False, True)
    assert result.error.startswith("WeCom gettoken failed: ConnectionError")
    assert wecom.corp_secret not in result.error


def test_wecom_splits_a_large_audience_into_calls_of_at_most_10000_and_never_repeats_a_contact_in_one(wecom):
    messages = [_message(i) for i in range(10001)] + [_message(20000, address="wm-ext-0")]
    with _wecom(wecom):
        results = gateway_for("wecom").send(messages)

    assert all(r.ok for r in results)
    assert [len(t["external_userid"]) for t in wecom.templates] == [10000, 2]
    assert wecom.templates[1]["external_userid"] == ["wm-ext-10000", "wm-ext-0"]
