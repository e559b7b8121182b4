"""A local stand-in for the WeCom server API, for tests, benchmarks and the demo (WeCom cannot be reached
from a development machine, and a real corp cannot be scripted). A plain WSGI app: no Django needed.

Under ``/cgi-bin/`` it answers as WeCom documents, with the same paths, JSON shapes and error codes:

- ``GET gettoken?corpid=&corpsecret=`` → ``access_token``, ``expires_in`` (40013 wrong corp id, 40001 wrong secret)
- every other call needs ``?access_token=``: 41001 missing, 40014 unknown, 42001 expired
- ``GET externalcontact/get_follow_user_list``; ``GET externalcontact/get?external_userid=`` (40096, 84061)
- ``POST externalcontact/batch/get_by_user`` ``{userid_list (≤100), cursor, limit (≤100, default 50)}``
- ``POST externalcontact/add_contact_way`` / ``update_contact_way`` / ``del_contact_way``
- ``POST externalcontact/send_welcome_msg``: a welcome_code works once, within 20 s of the add (41051)
- ``POST externalcontact/get_corp_tag_list`` / ``add_corp_tag`` / ``edit_corp_tag`` / ``del_corp_tag`` /
  ``mark_tag``; ``POST externalcontact/add_msg_template``; ``GET user/get?userid=`` (60111)

Faults: ``busy_every=N`` (every Nth API call answers 45009), ``delay`` (seconds before each answer),
``expire_tokens()`` (every token issued so far answers 42001).

Control endpoints (ours, not WeCom's), JSON in and out:

- ``POST /standin/scan`` ``{"state" | "config_id", "name", "unionid", "phone", "userid", "callback_url"}``: a
  customer scans a contact way: the customer (the same external_userid again for a known unionid), the
  follow by ``userid`` (default: the next member of the way's user list) with the way's state and a
  welcome code, and a signed, encrypted ``change_external_contact``/``add_external_contact`` callback POSTed
  to ``callback_url``. Answers ``{"external_userid", "userid", "welcome_code", "callback_status"}``.
- ``POST /standin/delete`` ``{"external_userid", "userid", "by": "customer" | "staff", "callback_url"}``:
  ends a follow; callback ``del_follow_user`` (the customer deleted the member) or ``del_external_contact``.
- ``POST /standin/seed`` ``{"staff": 50, "customers": 100000, "shared_every": 20, "seed": 1}``: bulk data
  built in memory (every ``shared_every``-th customer is followed by a second member).
- ``POST /standin/staff`` ``{"userids": [...]}``; ``POST /standin/faults`` ``{"busy_every", "delay"}``;
  ``POST /standin/expire_tokens``
- ``GET /standin/welcomes`` (the accepted welcome messages), ``GET /standin/state`` (counts),
  ``GET /standin/qr/<config_id>`` (what a contact way's ``qr_code`` URL points at)

``serve(standin)`` runs it on a threading WSGI server in a daemon thread and returns ``(server, base_url)``.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .crypto import WeComCrypto
from .standin_base import (  # noqa: F401 - WELCOME_CODE_INVALID and the limits are part of this module's API
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_USERIDS,
    WELCOME_CODE_INVALID,
    WELCOME_CODE_TTL,
    _Answer,
    _decode_cursor,
    _encode_cursor,
    _error,
    _ok,
    push_callback,
)
from .standin_control import ControlMixin
from .standin_tags import CorpTagsMixin


class WeComStandIn(ControlMixin, CorpTagsMixin):
    """The stand-in's state (in memory, behind one lock) and its WSGI entry point (``__call__``)."""

    def __init__(
        self,
        *,
        corp_id: str,
        corp_secret: str,
        token: str = "",
        encoding_aes_key: str = "",
        expires_in: int = 7200,
        busy_every: int = 0,
        delay: float = 0.0,
        staff: list[str] = (),
    ) -> None:
        self.corp_id = corp_id
        self.corp_secret = corp_secret
        self.crypto = (
            WeComCrypto(token=token, encoding_aes_key=encoding_aes_key, receive_id=corp_id)
            if token and encoding_aes_key
            else None
        )
        self.expires_in = expires_in
        self.busy_every = busy_every
        self.delay = delay
        self.lock = threading.RLock()
        self.staff: dict[str, dict] = {}  # userid -> {"name"}
        self.customers: dict[str, dict] = {}  # external_userid -> external_contact fields
        self.by_unionid: dict[str, str] = {}
        self.follows: dict[str, dict[str, dict]] = {}  # userid -> {external_userid: follow_info}
        self.follow_order: dict[str, list[str]] = {}  # userid -> external_userids in the order added
        self.ways: dict[str, dict] = {}  # config_id -> contact way
        self.groups: dict[str, dict] = {}  # group_id -> {"group_name", "order", "create_time", "tag": [...]}
        self.welcome_codes: dict[str, dict] = {}
        self.welcomes: list[dict] = []
        self.templates: list[dict] = []
        self.tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self.api_calls = 0
        self.gettoken_calls = 0
        self.calls: dict[str, int] = {}  # path -> count
        self._ids = itertools.count(1)
        for userid in staff:
            self.staff_add(userid)

    # --- state helpers (call with the lock held, or before serving) ----------------------------------

    def _id(self, prefix: str, width: int = 24) -> str:
        return f"{prefix}{next(self._ids):0{width}d}"

    def staff_add(self, userid: str, name: str = "") -> None:
        with self.lock:
            if userid not in self.staff:
                self.staff[userid] = {"name": name or userid}
                self.follows[userid] = {}
                self.follow_order[userid] = []

    def customer_add(
        self, *, name: str, unionid: str = "", gender: int = 0, external_userid: str = "", avatar: str = ""
    ) -> str:
        with self.lock:
            if unionid and unionid in self.by_unionid:
                return self.by_unionid[unionid]
            eid = external_userid or self._id("wm")
            self.customers[eid] = {
                "external_userid": eid,
                "name": name,
                "type": 1,
                "avatar": avatar or f"https://wework.qpic.cn/standin/{eid}/0",
                "gender": gender,
                **({"unionid": unionid} if unionid else {}),
            }
            if unionid:
                self.by_unionid[unionid] = eid
            return eid

    def follow_add(
        self,
        *,
        userid: str,
        external_userid: str,
        createtime: int | None = None,
        state: str = "",
        add_way: int = 1,
        remark: str = "",
        remark_mobiles: list[str] = (),
        tag_ids: list[str] = (),
    ) -> dict:
        with self.lock:
            self.staff_add(userid)
            follow = {
                "userid": userid,
                "remark": remark,
                "description": "",
                "createtime": int(createtime if createtime is not None else time.time()),
                "tag_id": list(tag_ids),
                "remark_corp_name": "",
                "remark_mobiles": list(remark_mobiles),
                "oper_userid": userid if add_way != 1 else external_userid,
                "add_way": add_way,
                **({"state": state} if state else {}),
            }
            if external_userid not in self.follows[userid]:
                self.follow_order[userid].append(external_userid)
            self.follows[userid][external_userid] = follow
            return follow

    def follow_remove(self, userid: str, external_userid: str) -> bool:
        with self.lock:
            if self.follows.get(userid, {}).pop(external_userid, None) is None:
                return False
            self.follow_order[userid].remove(external_userid)
            return True

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 42001 (WeCom may expire one before expires_in)."""
        with self.lock:
            self.tokens = {token: 0.0 for token in self.tokens}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        raw = environ["wsgi.input"].read(length) if length else b""
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        base = f"http://{host}"
        status, answer, content_type = "200 OK", None, "application/json; charset=utf-8"
        if path.startswith("/cgi-bin/"):
            answer = self._api(method, path[len("/cgi-bin/") :], query, raw, base)
        elif path.startswith("/standin/"):
            try:
                status, answer = self._control(method, path[len("/standin/") :], raw, base)
            except (ValueError, KeyError, TypeError) as exc:
                status, answer = "400 Bad Request", {"error": f"{type(exc).__name__}: {exc}"}
            if isinstance(answer, str):
                content_type = "text/html; charset=utf-8"
        else:
            status, answer = "404 Not Found", {"errcode": 404, "errmsg": "not found"}
        body = answer.encode() if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False).encode()
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    def _api(self, method: str, path: str, query: dict, raw: bytes, base: str) -> dict:
        if self.delay:
            time.sleep(self.delay)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return _error(40058, "Warning: wrong json format")
        if not isinstance(body, dict):
            return _error(40058, "Warning: wrong json format")
        with self.lock:
            self.calls[path] = self.calls.get(path, 0) + 1
            if path == "gettoken":
                return self._gettoken(query)
            self.api_calls += 1
            try:
                self._check_token(query.get("access_token", ""))
                if self.busy_every and self.api_calls % self.busy_every == 0:
                    return _error(45009)
                handler = _ROUTES.get((method, path))
                if handler is None:
                    return {"errcode": 404, "errmsg": f"unknown api {path}"}
                return handler(self, query=query, body=body, base=base)
            except _Answer as exc:
                return _error(exc.errcode, exc.errmsg)

    def _gettoken(self, query: dict) -> dict:
        if query.get("corpid") != self.corp_id:
            return _error(40013)
        if query.get("corpsecret") != self.corp_secret:
            return _error(40001)
        self.gettoken_calls += 1
        token = f"standin-token-{next(self._ids)}-{random.getrandbits(32):08x}"
        self.tokens[token] = time.time() + self.expires_in
        return _ok(access_token=token, expires_in=self.expires_in)

    def _check_token(self, token: str) -> None:
        if not token:
            raise _Answer(41001)
        expiry = self.tokens.get(token)
        if expiry is None:
            raise _Answer(40014)
        if time.time() >= expiry:
            raise _Answer(42001)

    # --- customers ---------------------------------------------------------------------------------

    def _follow_user_list(self, **_) -> dict:
        return _ok(follow_user=list(self.staff))

    def _external_contact_get(self, *, query, **_) -> dict:
        eid = query.get("external_userid", "")
        customer = self.customers.get(eid)
        if customer is None:
            raise _Answer(40096)
        follows = [f[eid] for f in self.follows.values() if eid in f]
        if not follows:
            raise _Answer(84061)
        return _ok(external_contact=dict(customer), follow_user=[self._with_tags(f) for f in follows], next_cursor="")

    def _with_tags(self, follow: dict) -> dict:
        tags = []
        for tag_id in follow["tag_id"]:
            for group in self.groups.values():
                for tag in group["tag"]:
                    if tag["id"] == tag_id:
                        tags.append(
                            {"group_name": group["group_name"], "tag_name": tag["name"], "tag_id": tag_id, "type": 1}
                        )
        return {k: v for k, v in follow.items() if k != "tag_id"} | {"tags": tags}

    def _batch_get_by_user(self, *, body, **_) -> dict:
        userids = body.get("userid_list")
        if not isinstance(userids, list) or not userids:
            raise _Answer(40063, "userid_list is empty")
        if len(userids) > MAX_USERIDS:
            raise _Answer(40058, f"userid_list exceeds {MAX_USERIDS}")
        unknown = [u for u in userids if u not in self.staff]
        if unknown:
            raise _Answer(40003, f"invalid userid {unknown[0]}")
        try:
            limit = int(body.get("limit") or DEFAULT_LIMIT)
        except (TypeError, ValueError):
            raise _Answer(40058, "invalid limit") from None
        limit = max(1, min(MAX_LIMIT, limit))
        index, offset = _decode_cursor(str(body.get("cursor") or ""))
        items: list[dict] = []
        while index < len(userids) and len(items) < limit:
            userid = userids[index]
            order = self.follow_order[userid]
            chunk = order[offset : offset + limit - len(items)]
            for eid in chunk:
                items.append(
                    {"external_contact": dict(self.customers[eid]), "follow_info": dict(self.follows[userid][eid])}
                )
            offset += len(chunk)
            if offset >= len(order):
                index, offset = index + 1, 0
        next_cursor = _encode_cursor(index, offset) if index < len(userids) else ""
        return _ok(external_contact_list=items, next_cursor=next_cursor, fail_info={"unlicensed_userid_list": []})

    # --- contact ways ------------------------------------------------------------------------------

    def _way_fields(self, body: dict, way: dict) -> None:
        if "state" in body:
            state = str(body.get("state") or "")
            if len(state) > 30:
                raise _Answer(40058, "state exceeds 30 characters")
            way["state"] = state
        if "user" in body:
            users = body.get("user") or []
            if not isinstance(users, list) or any(u not in self.staff for u in users):
                raise _Answer(40003, "invalid userid in user")
            if way["type"] == 1 and len(users) != 1:
                raise _Answer(40058, "type 1 takes exactly one user")
            if len(users) > 100:
                raise _Answer(40058, "user exceeds 100")
            way["user"] = list(users)
        for field in ("remark", "skip_verify", "style", "party", "is_temp", "expires_in"):
            if field in body:
                way[field] = body[field]

    def _add_contact_way(self, *, body, base, **_) -> dict:
        kind, scene = body.get("type"), body.get("scene")
        if kind not in (1, 2) or scene not in (1, 2):
            raise _Answer(40058, "type and scene must be 1 or 2")
        if not body.get("user") and not body.get("party"):
            raise _Answer(40063, "user and party are empty")
        config_id = self._id("cfg", 16)
        way = {"config_id": config_id, "type": kind, "scene": scene, "state": "", "user": [], "skip_verify": True}
        self._way_fields(body, way)
        way["qr_code"] = f"{base}/standin/qr/{config_id}" if scene == 2 else ""
        way["next"] = 0
        self.ways[config_id] = way
        return _ok(config_id=config_id, qr_code=way["qr_code"])

    def _way(self, body: dict) -> dict:
        way = self.ways.get(str(body.get("config_id") or ""))
        if way is None:
            raise _Answer(40058, "invalid config_id")
        return way

    def _update_contact_way(self, *, body, **_) -> dict:
        way = self._way(body)
        updated = dict(way)
        self._way_fields(body, updated)
        way.update(updated)
        return _ok()

    def _del_contact_way(self, *, body, **_) -> dict:
        self.ways.pop(self._way(body)["config_id"])
        return _ok()

    def _send_welcome_msg(self, *, body, **_) -> dict:
        code = self.welcome_codes.get(str(body.get("welcome_code") or ""))
        if code is None or code["used"] or time.time() - code["created"] > WELCOME_CODE_TTL:
            raise _Answer(WELCOME_CODE_INVALID)
        text = (body.get("text") or {}).get("content") or ""
        attachments = body.get("attachments") or []
        if not text and not attachments:
            raise _Answer(40063, "text and attachments are empty")
        if not isinstance(attachments, list) or len(attachments) > 9:
            raise _Answer(40058, "attachments exceed 9")
        code["used"] = True
        self.welcomes.append(
            {
                "welcome_code": body["welcome_code"],
                "userid": code["userid"],
                "external_userid": code["external_userid"],
                "text": text,
                "attachments": attachments,
                "accepted_at": time.time(),
                "seconds_after_add": round(time.time() - code["created"], 3),
            }
        )
        return _ok()

    def _add_msg_template(self, *, body, **_) -> dict:
        if body.get("sender") and body["sender"] not in self.staff:
            raise _Answer(60111)
        ids = body.get("external_userid") or []
        msgid = self._id("msg", 8)
        self.templates.append({**body, "msgid": msgid})
        sender = body.get("sender")
        fail = [i for i in ids if sender and i not in self.follows.get(sender, {})]
        return _ok(fail_list=fail, msgid=msgid)

    # --- corp tags ---------------------------------------------------------------------------------

    def _user_get(self, *, query, **_) -> dict:
        userid = query.get("userid", "")
        member = self.staff.get(userid)
        if member is None:
            raise _Answer(60111)
        return _ok(userid=userid, name=member["name"], department=[1], status=1)

    # --- control endpoints -------------------------------------------------------------------------


_ROUTES = {
    ("GET", "externalcontact/get_follow_user_list"): WeComStandIn._follow_user_list,
    ("GET", "externalcontact/get"): WeComStandIn._external_contact_get,
    ("POST", "externalcontact/batch/get_by_user"): WeComStandIn._batch_get_by_user,
    ("POST", "externalcontact/add_contact_way"): WeComStandIn._add_contact_way,
    ("POST", "externalcontact/update_contact_way"): WeComStandIn._update_contact_way,
    ("POST", "externalcontact/del_contact_way"): WeComStandIn._del_contact_way,
    ("POST", "externalcontact/send_welcome_msg"): WeComStandIn._send_welcome_msg,
    ("POST", "externalcontact/add_msg_template"): WeComStandIn._add_msg_template,
    ("POST", "externalcontact/get_corp_tag_list"): WeComStandIn._get_corp_tag_list,
    ("POST", "externalcontact/add_corp_tag"): WeComStandIn._add_corp_tag,
    ("POST", "externalcontact/edit_corp_tag"): WeComStandIn._edit_corp_tag,
    ("POST", "externalcontact/del_corp_tag"): WeComStandIn._del_corp_tag,
    ("POST", "externalcontact/mark_tag"): WeComStandIn._mark_tag,
    ("GET", "user/get"): WeComStandIn._user_get,
}


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # keep test and bench output clean
        pass


def serve(standin: WeComStandIn, host: str = "127.0.0.1", port: int = 0):
    """Run ``standin`` in a daemon thread; returns ``(server, base_url)``. Stop with ``server.shutdown()``
    and ``server.server_close()``."""
    server = make_server(host, port, standin, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, f"http://{host}:{server.server_address[1]}"
