"""Atlassian Cloud simulator (one organization, one Jira site), standard library only.

One server plays `api.atlassian.com` (admin APIs, OAuth 2.0 gateway),
`auth.atlassian.com` (`/oauth/token`) and the site `<site>.atlassian.net`
(Jira REST), told apart by path. Follows these published pages (read 2026):

- User management REST API, API tokens group:
  https://developer.atlassian.com/cloud/admin/user-management/rest/api-group-api-tokens/
  `GET /users/{account_id}/manage/api-tokens` -> `[{id,label,createdAt,lastAccess,expiry}]`,
  `DELETE /users/{account_id}/manage/api-tokens/{tokenId}`.
- Organizations REST API: https://developer.atlassian.com/cloud/admin/organization/rest/
  `GET /admin/v1/orgs`, `GET /admin/v1/orgs/{orgId}/users` (managed accounts,
  `links.next` is a full URL carrying the cursor; `meta.total`).
- API Access REST API: https://developer.atlassian.com/cloud/admin/api-access/rest/
  `GET|DELETE /admin/api-access/v1/orgs/{orgId}/api-tokens` (list; DELETE =
  "Bulk revoke API tokens in an organization"), `GET .../service-accounts`,
  `GET .../service-accounts/{id}/oauth-clients`, `GET .../service-accounts/oauth-clients`,
  `GET .../oauth-clients`, `GET|DELETE .../oauth-clients/{clientId}`;
  rate-limit headers X-RateLimit-Limit / -Remaining / -Reset.
- Organizations REST API, users group, "Get user role assignments":
  `GET /admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}/role-assignments`
  (`directoryId` `-` = every directory) -> `{data:[{resourceId, resourceOwner,
  roles, roleAssignments:[{role, roleAssignmentMethods}], directoryId,
  userDirectoryStatus}], links:{next}}`; roles such as `atlassian/org-admin`
  (no resource, no directory), `atlassian/admin`, `atlassian/user`.
- Admin auth: "Use the API Key as a Bearer access token" (organizations intro).
- Basic auth for REST APIs (email:api_token), and its CAPTCHA section: "If
  there is an X-Seraph-LoginReason header with a value of AUTHENTICATION_DENIED,
  this means the application rejected the login without even checking the
  password" — https://developer.atlassian.com/cloud/jira/platform/basic-auth-for-rest-apis/
- Jira `GET /rest/api/3/myself` (also /rest/api/2/myself).
- Service accounts and OAuth 2.0 credentials:
  https://support.atlassian.com/user-management/docs/create-oauth-2-0-credential-for-service-accounts
  ("Make a POST request to https://auth.atlassian.com/oauth/token with
  client_id and client_secret to get the OAuth 2.0 access token valid for 60
  minutes"; calls then go to `https://api.atlassian.com/ex/jira/{cloudId}/rest/api/...`
  with the token as Bearer). Creating credentials is a UI action ("Create an
  OAuth client ... is a session-only endpoint"), hence `/_sim/issue_credential`.
- Jira rate limiting: 429 with `Retry-After`, `X-RateLimit-Reset`
  (yyyy-MM-ddTHH:mmZ), `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
  `X-RateLimit-NearLimit`, `RateLimit-Reason`.

Answers
- Jira myself, valid Basic -> 200 user (accountType "atlassian"); unknown,
  deleted, expired token or deactivated account -> 401, text body "Client must
  be authenticated to access this resource.", `X-Seraph-LoginReason:
  AUTHENTICATED_FAILED`, `WWW-Authenticate`. Via `/ex/jira/{cloudId}/...` with a
  service-account access token -> 200 user with accountType "app"; a bad or
  expired bearer -> 401 `{"code":401,"message":"Unauthorized"}`.
- CAPTCHA: the named fault `captcha` (and, if seeded with `captcha_after: N`,
  any email after N failed Basic logins, until `/_sim/captcha {"email":…,"clear":true}`)
  -> 403 text/html, `X-Seraph-LoginReason: AUTHENTICATION_DENIED`,
  `X-Authentication-Denied-Reason: CAPTCHA_CHALLENGE; login-url=<site>/login.jsp`.
  Ambiguous, never proof: it is answered whatever the token.
- `POST /oauth/token` (`grant_type=client_credentials`, JSON or form body, or
  client id/secret by HTTP Basic) -> `{access_token, expires_in:3600,
  token_type:"Bearer", scope}`; unknown/deleted client or wrong secret -> 401
  `{"error":"access_denied","error_description":"Unauthorized"}`; other grant
  types -> 400 `unsupported_grant_type`.
- Admin API without a valid key -> 401 `{"code":401,"message":"Unauthorized"}`;
  unknown org/account/token/client -> 404 `{"code":404,"message":"Not Found"}`.
- Rate limit (`POST /_sim/rate`): 429 with Retry-After, X-RateLimit-Limit,
  X-RateLimit-Remaining (0), X-RateLimit-Reset, and for Jira paths also
  X-RateLimit-NearLimit and RateLimit-Reason: jira-burst-based; successful
  answers carry X-RateLimit-Limit/-Remaining/-Reset while a rate is set.
- Named faults: `captcha`, `seraph_failed_200` (200, `X-Seraph-LoginReason:
  AUTHENTICATED_FAILED`: the request ran anonymously — not proof of anything),
  plus simbase's `waf`, `503`, `502`, `429`, `drop`; `after_act` as the rule
  flag or as `"answer": "after_act"`.

Admin endpoints (besides simbase's log/faults/rate/arrivals/reset/state)
- `POST /_sim/seed` (replaces everything; `/_sim/reset` returns to it):
  `{"org":"acme","site":"acme","page_size":50,"captcha_after":null,
    "users":[{"email":"svc@acme.com","name":"…","admin":true,
              "tokens":[{"label":"smartsheet","created":"<iso>","last_access":"<iso>|null","expiry":"<iso>"}]}],
    "service_accounts":[{"name":"ci-bot","admin":true,"credentials":1}]}`
  -> `{org:{id,name}, cloud_id, site_url, admin_api_key,
       users:[{email,account_id,admin,tokens:[{id,label,value}]}],
       service_accounts:[{name,account_id,id,email,admin,credentials:[{client_id,client_secret}]}]}`
- `POST /_sim/issue_token {"account_id","label"}` -> `{"id","value"}` (a person
  creating an API token in the UI; there is no API for it).
- `POST /_sim/issue_credential {"account_id","name"}` -> `{"client_id","client_secret"}`.
- `POST /_sim/deactivate {"account_id"}`, `POST /_sim/clock {"advance": s}`,
  `POST /_sim/captcha {"email", "clear": true}`.
- `GET /_sim/state`: org, users, api_tokens (id, account_id, label, created,
  last_access, expiry, revoked, revoked_by), service_accounts (with admin),
  oauth_clients (client_id, service account, created, deleted, last_used),
  access_tokens (client_id, expires), captcha, bulk_revoke_calls — never a
  token, key or client-secret value.

Known simplifications / deviations
- Host names are not checked; `links.next` URLs use the request's own Host.
- The invalid-client answer of `/oauth/token` is Auth0's (auth.atlassian.com
  runs on it); Atlassian's pages do not document it. The 401 text body of
  Jira myself is the widely reported one, not from the reference pages.
- The admin error body `{"code":…,"message":…}` is the api.atlassian.com
  gateway's shape; per-endpoint error schemas are not reproduced.
- No documented per-account limit on OAuth credentials was found, so none is
  enforced. Access tokens minted before a credential is deleted stay valid
  until they expire (Atlassian does not document either way).
- Access tokens are opaque random strings, not JWTs; scopes are recorded,
  never enforced; admin API key scopes are not modeled.
- Token `status` is always ALLOWED (no API-token policies); tokens without a
  seeded expiry expire one year after seeding. `lastAccess` updates at once.
- Role assignments: a seeded `admin: true` user holds `atlassian/org-admin`
  (an organization-level role) and `atlassian/admin` on the site; a service
  account with `admin: true` holds `atlassian/admin` on the site (the sim
  gives service accounts no organization role); everyone else `atlassian/user`.
  One page always; `directoryId` is not checked beyond `-` or the org's one.
- Service accounts are listed by the API Access API only, not by
  `/admin/v1/orgs/{orgId}/users`; they have OAuth credentials, not API tokens.
- v1 users page size comes from the seed (`page_size`), not a query
  parameter; API Access lists honour `pageSize`.
"""

import base64
import copy
import os
import secrets
import string
import sys
import time
import urllib.parse
import uuid
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simbase import Resp, Sim, iso  # noqa: E402

ACCESS_TTL = 3600
YEAR = 365 * 86400
ALNUM = string.ascii_letters + string.digits
UNAUTH_TEXT = "Client must be authenticated to access this resource."


def _rand(n):
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def _parse_time(v):
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return datetime.fromisoformat(str(v).replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


def _jira_reset(epoch):
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(epoch))


def _err(status, message):
    return Resp.json(status, {"code": status, "message": message})


def _enc(n):
    return base64.urlsafe_b64encode(f"o:{n}".encode()).decode().rstrip("=")


def _dec(c):
    try:
        raw = base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)).decode()
        tag, n = raw.split(":", 1)
        return int(n) if tag == "o" else None
    except Exception:  # noqa: BLE001
        return None


class AtlassianSim(Sim):
    def __init__(self):
        super().__init__("atlassian")
        self.snapshot = None
        self._empty()
        self.state_fn = self.state
        self.reset_fn = self.reset
        self.fault_answers = {
            "captcha": self._captcha_answer,
            "seraph_failed_200": lambda req: Resp.json(200, {}, {"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"}),
        }
        A = r"/admin/api-access/v1/orgs/(?P<org>[^/]+)"
        r = self.route
        r("GET", r"/admin/v1/orgs")(self.orgs)
        r("GET", r"/admin/v1/orgs/(?P<org>[^/]+)")(self.org_one)
        r("GET", r"/admin/v1/orgs/(?P<org>[^/]+)/users")(self.org_users)
        r("GET", r"/admin/v2/orgs/(?P<org>[^/]+)/directories/(?P<dir>[^/]+)/users/(?P<acct>[^/]+)/role-assignments")(
            self.role_assignments)
        r("GET", r"/users/(?P<acct>[^/]+)/manage/api-tokens")(self.user_tokens)
        r("DELETE", r"/users/(?P<acct>[^/]+)/manage/api-tokens/(?P<tok>[^/]+)")(self.user_token_delete)
        r("GET", A + r"/api-tokens")(self.org_tokens)
        r("DELETE", A + r"/api-tokens")(self.org_tokens_bulk_revoke)
        r("GET", A + r"/service-accounts")(self.sa_list)
        r("GET", A + r"/service-accounts/oauth-clients")(self.sa_clients_all)
        r("GET", A + r"/service-accounts/(?P<sa>[^/]+)/oauth-clients")(self.sa_clients)
        r("GET", A + r"/oauth-clients")(self.clients_list)
        r("GET", A + r"/oauth-clients/(?P<cid>[^/]+)")(self.client_one)
        r("DELETE", A + r"/oauth-clients/(?P<cid>[^/]+)")(self.client_delete)
        r("POST", r"/oauth/token")(self.oauth_token)
        r("GET", r"/oauth/token/accessible-resources")(self.accessible_resources)
        r("GET", r"/rest/api/(?P<v>[23])/myself")(self.myself_basic)
        r("GET", r"/ex/jira/(?P<cloud>[^/]+)/rest/api/(?P<v>[23])/myself")(self.myself_gateway)

    # ---- state
    def _empty(self):
        self.org = None
        self.cloud_id = None
        self.site = None
        self.page_size = 50
        self.captcha_after = None
        self.admin_keys = {}  # value -> {id, name}
        self.accounts = {}  # account_id -> managed user
        self.tokens = {}  # token id -> api token
        self.service_accounts = {}  # account_id -> service account
        self.clients = {}  # client_id -> oauth client
        self.access = {}  # access token value -> record
        self.failed = {}  # email -> consecutive failed basic logins
        self.captcha_on = set()
        self.bulk_revoke_calls = []
        self.clock = 0.0

    def now(self):
        return time.time() + self.clock

    def _dump(self):
        return copy.deepcopy({k: getattr(self, k) for k in (
            "org", "cloud_id", "site", "page_size", "captcha_after", "admin_keys", "accounts", "tokens",
            "service_accounts", "clients", "access", "failed", "captcha_on", "bulk_revoke_calls", "clock")})

    def reset(self):
        if self.snapshot is None:
            self._empty()
        else:
            for k, v in copy.deepcopy(self.snapshot).items():
                setattr(self, k, v)

    def state(self):
        now = self.now()
        t = lambda v: iso(v) if v else None  # noqa: E731
        return {
            "org": self.org,
            "cloud_id": self.cloud_id,
            "site_url": self.site,
            "now": iso(now),
            "admin_api_keys": list(self.admin_keys.values()),
            "users": [{"account_id": a["account_id"], "email": a["email"], "name": a["name"],
                       "admin": a["admin"], "status": a["status"], "last_active": t(a["last_active"])}
                      for a in self.accounts.values()],
            "api_tokens": [{"id": k["id"], "account_id": k["account_id"], "label": k["label"],
                            "created": t(k["created"]), "last_access": t(k["last_access"]),
                            "expiry": t(k["expiry"]), "expired": now >= k["expiry"],
                            "revoked": k["revoked"], "revoked_by": k["revoked_by"]}
                           for k in self.tokens.values()],
            "service_accounts": [{"account_id": s["account_id"], "id": s["id"], "name": s["name"],
                                  "email": s["email"], "admin": s["admin"], "status": s["status"]}
                                 for s in self.service_accounts.values()],
            "oauth_clients": [{"client_id": c["client_id"], "name": c["name"], "service_account": c["account_id"],
                               "created": t(c["created"]), "deleted": c["deleted"],
                               "deleted_by": c["deleted_by"], "last_used": t(c["last_used"])}
                              for c in self.clients.values()],
            "access_tokens": [{"client_id": a["client_id"], "account_id": a["account_id"],
                               "issued": t(a["issued"]), "expires": t(a["expires"]), "expired": now >= a["expires"]}
                              for a in self.access.values()],
            "captcha": {"after": self.captcha_after, "required": sorted(self.captcha_on),
                        "failed_logins": dict(self.failed)},
            "bulk_revoke_calls": list(self.bulk_revoke_calls),
        }

    # ---- faults
    def _take_fault(self, req):
        f = super()._take_fault(req)
        if f is not None and f.get("answer") == "after_act":
            return dict(f, after_act=True)
        return f

    def _captcha_answer(self, req):
        site = self.site or "https://site.atlassian.net"
        return Resp(403, "<html><body><h1>Forbidden (403)</h1><p>CAPTCHA_CHALLENGE</p></body></html>", {
            "X-Seraph-LoginReason": "AUTHENTICATION_DENIED",
            "X-Authentication-Denied-Reason": f"CAPTCHA_CHALLENGE; login-url={site}/login.jsp",
        }, "text/html;charset=UTF-8")

    @staticmethod
    def _is_jira(req):
        return req.path.startswith("/rest/") or req.path.startswith("/ex/jira/")

    def rate_limited(self, req, reset_epoch):
        wait = max(1, int(reset_epoch - time.time() + 0.999))
        h = {"Retry-After": str(wait), "X-RateLimit-Limit": str(self.rate or 0),
             "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": _jira_reset(time.time() + wait)}
        if self._is_jira(req):
            h.update({"X-RateLimit-NearLimit": "true", "RateLimit-Reason": "jira-burst-based"})
            return Resp.json(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, h)
        return Resp.json(429, {"code": 429, "message": "Too Many Requests"}, h)

    def rate_headers(self, limit, remaining, reset_epoch):
        h = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
             "X-RateLimit-Reset": _jira_reset(reset_epoch)}
        if remaining < max(1, limit // 5):
            h["X-RateLimit-NearLimit"] = "true"
        return h

    # ---- seeding / issuing
    def _new_token(self, account_id, label, created=None, last_access=None, expiry=None):
        now = self.now()
        created = created if created is not None else now
        value = "ATATT3xFfGF0" + _rand(180) + "=" + secrets.token_hex(4).upper()
        tid = str(uuid.uuid4())
        self.tokens[tid] = {"id": tid, "account_id": account_id, "label": label, "created": created,
                            "last_access": last_access, "expiry": expiry if expiry is not None else now + YEAR,
                            "revoked": False, "revoked_by": None, "value": value}
        return tid, value

    def _new_client(self, account_id, name):
        cid = _rand(32)
        secret = "ATOA" + _rand(60)
        now = self.now()
        self.clients[cid] = {"client_id": cid, "secret": secret, "account_id": account_id, "name": name,
                             "created": now, "updated": now, "deleted": False, "deleted_by": None,
                             "last_used": None}
        return cid, secret

    def seed(self, spec):
        self._empty()
        name = spec.get("org", "acme")
        site = spec.get("site", name)
        self.org = {"id": str(uuid.uuid4()), "name": name}
        self.cloud_id = str(uuid.uuid4())
        self.site = f"https://{site}.atlassian.net"
        self.page_size = int(spec.get("page_size", 50))
        self.captcha_after = spec.get("captcha_after")
        key = "ATCTT3xFfGN0" + _rand(180)
        self.admin_keys[key] = {"id": str(uuid.uuid4()), "name": "keysweep"}
        out = {"org": dict(self.org), "cloud_id": self.cloud_id, "site_url": self.site,
               "admin_api_key": key, "users": [], "service_accounts": []}
        for u in spec.get("users", []):
            acct = "712020:" + str(uuid.uuid4())
            email = u["email"]
            self.accounts[acct] = {"account_id": acct, "email": email, "name": u.get("name", email.split("@")[0]),
                                   "admin": bool(u.get("admin", False)), "status": u.get("status", "active"),
                                   "last_active": _parse_time(u.get("last_active"))}
            rows = []
            for t in u.get("tokens", []):
                tid, value = self._new_token(acct, t["label"], _parse_time(t.get("created")),
                                             _parse_time(t.get("last_access")), _parse_time(t.get("expiry")))
                rows.append({"id": tid, "label": t["label"], "value": value})
            out["users"].append({"email": email, "account_id": acct, "admin": self.accounts[acct]["admin"],
                                 "tokens": rows})
        for s in spec.get("service_accounts", []):
            acct = "712020:" + str(uuid.uuid4())
            sid = str(uuid.uuid4())
            email = f"{s['name']}-{_rand(6).lower()}@serviceaccount.atlassian.com"
            self.service_accounts[acct] = {"account_id": acct, "id": sid, "name": s["name"], "email": email,
                                           "admin": bool(s.get("admin", False)), "status": "active",
                                           "description": s.get("description", ""), "created": self.now()}
            creds = []
            for i in range(int(s.get("credentials", 0))):
                cid, secret = self._new_client(acct, f"{s['name']}-credential-{i + 1}")
                creds.append({"client_id": cid, "client_secret": secret})
            out["service_accounts"].append({"name": s["name"], "account_id": acct, "id": sid, "email": email,
                                            "admin": self.service_accounts[acct]["admin"], "credentials": creds})
        self.snapshot = self._dump()
        return out

    # ---- auth helpers
    def _admin(self, req, org=None):
        key = req.bearer()
        if not key or key not in self.admin_keys:
            return _err(401, "Unauthorized")
        if org is not None and (self.org is None or org != self.org["id"]):
            return _err(404, "Not Found")
        return None

    def _base(self, req):
        return getattr(req, "base", "")

    @staticmethod
    def _page(items, cursor, size):
        start = 0
        if cursor:
            start = _dec(cursor)
            if start is None or start > len(items):
                return None, None, None
        end = start + size
        nxt = _enc(end) if end < len(items) else None
        prev = _enc(max(0, start - size)) if start > 0 else None
        return items[start:end], nxt, prev

    def _page_size(self, req, default=50):
        try:
            return max(1, min(1000, int(req.query.get("pageSize") or default)))
        except ValueError:
            return default

    # ---- organizations API
    def orgs(self, req):
        bad = self._admin(req)
        if bad:
            return bad
        base = self._base(req)
        o = self.org
        return Resp.json(200, {"data": [{
            "id": o["id"], "type": "orgs", "attributes": {"name": o["name"]},
            "relationships": {"domains": {"links": {"related": f"{base}/admin/v1/orgs/{o['id']}/domains"}},
                              "users": {"links": {"related": f"{base}/admin/v1/orgs/{o['id']}/users"}}},
            "links": {"self": f"{base}/admin/v1/orgs/{o['id']}"}}], "links": {"self": f"{base}/admin/v1/orgs"}})

    def org_one(self, req):
        bad = self._admin(req, req.params["org"])
        if bad:
            return bad
        o = self.org
        return Resp.json(200, {"data": {"id": o["id"], "type": "orgs", "attributes": {"name": o["name"]},
                                        "links": {"self": f"{self._base(req)}/admin/v1/orgs/{o['id']}"}}})

    def _v1_user(self, a, base):
        last = iso(a["last_active"]) if a["last_active"] else None
        return {
            "account_id": a["account_id"],
            "account_type": "atlassian",
            "account_status": a["status"],
            "name": a["name"],
            "picture": f"https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/{a['account_id']}/sim/48",
            "email": a["email"],
            "access_billable": True,
            "last_active": last,
            "product_access": [{"key": "jira-software", "name": "Jira", "url": self.site, "last_active": last}],
            "links": {"self": f"{base}/users/{a['account_id']}/manage/profile"},
        }

    def org_users(self, req):
        org = req.params["org"]
        bad = self._admin(req, org)
        if bad:
            return bad
        base = self._base(req)
        items = list(self.accounts.values())
        page, nxt, _ = self._page(items, req.query.get("cursor"), self.page_size)
        if page is None:
            return _err(400, "Invalid cursor")
        path = f"{base}/admin/v1/orgs/{org}/users"
        links = {"self": path + (("?cursor=" + urllib.parse.quote(req.query["cursor"])) if req.query.get("cursor") else "")}
        if nxt:
            links["next"] = f"{path}?cursor={nxt}"
        return Resp.json(200, {"data": [self._v1_user(a, base) for a in page], "links": links,
                               "meta": {"total": len(items)}})

    def role_assignments(self, req):
        org = req.params["org"]
        bad = self._admin(req, org)
        if bad:
            return bad
        acct = req.params["acct"]
        a = self.accounts.get(acct)
        s = self.service_accounts.get(acct)
        if a is None and s is None:
            return _err(404, "Not Found")
        site = {"resourceId": f"ari:cloud:platform::site/{self.cloud_id}", "resourceOwner": "jira-software"}

        def row(resource, roles, directory=True):
            return dict(resource, roles=list(roles),
                        roleAssignments=[{"role": r, "roleAssignmentMethods": ["DIRECT"]} for r in roles],
                        directoryId=self.org["id"] if directory else None,
                        userDirectoryStatus="ACTIVE" if directory else None)

        admin = (a or s)["admin"]
        data = [row(site, ["atlassian/admin"] if admin else ["atlassian/user"])]
        if a is not None and admin:
            data.insert(0, row({"resourceId": None, "resourceOwner": None}, ["atlassian/org-admin"], directory=False))
        return Resp.json(200, {"data": data, "links": {"self": None, "next": None}})

    # ---- user management API
    def _live_tokens(self, acct):
        return [t for t in self.tokens.values() if t["account_id"] == acct and not t["revoked"]]

    def user_tokens(self, req):
        bad = self._admin(req)
        if bad:
            return bad
        acct = req.params["acct"]
        if acct not in self.accounts and acct not in self.service_accounts:
            return _err(404, "Not Found")
        rows = []
        for t in self._live_tokens(acct):
            row = {"id": t["id"], "label": t["label"], "createdAt": iso(t["created"]), "expiry": iso(t["expiry"])}
            if t["last_access"]:
                row["lastAccess"] = iso(t["last_access"])
            rows.append(row)
        return Resp.json(200, rows)

    def user_token_delete(self, req):
        bad = self._admin(req)
        if bad:
            return bad
        acct, tid = req.params["acct"], req.params["tok"]
        t = self.tokens.get(tid)
        if acct not in self.accounts or t is None or t["account_id"] != acct or t["revoked"]:
            return _err(404, "Not Found")
        t["revoked"] = True
        t["revoked_by"] = "user-management"
        return Resp(204)

    # ---- API access API
    def org_tokens(self, req):
        org = req.params["org"]
        bad = self._admin(req, org)
        if bad:
            return bad
        items = [t for t in self.tokens.values() if not t["revoked"] and t["account_id"] in self.accounts]
        q = (req.query.get("q") or "").lower()
        if q:
            items = [t for t in items if q in t["label"].lower() or q in self.accounts[t["account_id"]]["email"].lower()
                     or q in self.accounts[t["account_id"]]["name"].lower()]
        st = req.query.get("status")
        if st and st != "ALLOWED":
            items = []
        page, nxt, prev = self._page(items, req.query.get("cursor"), self._page_size(req))
        if page is None:
            return _err(400, "Invalid cursor")
        data = []
        for t in page:
            a = self.accounts[t["account_id"]]
            data.append({"id": t["id"], "label": t["label"], "status": "ALLOWED", "createdAt": iso(t["created"]),
                         "expiresAt": iso(t["expiry"]),
                         "lastActiveAt": iso(t["last_access"]) if t["last_access"] else None,
                         "user": {"id": a["account_id"], "orgId": self.org["id"], "name": a["name"], "email": a["email"]}})
        return Resp.json(200, {"data": data, "links": {"self": req.query.get("cursor") or "", "next": nxt, "prev": prev}})

    def org_tokens_bulk_revoke(self, req):
        org = req.params["org"]
        bad = self._admin(req, org)
        self.bulk_revoke_calls.append({"t": iso(self.now()), "method": req.method, "path": req.path,
                                       "authorized": bad is None})
        if bad:
            return bad
        for t in self.tokens.values():
            if not t["revoked"] and t["account_id"] in self.accounts:
                t["revoked"] = True
                t["revoked_by"] = "bulk-revoke"
        return Resp(204)

    def _sa_item(self, s):
        return {"atlassianId": s["account_id"], "id": s["id"], "email": s["email"], "displayName": s["name"],
                "picture": "", "container": self.org["id"], "updatedAt": int(s["created"] * 1000),
                "status": s["status"].upper(), "createdById": "", "description": s["description"]}

    def sa_list(self, req):
        org = req.params["org"]
        bad = self._admin(req, org)
        if bad:
            return bad
        items = list(self.service_accounts.values())
        page, nxt, prev = self._page(items, req.query.get("cursor"), self._page_size(req))
        if page is None:
            return _err(400, "Invalid cursor")
        return Resp.json(200, {"links": {"next": nxt, "prev": prev}, "items": [self._sa_item(s) for s in page],
                               "total": len(items)})

    def _client_item(self, c):
        return {"clientId": c["client_id"], "name": c["name"], "createdAt": int(c["created"] * 1000),
                "updatedAt": int(c["updated"] * 1000), "status": "ACTIVE", "serviceAccountId": c["account_id"]}

    def _clients_resp(self, req, clients):
        name = req.query.get("clientName")
        if name:
            clients = [c for c in clients if name.lower() in c["name"].lower()]
        page, nxt, prev = self._page(clients, req.query.get("cursor"), self._page_size(req))
        if page is None:
            return _err(400, "Invalid cursor")
        return Resp.json(200, {"data": [self._client_item(c) for c in page],
                               "links": {"self": req.query.get("cursor") or "", "next": nxt, "prev": prev}})

    def _find_sa(self, key):
        return self.service_accounts.get(key) or next(
            (s for s in self.service_accounts.values() if s["id"] == key), None)

    def sa_clients(self, req):
        bad = self._admin(req, req.params["org"])
        if bad:
            return bad
        s = self._find_sa(req.params["sa"])
        if s is None:
            return _err(404, "Not Found")
        return self._clients_resp(req, [c for c in self.clients.values()
                                        if c["account_id"] == s["account_id"] and not c["deleted"]])

    def sa_clients_all(self, req):
        bad = self._admin(req, req.params["org"])
        if bad:
            return bad
        return self._clients_resp(req, [c for c in self.clients.values() if not c["deleted"]])

    def clients_list(self, req):
        return self.sa_clients_all(req)

    def client_one(self, req):
        bad = self._admin(req, req.params["org"])
        if bad:
            return bad
        c = self.clients.get(req.params["cid"])
        if c is None or c["deleted"]:
            return _err(404, "Not Found")
        return Resp.json(200, self._client_item(c))

    def client_delete(self, req):
        bad = self._admin(req, req.params["org"])
        if bad:
            return bad
        c = self.clients.get(req.params["cid"])
        if c is None or c["deleted"]:
            return _err(404, "Not Found")
        c["deleted"] = True
        c["deleted_by"] = "api-access"
        return Resp(204)

    # ---- OAuth 2.0 (auth.atlassian.com / api.atlassian.com)
    def oauth_token(self, req):
        ctype = (req.header("Content-Type") or "").lower()
        body = req.json() if "json" in ctype else req.form()
        if not isinstance(body, dict):
            return Resp.json(400, {"error": "invalid_request", "error_description": "Malformed request"})
        cid, secret = body.get("client_id"), body.get("client_secret")
        basic = req.bearer("Basic")
        if basic and not cid:
            try:
                cid, secret = base64.b64decode(basic).decode().split(":", 1)
            except Exception:  # noqa: BLE001
                cid = secret = None
        if body.get("grant_type") != "client_credentials":
            return Resp.json(400, {"error": "unsupported_grant_type",
                                   "error_description": "Unsupported grant type: " + str(body.get("grant_type"))})
        c = self.clients.get(cid or "")
        denied = Resp.json(401, {"error": "access_denied", "error_description": "Unauthorized"})
        if c is None or c["deleted"] or not secrets.compare_digest(str(secret or ""), c["secret"]):
            return denied
        s = self.service_accounts.get(c["account_id"])
        if s is None or s["status"] != "active":
            return denied
        now = self.now()
        c["last_used"] = now
        value = "eyJ" + _rand(300)
        scope = body.get("scope") or "read:jira-user read:jira-work"
        self.access[value] = {"client_id": cid, "account_id": c["account_id"], "issued": now,
                              "expires": now + ACCESS_TTL, "scope": scope}
        return Resp.json(200, {"access_token": value, "expires_in": ACCESS_TTL, "token_type": "Bearer",
                               "scope": scope})

    def _bearer_account(self, req):
        a = self.access.get(req.bearer() or "")
        if a is None or self.now() >= a["expires"]:
            return None
        s = self.service_accounts.get(a["account_id"])
        if s is None or s["status"] != "active":
            return None
        return s

    def accessible_resources(self, req):
        if self._bearer_account(req) is None:
            return _err(401, "Unauthorized")
        return Resp.json(200, [{"id": self.cloud_id, "url": self.site, "name": self.site.split("//")[1].split(".")[0],
                                "scopes": ["read:jira-user", "read:jira-work"],
                                "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/rocket.png"}])

    # ---- Jira
    def _jira_user(self, acct, email, name, kind, active=True):
        return {
            "self": f"{self.site}/rest/api/3/user?accountId={urllib.parse.quote(acct)}",
            "accountId": acct,
            "accountType": kind,
            "emailAddress": email,
            "avatarUrls": {s: f"https://secure.gravatar.com/avatar/sim?s={s.split('x')[0]}"
                           for s in ("48x48", "24x24", "16x16", "32x32")},
            "displayName": name,
            "active": active,
            "timeZone": "Etc/UTC",
            "locale": "en_US",
            "groups": {"size": 0, "items": []},
            "applicationRoles": {"size": 1, "items": []},
            "expand": "groups,applicationRoles",
        }

    def _unauth(self):
        return Resp(401, UNAUTH_TEXT, {"X-Seraph-LoginReason": "AUTHENTICATED_FAILED",
                                       "WWW-Authenticate": 'Basic realm="protected-area"'},
                    "text/plain;charset=UTF-8")

    def _basic_login(self, req):
        raw = req.bearer("Basic")
        if not raw:
            return None, self._unauth()
        try:
            email, token = base64.b64decode(raw).decode().split(":", 1)
        except Exception:  # noqa: BLE001
            return None, self._unauth()
        if email in self.captcha_on:
            return None, self._captcha_answer(req)
        now = self.now()
        acct = next((a for a in self.accounts.values() if a["email"].lower() == email.lower()), None)
        tok = None
        if acct is not None and acct["status"] == "active":
            tok = next((t for t in self._live_tokens(acct["account_id"])
                        if now < t["expiry"] and secrets.compare_digest(t["value"], token)), None)
        if tok is None:
            self.failed[email] = self.failed.get(email, 0) + 1
            if self.captcha_after is not None and self.failed[email] >= int(self.captcha_after):
                self.captcha_on.add(email)
            return None, self._unauth()
        self.failed.pop(email, None)
        tok["last_access"] = now
        acct["last_active"] = now
        return acct, None

    def myself_basic(self, req):
        acct, bad = self._basic_login(req)
        if bad:
            return bad
        return Resp.json(200, self._jira_user(acct["account_id"], acct["email"], acct["name"], "atlassian"))

    def myself_gateway(self, req):
        if req.params["cloud"] != self.cloud_id:
            return _err(404, "Not Found")
        if req.bearer("Basic"):
            return self.myself_basic(req)
        s = self._bearer_account(req)
        if s is None:
            return _err(401, "Unauthorized")
        return Resp.json(200, self._jira_user(s["account_id"], s["email"], s["name"], "app"))

    # ---- admin
    def admin_extra(self, req):
        p = req.path
        body = req.json() if req.method == "POST" else {}
        if req.method == "POST" and not isinstance(body, dict):
            return Resp.json(400, {"error": "body must be a JSON object"})
        with self.lock:
            if p == "/_sim/seed" and req.method == "POST":
                try:
                    return Resp.json(200, self.seed(body))
                except (KeyError, TypeError, ValueError) as e:
                    return Resp.json(400, {"error": f"bad seed: {type(e).__name__}: {e}"})
            if p == "/_sim/issue_token" and req.method == "POST":
                acct = body.get("account_id")
                if acct not in self.accounts:
                    return Resp.json(404, {"error": "no such managed account"})
                tid, value = self._new_token(acct, body.get("label", "token"))
                return Resp.json(200, {"id": tid, "value": value})
            if p == "/_sim/issue_credential" and req.method == "POST":
                s = self._find_sa(body.get("account_id") or body.get("service_account") or "")
                if s is None:
                    return Resp.json(404, {"error": "no such service account"})
                cid, secret = self._new_client(s["account_id"], body.get("name", f"{s['name']}-credential"))
                return Resp.json(200, {"client_id": cid, "client_secret": secret})
            if p == "/_sim/deactivate" and req.method == "POST":
                acct = body.get("account_id")
                a = self.accounts.get(acct) or self.service_accounts.get(acct)
                if a is None:
                    return Resp.json(404, {"error": "no such account"})
                a["status"] = "inactive"
                return Resp.json(200, {"account_id": acct, "status": "inactive"})
            if p == "/_sim/clock" and req.method == "POST":
                self.clock += float(body.get("advance", 0))
                return Resp.json(200, {"now": iso(self.now()), "offset": self.clock})
            if p == "/_sim/captcha" and req.method == "POST":
                email = body.get("email", "")
                if body.get("clear"):
                    self.captcha_on.discard(email)
                    self.failed.pop(email, None)
                else:
                    self.captcha_on.add(email)
                return Resp.json(200, {"email": email, "required": email in self.captcha_on})
        return None


if __name__ == "__main__":
    AtlassianSim().serve()
