#!/usr/bin/env python3
"""PagerDuty simulator: REST API keys (general access keys and user API
keys, both made and deleted by people in the web app), users, and the REST
API's error and paging conventions. keysweep's `http` recipe
`playbooks/recipes/pagerduty.yaml` runs against it.

Sources:
- PagerDuty/api-schema, `reference/REST/openapiv3.json` (the REST API's
  OpenAPI description, schema update 2026-08-14): `GET /users` (parameters
  `limit`, `offset`, `total`, `query`, `include[]`; answer `users`, `limit`,
  `offset`, `total`, `more`: "classic" offset pagination), `GET /users/me`
  ("can only be used with a user-level API key or a key generated through an
  OAuth flow. This will not work if the request is made with an
  account-level access token"), `GET /abilities`; the generic error response
  `{"error": {"code": integer, "message": string, "errors": [string]}}` for
  400, 401, 403, 404 and 429; user `role` values (`admin`, `limited_user`,
  `observer`, `owner`, `read_only_user`, `restricted_access`,
  `read_only_limited_user`, `user`). The description has no endpoint that
  lists, creates or deletes API keys.
- support.pagerduty.com "API Access Keys": REST API keys are 20-character
  strings; admins and the account owner create, disable and delete general
  access keys in the web app (Integrations › Developer Tools › API Access
  Keys); "Read-only API Key" keys make GET calls only (other methods: 403);
  user API keys are made under the user's settings.
- support.pagerduty.com "REST API Rate Limits": `ratelimit-limit`,
  `ratelimit-remaining` and `ratelimit-reset` (seconds to wait) headers.
- The REST API's `Authorization: Token token=<key>` header (developer
  documentation, "Authentication").
- The error codes 2006 ("Authentication failed", 401), 2010 ("Access
  Denied", 403), 2100 ("Not Found", 404), 2001 ("Invalid Input Provided",
  400) and 2020 ("Rate Limit Exceeded", 429) follow PagerDuty's published
  error-code list (developer documentation, "Errors"); the OpenAPI
  description gives only the shape, so these codes and texts were not
  re-checked against it.

What it does:
- A key is valid until a person deletes or disables it in the "web app"
  (`POST /_sim/delete_key`, `POST /_sim/disable_key`); then, like a key that
  never existed, it gets 401 2006.
- `GET /users/me` answers the key's user for a user API key, and 400 2001
  (its `errors` saying the key is account-level) for a general access key.
- `GET /users` pages by `offset`/`limit` (default 25, at most 100) with
  `more`; `total` only when `total=true`.
- Read-only keys: any method but GET gets 403 2010.
- Rate limit (`POST /_sim/rate`): 429 2020 with the three `ratelimit-*`
  headers (also on ordinary answers while a rate is set).
- Named faults: the base's `waf`, `503`, `502`, `429`, `drop`, `after_act`;
  `access_denied` (403 2010), `gateway_401` (401 with JSON that is not
  PagerDuty's error shape).
- Admin: `POST /_sim/seed` `{"users": [{"email", "role"}], "keys": [{"user":
  email | null, "description", "read_only"}]}` (answers the key values, as
  the web app shows a key once), `POST /_sim/issue_key`, `POST
  /_sim/delete_key` `{"id"}`, `POST /_sim/disable_key` `{"id"}`, `GET
  /_sim/state` (never a key value), `POST /_sim/reset`.

Known simplifications: no OAuth, no `From` header rule, no scoped-OAuth
scopes, teams or `include[]`; `query` filters by name or email prefix only.
"""

import hashlib
import os
import secrets
import string
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simbase import Resp, Sim, iso  # noqa: E402

KEY_ALPHABET = string.ascii_letters + string.digits + "_-+"
ACCOUNT_LEVEL = (
    "Because this request was made using an account-level access token, we were unable to determine the user's identity. "
    "Please use a user-level token."
)


def digest(v):
    return hashlib.sha256(v.encode()).hexdigest()


def pd_id():
    return "P" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(6))


class PagerDutySim(Sim):
    def __init__(self):
        super().__init__("pagerduty")
        self.reset_state()
        self.state_fn = self.state_view
        self.reset_fn = self.reset_state
        self.fault_answers = {
            "access_denied": lambda req: self.error(403, 2010, "Access Denied"),
            "gateway_401": lambda req: Resp.json(401, {"message": "Unauthorized"}),
        }
        self.add_routes()

    def reset_state(self):
        self.users = {}
        self.keys = {}
        self.by_digest = {}
        self.seq = 0

    @staticmethod
    def error(status, code, message, errors=None, headers=None):
        e = {"message": message, "code": code}
        if errors:
            e["errors"] = errors
        return Resp.json(status, {"error": e}, headers)

    def rate_headers(self, limit, remaining, reset_epoch):
        return {"ratelimit-limit": str(int(limit)), "ratelimit-remaining": str(int(remaining)), "ratelimit-reset": str(max(1, int(reset_epoch - time.time())))}

    def rate_limited(self, req, reset_epoch):
        return self.error(429, 2020, "Rate Limit Exceeded", headers=self.rate_headers(self.rate or 960, 0, reset_epoch))

    def not_found(self, req):
        # Authentication (and a read-only key's method rule) comes first.
        _, refusal = self.authenticate(req)
        return refusal or self.error(404, 2100, "Not Found")

    def state_view(self):
        return {
            "users": [{"id": u["id"], "email": u["email"], "role": u["role"]} for u in sorted(self.users.values(), key=lambda u: u["seq"])],
            "keys": [
                {
                    "id": k["id"],
                    "description": k["description"],
                    "user": self.users[k["user"]]["email"] if k["user"] else None,
                    "read_only": k["read_only"],
                    "deleted": k["deleted"],
                    "disabled": k["disabled"],
                    "valid": not k["deleted"] and not k["disabled"],
                    "uses": k["uses"],
                }
                for k in sorted(self.keys.values(), key=lambda k: k["seq"])
            ],
        }

    def authenticate(self, req):
        auth = req.header("Authorization", "")
        value = auth[len("Token token=") :].strip() if auth.startswith("Token token=") else None
        k = self.keys.get(self.by_digest.get(digest(value))) if value else None
        if k is None or k["deleted"] or k["disabled"]:
            return None, self.error(401, 2006, "Authentication failed")
        if k["read_only"] and req.method != "GET":
            return None, self.error(403, 2010, "Access Denied")
        k["uses"] += 1
        return k, None

    def api(self, method, pattern):
        def deco(fn):
            def handler(req):
                k, refusal = self.authenticate(req)
                if refusal is not None:
                    return refusal
                return fn(req, k)

            self.route(method, pattern)(handler)
            return fn

        return deco

    def user_obj(self, req, u):
        return {
            "id": u["id"],
            "type": "user",
            "summary": u["name"],
            "self": f"{req.base}/users/{u['id']}",
            "html_url": f"https://acme.pagerduty.com/users/{u['id']}",
            "name": u["name"],
            "email": u["email"],
            "time_zone": "Etc/UTC",
            "color": "green",
            "role": u["role"],
            "avatar_url": "https://pd-static-assets.pagerduty.com/users/blank-avatar.png",
            "description": None,
            "invitation_sent": False,
            "job_title": None,
            "teams": [],
            "contact_methods": [],
            "notification_rules": [],
        }

    def add_routes(self):
        @self.api("GET", r"/users/me")
        def me(req, k):
            if not k["user"]:
                return self.error(400, 2001, "Invalid Input Provided", [ACCOUNT_LEVEL])
            return Resp.json(200, {"user": self.user_obj(req, self.users[k["user"]])})

        @self.api("GET", r"/users")
        def users(req, k):
            try:
                limit = max(1, min(100, int(req.query.get("limit", "25"))))
                offset = max(0, int(req.query.get("offset", "0")))
            except ValueError:
                return self.error(400, 2001, "Invalid Input Provided", ["Offset and limit must be integers."])
            q = req.query.get("query", "").lower()
            everyone = [u for u in sorted(self.users.values(), key=lambda u: u["seq"]) if u["name"].lower().startswith(q) or u["email"].startswith(q)]
            page = everyone[offset : offset + limit]
            body = {
                "users": [self.user_obj(req, u) for u in page],
                "limit": limit,
                "offset": offset,
                "total": len(everyone) if req.query.get("total") == "true" else None,
                "more": offset + len(page) < len(everyone),
            }
            return Resp.json(200, body)

        @self.api("GET", r"/abilities")
        def abilities(req, k):
            return Resp.json(200, {"abilities": ["teams", "read_only_users", "service_support_hours", "urgencies"]})

    def add_user(self, email, role="user"):
        for u in self.users.values():
            if u["email"] == email:
                return u
        self.seq += 1
        u = {"id": pd_id(), "email": email, "name": email.split("@")[0].replace(".", " ").title(), "role": role, "seq": self.seq}
        self.users[u["id"]] = u
        return u

    def issue(self, email, description, read_only=False):
        uid = None
        if email:
            u = next((u for u in self.users.values() if u["email"] == email), None)
            if u is None:
                raise KeyError(email)
            uid = u["id"]
        value = "".join(secrets.choice(KEY_ALPHABET) for _ in range(20))
        self.seq += 1
        k = {"id": pd_id(), "user": uid, "description": description, "read_only": bool(read_only), "deleted": False, "disabled": False, "uses": 0, "seq": self.seq, "created": iso(time.time())}
        self.keys[k["id"]] = k
        self.by_digest[digest(value)] = k["id"]
        return {"id": k["id"], "value": value, "user": email, "description": description}

    def admin_extra(self, req):
        p = req.path
        body = req.json() or {}
        with self.lock:
            if p == "/_sim/seed" and req.method == "POST":
                for u in body.get("users", []):
                    self.add_user(u["email"], u.get("role", "user"))
                out = [self.issue(k.get("user"), k.get("description", "keysweep"), k.get("read_only", False)) for k in body.get("keys", [])]
                return Resp.json(200, {"keys": out})
            if p == "/_sim/issue_key" and req.method == "POST":
                return Resp.json(200, self.issue(body.get("user"), body.get("description", ""), body.get("read_only", False)))
            if p in ("/_sim/delete_key", "/_sim/disable_key") and req.method == "POST":
                k = self.keys.get(body.get("id"))
                if k is None:
                    return Resp.json(404, {"error": "no such key"})
                k["deleted" if p.endswith("delete_key") else "disabled"] = True
                return Resp.json(200, {"id": k["id"]})
        return None


if __name__ == "__main__":
    PagerDutySim().serve()
