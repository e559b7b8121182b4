"""WeCom's callback crypto, checked against WeCom's own published sample (token QDG6eK, corp id
wx5823bf96d3bd56c7): the URL check and the message of its decryption example, not only our round trip."""

from __future__ import annotations

import base64

import pytest

from wecom.crypto import CallbackRejected, WeComCrypto

TOKEN = "QDG6eK"
CORP_ID = "wx5823bf96d3bd56c7"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"

# WeCom's sample URL check: GET ...?msg_signature=5c45...&timestamp=1409659589&nonce=263014780&echostr=...
URL_CHECK = {
    "signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
    "ciphertext": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
}
# WeCom's sample POST: msg_signature=4777..., timestamp=1409659813, nonce=1372623149 and this <Encrypt>.
MESSAGE = {
    "signature": "477715d11cdb4164915debcba66cb864d751f3e6",
    "timestamp": "1409659813",
    "nonce": "1372623149",
    "ciphertext": (
        "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUk"
        "SUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ek"
        "UNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+"
        "rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R"
        "07+qN+E7Q=="
    ),
}


@pytest.fixture
def crypto():
    return WeComCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID)


def test_wecoms_sample_url_check_verifies_and_decrypts_to_its_echo(crypto):
    crypto.verify(**URL_CHECK, now=int(URL_CHECK["timestamp"]))
    assert crypto.decrypt(URL_CHECK["ciphertext"]) == "1616140317555161061"


def test_wecoms_sample_message_verifies_and_decrypts_to_its_xml(crypto):
    crypto.verify(**MESSAGE, now=int(MESSAGE["timestamp"]))
    message = crypto.decrypt(MESSAGE["ciphertext"])
    assert message.startswith("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>")
    assert "<Content><![CDATA[hello]]></Content>" in message
    assert "<MsgId>4561255354251345929</MsgId>" in message


def test_our_encryption_is_what_wecoms_decryption_expects(crypto):
    sealed = crypto.encrypt("<xml><Event>测试</Event></xml>", timestamp="1409659813", nonce="42")
    assert sealed.signature == crypto.signature("1409659813", "42", sealed.ciphertext)
    assert len(base64.b64decode(sealed.ciphertext)) % 32 == 0  # WeCom pads to 32 bytes
    crypto.verify(
        signature=sealed.signature, timestamp="1409659813", nonce="42", ciphertext=sealed.ciphertext, now=1409659813
    )
    assert crypto.decrypt(sealed.ciphertext) == "<xml><Event>测试</Event></xml>"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"signature": "0" * 40}, "bad_signature"),
        ({"nonce": "1372623150"}, "bad_signature"),
        ({"timestamp": "1409659814"}, "bad_signature"),
        ({"signature": ""}, "missing_parameter"),
    ],
)
def test_a_tampered_parameter_fails_the_signature(crypto, change, code):
    with pytest.raises(CallbackRejected) as caught:
        crypto.verify(**{**MESSAGE, **change}, now=int(MESSAGE["timestamp"]))
    assert caught.value.code == code


def test_a_stale_or_future_timestamp_is_refused_even_with_a_good_signature(crypto):
    for now in (int(MESSAGE["timestamp"]) + 301, int(MESSAGE["timestamp"]) - 301):
        with pytest.raises(CallbackRejected) as caught:
            crypto.verify(**MESSAGE, now=now)
        assert caught.value.code == "stale_timestamp"


def test_a_message_for_another_corp_is_refused(crypto):
    other = WeComCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id="ww-another-corp")
    with pytest.raises(CallbackRejected) as caught:
        other.decrypt(MESSAGE["ciphertext"])
    assert caught.value.code == "wrong_receiver"


@pytest.mark.parametrize(
    "ciphertext",
    ["not base64 at all!", base64.b64encode(b"short").decode(), MESSAGE["ciphertext"][:-24] + "=="],
)
def test_a_truncated_or_garbled_ciphertext_is_refused(crypto, ciphertext):
    with pytest.raises(CallbackRejected) as caught:
        crypto.decrypt(ciphertext)
    assert caught.value.code in ("bad_ciphertext", "wrong_receiver")


def test_a_key_of_the_wrong_length_is_a_configuration_error():
    with pytest.raises(ValueError):
        WeComCrypto(token=TOKEN, encoding_aes_key=AES_KEY[:-1], receive_id=CORP_ID)
