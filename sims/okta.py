#!/usr/bin/env python3
"""Okta simulator: SSWS API tokens, users and admin roles, OAuth 2.0 service
apps with their client secrets, and the client-credentials token endpoint.

keysweep's Okta adapter runs against this server in tests and the demo, so it
answers as Okta's published contract says. Sources, part by part:

- Spec: github.com/okta/okta-management-openapi-spec, `dist/2026.06.2/
  management-minimal.yaml` (paths `/api/v1/api-tokens`, `/api/v1/api-tokens/
  current`, `/api/v1/api-tokens/{apiTokenId}`, `/api/v1/users/{id}`,
  `/api/v1/users/{userId}/roles`, `/api/v1/apps`, `/api/v1/apps/{appId}`,
  `/api/v1/apps/{appId}/credentials/secrets[/{secretId}[/lifecycle/
  activate|deactivate]]`; schemas `ApiToken`, `Error`, `OAuth2ClientSecret`,
  `StandardRole`, `User`, `OpenIdConnectApplication`,
  `ApplicationCredentialsOAuthClient`; examples `ApiTokenListMetadataResponse`,
  `ErrorInvalidTokenProvided` (E0000011), `ErrorAccessDenied` (E0000006),
  `ErrorResourceNotFound` (E0000007), `ErrorTooManyRequests` (E0000047),
  `ErrorMaxNumberOfSecrets`, `ErrorDeleteActiveSecret`,
  `ErrorDeactivateTheOnlyClientSecret`, `ErrorClientSecretTooShort/TooLong/
  NonAscii`, `oAuthClientSecretListResponse`, `StandardRolesListResponse`,
  `user-example`) and `dist/2026.06.2/oauth-minimal.yaml` (`/oauth2/v1/token`,
  `/oauth2/{authorizationServerId}/v1/token`; `OAuthError`, `TokenResponse`;
  examples `OAuthError401InvalidClient_NoCreds`,
  `OAuthError401InvalidClient_InvalidClientId`,
  `OobAuthenticateErrorInvalidClientSecret`,
  `OAuthError400InvalidRequest_MultipleClientCreds`,
  `OAuthError400UnsupportedGrantType`, `OAuthError400InvalidScope_MissingScopes`,
  `OAuthError403AccessDenied_InvalidNetworkZone`).
- The same spec repository at commit 6fbfa1c (Jan 2023,
  `resources/3.0/management.yaml`): `listApiTokens` then took `after`,
  `limit` (1..200, default 20) and `q` ("matches the name or clientName").
- developer.okta.com (okta/okta-developer-docs): guides/create-an-api-token
  (`Authorization: SSWS <token>`; valid 30 days from creation or last use;
  a deactivated user's tokens are deprovisioned), reference/core-okta-api
  (error object; cursor pagination; `Link: <…>; rel="self"` and
  `rel="next"`, the list ends when no `next` comes), reference/
  rl-best-practices (`X-Rate-Limit-Limit`, `-Remaining`, `-Reset` in UTC
  epoch seconds on every answer; a 429 has Remaining 0; a concurrent-limit
  429 has Limit 0 and Remaining 0), the error-code table (reference/
  error-codes; its older Markdown version lists E0000006 403, E0000007 404,
  E0000008 404, E0000011 401, E0000022, E0000029 400, E0000047 429),
  guides/client-secret-rotation-key (at most two secrets per app; deactivate,
  then delete).
- help.okta.com "Manage Okta API tokens" (who may create tokens: super, org,
  group (USER_ADMIN), group membership and read-only admins; tokens of
  deactivated users are rejected; network condition "Any IP" or zones).
- support.okta.com "Client Credentials requests to the Org Authorization
  Server must use the private_key_jwt token_endpoint_auth_method": the org
  authorization server (`/oauth2/v1/token`) refuses client-secret client
  credentials; client secrets work only against a custom authorization server
  (`/oauth2/{authServerId}/v1/token`, e.g. `default`).

What it does:
- Auth: `Authorization: SSWS <token>`. A missing, unknown, revoked or expired
  token, or one whose user is not ACTIVE, gets 401 E0000011. Each request the
  token authenticates sets its `lastUpdated` to now and its `expiresAt` to
  now + `tokenWindow` (that is how the spec's examples relate the three).
- A token whose network condition is `{"connection": "ZONE", "include":
  [...]}` is refused with the `network_zone` answer: the simulator's caller is
  in no network zone (it has none), so only `ANYWHERE` and exclude-only
  conditions let it through.
- Permissions (simplified, see below): SUPER_ADMIN and ORG_ADMIN may list,
  read and revoke anyone's tokens; every other caller gets 403 E0000006 there.
  Any valid token may `DELETE /api/v1/api-tokens/current` and `GET
  /api/v1/users/me`. Apps: read with SUPER/ORG/APP/READ_ONLY_ADMIN, change
  with SUPER/ORG/APP_ADMIN. Users and roles: any admin role, or oneself.
- Paging on `/api/v1/api-tokens` and `/api/v1/apps`: `limit` (default 20,
  clamped to 1..200), `after` (an opaque sequence number, robust to items
  deleted between pages), `q` (prefix of name/clientName resp. label);
  `Link` carries `rel="self"` and, when more items follow, `rel="next"`.
- Client secrets: two per app at most (third: 400 ErrorMaxNumberOfSecrets),
  an ACTIVE one cannot be deleted (400 ErrorDeleteActiveSecret), the only
  ACTIVE one cannot be deactivated (400 ErrorDeactivateTheOnlyClientSecret,
  whose text says "only active"). A secret may be brought (`client_secret`,
  14..100 printable ASCII) or generated (64 characters). Listing returns the
  secret values, as the spec's example does.
- Token endpoint: form body, `grant_type=client_credentials`, `scope`,
  client auth by HTTP Basic or `client_secret_post`. Only ACTIVE secrets
  authenticate; otherwise 401 `invalid_client`. Access tokens live 3600 s and
  are recorded (client, secret id, expiry) so `/_sim/state` shows tokens that
  outlive a deactivated or deleted secret.
- Rate limit (`POST /_sim/rate`): the three `X-Rate-Limit-*` headers on every
  answer, a 429 E0000047 with Remaining 0 beyond the rate.
- Named faults (`POST /_sim/faults`, `"answer": "<name>"`): `network_zone`
  (403 E0000006 on the management API; on `/oauth2/...` the spec's 403
  `access_denied` "outside the client's permitted network zones"),
  `access_denied` (403 E0000006), and the base's `waf`, `503`, `502`, `429`
  (E0000047; Limit 0 / Remaining 0 as for a concurrent limit when no rate is
  set), `drop`, `after_act` (as an answer name or the rule flag).
- Admin endpoints: `POST /_sim/seed`, `POST /_sim/issue_token`,
  `GET|POST /_sim/clock` (`{"advance_seconds": N}`; the simulator's own clock,
  for expiry without sleeping), `GET /_sim/state` (never a secret value: no
  token values, client secrets, hashes or access tokens), `POST /_sim/reset`
  (clears everything, clock included).

Known simplifications and deviations from real Okta:
- The current spec documents no `limit`/`after` for `GET /api/v1/api-tokens`
  (the 2023 spec did); the simulator pages it anyway. Apps' documented default
  `limit` is -1; the simulator pages 20 by default.
- Link relations are sent as one comma-joined `Link` header; Okta sends one
  `link` header per relation (equivalent under RFC 9110 §5.3).
- The permission model is reduced to the roles above; Okta's real model
  (custom roles, resource sets, which admins may see others' tokens) is richer
  and its exact rule for listing/revoking others' tokens was not found in the
  docs. OAuth access tokens are not accepted on the management API.
- The answer Okta gives when an SSWS token's network condition excludes the
  caller was not found in the docs; the simulator answers 403 E0000006, the
  same body as `access_denied` (so both stay ambiguous, never proof).
- A missing `Authorization` header gets 401 E0000011 (as briefed); Okta may
  answer a session-less request differently (not verified).
- Token endpoint: the order of checks (client auth first, then the org
  authorization server's private_key_jwt rule, then grant type and scope) and
  the 401 status of the org-AS refusal are assumptions; so are the 404
  E0000007 for an unknown authorization server and accepting both Basic and
  `client_secret_post` whatever the app's `token_endpoint_auth_method` (Okta
  may refuse the method the app is not configured for). Only the `default`
  custom authorization server exists; any non-empty `scope` is granted (no
  scope or access-policy model). Access tokens look like JWTs but are not
  signed verifiably; there is no introspection or revocation endpoint.
- `tokenWindow` can be set per token through the admin endpoints (tests use
  short windows); the create-an-api-token guide says the 30-day period is
  fixed, though the spec's example shows a `PT5M` token.
- `/_sim/issue_token` refuses users without a role that may create tokens;
  `/_sim/seed` does not (a seeded token can stand for one whose user lost
  the role later, which Okta allows).
- No `PUT /api/v1/api-tokens/{id}` (network condition upsert), no user or app
  lifecycle endpoints; users, tokens and apps come from `/_sim/seed` and
  `/_sim/issue_token` (Okta has no API to mint an SSWS token).
- Unknown paths get 404 E0000008, a known path with another method 405
  E0000022 (the old error table lists E0000022 as 404).
- No `X-Okta-Request-Id`, ETag, or `Content-Length: 0` (411) enforcement.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import string
import sys
import time
import urllib.parse
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simbase import Resp, Sim, iso  # noqa: E402

B62 = string.ascii_letters + string.digits
TOKEN_ALPHABET = B62 + "-"  # the docs' example token has '-' in it
SECRET_ALPHABET = B62 + "-_"

ROLE_LABELS = {
    "SUPER_ADMIN": "Super Organization administrator",
    "ORG_ADMIN": "Organization administrator",
    "APP_ADMIN": "Application administrator",
    "USER_ADMIN": "Group administrator",
    "HELP_DESK_ADMIN": "Help Desk administrator",
    "READ_ONLY_ADMIN": "Read-only administrator",
    "MOBILE_ADMIN": "Mobile administrator",
    "API_ACCESS_MANAGEMENT_ADMIN": "API Access Management administrator",
    "REPORT_ADMIN": "Report administrator",
    "GROUP_MEMBERSHIP_ADMIN": "Group Membership administrator",
}
TOKENS_ADMIN = {"SUPER_ADMIN", "ORG_ADMIN"}
APPS_READ = {"SUPER_ADMIN", "ORG_ADMIN", "APP_ADMIN", "READ_ONLY_ADMIN"}
APPS_MANAGE = {"SUPER_ADMIN", "ORG_ADMIN", "APP_ADMIN"}
# help.okta.com: "Super admins, org admins, group admins, group membership
# admins, and read-only admins may create tokens."
MAY_CREATE_TOKENS = {"SUPER_ADMIN", "ORG_ADMIN", "USER_ADMIN", "GROUP_MEMBERSHIP_ADMIN", "READ_ONLY_ADMIN"}

ACCESS_TOKEN_LIFETIME = 3600
DEFAULT_PAGE = 20
MAX_PAGE = 200
CUSTOM_AUTH_SERVERS = {"default"}

NETWORK_ZONE_OAUTH = {
    "error": "access_denied",
    "error_description": "The request is made from outside the client's permitted network zones.",
}


def rand(alphabet, n):
    return "".join(secrets.choice(alphabet) for _ in range(n))


def okta_id(prefix):
    """Okta object ids are 20 characters: a type prefix and base62."""
    return prefix + rand(B62, 20 - len(prefix))


def digest(value):
    return hashlib.sha256(value.encode()).hexdigest()


def parse_time(s):
    t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_duration(s):
    """ISO 8601 duration (weeks, days, hours, minutes, seconds) → seconds."""
    m = DURATION.match(s or "")
    if not m or s in ("P", "PT") or s.endswith("T"):
        raise ValueError(f"unsupported ISO 8601 duration {s!r} (use W, D, H, M, S)")
    w, d, h, mi, sec = (int(x or 0) for x in m.groups())
    total = (((w * 7 + d) * 24 + h) * 60 + mi) * 60 + sec
    if total <= 0:
        raise ValueError(f"duration {s!r} is not positive")
    return total


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class OktaSim(Sim):
    def __init__(self):
        super().__init__("okta")
        self.clock_offset = 0.0
        self.reset_state()
        self.state_fn = self.state_view
        self.reset_fn = self.reset_state
        self.fault_answers = {
            "network_zone": self.network_zone_answer,
            "access_denied": lambda req: self.error(403, "E0000006", "You do not have permission to perform the requested action"),
        }
        self.add_routes()

    # ---------------------------------------------------------------- state
    def reset_state(self):
        self.clock_offset = 0.0
        self.seq = 0
        self.users = {}  # id -> user
        self.tokens = {}  # id -> token (holds a digest, never the value)
        self.token_by_digest = {}
        self.apps = {}  # id -> app
        self.access_tokens = []
        self.signing_kid = rand(B62 + "-_", 43)
        self.max_page = MAX_PAGE

    def now(self):
        return time.time() + self.clock_offset

    def next_seq(self):
        self.seq += 1
        return self.seq

    def state_view(self):
        now = self.now()
        live_secret_ids = {s["id"] for a in self.apps.values() for s in a["secrets"]}
        return {
            "now": iso(now),
            "users": [
                {"id": u["id"], "login": u["login"], "roles": list(u["roles"]), "status": u["status"]}
                for u in sorted(self.users.values(), key=lambda u: u["seq"])
            ],
            "tokens": [
                {
                    "id": t["id"],
                    "name": t["name"],
                    "userId": t["userId"],
                    "created": iso(t["created"]),
                    "lastUpdated": iso(t["last_used"]),
                    "expiresAt": iso(self.expires(t)),
                    "tokenWindow": t["window"],
                    "network": t["network"],
                    "revoked": t["revoked"],
                    "expired": now > self.expires(t),
                    "valid": self.token_valid(t, now),
                }
                for t in sorted(self.tokens.values(), key=lambda t: t["seq"])
            ],
            "apps": [
                {
                    "id": a["id"],
                    "label": a["label"],
                    "client_id": a["client_id"],
                    "secrets": [{"id": s["id"], "status": s["status"], "created": iso(s["created"])} for s in a["secrets"]],
                }
                for a in sorted(self.apps.values(), key=lambda a: a["seq"])
            ],
            "access_tokens": [
                {
                    "client_id": at["client_id"],
                    "secret_id": at["secret_id"],
                    "auth_server": at["auth_server"],
                    "scope": at["scope"],
                    "issued": iso(at["iat"]),
                    "exp": iso(at["exp"]),
                    "alive": now < at["exp"],
                    "secret_deleted": at["secret_id"] not in live_secret_ids,
                }
                for at in self.access_tokens
            ],
        }

    # ------------------------------------------------------------- answers
    @staticmethod
    def error(status, code, summary, causes=None, headers=None):
        return Resp.json(
            status,
            {
                "errorCode": code,
                "errorSummary": summary,
                "errorLink": code,
                "errorId": "oae" + rand(B62 + "-_", 22),
                "errorCauses": [{"errorSummary": c} for c in (causes or [])],
            },
            headers,
        )

    def invalid_token(self):
        return self.error(401, "E0000011", "Invalid token provided")

    def forbidden(self):
        return self.error(403, "E0000006", "You do not have permission to perform the requested action")

    def not_found_of(self, ident, kind):
        return self.error(404, "E0000007", f"Not found: Resource not found: {ident} ({kind})")

    @staticmethod
    def oauth_error(status, error, description, headers=None):
        h = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        h.update(headers or {})
        return Resp.json(status, {"error": error, "error_description": description}, h)

    def network_zone_answer(self, req):
        if req.path.startswith("/oauth2/"):
            return Resp.json(403, dict(NETWORK_ZONE_OAUTH))
        return self.forbidden()

    # Okta's rate-limit answer and headers (rl-best-practices).
    def rate_limited(self, req, reset_epoch):
        limit = self.rate or 0  # no rate set: a named 429 looks like a concurrent-limit one (0/0)
        return self.error(
            429,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
            headers=self.rate_headers(limit, 0, reset_epoch),
        )

    def rate_headers(self, limit, remaining, reset_epoch):
        return {
            "X-Rate-Limit-Limit": str(int(limit)),
            "X-Rate-Limit-Remaining": str(int(remaining)),
            "X-Rate-Limit-Reset": str(int(reset_epoch)),
        }

    def _take_fault(self, req):
        f = super()._take_fault(req)
        if f is not None and f.get("answer") == "after_act":
            f = dict(f, after_act=True)  # `after_act` as an answer name, like the other faults
        return f

    def not_found(self, req):
        if any(rx.match(req.path) for _, rx, _ in self.routes):
            return self.error(405, "E0000022", "The endpoint does not support the provided HTTP method")
        return self.error(404, "E0000008", "The requested path was not found")

    # ---------------------------------------------------------------- auth
    def expires(self, t):
        return t["last_used"] + t["window_s"]

    def token_valid(self, t, now):
        u = self.users.get(t["userId"])
        return not t["revoked"] and now <= self.expires(t) and u is not None and u["status"] == "ACTIVE"

    def authenticate(self, req):
        """(token, user, None) for a valid SSWS token, else (None, None, answer)."""
        value = req.bearer("SSWS")
        if not value:
            return None, None, self.invalid_token()
        t = self.tokens.get(self.token_by_digest.get(digest(value)))
        now = self.now()
        if t is None or not self.token_valid(t, now):
            return None, None, self.invalid_token()
        net = t["network"] or {}
        if net.get("connection") == "ZONE" and net.get("include"):
            return None, None, self.network_zone_answer(req)
        t["last_used"] = now  # the sliding window
        return t, self.users[t["userId"]], None

    def api(self, method, pattern, need=None):
        """A management API route: SSWS auth, then `need(user, req)` must hold."""

        def deco(fn):
            def handler(req):
                token, user, refusal = self.authenticate(req)
                if refusal is not None:
                    return refusal
                if need is not None and not need(user, req):
                    return self.forbidden()
                return fn(req, token, user)

            self.route(method, pattern)(handler)
            return fn

        return deco

    # ------------------------------------------------------------- objects
    def link(self, req, path, allow=None):
        d = {"href": req.base + path}
        if allow:
            d["hints"] = {"allow": allow}
        return d

    def token_obj(self, req, t):
        return {
            "name": t["name"],
            "userId": t["userId"],
            "tokenWindow": t["window"],
            "network": t["network"],
            "id": t["id"],
            "clientName": t["clientName"],
            "expiresAt": iso(self.expires(t)),
            "created": iso(t["created"]),
            "lastUpdated": iso(t["last_used"]),
            "_links": {
                "self": self.link(req, f"/api/v1/api-tokens/{t['id']}", ["GET", "DELETE"]),
                "user": self.link(req, f"/api/v1/users/{t['userId']}", ["GET"]),
            },
        }

    def user_obj(self, req, u):
        return {
            "id": u["id"],
            "status": u["status"],
            "created": iso(u["created"]),
            "activated": iso(u["created"]),
            "statusChanged": iso(u["created"]),
            "lastLogin": None,
            "lastUpdated": iso(u["created"]),
            "passwordChanged": None,
            "type": {"id": u["type_id"]},
            "profile": {
                "firstName": u["firstName"],
                "lastName": u["lastName"],
                "mobilePhone": None,
                "secondEmail": None,
                "login": u["login"],
                "email": u["email"],
            },
            "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
            "_links": {"self": self.link(req, f"/api/v1/users/{u['id']}")},
        }

    def role_obj(self, req, u, role):
        return {
            "id": u["role_ids"][role],
            "label": ROLE_LABELS.get(role, role),
            "type": role,
            "status": "ACTIVE",
            "created": iso(u["created"]),
            "lastUpdated": iso(u["created"]),
            "assignmentType": "USER",
            "_links": {"assignee": self.link(req, f"/api/v1/users/{u['id']}")},
        }

    def app_obj(self, req, a):
        base = f"/api/v1/apps/{a['id']}"
        return {
            "id": a["id"],
            "orn": f"orn:okta:idp:sim:apps:oidc_client:{a['id']}",
            "name": "oidc_client",
            "label": a["label"],
            "status": "ACTIVE",
            "lastUpdated": iso(a["lastUpdated"]),
            "created": iso(a["created"]),
            "accessibility": {"selfService": False, "errorRedirectUrl": None, "loginRedirectUrl": None},
            "visibility": {"autoSubmitToolbar": False, "hide": {"iOS": True, "web": True}, "appLinks": {"oidc_client_link": False}},
            "features": [],
            "signOnMode": "OPENID_CONNECT",
            "credentials": {
                "userNameTemplate": {"template": "${source.login}", "type": "BUILT_IN"},
                "signing": {"kid": self.signing_kid},
                "oauthClient": {
                    "autoKeyRotation": True,
                    "client_id": a["client_id"],
                    "token_endpoint_auth_method": a["auth_method"],
                    "pkce_required": False,
                },
            },
            "settings": {
                "app": {},
                "notifications": {"vpn": {"network": {"connection": "DISABLED"}}},
                "oauthClient": {
                    "client_uri": None,
                    "logo_uri": None,
                    "response_types": ["token"],
                    "grant_types": ["client_credentials"],
                    "application_type": "service",
                    "consent_method": "REQUIRED",
                    "issuer_mode": "DYNAMIC",
                },
            },
            "_links": {
                "appLinks": [],
                "groups": self.link(req, base + "/groups"),
                "users": self.link(req, base + "/users"),
                "deactivate": self.link(req, base + "/lifecycle/deactivate"),
            },
        }

    def secret_obj(self, req, a, s):
        base = f"/api/v1/apps/{a['id']}/credentials/secrets/{s['id']}"
        if s["status"] == "ACTIVE":
            links = {"deactivate": self.link(req, base + "/lifecycle/deactivate", ["POST"])}
        else:
            links = {
                "activate": self.link(req, base + "/lifecycle/activate", ["POST"]),
                "delete": self.link(req, base, ["DELETE"]),
            }
        return {
            "id": s["id"],
            "status": s["status"],
            "client_secret": s["value"],
            "secret_hash": s["hash"],
            "created": iso(s["created"]),
            "lastUpdated": iso(s["lastUpdated"]),
            "_links": links,
        }

    # ---------------------------------------------------------------- paging
    def page(self, req, items, make):
        """Okta cursor paging over `items` (each has a `seq`): the page's JSON
        array and its `Link` header (rel="self", and rel="next" when more follow)."""
        try:
            limit = int(req.query.get("limit", DEFAULT_PAGE))
        except ValueError:
            return self.error(400, "E0000001", "Api validation failed: limit", ["limit: The value must be an integer."])
        if limit < 1:
            limit = DEFAULT_PAGE
        limit = min(limit, getattr(self, "max_page", MAX_PAGE))
        after = req.query.get("after")
        if after is not None:
            if not after.isdigit():
                return self.error(400, "E0000029", "Invalid paging request. Ensure the pagination cursor has not been altered")
            items = [i for i in items if i["seq"] > int(after)]
        chunk = items[:limit]
        links = [f'<{req.base}{req.path}{"?" + req.raw_query if req.raw_query else ""}>; rel="self"']
        if len(items) > limit:
            params = [(k, v) for k, v in urllib.parse.parse_qsl(req.raw_query, keep_blank_values=True) if k not in ("after", "limit")]
            params += [("limit", str(limit)), ("after", str(chunk[-1]["seq"]))]
            links.append(f'<{req.base}{req.path}?{urllib.parse.urlencode(params)}>; rel="next"')
        return Resp.json(200, [make(i) for i in chunk], {"Link": ", ".join(links)})

    # ---------------------------------------------------------------- routes
    def find_user(self, ident):
        ident = urllib.parse.unquote(ident)
        if ident in self.users:
            return self.users[ident]
        for u in self.users.values():
            if u["login"].lower() == ident.lower():
                return u
        return None

    def add_routes(self):
        def tokens_admin(user, req):
            return bool(TOKENS_ADMIN & set(user["roles"]))

        def apps_read(user, req):
            return bool(APPS_READ & set(user["roles"]))

        def apps_manage(user, req):
            return bool(APPS_MANAGE & set(user["roles"]))

        # -- users
        @self.api("GET", r"/api/v1/users/(?P<id>[^/]+)")
        def get_user(req, token, user):
            ident = req.params["id"]
            target = user if ident == "me" else self.find_user(ident)
            if target is None:
                if not user["roles"]:
                    return self.forbidden()
                return self.not_found_of(urllib.parse.unquote(ident), "User")
            if target is not user and not user["roles"]:
                return self.forbidden()
            return Resp.json(200, self.user_obj(req, target))

        @self.api("GET", r"/api/v1/users/(?P<id>[^/]+)/roles")
        def list_roles(req, token, user):
            target = self.find_user(req.params["id"])
            if target is not user and not user["roles"]:
                return self.forbidden()
            if target is None:
                return self.not_found_of(urllib.parse.unquote(req.params["id"]), "User")
            return Resp.json(200, [self.role_obj(req, target, r) for r in target["roles"]])

        # -- API tokens ("current" first: the id pattern would match it)
        @self.api("DELETE", r"/api/v1/api-tokens/current")
        def revoke_current(req, token, user):
            self.revoke(token)
            return Resp(204)

        @self.api("GET", r"/api/v1/api-tokens", tokens_admin)
        def list_tokens(req, token, user):
            now = self.now()
            q = (req.query.get("q") or "").lower()
            items = [
                t
                for t in sorted(self.tokens.values(), key=lambda t: t["seq"])
                if self.token_valid(t, now) and (not q or t["name"].lower().startswith(q) or t["clientName"].lower().startswith(q))
            ]
            return self.page(req, items, lambda t: self.token_obj(req, t))

        @self.api("GET", r"/api/v1/api-tokens/(?P<id>[^/]+)", tokens_admin)
        def get_token(req, token, user):
            t = self.tokens.get(req.params["id"])
            if t is None or not self.token_valid(t, self.now()):
                return self.not_found_of(req.params["id"], "ApiToken")
            return Resp.json(200, self.token_obj(req, t))

        @self.api("DELETE", r"/api/v1/api-tokens/(?P<id>[^/]+)", tokens_admin)
        def revoke_token(req, token, user):
            t = self.tokens.get(req.params["id"])
            if t is None or not self.token_valid(t, self.now()):
                return self.not_found_of(req.params["id"], "ApiToken")
            self.revoke(t)
            return Resp(204)

        # -- apps
        @self.api("GET", r"/api/v1/apps", apps_read)
        def list_apps(req, token, user):
            q = (req.query.get("q") or "").lower()
            items = [a for a in sorted(self.apps.values(), key=lambda a: a["seq"]) if not q or a["label"].lower().startswith(q)]
            return self.page(req, items, lambda a: self.app_obj(req, a))

        @self.api("GET", r"/api/v1/apps/(?P<app>[^/]+)", apps_read)
        def get_app(req, token, user):
            a = self.apps.get(req.params["app"])
            if a is None:
                return self.not_found_of(req.params["app"], "AppInstance")
            return Resp.json(200, self.app_obj(req, a))

        SECRETS = r"/api/v1/apps/(?P<app>[^/]+)/credentials/secrets"

        def with_app(fn):
            def inner(req, token, user):
                a = self.apps.get(req.params["app"])
                if a is None:
                    return self.not_found_of(req.params["app"], "AppInstance")
                return fn(req, a)

            return inner

        def with_secret(fn):
            def inner(req, a):
                s = next((s for s in a["secrets"] if s["id"] == req.params["secret"]), None)
                if s is None:
                    return self.not_found_of(req.params["secret"], "OAuth2ClientSecret")
                return fn(req, a, s)

            return inner

        @self.api("GET", SECRETS, apps_read)
        @with_app
        def list_secrets(req, a):
            return Resp.json(200, [self.secret_obj(req, a, s) for s in a["secrets"]])

        @self.api("POST", SECRETS, apps_manage)
        @with_app
        def create_secret(req, a):
            body = req.json()
            if body is None or not isinstance(body, dict):
                return self.error(400, "E0000003", "The request body was not well-formed.")
            if len(a["secrets"]) >= 2:
                return self.error(
                    400,
                    "E0000001",
                    "Api validation failed: OAuth2ClientSecretMediated",
                    ["You've reached the maximum number of client secrets per client."],
                )
            value = body.get("client_secret")
            if value is not None:
                if not isinstance(value, str) or not re.fullmatch(r"[\x20-\x7e]+", value):
                    return self.error(
                        400,
                        "E0000001",
                        "Api validation failed: client_secret",
                        ["client_secret: ''client_secret'' must only contain printable ASCII: [x20-x7E]+"],
                    )
                if len(value) < 14:
                    return self.error(
                        400, "E0000001", "Api validation failed: client_secret", ["client_secret: 'client_secret' must be at least '14' characters long."]
                    )
                if len(value) > 100:
                    return self.error(
                        400, "E0000001", "Api validation failed: client_secret", ["client_secret: 'client_secret' can't be more than '100' characters long."]
                    )
            status = body.get("status", "ACTIVE")
            if status not in ("ACTIVE", "INACTIVE"):
                return self.error(400, "E0000001", "Api validation failed: status", ["status: The value must be ACTIVE or INACTIVE."])
            s = self.new_secret(a, value, status)
            return Resp.json(201, self.secret_obj(req, a, s))

        @self.api("GET", SECRETS + r"/(?P<secret>[^/]+)", apps_read)
        @with_app
        @with_secret
        def get_secret(req, a, s):
            return Resp.json(200, self.secret_obj(req, a, s))

        @self.api("DELETE", SECRETS + r"/(?P<secret>[^/]+)", apps_manage)
        @with_app
        @with_secret
        def delete_secret(req, a, s):
            if s["status"] == "ACTIVE":
                return self.error(
                    400,
                    "E0000001",
                    "Api validation failed: OAuth2ClientSecretMediated",
                    ["You can't delete an active client secret. Deactivate the secret before deleting it."],
                )
            a["secrets"].remove(s)
            a["lastUpdated"] = self.now()
            return Resp(204)

        @self.api("POST", SECRETS + r"/(?P<secret>[^/]+)/lifecycle/activate", apps_manage)
        @with_app
        @with_secret
        def activate_secret(req, a, s):
            if s["status"] != "ACTIVE":
                s["status"], s["lastUpdated"] = "ACTIVE", self.now()
            return Resp.json(200, self.secret_obj(req, a, s))

        @self.api("POST", SECRETS + r"/(?P<secret>[^/]+)/lifecycle/deactivate", apps_manage)
        @with_app
        @with_secret
        def deactivate_secret(req, a, s):
            if s["status"] == "ACTIVE":
                if not any(o is not s and o["status"] == "ACTIVE" for o in a["secrets"]):
                    return self.error(
                        400,
                        "E0000001",
                        "Api validation failed: OAuth2ClientSecretMediated",
                        ["You can't deactivate the only active client secret."],
                    )
                s["status"], s["lastUpdated"] = "INACTIVE", self.now()
            return Resp.json(200, self.secret_obj(req, a, s))

        # -- OAuth 2.0 token endpoints
        @self.route("POST", r"/oauth2/v1/token")
        def org_token(req):
            return self.token_endpoint(req, None)

        @self.route("POST", r"/oauth2/(?P<server>[^/]+)/v1/token")
        def custom_token(req):
            return self.token_endpoint(req, req.params["server"])

    def revoke(self, t):
        t["revoked"] = True

    def new_secret(self, a, value=None, status="ACTIVE"):
        now = self.now()
        value = value or rand(SECRET_ALPHABET, 64)
        s = {
            "id": okta_id("ocs"),
            "status": status,
            "value": value,
            "hash": b64url(hashlib.sha256(value.encode()).digest()[:16]),
            "created": now,
            "lastUpdated": now,
        }
        a["secrets"].append(s)
        a["lastUpdated"] = now
        return s

    # ------------------------------------------------------ token endpoint
    def token_endpoint(self, req, server):
        if server is not None and server not in CUSTOM_AUTH_SERVERS:
            return self.not_found_of(server, "AuthorizationServer")
        form = req.form()
        basic = req.bearer("Basic")
        if basic is not None and ("client_secret" in form or "client_assertion" in form):
            return self.oauth_error(
                400,
                "invalid_request",
                "Can't supply multiple client credentials. Use one of the following: credentials in the Authorization header, "
                "credentials in the post body, or a `client_assertion` in the post body.",
            )
        if basic is not None:
            try:
                pair = base64.b64decode(basic, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return self.oauth_error(401, "invalid_client", "No client credentials found")
            if ":" not in pair:
                return self.oauth_error(401, "invalid_client", "No client credentials found")
            cid, secret = (urllib.parse.unquote_plus(x) for x in pair.split(":", 1))
        else:
            cid, secret = form.get("client_id"), form.get("client_secret")
        if not cid:
            return self.oauth_error(401, "invalid_client", "No client credentials found")
        app = next((a for a in self.apps.values() if a["client_id"] == cid), None)
        if app is None:
            return self.oauth_error(401, "invalid_client", "Invalid value for the `client_id` parameter")
        used = None
        for s in app["secrets"]:
            if s["status"] == "ACTIVE" and secret is not None and hmac.compare_digest(s["value"].encode(), secret.encode()):
                used = s
        if used is None:
            return self.oauth_error(401, "invalid_client", "The client secret supplied for a confidential client is invalid.")
        if server is None:
            return self.oauth_error(
                401,
                "invalid_client",
                "Client Credentials requests to the Org Authorization Server must use the private_key_jwt token_endpoint_auth_method.",
            )
        if form.get("grant_type") != "client_credentials":
            return self.oauth_error(400, "unsupported_grant_type", "The grant type in the request isn't supported.")
        scope = " ".join((form.get("scope") or "").split())
        if not scope:
            return self.oauth_error(400, "invalid_scope", "No scopes were requested.")
        now = self.now()
        exp = now + ACCESS_TOKEN_LIFETIME
        jti = "AT." + rand(B62 + "-_", 43)
        header = {"kid": self.signing_kid, "alg": "RS256"}
        claims = {
            "ver": 1,
            "jti": jti,
            "iss": f"{req.base}/oauth2/{server}",
            "aud": f"api://{server}",
            "iat": int(now),
            "exp": int(exp),
            "cid": cid,
            "scp": scope.split(),
            "sub": cid,
        }
        access = ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), b64url(secrets.token_bytes(256))])
        self.access_tokens.append(
            {"jti": jti, "client_id": cid, "secret_id": used["id"], "auth_server": server, "scope": scope, "iat": now, "exp": exp}
        )
        return Resp.json(
            200,
            {"token_type": "Bearer", "expires_in": ACCESS_TOKEN_LIFETIME, "access_token": access, "scope": scope},
            {"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    # ------------------------------------------------------- admin extras
    def admin_extra(self, req):
        p = req.path
        with self.lock:
            if p == "/_sim/seed" and req.method == "POST":
                return self.seed(req.json())
            if p == "/_sim/issue_token" and req.method == "POST":
                return self.issue_token(req.json())
            if p == "/_sim/clock":
                if req.method == "POST":
                    body = req.json() or {}
                    try:
                        self.clock_offset += float(body.get("advance_seconds", 0))
                    except (TypeError, ValueError):
                        return Resp.json(400, {"error": "advance_seconds must be a number"})
                return Resp.json(200, {"now": iso(self.now()), "epoch": self.now(), "offset_seconds": self.clock_offset})
        return None

    def add_user(self, spec):
        login = spec.get("login")
        if not isinstance(login, str) or not login:
            raise ValueError("each user needs a login")
        if self.find_user(login) is not None:
            raise ValueError(f"login {login!r} already exists")
        roles = spec.get("roles") or []
        if not isinstance(roles, list) or any(r not in ROLE_LABELS for r in roles):
            raise ValueError(f"roles must be a list of {sorted(ROLE_LABELS)}")
        status = spec.get("status", "ACTIVE")
        local = login.split("@")[0]
        u = {
            "id": okta_id("00u"),
            "seq": self.next_seq(),
            "login": login,
            "email": spec.get("email") or (login if "@" in login else f"{login}@example.com"),
            "firstName": spec.get("firstName") or local.split(".")[0].split("-")[0].capitalize(),
            "lastName": spec.get("lastName") or "Service",
            "roles": list(dict.fromkeys(roles)),
            "role_ids": {r: okta_id("ra1") for r in roles},
            "status": status,
            "created": self.now(),
            "type_id": "oty" + rand(B62, 17),
        }
        self.users[u["id"]] = u
        return u

    def add_token(self, spec, created=None, last_used=None):
        u = self.find_user(str(spec.get("user", "")))
        if u is None:
            raise ValueError(f"no user {spec.get('user')!r}")
        window = spec.get("token_window") or "P30D"
        window_s = parse_duration(window)
        network = spec.get("network") or {"connection": "ANYWHERE"}
        if not isinstance(network, dict) or network.get("connection") not in ("ANYWHERE", "ZONE"):
            raise ValueError('network must be {"connection": "ANYWHERE"|"ZONE", "include"?: [...], "exclude"?: [...]}')
        value = "00" + rand(TOKEN_ALPHABET, 40)
        now = self.now()
        created = now if created is None else created
        t = {
            "id": okta_id("00T"),
            "seq": self.next_seq(),
            "name": str(spec.get("name") or "token"),
            "userId": u["id"],
            "clientName": str(spec.get("client_name") or "Okta API"),
            "created": created,
            "last_used": created if last_used is None else last_used,
            "window": window,
            "window_s": window_s,
            "network": network,
            "revoked": False,
        }
        self.tokens[t["id"]] = t
        self.token_by_digest[digest(value)] = t["id"]
        return t, value

    def add_app(self, spec):
        label = spec.get("label")
        if not isinstance(label, str) or not label:
            raise ValueError("each app needs a label")
        n = spec.get("secrets", 1)
        if not isinstance(n, int) or not 0 <= n <= 2:
            raise ValueError("secrets must be 0, 1 or 2 (Okta allows two per app)")
        now = self.now()
        app_id = okta_id("0oa")
        a = {
            "id": app_id,
            "seq": self.next_seq(),
            "label": label,
            "client_id": app_id,  # an OIDC app's client_id is its app id unless given
            "auth_method": spec.get("token_endpoint_auth_method") or "client_secret_basic",
            "created": now,
            "lastUpdated": now,
            "secrets": [],
        }
        self.apps[app_id] = a
        made = [self.new_secret(a) for _ in range(n)]
        return a, made

    def seed(self, body):
        if not isinstance(body, dict):
            return Resp.json(400, {"error": "seed body must be a JSON object"})
        out = {"users": [], "tokens": [], "apps": []}
        if body.get("max_page"):
            # The largest page the "org" serves (Okta: 200), so a test sees
            # several pages without seeding hundreds of objects.
            self.max_page = int(body["max_page"])
        try:
            for spec in body.get("users") or []:
                u = self.add_user(spec)
                out["users"].append({"id": u["id"], "login": u["login"]})
            for spec in body.get("tokens") or []:
                created = parse_time(spec["created"]) if spec.get("created") else None
                last_used = parse_time(spec["last_used"]) if spec.get("last_used") else None
                t, value = self.add_token(spec, created, last_used)
                out["tokens"].append({"id": t["id"], "value": value, "userId": t["userId"], "name": t["name"]})
            for spec in body.get("apps") or []:
                a, made = self.add_app(spec)
                out["apps"].append(
                    {
                        "id": a["id"],
                        "label": a["label"],
                        "client_id": a["client_id"],
                        "secrets": [{"id": s["id"], "client_secret": s["value"]} for s in made],
                    }
                )
        except (ValueError, TypeError, AttributeError) as e:
            return Resp.json(400, {"error": str(e), "seeded_so_far": {k: [x.get("id") for x in v] for k, v in out.items()}})
        return Resp.json(200, out)

    def issue_token(self, body):
        """Security › API › Tokens › Create token, as an admin does it in the console."""
        if not isinstance(body, dict):
            return Resp.json(400, {"error": "body must be a JSON object"})
        u = self.find_user(str(body.get("user", "")))
        if u is None:
            return Resp.json(400, {"error": f"no user {body.get('user')!r}"})
        if u["status"] != "ACTIVE":
            return Resp.json(400, {"error": "the user is not ACTIVE"})
        if not MAY_CREATE_TOKENS & set(u["roles"]):
            return Resp.json(400, {"error": f"only {sorted(MAY_CREATE_TOKENS)} may create API tokens"})
        try:
            t, value = self.add_token(body)
        except ValueError as e:
            return Resp.json(400, {"error": str(e)})
        return Resp.json(200, {"id": t["id"], "value": value})


if __name__ == "__main__":
    OktaSim().serve()
