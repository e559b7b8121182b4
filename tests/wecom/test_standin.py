"""The WeCom stand-in (wecom.standin) answers as WeCom documents: tokens, limits, cursors, welcome codes,
faults, and signed encrypted callbacks to a receiver."""

from __future__ import annotations

import threading
from wsgiref.simple_server import make_server
from xml.etree import ElementTree

import pytest
import requests

from tests.wecom import test_client
from wecom.crypto import WeComCrypto
from wecom.standin import WELCOME_CODE_INVALID, WeComStandIn, serve

AES_KEY = test_client.AES_KEY
wecom_standin = test_client.wecom_standin  # the stand-in fixture


def _api(standin, method, path, token=None, **kwargs):
    params = kwargs.pop("params", {})
    if token is not None:
        params["access_token"] = token
    return requests.request(method, f"{standin.base_url}/cgi-bin/{path}", params=params, timeout=5, **kwargs).json()


def _token(standin) -> str:
    return _api(standin, "GET", "gettoken", params={"corpid": standin.corp_id, "corpsecret": standin.corp_secret})[
        "access_token"
    ]


def test_gettoken_checks_the_corp_id_and_secret_and_tokens_are_checked(wecom_standin):
    s = wecom_standin
    assert _api(s, "GET", "gettoken", params={"corpid": "nope", "corpsecret": s.corp_secret})["errcode"] == 40013
    assert _api(s, "GET", "gettoken", params={"corpid": s.corp_id, "corpsecret": "nope"})["errcode"] == 40001
    answer = _api(s, "GET", "gettoken", params={"corpid": s.corp_id, "corpsecret": s.corp_secret})
    assert answer["errcode"] == 0 and answer["expires_in"] == 7200
    path = "externalcontact/get_follow_user_list"
    assert _api(s, "GET", path)["errcode"] == 41001
    assert _api(s, "GET", path, token="forged")["errcode"] == 40014
    assert _api(s, "GET", path, token=answer["access_token"])["follow_user"] == ["manager", "operator"]
    s.expire_tokens()
    assert _api(s, "GET", path, token=answer["access_token"])["errcode"] == 42001


def test_batch_get_by_user_pages_every_follow_once_within_its_limits(wecom_standin):
    s = wecom_standin
    s.seed(staff=3, customers=250, shared_every=10)
    token = _token(s)
    seen, cursor, pages = [], "", 0
    while True:
        body = {"userid_list": ["s0001", "s0002", "s0003"], "cursor": cursor, "limit": 500}
        answer = _api(s, "POST", "externalcontact/batch/get_by_user", token, json=body)
        assert answer["errcode"] == 0 and len(answer["external_contact_list"]) <= 100
        seen += [
            (i["follow_info"]["userid"], i["external_contact"]["external_userid"])
            for i in answer["external_contact_list"]
        ]
        pages += 1
        cursor = answer["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 275 and pages == 3
    default = _api(s, "POST", "externalcontact/batch/get_by_user", token, json={"userid_list": ["s0001"]})
    assert len(default["external_contact_list"]) == 50
    too_many = {"userid_list": [f"u{i}" for i in range(101)]}
    assert _api(s, "POST", "externalcontact/batch/get_by_user", token, json=too_many)["errcode"] == 40058
    assert _api(s, "POST", "externalcontact/batch/get_by_user", token, json={"userid_list": ["x"]})["errcode"] == 40003


def test_busy_every_n_answers_45009_to_every_nth_call(wecom_standin):
    wecom_standin.busy_every = 10
    token = _token(wecom_standin)
    codes = [_api(wecom_standin, "GET", "externalcontact/get_follow_user_list", token)["errcode"] for _ in range(30)]
    assert [i for i, code in enumerate(codes) if code] == [9, 19, 29] and set(codes) == {0, 45009}


def test_a_welcome_code_works_once_and_only_within_20_seconds(wecom_standin):
    s = wecom_standin
    token = _token(s)
    config = _api(
        s,
        "POST",
        "externalcontact/add_contact_way",
        token,
        json={"type": 2, "scene": 2, "state": "w", "user": ["manager"]},
    )
    first, late = s.scan(config_id=config["config_id"]), s.scan(state="w")
    s.welcome_codes[late["welcome_code"]]["created"] -= 21

    def send(code):
        return _api(
            s,
            "POST",
            "externalcontact/send_welcome_msg",
            token,
            json={"welcome_code": code, "text": {"content": "欢迎"}},
        )

    assert send(first["welcome_code"])["errcode"] == 0
    assert send(first["welcome_code"])["errcode"] == WELCOME_CODE_INVALID
    assert send(late["welcome_code"])["errcode"] == WELCOME_CODE_INVALID
    welcomes = requests.get(f"{s.base_url}/standin/welcomes", timeout=5).json()["welcomes"]
    assert [w["external_userid"] for w in welcomes] == [first["external_userid"]] and welcomes[0]["accepted_at"]


@pytest.fixture
def callback_receiver():
    """A WSGI endpoint that verifies and decrypts what it receives, like our callback view must."""
    received = []
    crypto = WeComCrypto(token="callback-token", encoding_aes_key=AES_KEY, receive_id="")

    def app(environ, start_response):
        from urllib.parse import parse_qs

        query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        ciphertext = ElementTree.fromstring(body).findtext("Encrypt")
        crypto.verify(
            signature=query["msg_signature"], timestamp=query["timestamp"], nonce=query["nonce"], ciphertext=ciphertext
        )
        received.append(crypto.decrypt(ciphertext))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"success"]

    server = make_server("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield crypto, received, f"http://127.0.0.1:{server.server_address[1]}/wecom/callback"
    server.shutdown()
    server.server_close()


def test_scan_and_delete_post_signed_encrypted_callbacks(wecom_standin, callback_receiver):
    crypto, received, url = callback_receiver
    crypto.receive_id = wecom_standin.corp_id
    s = wecom_standin
    token = _token(s)
    _api(
        s,
        "POST",
        "externalcontact/add_contact_way",
        token,
        json={"type": 2, "scene": 2, "state": "poster", "user": ["manager", "operator"]},
    )
    first = requests.post(f"{s.base_url}/standin/scan", json={"state": "poster", "callback_url": url}, timeout=5).json()
    second = s.scan(state="poster", unionid="o-1", callback_url=url)
    assert (first["userid"], second["userid"], first["callback_status"]) == ("manager", "operator", 200)
    event = ElementTree.fromstring(received[0])
    assert {child.tag: child.text for child in event} == {
        "ToUserName": s.corp_id,
        "FromUserName": "sys",
        "CreateTime": event.findtext("CreateTime"),
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": "add_external_contact",
        "UserID": "manager",
        "ExternalUserID": first["external_userid"],
        "State": "poster",
        "WelcomeCode": first["welcome_code"],
    }
    assert s.scan(state="poster", unionid="o-1")["external_userid"] == second["external_userid"]  # same person
    gone = s.delete(external_userid=first["external_userid"], userid="manager", by="customer", callback_url=url)
    assert gone["callback_status"] == 200
    assert ElementTree.fromstring(received[-1]).findtext("ChangeType") == "del_follow_user"
    qr = requests.get(s.ways[next(iter(s.ways))]["qr_code"], timeout=5)
    assert qr.status_code == 200 and "poster" in qr.text


def test_seed_builds_a_large_corp_quickly():
    import time

    standin = WeComStandIn(corp_id="ww1", corp_secret="secret")
    started = time.monotonic()
    state = standin.seed(staff=50, customers=100_000)
    assert time.monotonic() - started < 5
    assert (state["staff"], state["customers"], state["follows"]) == (50, 100_000, 105_000)
    server, base_url = serve(standin)
    try:
        assert requests.get(f"{base_url}/standin/state", timeout=5).json()["follows"] == 105_000
    finally:
        server.shutdown()
        server.server_close()
