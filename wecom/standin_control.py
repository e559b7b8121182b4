"""The control endpoints of the WeCom stand-in (``/standin/...``, ours, not WeCom's; see ``wecom.standin``)
and bulk seeding: a mixin of ``WeComStandIn``."""

from __future__ import annotations

import json
import random
import time
from xml.sax.saxutils import escape

from .standin_base import push_callback


class ControlMixin:
    def seed(self, *, staff: int = 50, customers: int = 100_000, shared_every: int = 20, seed: int = 1) -> dict:
        """Bulk data for benchmarks: ``staff`` members (``s0001``...), ``customers`` customers each followed
        by one member in turn, every ``shared_every``-th also by the next member; half with a unionid, a
        fifth with a remark mobile."""
        rng = random.Random(seed)
        now = int(time.time())
        userids = [f"s{i:04d}" for i in range(1, staff + 1)]
        with self.lock:
            for userid in userids:
                self.staff_add(userid, name=f"员工{userid[1:]}")
            start = len(self.customers)
            for n in range(start, start + customers):
                eid = f"wmseed{n:018d}"
                customer = {
                    "external_userid": eid,
                    "name": f"客户{n}",
                    "type": 1,
                    "avatar": "",
                    "gender": n % 3,
                }
                if n % 2 == 0:
                    customer["unionid"] = f"oseed{n:020d}"
                    self.by_unionid[customer["unionid"]] = eid
                self.customers[eid] = customer
                mobiles = [f"139{n % 100_000_000:08d}"] if n % 5 == 0 else []
                owners = [userids[n % staff]]
                if shared_every and n % shared_every == 0 and staff > 1:
                    owners.append(userids[(n + 1) % staff])
                for k, userid in enumerate(owners):
                    created = now - rng.randrange(1, 400 * 86400) + k
                    follow = {
                        "userid": userid,
                        "remark": "",
                        "description": "",
                        "createtime": created,
                        "tag_id": [],
                        "remark_corp_name": "",
                        "remark_mobiles": mobiles,
                        "oper_userid": eid,
                        "add_way": 1,
                    }
                    self.follows[userid][eid] = follow
                    self.follow_order[userid].append(eid)
        return self.state()

    def state(self) -> dict:
        with self.lock:
            return {
                "staff": len(self.staff),
                "customers": len(self.customers),
                "follows": sum(len(f) for f in self.follows.values()),
                "contact_ways": len(self.ways),
                "tag_groups": len(self.groups),
                "tags": sum(len(g["tag"]) for g in self.groups.values()),
                "welcomes": len(self.welcomes),
                "api_calls": self.api_calls,
                "gettoken_calls": self.gettoken_calls,
                "calls": dict(self.calls),
            }

    # --- WSGI ----------------------------------------------------------------------------------------

    def _control(self, method: str, path: str, raw: bytes, base: str):
        body = json.loads(raw) if raw else {}
        if path.startswith("qr/"):
            config_id = path[3:]
            way = self.ways.get(config_id)
            if way is None:
                return "404 Not Found", "<p>unknown contact way</p>"
            return "200 OK", (
                f"<html><body><h1>WeCom stand-in contact way {escape(config_id)}</h1>"
                f"<p>state {escape(way['state'])}, members {escape(', '.join(way['user']))}</p>"
                f'<p>POST {escape(base)}/standin/scan with {{"config_id": "{escape(config_id)}"}} '
                "to simulate a customer scanning it.</p></body></html>"
            )
        if (method, path) == ("GET", "state"):
            return "200 OK", self.state()
        if (method, path) == ("GET", "welcomes"):
            with self.lock:
                return "200 OK", {"welcomes": list(self.welcomes)}
        if method != "POST":
            return "404 Not Found", {"error": "unknown control endpoint"}
        if path == "scan":
            return "200 OK", self.scan(**body)
        if path == "delete":
            return "200 OK", self.delete(**body)
        if path == "seed":
            return "200 OK", self.seed(**body)
        if path == "staff":
            for userid in body.get("userids") or []:
                self.staff_add(str(userid))
            return "200 OK", self.state()
        if path == "faults":
            with self.lock:
                self.busy_every = int(body.get("busy_every", self.busy_every) or 0)
                self.delay = float(body.get("delay", self.delay) or 0)
            return "200 OK", {"busy_every": self.busy_every, "delay": self.delay}
        if path == "expire_tokens":
            self.expire_tokens()
            return "200 OK", {"expired": len(self.tokens)}
        return "404 Not Found", {"error": "unknown control endpoint"}

    def scan(
        self,
        *,
        state: str = "",
        config_id: str = "",
        name: str = "",
        unionid: str = "",
        phone: str = "",
        userid: str = "",
        gender: int = 0,
        callback_url: str = "",
    ) -> dict:
        """A customer scans a contact way (by ``config_id`` or ``state``); see the module docstring."""
        with self.lock:
            way = (
                self.ways.get(config_id)
                if config_id
                else next((w for w in self.ways.values() if state and w["state"] == state), None)
            )
            if way is None:
                raise ValueError(f"no contact way with config_id {config_id!r} / state {state!r}")
            if not userid:
                if not way["user"]:
                    raise ValueError("the contact way has no user")
                userid = way["user"][way["next"] % len(way["user"])]
                way["next"] += 1
            if userid not in self.staff:
                raise ValueError(f"unknown userid {userid!r}")
            eid = self.customer_add(name=name or f"扫码客户{len(self.customers) + 1}", unionid=unionid, gender=gender)
            follow = self.follow_add(
                userid=userid,
                external_userid=eid,
                state=way["state"],
                add_way=1,
                remark_mobiles=[phone] if phone else [],
            )
            code = "wc" + self._id("", 30) + f"{random.getrandbits(32):08x}"
            self.welcome_codes[code] = {"created": time.time(), "used": False, "userid": userid, "external_userid": eid}
            message = self.event_xml(
                change_type="add_external_contact",
                userid=userid,
                external_userid=eid,
                created=follow["createtime"],
                state=way["state"],
                welcome_code=code,
            )
        status = self.push_callback(callback_url, message) if callback_url else None
        return {"external_userid": eid, "userid": userid, "welcome_code": code, "callback_status": status}

    def delete(self, *, external_userid: str, userid: str, by: str = "customer", callback_url: str = "") -> dict:
        """End a follow: the customer deleted the member (``by="customer"``: del_follow_user) or the member
        deleted the customer (``by="staff"``: del_external_contact)."""
        if by not in ("customer", "staff"):
            raise ValueError("by must be 'customer' or 'staff'")
        if not self.follow_remove(userid, external_userid):
            raise ValueError(f"{userid!r} does not follow {external_userid!r}")
        change = "del_follow_user" if by == "customer" else "del_external_contact"
        message = self.event_xml(change_type=change, userid=userid, external_userid=external_userid)
        status = self.push_callback(callback_url, message) if callback_url else None
        return {"external_userid": external_userid, "userid": userid, "change_type": change, "callback_status": status}

    def event_xml(
        self,
        *,
        change_type: str,
        userid: str,
        external_userid: str,
        created: int | None = None,
        state: str = "",
        welcome_code: str = "",
    ) -> str:
        """The decrypted ``change_external_contact`` callback message, as WeCom sends it."""
        parts = [
            f"<ToUserName><![CDATA[{self.corp_id}]]></ToUserName>",
            "<FromUserName><![CDATA[sys]]></FromUserName>",
            f"<CreateTime>{int(created or time.time())}</CreateTime>",
            "<MsgType><![CDATA[event]]></MsgType>",
            "<Event><![CDATA[change_external_contact]]></Event>",
            f"<ChangeType><![CDATA[{change_type}]]></ChangeType>",
            f"<UserID><![CDATA[{userid}]]></UserID>",
            f"<ExternalUserID><![CDATA[{external_userid}]]></ExternalUserID>",
        ]
        if state:
            parts.append(f"<State><![CDATA[{state}]]></State>")
        if welcome_code:
            parts.append(f"<WelcomeCode><![CDATA[{welcome_code}]]></WelcomeCode>")
        return "<xml>" + "".join(parts) + "</xml>"

    def push_callback(self, url: str, message_xml: str) -> int:
        if self.crypto is None:
            raise ValueError("the stand-in was built without a callback token and EncodingAESKey")
        return push_callback(url, message_xml, crypto=self.crypto)
