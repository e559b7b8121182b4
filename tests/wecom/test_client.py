"""wecom.client.WeComClient against the WeCom stand-in over real HTTP: the token (cached, refreshed once,
fetched by one worker at a time), errors sorted by kind, busy answers retried with backoff."""

from __future__ import annotations

import logging
import socket
import threading
import uuid

import pytest
from django.utils import translation

from wecom.client import WeComClient, WeComError
from wecom.standin import WeComStandIn, serve

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
def wecom_standin(settings):
    """A stand-in on an ephemeral port with a fresh corp (so no token is shared between tests), and the
    settings pointing at it."""
    standin = WeComStandIn(
        corp_id=f"ww{uuid.uuid4().hex[:16]}",
        corp_secret=uuid.uuid4().hex,
        token="callback-token",
        encoding_aes_key=AES_KEY,
        staff=["manager", "operator"],
    )
    server, base_url = serve(standin)
    standin.base_url = base_url
    settings.WECOM_API_BASE = f"{base_url}/cgi-bin"
    settings.WECOM_CORP_ID = standin.corp_id
    settings.WECOM_CORP_SECRET = standin.corp_secret
    settings.WECOM_CALLBACK_TOKEN = "callback-token"
    settings.WECOM_ENCODING_AES_KEY = AES_KEY
    yield standin
    server.shutdown()
    server.server_close()


def fast_client(**kwargs) -> WeComClient:
    return WeComClient(backoff=0.01, backoff_max=0.05, **kwargs)


def test_token_is_cached_and_shared_by_clients(wecom_standin):
    with fast_client() as first, fast_client() as second:
        first.follow_user_list()
        second.follow_user_list()
        first.user_get("manager")
    assert wecom_standin.gettoken_calls == 1


def test_concurrent_workers_fetch_one_token_between_them(wecom_standin):
    wecom_standin.delay = 0.2  # gettoken is slow: every worker finds the cache empty at once
    errors = []

    def work():
        try:
            with fast_client() as client:
                client.follow_user_list()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert wecom_standin.gettoken_calls == 1
    assert wecom_standin.calls["externalcontact/get_follow_user_list"] == 8


def test_rejected_token_is_refreshed_once_and_the_call_repeated(wecom_standin):
    with fast_client() as client:
        client.follow_user_list()
        wecom_standin.expire_tokens()
        assert client.follow_user_list() == ["manager", "operator"]
    assert wecom_standin.gettoken_calls == 2
    assert wecom_standin.calls["externalcontact/get_follow_user_list"] == 3


def test_fresh_token_rejected_again_is_a_token_error(wecom_standin):
    wecom_standin.expires_in = 0  # every token is expired at once
    with fast_client() as client, pytest.raises(WeComError) as caught:
        client.follow_user_list()
    assert caught.value.kind == "token" and caught.value.errcode == 42001 and caught.value.transient
    assert wecom_standin.gettoken_calls == 2


def test_busy_answers_are_retried_with_backoff_and_nothing_is_lost(wecom_standin):
    wecom_standin.busy_every = 3
    with fast_client() as client:
        answers = [client.follow_user_list() for _ in range(10)]
    assert answers == [["manager", "operator"]] * 10
    assert wecom_standin.calls["externalcontact/get_follow_user_list"] > 10  # some were answered 45009


def test_busy_that_lasts_is_raised_as_busy_after_a_bounded_number_of_attempts(wecom_standin):
    wecom_standin.busy_every = 1
    with fast_client(attempts=4) as client, pytest.raises(WeComError) as caught:
        client.follow_user_list()
    assert caught.value.kind == "busy" and caught.value.errcode == 45009
    assert wecom_standin.calls["externalcontact/get_follow_user_list"] == 4


def test_calls_that_must_not_repeat_are_tried_once(wecom_standin):
    wecom_standin.busy_every = 1
    with fast_client() as client, pytest.raises(WeComError) as caught:
        client.welcome_send("wc-unknown", "你好")
    assert caught.value.kind == "busy"
    assert wecom_standin.calls["externalcontact/send_welcome_msg"] == 1


@pytest.mark.parametrize(
    ("call", "errcode"),
    [
        (lambda c: c.external_contact_get("wm-nobody"), 40096),
        (lambda c: c.user_get("nobody"), 60111),
        (lambda c: c.external_contacts_by_user(["manager", "ghost"]), 40003),
        (lambda c: c.welcome_send("wc-unknown", "你好"), 41051),
        (lambda c: c.tags_mark("manager", "wm-nobody", add=["et1"]), 40096),
    ],
)
def test_ids_wecom_does_not_know_are_invalid(wecom_standin, call, errcode):
    with fast_client() as client, pytest.raises(WeComError) as caught:
        call(client)
    assert (caught.value.kind, caught.value.errcode) == ("invalid", errcode)
    assert not caught.value.transient


def test_known_customer_without_a_follow_is_invalid_84061(wecom_standin):
    eid = wecom_standin.customer_add(name="走了的客户")
    with fast_client() as client, pytest.raises(WeComError) as caught:
        client.external_contact_get(eid)
    assert (caught.value.kind, caught.value.errcode) == ("invalid", 84061)


def test_wrong_secret_is_fatal_and_neither_secret_nor_token_reaches_the_logs(wecom_standin, settings, caplog):
    settings.WECOM_CORP_SECRET = "wrong-secret-value"
    caplog.set_level(logging.DEBUG)
    with fast_client() as client:
        with pytest.raises(WeComError) as caught:
            client.follow_user_list()
        ok, message = client.token_check()
    assert (caught.value.kind, caught.value.errcode) == ("fatal", 40001)
    assert not ok and "40001" in message
    assert "wrong-secret-value" not in str(caught.value) + message + caplog.text
    assert wecom_standin.gettoken_calls == 0


def test_unreachable_wecom_is_busy_and_the_error_carries_no_secret(wecom_standin, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.WECOM_API_BASE = f"http://127.0.0.1:{port}/cgi-bin"
    with fast_client(attempts=2) as client, pytest.raises(WeComError) as caught:
        client.follow_user_list()
    assert caught.value.kind == "busy"
    assert str(caught.value).startswith("WeCom gettoken failed: ConnectionError")
    assert wecom_standin.corp_secret not in str(caught.value)


def test_token_check_reports_a_working_connection(wecom_standin):
    with fast_client() as client, translation.override("en"):
        assert client.token_check() == (True, "Connected: WeCom issued an access token.")
        assert wecom_standin.corp_secret not in client.token_cache_key


def test_typed_methods_send_wecoms_paths_and_shapes(wecom_standin):
    with fast_client() as client:
        config_id, qr_code = client.contact_way_add(type=2, scene=2, state="lc-1", user=["manager", "operator"])
        assert qr_code == f"{wecom_standin.base_url}/standin/qr/{config_id}"
        client.contact_way_update(config_id, user=["operator"])
        assert wecom_standin.ways[config_id]["user"] == ["operator"]
        group = client.corp_tag_add(group_name="意向度", tags=["强意向", "弱意向"])
        strong, weak = (t["id"] for t in group["tag"])
        client.corp_tag_edit(strong, "高意向")
        scanned = wecom_standin.scan(state="lc-1", name="王芳")
        client.tags_mark("operator", scanned["external_userid"], add=[strong, weak])
        client.tags_mark("operator", scanned["external_userid"], remove=[weak])
        profile = client.external_contact_get(scanned["external_userid"])
        assert [t["tag_name"] for t in profile["follow_user"][0]["tags"]] == ["高意向"]
        assert profile["follow_user"][0]["state"] == "lc-1"
        client.welcome_send(
            scanned["welcome_code"], "欢迎！", [{"msgtype": "link", "link": {"title": "t", "url": "u"}}]
        )
        client.corp_tag_delete(tag_ids=[weak])
        assert [t["name"] for g in client.corp_tags() for t in g["tag"]] == ["高意向"]
        client.contact_way_delete(config_id)
        items, cursor = client.external_contacts_by_user(["operator"])
    assert [i["external_contact"]["name"] for i in items] == ["王芳"] and cursor == ""
    assert wecom_standin.welcomes[0]["text"] == "欢迎！" and wecom_standin.ways == {}
