"""The WeCom (企业微信) server API client: one access token for the whole project, errors sorted by what a
caller should do about them, and typed methods for the calls we make.

- **Token**: ``gettoken`` with the corp id and secret from settings; cached in Django's cache (Redis in
  production, shared by every worker) under a key naming the app without holding the secret, until
  shortly before ``expires_in``. When WeCom answers 40001/40014/42001 to a call, the token is fetched
  again once (single-flight: a cache ``add()`` lock, so concurrent workers do not all call ``gettoken``;
  the others wait briefly and read the new token) and the call repeated.
- **Errors** are ``WeComError`` with a ``kind``:

  ``busy``     -1, 45009, 45011, 45033, HTTP 5xx/429, timeouts and connection errors: retried here with
               exponential backoff and jitter, up to ``attempts``; raised when they run out.
  ``invalid``  an id WeCom does not know (a userid, an external_userid, a tag, a welcome code...): callers
               record it and go on with the others.
  ``token``    a freshly fetched token was rejected as well.
  ``fatal``    anything else, including a wrong corp id or secret at ``gettoken``.

Neither the secret nor a token is ever logged or put into an error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)

TOKEN_MARGIN = 300  # seconds before expires_in when a cached token is no longer used
TOKEN_ERRORS = {40001, 40014, 42001}  # invalid credential / invalid access_token / access_token expired
BUSY_ERRORS = {-1, 45009, 45011, 45033}  # system busy / frequency limit / minute limit / concurrency limit
# Ids WeCom does not know (or no longer knows): the call cannot succeed for that id, the others can.
INVALID_ERRORS = {
    40003,  # invalid userid
    40068,  # invalid tag id
    40096,  # invalid external_userid
    41001,  # access_token missing (a caller bug shows up here rather than being retried)
    41051,  # welcome_code used, unknown or older than 20 s (see wecom.standin.WELCOME_CODE_INVALID)
    46004,  # user does not exist
    60111,  # userid not found
    84061,  # no external contact relationship
    84074,  # member has no customer contact permission
}
MAX_USERIDS = 100  # batch/get_by_user: userid_list
MAX_LIMIT = 100  # batch/get_by_user: limit
_SECRETS = re.compile(r"(access_token|corpsecret)=[^&\s'\"]*")

KINDS = ("token", "busy", "invalid", "fatal")


class WeComError(Exception):
    """A failed WeCom call. ``kind`` says what to do (module docstring); ``transient`` when a later retry
    may succeed (busy, or a token problem)."""

    def __init__(self, message: str, *, errcode: int | None = None, kind: str = "fatal") -> None:
        super().__init__(message)
        assert kind in KINDS, kind
        self.errcode = errcode
        self.kind = kind

    @property
    def transient(self) -> bool:
        return self.kind in ("busy", "token")


def _redact(text: str) -> str:
    return _SECRETS.sub(r"\1=…", text)


def _describe(exc: BaseException) -> str:
    text = _redact(str(exc))
    if len(text) > 300:
        text = text[:300] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _RedactSecrets(logging.Filter):
    """urllib3 logs every URL at DEBUG, query string included: the token and the secret travel there."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message or "corpsecret=" in message:
            record.msg, record.args = _redact(message), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactSecrets())


def kind_of(errcode: int) -> str:
    if errcode in BUSY_ERRORS:
        return "busy"
    if errcode in INVALID_ERRORS:
        return "invalid"
    return "fatal"


class WeComClient:
    """One per process use (it holds a ``requests.Session``); safe to share between threads for calls."""

    def __init__(
        self,
        *,
        attempts: int = 5,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        lock_wait: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.api_base = settings.WECOM_API_BASE.rstrip("/")
        self.corp_id = settings.WECOM_CORP_ID
        self.corp_secret = settings.WECOM_CORP_SECRET
        self.timeout = settings.SCRM_GATEWAY_TIMEOUT
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.lock_wait = lock_wait
        self.session = session or requests.Session()
        # Tokens are per app (secret): the key names the app without storing the secret itself.
        app = hashlib.sha256(f"{self.corp_id}:{self.corp_secret}".encode()).hexdigest()[:16]
        self.token_cache_key = f"scrm:wecom:access_token:{app}"
        self.lock_key = f"{self.token_cache_key}:lock"
        self.gettoken_calls = 0  # by this instance: for tests and the connection page

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> WeComClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- access token -----------------------------------------------------------------------------

    def access_token(self, *, stale: str | None = None) -> str:
        """The cached token unless it is ``stale`` (one WeCom just rejected); else a new one from
        ``gettoken``, fetched by one caller at a time across processes."""
        token = self._cache_get(self.token_cache_key)
        if token and token != stale:
            return token
        deadline = time.monotonic() + self.lock_wait
        while True:
            if self._cache_add(self.lock_key):
                try:
                    token = self._cache_get(self.token_cache_key)  # another worker may have just refreshed
                    if token and token != stale:
                        return token
                    return self._fetch_token()
                finally:
                    self._cache_delete(self.lock_key)
            time.sleep(0.02 + random.random() * 0.03)
            token = self._cache_get(self.token_cache_key)
            if token and token != stale:
                return token
            if time.monotonic() > deadline:  # the lock holder died or hangs: fetch ourselves
                return self._fetch_token()

    def _fetch_token(self) -> str:
        self.gettoken_calls += 1
        data = self._request(
            "GET", "gettoken", params={"corpid": self.corp_id, "corpsecret": self.corp_secret}, what="gettoken"
        )
        token = data.get("access_token")
        if not token:
            raise WeComError("WeCom gettoken answered without an access_token", kind="busy")
        expires_in = int(data.get("expires_in") or 7200)
        ttl = expires_in - min(TOKEN_MARGIN, expires_in // 5)
        if ttl > 0:
            try:
                cache.set(self.token_cache_key, token, timeout=ttl)
            except Exception:  # the cache being down must not stop calls; the next call fetches again
                logger.warning("could not cache the WeCom access token", exc_info=True)
        return token

    def _cache_get(self, key: str):
        try:
            return cache.get(key)
        except Exception:  # e.g. Redis unreachable: fetch a token instead
            logger.warning("could not read the WeCom access token from the cache", exc_info=True)
            return None

    def _cache_add(self, key: str) -> bool:
        try:
            return bool(cache.add(key, "1", timeout=max(5, int(self.timeout * 2))))
        except Exception:
            logger.warning("could not take the WeCom token lock", exc_info=True)
            return True

    def _cache_delete(self, key: str) -> None:
        try:
            cache.delete(key)
        except Exception:
            logger.warning("could not release the WeCom token lock", exc_info=True)

    def token_check(self) -> tuple[bool, str]:
        """For the connection page: can we get a token with the configured corp id and secret?"""
        if not self.corp_id or not self.corp_secret:
            return False, str(_("WECOM_CORP_ID and WECOM_CORP_SECRET are not set."))
        try:
            self._fetch_token()
        except WeComError as exc:
            if exc.errcode in (40001, 40013, 40091):
                return False, str(_("WeCom refused the corp id or secret (errcode %(code)s).") % {"code": exc.errcode})
            return False, str(_("WeCom could not be reached: %(error)s") % {"error": exc})
        return True, str(_("Connected: WeCom issued an access token."))

    # --- calls --------------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str = "",
        params: dict | None = None,
        body: dict | None = None,
        attempts: int | None = None,
    ) -> dict:
        """One API call with the access token; returns WeCom's JSON when errcode is 0. Busy answers are
        retried up to ``attempts`` (1 for calls that must not be repeated); a rejected token is refreshed
        once."""
        what = what or path.rsplit("/", 1)[-1]
        data = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
        token = self.access_token()
        try:
            return self._request(method, path, params=params, data=data, token=token, what=what, attempts=attempts)
        except WeComError as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
        # Expired or revoked early (WeCom may do that): fetch a new token once and call again.
        logger.info("WeCom access token rejected; fetching a new one")
        token = self.access_token(stale=token)
        try:
            return self._request(method, path, params=params, data=data, token=token, what=what, attempts=attempts)
        except WeComError as exc:
            if exc.errcode in TOKEN_ERRORS:
                raise WeComError(
                    f"WeCom rejected a fresh access token: {exc}", errcode=exc.errcode, kind="token"
                ) from exc
            raise

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict | None = None,
        data: bytes | None = None,
        token: str | None = None,
        attempts: int | None = None,
    ) -> dict:
        attempts = self.attempts if attempts is None else max(1, attempts)
        query = dict(params or {})
        if token is not None:
            query["access_token"] = token
        headers = {"Content-Type": "application/json; charset=utf-8"} if data is not None else None
        for attempt in range(1, attempts + 1):
            try:
                return self._once(method, path, query=query, data=data, headers=headers, what=what)
            except WeComError as exc:
                if exc.kind != "busy" or attempt == attempts:
                    raise
                pause = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
                pause *= 0.5 + random.random()  # jitter: workers that failed together do not retry together
                logger.info("WeCom %s busy (%s); retry %s/%s in %.2f s", what, exc, attempt, attempts - 1, pause)
                time.sleep(pause)
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, *, query: dict, data, headers, what: str) -> dict:
        try:
            response = self.session.request(
                method, f"{self.api_base}/{path}", params=query, data=data, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise WeComError(f"WeCom {what} failed: {_describe(exc)}", kind="busy") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise WeComError(f"WeCom {what} answered HTTP {response.status_code}", kind="busy")
        if response.status_code != 200:
            raise WeComError(f"WeCom {what} answered HTTP {response.status_code}", kind="fatal")
        try:
            answer = response.json()
        except ValueError:
            raise WeComError(f"WeCom {what} answered something that is not JSON", kind="busy") from None
        if not isinstance(answer, dict):
            raise WeComError(f"WeCom {what} answered something that is not a JSON object", kind="busy")
        try:
            errcode = int(answer.get("errcode") or 0)
        except (TypeError, ValueError):
            raise WeComError(f"WeCom {what} answered an unreadable errcode", kind="busy") from None
        if errcode == 0:
            return answer
        errmsg = _redact(str(answer.get("errmsg") or "").split(", hint:")[0][:300])
        if errcode == -1:
            message = f"WeCom {what}: system busy (errcode -1)"
        else:
            message = f"WeCom {what} error {errcode}: {errmsg}"
        if what == "gettoken":  # a wrong corp id or secret is not an id to skip nor a token to refresh
            kind = "busy" if errcode in BUSY_ERRORS else "fatal"
        else:
            kind = kind_of(errcode)
        raise WeComError(message, errcode=errcode, kind=kind)

    # --- customers (客户联系) ------------------------------------------------------------------------

    def follow_user_list(self) -> list[str]:
        """The members with the customer contact permission (配置了客户联系功能的成员)."""
        return list(self.call("GET", "externalcontact/get_follow_user_list").get("follow_user") or [])

    def external_contact_get(self, external_userid: str, cursor: str = "") -> dict:
        """One customer: ``{"external_contact": {...}, "follow_user": [...], "next_cursor": ...}``."""
        params = {"external_userid": external_userid}
        if cursor:
            params["cursor"] = cursor
        answer = self.call("GET", "externalcontact/get", params=params)
        return {
            "external_contact": answer.get("external_contact") or {},
            "follow_user": answer.get("follow_user") or [],
            "next_cursor": answer.get("next_cursor") or "",
        }

    def external_contacts_by_user(
        self, userids: list[str], cursor: str = "", limit: int = MAX_LIMIT
    ) -> tuple[list[dict], str]:
        """One page of the customers of up to 100 members: ``([{"external_contact": {...}, "follow_info":
        {...}}, ...], next_cursor)``; ``next_cursor`` is "" after the last page."""
        if not userids or len(userids) > MAX_USERIDS:
            raise ValueError(f"batch/get_by_user takes 1 to {MAX_USERIDS} userids, not {len(userids)}")
        body = {"userid_list": list(userids), "cursor": cursor or "", "limit": max(1, min(MAX_LIMIT, int(limit)))}
        answer = self.call("POST", "externalcontact/batch/get_by_user", body=body, what="batch/get_by_user")
        return list(answer.get("external_contact_list") or []), str(answer.get("next_cursor") or "")

    def contact_way_add(self, **fields: Any) -> tuple[str, str]:
        """``add_contact_way`` (type, scene, state, user, skip_verify, remark...); returns (config_id, qr_code)."""
        answer = self.call("POST", "externalcontact/add_contact_way", body=fields, attempts=1)
        return str(answer.get("config_id") or ""), str(answer.get("qr_code") or "")

    def contact_way_update(self, config_id: str, **fields: Any) -> None:
        self.call("POST", "externalcontact/update_contact_way", body={"config_id": config_id, **fields})

    def contact_way_delete(self, config_id: str) -> None:
        self.call("POST", "externalcontact/del_contact_way", body={"config_id": config_id})

    def welcome_send(self, welcome_code: str, text: str = "", attachments: list[dict] | None = None) -> None:
        """``send_welcome_msg``: usable once per code, within 20 s of the add. Not repeated on a busy
        answer (the code may have been used)."""
        body: dict[str, Any] = {"welcome_code": welcome_code}
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = list(attachments)
        self.call("POST", "externalcontact/send_welcome_msg", body=body, attempts=1)

    # --- corp tags (企业客户标签) --------------------------------------------------------------------

    def corp_tags(self, tag_ids: list[str] | None = None, group_ids: list[str] | None = None) -> list[dict]:
        """``get_corp_tag_list``: ``[{"group_id", "group_name", "order", "create_time", "tag": [{"id", "name",
        ...}]}]``; all groups when neither filter is given."""
        body: dict[str, Any] = {}
        if tag_ids:
            body["tag_id"] = list(tag_ids)
        if group_ids:
            body["group_id"] = list(group_ids)
        return list(self.call("POST", "externalcontact/get_corp_tag_list", body=body).get("tag_group") or [])

    def corp_tag_add(
        self, group_id: str | None = None, group_name: str | None = None, tags: list[str | dict] = ()
    ) -> dict:
        """``add_corp_tag`` into an existing group (``group_id``) or a group named ``group_name`` (created if
        new); returns WeCom's ``tag_group`` with the new tags and their ids."""
        body: dict[str, Any] = {"tag": [t if isinstance(t, dict) else {"name": t} for t in tags]}
        if group_id:
            body["group_id"] = group_id
        if group_name:
            body["group_name"] = group_name
        return dict(self.call("POST", "externalcontact/add_corp_tag", body=body, attempts=1).get("tag_group") or {})

    def corp_tag_edit(self, id: str, name: str) -> None:  # noqa: A002 - WeCom's field name
        self.call("POST", "externalcontact/edit_corp_tag", body={"id": id, "name": name})

    def corp_tag_delete(self, tag_ids: list[str] | None = None, group_ids: list[str] | None = None) -> None:
        self.call(
            "POST",
            "externalcontact/del_corp_tag",
            body={"tag_id": list(tag_ids or []), "group_id": list(group_ids or [])},
        )

    def tags_mark(
        self, userid: str, external_userid: str, add: list[str] | None = None, remove: list[str] | None = None
    ) -> None:
        """``mark_tag``: add and remove corp tags on one (member, customer) pair. Idempotent."""
        body = {
            "userid": userid,
            "external_userid": external_userid,
            "add_tag": list(add or []),
            "remove_tag": list(remove or []),
        }
        self.call("POST", "externalcontact/mark_tag", body=body)

    # --- members ------------------------------------------------------------------------------------

    def user_get(self, userid: str) -> dict:
        """``user/get``: the member (``name`` among others)."""
        return self.call("GET", "user/get", params={"userid": userid})
