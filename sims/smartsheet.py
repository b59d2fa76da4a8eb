#!/usr/bin/env python3
"""Smartsheet simulator: API access tokens (people generate them in the web
UI), the users they act as, and the endpoint that revokes the token it is
called with. keysweep's `http` recipe `playbooks/recipes/smartsheet.yaml`
runs against it in tests and the demo.

Sources (developers.smartsheet.com, the current Smartsheet API 2.0 docs):
- guides/basics/authentication: "The API authenticates using access tokens
  (API keys). You can generate access tokens in the Smartsheet UI", sent as
  `Authorization: Bearer <token>`. No API creates one (raw tokens come from
  the UI; OAuth tokens need a person's consent).
- openapi/tokens/tokens-delete, "Revoke access token": `DELETE /token`
  "Revokes the access token used to make this request. The access token is
  no longer valid, and subsequent API calls made using the token fail";
  query `deleteAllForApiClient` (boolean); 200 with a Result object
  (`message`, `resultCode`; `version` and `failedItems` where they apply).
- error-codes: the body `{"errorCode", "message", "refId"}`; 401 1001 "An
  Access Token is required.", 401 1002 "Your Access Token is invalid.", 401
  1003 "Your Access Token has expired.", 403 1004 "You are not authorized to
  perform this action.", 401 1005 "Single Sign-On is required for this
  account.", 404 1006 "Not Found.", 405 1010 "HTTP Method not supported.",
  429 4003 "Rate limit exceeded.".
- openapi/users: `GET /users` (admins only) with `page`, `pageSize`
  (default 100), `includeAll`, `include=lastLogin`, answering an IndexResult
  (`pageNumber`, `pageSize`, `totalPages`, `totalCount`, `data`) of User
  objects (`id`, `email`, `name`, `firstName`, `lastName`, `admin`,
  `licensedSheetCreator`, `groupAdmin`, `resourceViewer`, `status`,
  `sheetCount`, `lastLogin` only with `include=lastLogin`); `GET /users/me`
  answers a UserProfile (`id`, `email`, `firstName`, `lastName`, `admin`,
  `licensedSheetCreator`, `groupAdmin`, `resourceViewer`, `account`,
  `locale`, `timeZone`).
- smartsheet.com "Rate Limits, Retry Logic, and Error Handling with
  Smartsheet API": a throttled request gets 429 with errorCode 4003. The docs
  name no rate-limit header, so the simulator sends none.

What it does:
- Paths under `/2.0` (the recipe's `base_url` ends in `/2.0`).
- A token is valid until revoked (`DELETE /2.0/token`, or a person revoking
  it in the UI: `POST /_sim/revoke`) or expired (`POST /_sim/expire`). A
  missing header gets 1001, an unknown or revoked token 1002, an expired one
  1003, a user whose account requires SSO (`sso: true`) 1005.
- `GET /2.0/users` for admins only (403 1004 otherwise), paged as documented
  (`page` beyond the last answers an empty `data`).
- Rate limit (`POST /_sim/rate`): 429 4003, no headers.
- Named faults: the base's `waf`, `503`, `502`, `429`, `drop`, `after_act`;
  `sso_required` (401 1005: the same status as a revoked token, a different
  refusal), `gateway_401` (401 with a JSON body that is not Smartsheet's:
  `{"message": "Unauthorized"}`).
- Admin: `POST /_sim/seed` `{"users": [{"email", "admin", "sso"}], "tokens":
  [{"user": email, "name"}]}` (answers the token values: a person copying a
  token from the UI), `POST /_sim/issue_token` `{"user", "name"}`, `POST
  /_sim/revoke` `{"id"}`, `POST /_sim/expire` `{"id"}`, `GET /_sim/state`
  (never a token value), `POST /_sim/reset`.

Known simplifications: tokens are checked against a SHA-256 digest; the
`Assume-User` header, OAuth (`POST /token`), `deleteAllForApiClient` (only
the presented token is revoked; raw tokens have no API client) and every
endpoint but these are not simulated; `refId` is random.
"""

import hashlib
import os
import secrets
import string
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simbase import Resp, Sim, iso  # noqa: E402

ALPHABET = string.ascii_lowercase + string.digits  # Smartsheet's raw tokens: 26..37 alphanumerics
MESSAGES = {
    1001: (401, "An Access Token is required."),
    1002: (401, "Your Access Token is invalid."),
    1003: (401, "Your Access Token has expired."),
    1004: (403, "You are not authorized to perform this action."),
    1005: (401, "Single Sign-On is required for this account."),
    1006: (404, "Not Found."),
    1010: (405, "HTTP Method not supported."),
    4003: (429, "Rate limit exceeded."),
}


def digest(v):
    return hashlib.sha256(v.encode()).hexdigest()


class SmartsheetSim(Sim):
    def __init__(self):
        super().__init__("smartsheet")
        self.reset_state()
        self.state_fn = self.state_view
        self.reset_fn = self.reset_state
        self.fault_answers = {
            "sso_required": lambda req: self.error(1005),
            "gateway_401": lambda req: Resp.json(401, {"message": "Unauthorized"}),
        }
        self.add_routes()

    def reset_state(self):
        self.users = {}  # id -> user
        self.tokens = {}  # seq id -> token (a digest, never the value)
        self.by_digest = {}
        self.next_user = 4583173393803140
        self.next_token = 1

    @staticmethod
    def error(code):
        status, message = MESSAGES[code]
        return Resp.json(status, {"errorCode": code, "message": message, "refId": secrets.token_hex(6)})

    def rate_limited(self, req, reset_epoch):
        return self.error(4003)

    def not_found(self, req):
        if any(rx.match(req.path) for _, rx, _ in self.routes):
            return self.error(1010)
        return self.error(1006)

    def state_view(self):
        return {
            "users": [
                {"id": u["id"], "email": u["email"], "admin": u["admin"], "lastLogin": u["lastLogin"]}
                for u in sorted(self.users.values(), key=lambda u: u["id"])
            ],
            "tokens": [
                {
                    "id": t["id"],
                    "name": t["name"],
                    "user": self.users[t["user"]]["email"],
                    "revoked": t["revoked"],
                    "expired": t["expired"],
                    "valid": not t["revoked"] and not t["expired"],
                    "uses": t["uses"],
                }
                for t in sorted(self.tokens.values(), key=lambda t: t["id"])
            ],
        }

    # ---- auth
    def authenticate(self, req):
        value = req.bearer()
        if not value:
            return None, self.error(1001)
        t = self.tokens.get(self.by_digest.get(digest(value)))
        if t is None or t["revoked"]:
            return None, self.error(1002)
        if t["expired"]:
            return None, self.error(1003)
        u = self.users[t["user"]]
        if u.get("sso"):
            return None, self.error(1005)
        t["uses"] += 1
        u["lastLogin"] = iso(time.time())
        return t, None

    def api(self, method, pattern):
        def deco(fn):
            def handler(req):
                t, refusal = self.authenticate(req)
                if refusal is not None:
                    return refusal
                return fn(req, t, self.users[t["user"]])

            self.route(method, pattern)(handler)
            return fn

        return deco

    # ---- objects
    @staticmethod
    def user_obj(u, last_login):
        o = {
            "id": u["id"],
            "email": u["email"],
            "name": f"{u['firstName']} {u['lastName']}",
            "firstName": u["firstName"],
            "lastName": u["lastName"],
            "admin": u["admin"],
            "licensedSheetCreator": True,
            "groupAdmin": False,
            "resourceViewer": False,
            "status": "ACTIVE",
            "sheetCount": u["sheetCount"],
        }
        if last_login and u["lastLogin"]:
            o["lastLogin"] = u["lastLogin"]
        return o

    def add_user(self, email, admin=False, sso=False, last_login=None):
        for u in self.users.values():
            if u["email"] == email:
                return u
        first, _, rest = email.partition("@")
        u = {
            "id": self.next_user,
            "email": email,
            "firstName": first.split(".")[0].capitalize(),
            "lastName": rest.split(".")[0].capitalize(),
            "admin": bool(admin),
            "sso": bool(sso),
            "sheetCount": 0,
            "lastLogin": last_login,
        }
        self.next_user += 1117
        self.users[u["id"]] = u
        return u

    def issue(self, email, name):
        u = next((u for u in self.users.values() if u["email"] == email), None)
        if u is None:
            raise KeyError(email)
        value = "".join(secrets.choice(ALPHABET) for _ in range(37))
        t = {"id": self.next_token, "user": u["id"], "name": name, "revoked": False, "expired": False, "uses": 0}
        self.next_token += 1
        self.tokens[t["id"]] = t
        self.by_digest[digest(value)] = t["id"]
        return {"id": t["id"], "value": value, "user": email, "name": name}

    # ---- routes
    def add_routes(self):
        @self.api("GET", r"/2\.0/users/me")
        def me(req, t, u):
            p = self.user_obj(u, False)
            p.pop("name")
            p.pop("status")
            p.pop("sheetCount")
            p.update({"locale": "en_US", "timeZone": "US/Pacific", "account": {"id": 1, "name": "Acme"}})
            return Resp.json(200, p)

        @self.api("GET", r"/2\.0/users")
        def users(req, t, u):
            if not u["admin"]:
                return self.error(1004)
            try:
                page = max(1, int(req.query.get("page", "1")))
                size = max(1, min(10000, int(req.query.get("pageSize", "100"))))
            except ValueError:
                return Resp.json(400, {"errorCode": 1018, "message": "The value was not valid for the parameter page.", "refId": "x"})
            last = "lastLogin" in req.query.get("include", "").split(",")
            everyone = sorted(self.users.values(), key=lambda x: x["id"])
            total_pages = max(1, -(-len(everyone) // size))
            data = [self.user_obj(x, last) for x in everyone[(page - 1) * size : page * size]]
            return Resp.json(200, {"pageNumber": page, "pageSize": size, "totalPages": total_pages, "totalCount": len(everyone), "data": data})

        @self.api("DELETE", r"/2\.0/token")
        def revoke(req, t, u):
            t["revoked"] = True
            return Resp.json(200, {"message": "SUCCESS", "resultCode": 0})

    def admin_extra(self, req):
        p = req.path
        body = req.json() or {}
        with self.lock:
            if p == "/_sim/seed" and req.method == "POST":
                for u in body.get("users", []):
                    self.add_user(u["email"], u.get("admin", False), u.get("sso", False), u.get("lastLogin"))
                out = [self.issue(t["user"], t.get("name", "keysweep")) for t in body.get("tokens", [])]
                return Resp.json(200, {"tokens": out})
            if p == "/_sim/issue_token" and req.method == "POST":
                return Resp.json(200, self.issue(body["user"], body.get("name", "")))
            if p in ("/_sim/revoke", "/_sim/expire") and req.method == "POST":
                t = self.tokens.get(int(body["id"]))
                if t is None:
                    return Resp.json(404, {"error": "no such token"})
                t["revoked" if p.endswith("revoke") else "expired"] = True
                return Resp.json(200, {"id": t["id"]})
        return None


if __name__ == "__main__":
    SmartsheetSim().serve()
