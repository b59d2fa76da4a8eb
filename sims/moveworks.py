#!/usr/bin/env python3
"""A Moveworks-style service-token API: bearer tokens for service principals
(the long-lived tokens an AI assistant's integrations hold), listed, issued
and revoked by an admin API, with an asynchronous revocation (202 + an
operation to poll). keysweep's `http` recipe
`playbooks/recipes/moveworks.yaml` runs against it.

**This is not Moveworks' API.** Moveworks publishes no token-management API;
every path, body and error code here is this project's own design, in the
shape such service-token APIs commonly take, so that a recipe for a vendor
like it can be written and tested: a generic bearer service-token API. What
it follows from published standards:
- RFC 6750 (Bearer tokens): `Authorization: Bearer <token>`; a refused token
  gets 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
- RFC 8288 (Web Linking): each page of a listing also carries
  `Link: <…>; rel="next"` beside the cursor in its body.
- RFC 9110 §15.3.3 (202 Accepted): "the request has been accepted for
  processing, but the processing has not been completed"; the answer names
  the operation to poll.
- RFC 9110 §10.2.3 / RFC 6585 §4: 429 with `Retry-After` (seconds), plus the
  common `X-RateLimit-Limit/-Remaining/-Reset` (epoch seconds) headers.

The API:
- `GET /api/v1/whoami` with a token: `{"token": {"id", "name"}, "principal":
  {"id", "display_name", "role"}}`. Refusals: 401 `token_revoked` (revoked),
  `token_expired`, `invalid_token` (unknown); the error body is `{"error":
  {"code", "message"}}` everywhere.
- `GET /api/v1/service-tokens?limit=N&cursor=C` (admin role): `{"data":
  [token], "pagination": {"next_cursor": str | null}}`; a token: `id`
  (`mwt_…`), `name`, `description`, `principal`, `role`, `created_at`,
  `last_used_at` (null if never used), `status` (`active`, `revoking`).
  Revoked tokens are not listed. `limit` defaults to 20, at most 100.
- `GET /api/v1/service-tokens/{id}` (admin): the token, or 404
  `token_not_found` once revoked or if it never existed.
- `POST /api/v1/service-tokens` (admin) `{"name", "principal",
  "description"}`: 201 with the token and its value (`token`), shown once.
  A token acts as its principal, with the principal's role.
- `DELETE /api/v1/service-tokens/{id}` (admin): 202 `{"operation": {"id",
  "status": "pending", "url"}}`; the token keeps working until the operation
  is done. `GET /api/v1/operations/{id}` (admin): `{"id", "status":
  "pending" | "succeeded" | "failed", "token_id"}`; the operation succeeds on
  its N-th poll (`op_polls`, default 2) unless the simulator is told to keep
  it pending (`stuck`). Deleting a revoked or unknown token: 404
  `token_not_found`.
- A non-admin principal's token gets 403 `insufficient_scope` on the admin
  API.
- Rate limit (`POST /_sim/rate`): 429 `rate_limited` with `Retry-After: 1`
  and the `X-RateLimit-*` headers.
- Named faults: the base's `waf`, `503`, `502`, `429`, `drop`, `after_act`;
  `ip_not_allowed` (403, the token's network policy: ambiguous),
  `gateway_401` (401 with JSON that is not this API's error shape).
- Admin: `POST /_sim/seed` `{"principals": [{"id", "role"}], "tokens":
  [{"principal", "name", "description", "created_at", "last_used_at"}]}`
  (answers ids and values), `POST /_sim/issue_token` (an admin issuing one
  in the console), `POST /_sim/config` `{"op_polls", "stuck", "poll_base",
  "link_base"}` (`poll_base`/`link_base`: the scheme://host:port the poll URL
  and the `Link` next page name, to test a client's host allow-list),
  `GET /_sim/state` (never a token value), `POST /_sim/reset`.
"""

import hashlib
import os
import secrets
import string
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simbase import Resp, Sim, iso  # noqa: E402

ALPHABET = string.ascii_letters + string.digits


def digest(v):
    return hashlib.sha256(v.encode()).hexdigest()


def rid(prefix, n=16):
    return prefix + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(n))


class MoveworksStyleSim(Sim):
    def __init__(self):
        super().__init__("moveworks")
        self.reset_state()
        self.state_fn = self.state_view
        self.reset_fn = self.reset_state
        self.fault_answers = {
            "ip_not_allowed": lambda req: self.error(403, "ip_not_allowed", "The request's source address is not allowed by this token's network policy."),
            "gateway_401": lambda req: Resp.json(401, {"message": "Unauthorized"}),
        }
        self.add_routes()

    def reset_state(self):
        self.principals = {}
        self.tokens = {}
        self.by_digest = {}
        self.ops = {}
        self.seq = 0
        self.op_polls = 2
        self.stuck = False
        self.poll_base = None
        self.link_base = None

    @staticmethod
    def error(status, code, message, headers=None):
        return Resp.json(status, {"error": {"code": code, "message": message}}, headers)

    def refused(self, code, message):
        return self.error(401, code, message, {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{message}"'})

    def rate_headers(self, limit, remaining, reset_epoch):
        return {"X-RateLimit-Limit": str(int(limit)), "X-RateLimit-Remaining": str(int(remaining)), "X-RateLimit-Reset": str(int(reset_epoch))}

    def rate_limited(self, req, reset_epoch):
        h = self.rate_headers(self.rate or 0, 0, reset_epoch)
        h["Retry-After"] = "1"
        return self.error(429, "rate_limited", "Too many requests.", h)

    def not_found(self, req):
        return self.error(404, "not_found", "No such resource.")

    def state_view(self):
        return {
            "principals": [dict(p) for p in self.principals.values()],
            "tokens": [
                {k: t[k] for k in ("id", "name", "description", "principal", "status", "uses", "created_at", "last_used_at")}
                for t in sorted(self.tokens.values(), key=lambda t: t["seq"])
            ],
            "operations": [dict(o) for o in self.ops.values()],
        }

    # ---- auth
    def authenticate(self, req):
        value = req.bearer()
        if not value:
            return None, self.refused("invalid_token", "No bearer token.")
        t = self.tokens.get(self.by_digest.get(digest(value)))
        if t is None:
            return None, self.refused("invalid_token", "The token is not valid.")
        if t["status"] == "revoked":
            return None, self.refused("token_revoked", "The token has been revoked.")
        if t.get("expired"):
            return None, self.refused("token_expired", "The token has expired.")
        t["uses"] += 1
        t["last_used_at"] = iso(time.time())
        return t, None

    def api(self, method, pattern, admin=False):
        def deco(fn):
            def handler(req):
                t, refusal = self.authenticate(req)
                if refusal is not None:
                    return refusal
                if admin and self.principals[t["principal"]]["role"] != "admin":
                    return self.error(403, "insufficient_scope", "This token may not manage service tokens.")
                return fn(req, t)

            self.route(method, pattern)(handler)
            return fn

        return deco

    def token_obj(self, t):
        return {
            "id": t["id"],
            "name": t["name"],
            "description": t["description"],
            "principal": t["principal"],
            "role": self.principals[t["principal"]]["role"],
            "created_at": t["created_at"],
            "last_used_at": t["last_used_at"],
            "status": t["status"],
        }

    def issue(self, principal, name, description="", created_at=None, last_used_at=None):
        if principal not in self.principals:
            raise KeyError(principal)
        value = "mw_" + "".join(secrets.choice(ALPHABET) for _ in range(40))
        self.seq += 1
        t = {
            "id": rid("mwt_"),
            "seq": self.seq,
            "name": name,
            "description": description,
            "principal": principal,
            "status": "active",
            "uses": 0,
            "created_at": created_at or iso(time.time()),
            "last_used_at": last_used_at,
        }
        self.tokens[t["id"]] = t
        self.by_digest[digest(value)] = t["id"]
        return t, value

    # ---- routes
    def add_routes(self):
        @self.api("GET", r"/api/v1/whoami")
        def whoami(req, t):
            p = self.principals[t["principal"]]
            return Resp.json(200, {"token": {"id": t["id"], "name": t["name"]}, "principal": {"id": p["id"], "display_name": p["display_name"], "role": p["role"]}})

        @self.api("GET", r"/api/v1/service-tokens", admin=True)
        def list_tokens(req, t):
            try:
                limit = max(1, min(100, int(req.query.get("limit", "20"))))
            except ValueError:
                return self.error(400, "invalid_request", "limit must be an integer.")
            after = int(req.query.get("cursor") or 0)
            live = [x for x in sorted(self.tokens.values(), key=lambda x: x["seq"]) if x["status"] != "revoked" and x["seq"] > after]
            page = live[:limit]
            nxt = str(page[-1]["seq"]) if len(live) > limit else None
            headers = {}
            if nxt:
                base = self.link_base or req.base
                headers["Link"] = f'<{base}/api/v1/service-tokens?limit={limit}&cursor={nxt}>; rel="next"'
            return Resp.json(200, {"data": [self.token_obj(x) for x in page], "pagination": {"next_cursor": nxt}}, headers)

        @self.api("GET", r"/api/v1/service-tokens/(?P<id>[^/]+)", admin=True)
        def get_token(req, t):
            x = self.tokens.get(req.params["id"])
            if x is None or x["status"] == "revoked":
                return self.error(404, "token_not_found", "No such service token.")
            return Resp.json(200, self.token_obj(x))

        @self.api("POST", r"/api/v1/service-tokens", admin=True)
        def create(req, t):
            b = req.json()
            if not isinstance(b, dict) or not b.get("name") or not b.get("principal"):
                return self.error(400, "invalid_request", "name and principal are required.")
            if b["principal"] not in self.principals:
                return self.error(400, "invalid_request", "No such principal.")
            x, value = self.issue(b["principal"], b["name"], b.get("description", ""))
            body = self.token_obj(x)
            body["token"] = value
            return Resp.json(201, body)

        @self.api("DELETE", r"/api/v1/service-tokens/(?P<id>[^/]+)", admin=True)
        def revoke(req, t):
            x = self.tokens.get(req.params["id"])
            if x is None or x["status"] == "revoked":
                return self.error(404, "token_not_found", "No such service token.")
            op = next((o for o in self.ops.values() if o["token_id"] == x["id"] and o["status"] == "pending"), None)
            if op is None:
                op = {"id": rid("op_"), "token_id": x["id"], "status": "pending", "polls": 0}
                self.ops[op["id"]] = op
            x["status"] = "revoking"
            base = self.poll_base or req.base
            return Resp.json(202, {"operation": {"id": op["id"], "status": "pending", "url": f"{base}/api/v1/operations/{op['id']}"}})

        @self.api("GET", r"/api/v1/operations/(?P<id>[^/]+)", admin=True)
        def operation(req, t):
            op = self.ops.get(req.params["id"])
            if op is None:
                return self.error(404, "not_found", "No such operation.")
            op["polls"] += 1
            if op["status"] == "pending" and not self.stuck and op["polls"] >= self.op_polls:
                op["status"] = "succeeded"
                self.tokens[op["token_id"]]["status"] = "revoked"
            return Resp.json(200, {"id": op["id"], "status": op["status"], "token_id": op["token_id"]})

    def admin_extra(self, req):
        p = req.path
        body = req.json() or {}
        with self.lock:
            if p == "/_sim/seed" and req.method == "POST":
                for pr in body.get("principals", []):
                    self.principals.setdefault(pr["id"], {"id": pr["id"], "display_name": pr.get("display_name", pr["id"]), "role": pr.get("role", "integration")})
                out = []
                for t in body.get("tokens", []):
                    x, value = self.issue(t["principal"], t.get("name", "token"), t.get("description", ""), t.get("created_at"), t.get("last_used_at"))
                    out.append({"id": x["id"], "value": value, "name": x["name"]})
                return Resp.json(200, {"tokens": out})
            if p == "/_sim/issue_token" and req.method == "POST":
                x, value = self.issue(body["principal"], body.get("name", "token"), body.get("description", ""))
                return Resp.json(200, {"id": x["id"], "value": value})
            if p == "/_sim/config" and req.method == "POST":
                for k in ("op_polls", "stuck", "poll_base", "link_base"):
                    if k in body:
                        setattr(self, k, body[k])
                return Resp.json(200, {"op_polls": self.op_polls, "stuck": self.stuck, "poll_base": self.poll_base, "link_base": self.link_base})
            if p == "/_sim/expire" and req.method == "POST":
                self.tokens[body["id"]]["expired"] = True
                return Resp.json(200, {"id": body["id"]})
        return None


if __name__ == "__main__":
    MoveworksStyleSim().serve()
