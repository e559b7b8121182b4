"""A stand-in WeComClient for unit tests of the event handlers (the HTTP stand-in is tested on its own
and drives the end-to-end tests)."""

from __future__ import annotations

import time

from wecom.client import WeComError


class FakeClient:
    def __init__(self) -> None:
        self.profiles: dict[str, dict] = {}
        self.welcomes: list[tuple[str, str, list]] = []
        self.way_updates: list[tuple[str, dict]] = []
        self.fail_next: WeComError | None = None

    def customer(self, external_userid: str, *, name="客户", unionid="", follows=(), gender=2) -> None:
        self.profiles[external_userid] = {
            "external_contact": {
                "external_userid": external_userid,
                "name": name,
                "type": 1,
                "gender": gender,
                "unionid": unionid,
            },
            "follow_user": [
                {
                    "userid": f["userid"],
                    "remark": f.get("remark", ""),
                    "description": "",
                    "createtime": f.get("createtime", int(time.time())),
                    "add_way": 1,
                    "state": f.get("state", ""),
                    "remark_mobiles": f.get("remark_mobiles", []),
                    "tags": [],
                }
                for f in follows
            ],
        }

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    def external_contact_get(self, external_userid: str, cursor: str = "") -> dict:
        self._maybe_fail()
        if external_userid not in self.profiles:
            raise WeComError("invalid external_userid", errcode=84061, kind="invalid")
        return self.profiles[external_userid]

    def welcome_send(self, welcome_code: str, text: str = "", attachments=None) -> None:
        self._maybe_fail()
        self.welcomes.append((welcome_code, text, list(attachments or [])))

    def contact_way_update(self, config_id: str, **fields) -> None:
        self.way_updates.append((config_id, fields))
