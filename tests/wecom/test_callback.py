"""The public callback endpoint: WeCom's URL check, and POSTs verified, stored once and answered at once;
anything else refused with a 4xx that names the reason, writing nothing."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from wecom.crypto import WeComCrypto
from wecom.models import CallbackEvent

CORP_ID = "ww-test-corp"
TOKEN = "callback-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def wecom_settings(settings):
    settings.WECOM_CORP_ID = CORP_ID
    settings.WECOM_CALLBACK_TOKEN = TOKEN
    settings.WECOM_ENCODING_AES_KEY = AES_KEY


@pytest.fixture
def crypto():
    return WeComCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID)


@pytest.fixture
def enqueued(monkeypatch):
    """What the endpoint queued: ("event", id) per event; ("drain", slot) when it woke an adds drainer."""
    calls = []
    monkeypatch.setattr("wecom.tasks.callback_process.delay", lambda event_id: calls.append(("event", event_id)))
    monkeypatch.setattr("wecom.tasks.adds_drain.delay", lambda slot: calls.append(("drain", slot)))
    return calls


def add_event(external_userid="wmEXT1", *, created=None, welcome_code="WELCOME1") -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{created or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
        f"<UserID><![CDATA[manager]]></UserID><ExternalUserID><![CDATA[{external_userid}]]></ExternalUserID>"
        f"<State><![CDATA[lcSTATE]]></State><WelcomeCode><![CDATA[{welcome_code}]]></WelcomeCode></xml>"
    )


def post(client, crypto, message: str, **query_changes):
    body, sealed = crypto.encrypted_xml(message)
    query = {"msg_signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce, **query_changes}
    return client.post(f"{reverse('wecom:callback')}?{urlencode(query)}", data=body, content_type="text/xml")


def test_url_check_answers_the_decrypted_echostr(client, crypto):
    sealed = crypto.encrypt("8411962473541253")
    query = {"msg_signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce}
    response = client.get(reverse("wecom:callback"), {**query, "echostr": sealed.ciphertext})
    assert response.status_code == 200
    assert response.content == b"8411962473541253"


def test_a_good_event_is_stored_answered_and_enqueued_after_commit(
    client, crypto, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, crypto, add_event())
    assert response.status_code == 200
    assert response.content == b"success"
    event = CallbackEvent.objects.get()
    assert (event.event, event.change_type, event.status) == (
        "change_external_contact",
        "add_external_contact",
        "pending",
    )
    assert event.payload["ExternalUserID"] == "wmEXT1"
    assert event.payload["WelcomeCode"] == "WELCOME1"
    assert enqueued == [("drain", 0)]  # adds are applied in batches by a drainer


def test_adds_wake_at_most_one_drainer_per_slot_and_other_events_get_their_own_task(
    client, crypto, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(4):
            post(client, crypto, add_event(f"wm{i}", welcome_code=f"W{i}"))
        delete = add_event("wm0").replace("add_external_contact", "del_follow_user").replace("WELCOME", "X")
        post(client, crypto, delete)
    deleted = CallbackEvent.objects.get(change_type="del_follow_user")
    assert enqueued == [("drain", 0), ("drain", 1), ("event", deleted.pk)]


def test_wecoms_retry_of_the_same_event_is_one_row_processed_once(
    client, crypto, enqueued, django_capture_on_commit_callbacks
):
    message = add_event(created=int(time.time()))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):  # WeCom retries until it is answered; each retry is encrypted afresh
            assert post(client, crypto, message).status_code == 200
    assert CallbackEvent.objects.count() == 1
    assert enqueued == [("drain", 0)]


def test_a_replayed_request_is_answered_but_stored_once(client, crypto, enqueued, django_capture_on_commit_callbacks):
    body, sealed = crypto.encrypted_xml(add_event())
    url = f"{reverse('wecom:callback')}?" + urlencode(
        {"msg_signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce}
    )
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            assert client.post(url, data=body, content_type="text/xml").status_code == 200
    assert CallbackEvent.objects.count() == 1
    assert enqueued == [("drain", 0)]


@pytest.mark.parametrize(
    ("tamper", "status", "code"),
    [
        ({"msg_signature": "0" * 40}, 403, b"bad_signature"),
        ({"nonce": "1"}, 403, b"bad_signature"),
        ({"timestamp": str(int(time.time()) - 3600)}, 403, b"bad_signature"),  # changed timestamp: signature breaks
    ],
)
def test_a_tampered_query_is_refused_and_writes_nothing(client, crypto, enqueued, tamper, status, code):
    response = post(client, crypto, add_event(), **tamper)
    assert response.status_code == status
    assert response.content.startswith(code)
    assert not CallbackEvent.objects.exists()
    assert enqueued == []


def test_a_stale_but_correctly_signed_request_is_refused(client, crypto, enqueued):
    old = str(int(time.time()) - 3600)
    body, _sealed = crypto.encrypted_xml(add_event())
    ciphertext = body.decode().split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    query = {"msg_signature": crypto.signature(old, "7", ciphertext), "timestamp": old, "nonce": "7"}
    response = client.post(f"{reverse('wecom:callback')}?{urlencode(query)}", data=body, content_type="text/xml")
    assert response.status_code == 403
    assert response.content.startswith(b"stale_timestamp")
    assert not CallbackEvent.objects.exists()


def test_an_event_for_another_corp_is_refused(client, enqueued):
    other = WeComCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id="ww-another-corp")
    response = post(client, other, add_event())
    assert response.status_code == 403
    assert response.content.startswith(b"wrong_receiver")
    assert not CallbackEvent.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"this is not xml", b"bad_xml"),
        (b'{"json": true}', b"bad_xml"),
        (b"<xml><Encrypt>", b"bad_xml"),  # truncated
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>', b"bad_xml"),
        (b"<notxml><Encrypt>abc</Encrypt></notxml>", b"bad_xml"),
        # A DOCTYPE hidden past a long comment, or in UTF-16: refused by the parser itself.
        (
            b"<?xml version='1.0'?><!--"
            + b"a" * 5000
            + b'--><!DOCTYPE x [<!ENTITY c "AAAA">]><xml><Encrypt>&c;</Encrypt></xml>',
            b"bad_xml",
        ),
        ('<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>'.encode("utf-16"), b"bad_xml"),
    ],
)
def test_a_body_that_is_not_wecoms_xml_is_a_400(client, crypto, enqueued, body, code):
    query = {"msg_signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "1"}
    response = client.post(f"{reverse('wecom:callback')}?{urlencode(query)}", data=body, content_type="text/xml")
    assert response.status_code == 400
    assert response.content.startswith(code)
    assert not CallbackEvent.objects.exists()


def test_an_oversized_body_is_a_413(client, crypto, enqueued):
    query = {"msg_signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "1"}
    body = b"<xml><Encrypt>" + b"A" * (70 * 1024) + b"</Encrypt></xml>"
    response = client.post(f"{reverse('wecom:callback')}?{urlencode(query)}", data=body, content_type="text/xml")
    assert response.status_code == 413
    assert not CallbackEvent.objects.exists()


def test_without_configuration_the_endpoint_says_so(client, settings):
    settings.WECOM_CALLBACK_TOKEN = ""
    response = client.post(reverse("wecom:callback"), data=b"<xml/>", content_type="text/xml")
    assert response.status_code == 503
    assert b"WECOM_CALLBACK_TOKEN" in response.content


def test_the_endpoint_needs_no_login_nor_csrf_token(crypto, enqueued):
    from django.test import Client

    response = post(Client(enforce_csrf_checks=True), crypto, add_event())
    assert response.status_code == 200


def test_a_content_length_that_is_not_a_number_is_a_4xx(client, crypto, enqueued):
    body, sealed = crypto.encrypted_xml(add_event())
    query = {"msg_signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce}
    response = client.post(
        f"{reverse('wecom:callback')}?{urlencode(query)}", data=body, content_type="text/xml", CONTENT_LENGTH="abc"
    )
    assert 400 <= response.status_code < 500
    assert not CallbackEvent.objects.exists()
