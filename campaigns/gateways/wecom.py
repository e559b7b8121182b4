"""WeCom customer broadcasts (企业群发): ``externalcontact/add_msg_template``.

WeCom does not deliver these by itself: the call creates a task, and the staff member (``sender``)
confirms it in their WeCom client. A message WeCom accepted is therefore ``ok`` with the task's
``msgid`` and the state ``awaiting_confirmation``.

Messages with the same sender and text go out in one call (at most ``MAX_RECIPIENTS`` external ids);
ids WeCom returns in ``fail_list`` (not a customer of that sender) fail for good.

The ``group`` medium goes the same way: the contract addresses a contact by its external_userid, so
it is a 1:1 customer broadcast (chat_type "single"), not a post into a group chat.

The access token comes from ``gettoken`` and is kept in Django's cache (Redis in production, so all
workers share it) until shortly before it expires. When WeCom says the token is invalid or expired
(40014, 42001, 40001) it is fetched again once and the call repeated.

Errors: errcode -1 (system busy), the frequency limits, HTTP 5xx and connection errors are transient;
any other errcode (also a wrong corp id or secret at ``gettoken``) fails the messages for good with
WeCom's errmsg. There is no retry inside ``send()`` for a call that may have reached WeCom: the API has
no idempotency key, and a repeated call would ask the staff member to confirm the same message twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict

import requests
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from .base import Gateway, OutgoingMessage, SendResult, describe_exception, failed

logger = logging.getLogger(__name__)

MAX_RECIPIENTS = 10000  # external_userid per add_msg_template call
TOKEN_MARGIN = 300  # seconds before expires_in when a cached token is no longer used
TOKEN_ERRORS = {40001, 40014, 42001}  # invalid credential / invalid access_token / access_token expired
BUSY_ERRORS = {-1, 45009, 45033}  # system busy / API frequency limit / too many concurrent calls
AWAITING_CONFIRMATION = "awaiting_confirmation"


class WeComError(Exception):
    """A failed WeCom call: ``transient`` when a later retry may succeed."""

    def __init__(self, message: str, *, transient: bool, errcode: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.errcode = errcode


class WeComGateway(Gateway):
    name = "wecom"

    def __init__(self) -> None:
        self.api_base = settings.WECOM_API_BASE.rstrip("/")
        self.corp_id = settings.WECOM_CORP_ID
        self.corp_secret = settings.WECOM_CORP_SECRET
        self.timeout = settings.SCRM_GATEWAY_TIMEOUT
        if not self.corp_id or not self.corp_secret:
            raise ImproperlyConfigured(
                "The WeCom gateway needs WECOM_CORP_ID (企业ID) and WECOM_CORP_SECRET (the secret of the "
                "customer contact / 客户联系 app, or of a self-built app allowed to call it); set both, or choose "
                "another gateway in SCRM_GATEWAY_<MEDIUM>."
            )
        # Tokens are per app (secret): the key names the app without storing the secret itself.
        app = hashlib.sha256(f"{self.corp_id}:{self.corp_secret}".encode()).hexdigest()[:16]
        self.token_cache_key = f"scrm:wecom:access_token:{app}"

    # --- access token ---------------------------------------------------------------------

    def access_token(self, session: requests.Session, *, refresh: bool = False) -> str:
        """The cached token, or a new one from ``gettoken`` (then cached until shortly before it expires)."""
        if not refresh:
            token = self._cached_token()
            if token:
                return token
        data = self._call(
            session, "GET", "gettoken", params={"corpid": self.corp_id, "corpsecret": self.corp_secret}, what="gettoken"
        )
        token = data.get("access_token")
        if not token:
            raise WeComError("WeCom gettoken answered without an access_token", transient=True)
        expires_in = int(data.get("expires_in") or 7200)
        ttl = expires_in - min(TOKEN_MARGIN, expires_in // 5)
        if ttl > 0:
            try:
                cache.set(self.token_cache_key, token, timeout=ttl)
            except Exception:  # the cache being down must not stop sending; the next send fetches again
                logger.warning("could not cache the WeCom access token", exc_info=True)
        return token

    def _cached_token(self) -> str | None:
        try:
            return cache.get(self.token_cache_key)
        except Exception:  # e.g. Redis unreachable: fetch a token instead
            logger.warning("could not read the WeCom access token from the cache", exc_info=True)
            return None

    # --- sending -----------------------------------------------------------------------------

    def send(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        results: dict[int, SendResult] = {}
        groups: dict[tuple[str, str], list[OutgoingMessage]] = defaultdict(list)
        for m in messages:
            if not m.sender:
                results[m.delivery_id] = failed(m, "no sender: the contact has no owner to send from in WeCom")
            elif not m.address:
                results[m.delivery_id] = failed(m, "no WeCom external_userid for this contact")
            else:
                groups[(m.sender, m.body)].append(m)
        unavailable = ""
        with requests.Session() as session:
            for (sender, body), group in groups.items():
                for call in _calls(group):
                    if unavailable:
                        for m in call:
                            results[m.delivery_id] = failed(m, f"not tried: {unavailable}", transient=True)
                        continue
                    try:
                        answer = self._add_msg_template(session, sender=sender, body=body, recipients=call)
                    except WeComError as exc:
                        logger.warning("WeCom add_msg_template for %s messages failed: %s", len(call), exc)
                        for m in call:
                            results[m.delivery_id] = failed(m, str(exc), transient=exc.transient)
                        if exc.transient:
                            unavailable = str(exc)
                        continue
                    msgid = str(answer.get("msgid") or "")
                    not_customers = set(answer.get("fail_list") or [])
                    for m in call:
                        if m.address in not_customers:
                            results[m.delivery_id] = failed(
                                m, f"not a customer of sender {sender!r} in WeCom (fail_list)"
                            )
                        else:
                            results[m.delivery_id] = SendResult(
                                m.delivery_id, ok=True, message_id=msgid, state=AWAITING_CONFIRMATION
                            )
        return [results[m.delivery_id] for m in messages]

    def _add_msg_template(
        self, session: requests.Session, *, sender: str, body: str, recipients: list[OutgoingMessage]
    ) -> dict:
        payload = {
            "chat_type": "single",
            "external_userid": [m.address for m in recipients],
            "sender": sender,
            "text": {"content": body},
        }
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        token = self.access_token(session)
        try:
            return self._post(session, token, data)
        except WeComError as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
        # Expired or revoked early (WeCom may do that): fetch a new token once and call again.
        logger.info("WeCom access token rejected; fetching a new one")
        token = self.access_token(session, refresh=True)
        try:
            return self._post(session, token, data)
        except WeComError as exc:
            if exc.errcode in TOKEN_ERRORS:
                raise WeComError(
                    f"WeCom rejected a fresh access token: {exc}", transient=True, errcode=exc.errcode
                ) from exc
            raise

    def _post(self, session: requests.Session, token: str, data: bytes) -> dict:
        return self._call(
            session,
            "POST",
            "externalcontact/add_msg_template",
            params={"access_token": token},
            data=data,
            headers={"Content-Type": "application/json; charset=utf-8"},
            what="add_msg_template",
        )

    def _call(self, session: requests.Session, method: str, path: str, *, what: str, **kwargs) -> dict:
        """One API call; returns the JSON answer when errcode is 0, else raises ``WeComError``."""
        try:
            response = session.request(method, f"{self.api_base}/{path}", timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise WeComError(f"WeCom {what} failed: {describe_exception(exc)}", transient=True) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise WeComError(f"WeCom {what} answered HTTP {response.status_code}", transient=True)
        if response.status_code != 200:
            raise WeComError(f"WeCom {what} answered HTTP {response.status_code}", transient=False)
        try:
            data = response.json()
        except ValueError:
            raise WeComError(f"WeCom {what} answered something that is not JSON", transient=True) from None
        if not isinstance(data, dict):
            raise WeComError(f"WeCom {what} answered something that is not a JSON object", transient=True)
        try:
            errcode = int(data.get("errcode") or 0)
        except (TypeError, ValueError):
            raise WeComError(f"WeCom {what} answered an unreadable errcode", transient=True) from None
        if errcode == 0:
            return data
        errmsg = str(data.get("errmsg") or "").split(", hint:")[0][:300]
        if errcode == -1:
            message = f"WeCom {what}: system busy (errcode -1)"
        else:
            message = f"WeCom {what} error {errcode}: {errmsg}"
        raise WeComError(message, transient=errcode in BUSY_ERRORS, errcode=errcode)


def _calls(group: list[OutgoingMessage]) -> list[list[OutgoingMessage]]:
    """Split one (sender, text) group into calls of at most ``MAX_RECIPIENTS`` distinct external ids; a
    contact that appears twice (two deliveries) goes into a second call, so each delivery is one message."""
    calls: list[tuple[list[OutgoingMessage], set[str]]] = []
    for m in group:
        for members, ids in calls:
            if len(members) < MAX_RECIPIENTS and m.address not in ids:
                members.append(m)
                ids.add(m.address)
                break
        else:
            calls.append(([m], {m.address}))
    return [members for members, _ids in calls]
