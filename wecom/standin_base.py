"""Shared pieces of the WeCom stand-in (``wecom.standin``): limits, error answers, cursors."""

from __future__ import annotations

import base64
import binascii
import urllib.error
import urllib.request
from urllib.parse import urlencode

from .crypto import WeComCrypto

WELCOME_CODE_TTL = 20  # seconds a welcome_code may be used after the add
# send_welcome_msg with a welcome_code that is unknown, used or expired. The brief and our client call
# it 41051; the public global error table we could read does not list the code (see the report).
WELCOME_CODE_INVALID = 41051
MAX_LIMIT = 100
DEFAULT_LIMIT = 50
MAX_USERIDS = 100

_ERRMSG = {
    40001: "invalid credential",
    40003: "invalid userid",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40058: "invalid parameter",
    40063: "some parameters are empty",
    40068: "invalid tagid",
    40071: "tag name already exists",
    40096: "invalid external userid",
    41001: "access_token missing",
    42001: "access_token expired",
    45009: "api freq out of limit",
    60111: "userid not found",
    84061: "not external contact",
    WELCOME_CODE_INVALID: "invalid welcome_code",
}


class _Answer(Exception):
    """An error answer: raised anywhere inside a handler."""

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.errmsg = errmsg or _ERRMSG.get(errcode, "error")


def _error(errcode: int, errmsg: str = "") -> dict:
    return {"errcode": errcode, "errmsg": f"{errmsg or _ERRMSG.get(errcode, 'error')}, hint: [standin]"}


def _ok(**fields) -> dict:
    return {"errcode": 0, "errmsg": "ok", **fields}


def _encode_cursor(index: int, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{index}:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        index, offset = raw.split(":")
        return int(index), int(offset)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _Answer(40058, "invalid cursor") from None


def push_callback(url: str, message_xml: str, *, crypto: WeComCrypto, timeout: float = 10.0) -> int:
    """POST ``message_xml`` to ``url`` as WeCom does: encrypted, signed in the query string. Returns the
    HTTP status (0 when nothing answered)."""
    body, sealed = crypto.encrypted_xml(message_xml)
    query = urlencode({"msg_signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce})
    request = urllib.request.Request(
        f"{url}{'&' if '?' in url else '?'}{query}",
        data=body,
        method="POST",
        headers={"Content-Type": "text/xml; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0
