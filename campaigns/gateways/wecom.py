"""WeCom customer broadcasts (企业群发): ``externalcontact/add_msg_template``.

WeCom does not deliver these by itself: the call creates a task, and the staff member (``sender``)
confirms it in their WeCom client. A message WeCom accepted is therefore ``ok`` with the task's
``msgid`` and the state ``awaiting_confirmation``.

Messages with the same sender and text go out in one call (at most ``MAX_RECIPIENTS`` external ids);
ids WeCom returns in ``fail_list`` (not a customer of that sender) fail for good.

The ``group`` medium goes the same way: the contract addresses a contact by its external_userid, so
it is a 1:1 customer broadcast (chat_type "single"), not a post into a group chat.

The access token and the calls go through ``wecom.client.WeComClient``: the project's one token cache
(Django's cache, Redis in production, so all workers share it) until shortly before the token expires.
When WeCom says the token is invalid or expired (40014, 42001, 40001) it is fetched again once (by one
worker at a time) and the call repeated.

Errors: errcode -1 (system busy), the frequency limits, HTTP 5xx and connection errors are transient;
any other errcode (also a wrong corp id or secret at ``gettoken``) fails the messages for good with
WeCom's errmsg. There is no retry inside ``send()`` for a call that may have reached WeCom: the API has
no idempotency key, and a repeated call would ask the staff member to confirm the same message twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from wecom.client import TOKEN_ERRORS, WeComClient, WeComError  # noqa: F401 - re-exported for callers

from .base import Gateway, OutgoingMessage, SendResult, failed

logger = logging.getLogger(__name__)

MAX_RECIPIENTS = 10000  # external_userid per add_msg_template call
AWAITING_CONFIRMATION = "awaiting_confirmation"


class WeComGateway(Gateway):
    name = "wecom"

    def __init__(self) -> None:
        if not settings.WECOM_CORP_ID or not settings.WECOM_CORP_SECRET:
            raise ImproperlyConfigured(
                "The WeCom gateway needs WECOM_CORP_ID (企业ID) and WECOM_CORP_SECRET (the secret of the "
                "customer contact / 客户联系 app, or of a self-built app allowed to call it); set both, or choose "
                "another gateway in SCRM_GATEWAY_<MEDIUM>."
            )

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
        if groups:
            # The project's one token cache (wecom.client), shared by every worker. No retries here: the
            # delivery engine retries transient failures later, with its own backoff.
            client = WeComClient(attempts=1)
            try:
                for (sender, body), group in groups.items():
                    for call in _calls(group):
                        if unavailable:
                            for m in call:
                                results[m.delivery_id] = failed(m, f"not tried: {unavailable}", transient=True)
                            continue
                        try:
                            answer = self._add_msg_template(client, sender=sender, body=body, recipients=call)
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
            finally:
                client.close()
        return [results[m.delivery_id] for m in messages]

    def _add_msg_template(
        self, client: WeComClient, *, sender: str, body: str, recipients: list[OutgoingMessage]
    ) -> dict:
        payload = {
            "chat_type": "single",
            "external_userid": [m.address for m in recipients],
            "sender": sender,
            "text": {"content": body},
        }
        # attempts=1: a call that may have reached WeCom is not repeated (no idempotency key: the staff
        # member would be asked to confirm the same message twice). The client still refreshes a
        # rejected token once and repeats the call, which WeCom did not act on.
        return client.call(
            "POST", "externalcontact/add_msg_template", body=payload, what="add_msg_template", attempts=1
        )


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
