"""Slack Web API simulator (one workspace), standard library only.

Follows Slack's published contract as documented on these pages (read
2026; method shapes cross-checked against slackapi/slack-api-specs
web-api/slack_web_openapi_v2.json and slack-ruby/slack-api-ref methods/*.json):

- https://docs.slack.dev/reference/methods/auth.test
- https://docs.slack.dev/reference/methods/auth.revoke
- https://docs.slack.dev/reference/methods/oauth.v2.access
- https://docs.slack.dev/authentication/using-token-rotation
- https://docs.slack.dev/reference/methods/users.list , users.info , bots.info
- https://docs.slack.dev/reference/methods/team.integrationLogs , team.accessLogs
- https://docs.slack.dev/apis/web-api/rate-limits , /apis/web-api/pagination
- the "common errors" every method page lists (invalid_auth: "either the
  provided token is invalid or the request originates from an IP address
  disallowed from making the request").

What it does
- Methods at `/api/<method>`, GET or POST, arguments from the query string,
  a form body or a JSON body. The token comes from `Authorization: Bearer`,
  or the `token` field of a form POST body (Slack still documents the POST
  parameter). Every answer is HTTP 200 `{"ok": ...}` except 429 and an
  unknown method (404 `unknown_method`).
- Token checks, in this order: no token `not_authed`; unknown token
  `invalid_auth`; revoked `token_revoked`; owner deactivated (user token) or
  bot user deactivated (bot token) `account_inactive`; rotating access token
  past its expiry `token_expired`.
- `auth.test`: url, team, user, team_id, user_id, plus bot_id and app_id for
  bot tokens, `is_enterprise_install`, and `expires_in` (seconds left) for a
  rotating token (the field is in the official SDK's AuthTestResponse type).
- `auth.revoke`: `{"ok":true,"revoked":true}`; with `test=1`/`true` nothing is
  revoked and the answer is `revoked:false` ("The response indicates whether
  the token was actually revoked"). Revoking a non-rotating bot token also
  deactivates its bot user (users.list/bots.info show `deleted:true`) — the
  method page says so; the app stays installed. For a rotating app it
  revokes that one token (access or refresh) and leaves the installation.
- Token rotation: apps seeded with `rotation:true` have access tokens
  `xoxe.xoxb-1-…` (bot) / `xoxe.xoxp-1-…` (user) expiring after 43 200 s and
  refresh tokens `xoxe-1-…`. `oauth.v2.access` with `grant_type=refresh_token`
  (client_id/client_secret as form fields or HTTP Basic, as the method page
  recommends) answers like the SDK's TokenRotator reads it: top-level
  `access_token`, `token_type` (`bot`|`user`), `refresh_token`, `expires_in`.
  Per the rotation guide: the used refresh token "is revoked after a short
  grace period" (here `refresh_grace_seconds`, default 0, i.e. immediately;
  within the grace the same refresh token mints again); after it,
  `invalid_refresh_token`. "Calling oauth.v2.access will not immediately
  invalidate your existing access token": the previous access token stays
  valid until its own expiry or an auth.revoke. "2 active token limit": when
  a refresh leaves more than 2 unexpired access tokens for the same
  installation (app + owner), the oldest are revoked (`token_revoked`).
  Errors: `invalid_client_id`, `bad_client_secret`, `invalid_grant_type`,
  `invalid_code`, `invalid_refresh_token`.
- Inventory (Slack has no "list tokens" method): `users.list` (cursor paging,
  bots with `is_bot`, `profile.bot_id`, `profile.api_app_id`, deactivated
  members with `deleted:true`, the built-in USLACKBOT member), `users.info`,
  `bots.info` (`bot_not_found`), `team.integrationLogs` (classic count/page
  paging, as documented), `team.accessLogs` (classic paging, or cursor paging
  when `limit` is given, as documented). users.list and bots.info need the
  `users:read` scope, the team.* methods a user token with `admin`
  (`missing_scope` with `needed`/`provided`; bot token `not_allowed_token_type`).
- Rate limit (`POST /_sim/rate`): HTTP 429, `Retry-After` seconds, body
  `{"ok":false,"error":"ratelimited"}`; Slack sends no X-RateLimit headers.
- Named faults (`"answer": "<name>"` in a `/_sim/faults` rule): `ip_allowlist`
  (200 `invalid_auth`, what an allowed-IP-range refusal looks like),
  `internal_error` (200 `internal_error`), `fatal_error`, `service_unavailable`
  (503 `service_unavailable`), plus simbase's `waf`, `503`, `502`, `429`,
  `drop`; `after_act` works both as the rule flag `"after_act": true` and as
  `"answer": "after_act"`.

Admin endpoints (besides simbase's /_sim/log, faults, rate, arrivals, reset, state)
- `POST /_sim/seed` replaces everything; `/_sim/reset` returns to it.
  `{"team":"acme","paid":true,"refresh_grace_seconds":0,
    "users":[{"name":"alice","admin":true,"email":"…","scopes":[…],"user_token":true}],
    "apps":[{"name":"deploy-bot","rotation":true,"scopes":["chat:write"],
             "installed_by":"alice","user_tokens":["alice"]}]}`
  → ids and secret values (the only place they appear). Users get a
  non-rotating `xoxp-` token unless `user_token:false` (scopes default:
  admins `admin,users:read`, others `users:read`). Apps get a bot token;
  `user_tokens` adds per-user tokens of that app (rotating when the app is).
- `POST /_sim/deactivate {"user": name|id}`, `POST /_sim/clock {"advance": s}`.
- `POST /_sim/issue_token {"user": name|id}`: what a person does in Slack's
  UI to re-issue a non-rotating token → `{"token_id", "token"}`. For a bot
  user: "Revoke tokens" then reinstall — the installation's one bot token is
  revoked (`revoked_by: "reinstall"`), the bot user is active again and gets
  a new bot token. For a person: a new user token with the same scopes as
  their newest one (an app re-authorized); the old one stays valid.
- `GET /_sim/state`: team, users, apps, tokens (id, kind, rotating, owner,
  app_id, revoked, revoked_by, expires, expired, created, last_used, scopes),
  refresh_tokens (id, app_id, owner, kind, used, used_at, uses, revoked),
  oauth_refresh_calls — never a token or client-secret value.

Known simplifications / deviations
- One workspace, no Enterprise Grid (`enterprise: null`), no channels, no
  OAuth install flow (`code` grants answer `invalid_code`), no
  `oauth.v2.exchange`, no `apps.uninstall`, no legacy/workspace tokens.
- The real grace period for a used refresh token is unspecified ("short");
  minting again inside it is a guess at what Slack does then.
- Query-string tokens are ignored (Slack refuses them for apps created after
  Feb 2021); a token only in the query string gets `not_authed`.
- Per-app IP allow-lists are only the `ip_allowlist` fault, not state.
- `team.accessLogs` records calls made with user tokens only (IP 127.0.0.1
  and the request's User-Agent); Slack documents no per-bot-token activity
  API, so a bot token's last use is visible only in `/_sim/state`.
- Deactivating a user does not uninstall apps that user installed.
- `paid:false` makes team.accessLogs answer `paid_only`; no other plan limits.
- The 404 status of `unknown_method` is from memory, not from the docs.
- Scopes are checked only where listed above.
"""

import base64
import copy
import os
import secrets
import string
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simbase import Resp, Sim, iso  # noqa: E402

ACCESS_TTL = 43200  # "It will always expire in 43,200 seconds"
JSON_CT = "application/json; charset=utf-8"
ALNUM = string.ascii_letters + string.digits


def _rand(n):
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def ok(**kw):
    return Resp(200, {"ok": True, **kw}, content_type=JSON_CT)


def err(code, status=200, **kw):
    return Resp(status, {"ok": False, "error": code, **kw}, content_type=JSON_CT)


def _truthy(v):
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def _enc_cursor(kind, key):
    return base64.b64encode(f"{kind}:{key}".encode()).decode()


def _dec_cursor(cur, kind):
    try:
        k, key = base64.b64decode(cur.encode(), validate=True).decode().split(":", 1)
    except Exception:  # noqa: BLE001 - any undecodable cursor is invalid
        return None
    return key if k == kind else None


class SlackSim(Sim):
    def __init__(self):
        super().__init__("slack")
        self.clock = 0.0
        self.snapshot = None
        self._empty()
        self.state_fn = self.state
        self.reset_fn = self.reset
        self.fault_answers = {
            "ip_allowlist": lambda req: err("invalid_auth"),
            "internal_error": lambda req: err("internal_error"),
            "fatal_error": lambda req: err("fatal_error"),
            "service_unavailable": lambda req: err("service_unavailable", status=503),
        }
        for m in ("GET", "POST"):
            self.route(m, r"/api/(?P<method>[A-Za-z0-9_.]+)")(self.api)

    # ---- state
    def _empty(self):
        self.team = None
        self.paid = True
        self.grace = 0.0
        self.users = {}  # id -> user
        self.bots = {}  # bot id -> bot
        self.apps = {}  # app id -> app
        self.tokens = {}  # token id -> access token record (value inside)
        self.refresh = {}  # refresh id -> refresh token record
        self.values = {}  # secret value -> ("access"|"refresh", id)
        self.access_logs = {}  # (user_id, ip, ua) -> entry
        self.integration_logs = []
        self.refresh_calls = []
        self.counter = 0
        self.clock = 0.0

    def now(self):
        return time.time() + self.clock

    def _id(self, prefix):
        self.counter += 1
        return f"{prefix}{self.counter:09d}"

    def state(self):
        now = self.now()
        return {
            "team": self.team and {k: self.team[k] for k in ("id", "name", "domain", "url")},
            "now": iso(now),
            "users": [
                {k: u[k] for k in ("id", "name", "is_admin", "is_bot", "deleted", "bot_id", "app_id")}
                for u in self.users.values()
            ],
            "apps": [
                {
                    "id": a["id"],
                    "name": a["name"],
                    "rotation": a["rotation"],
                    "scopes": a["scopes"],
                    "client_id": a["client_id"],
                    "bot_id": a["bot_id"],
                    "bot_user_id": a["bot_user_id"],
                    "installed_by": a["installed_by"],
                    "installed": iso(a["installed"]),
                }
                for a in self.apps.values()
            ],
            "tokens": [
                {
                    "id": t["id"],
                    "kind": t["kind"],
                    "rotating": t["rotating"],
                    "owner": t["owner"],
                    "app_id": t["app_id"],
                    "scopes": t["scopes"],
                    "revoked": t["revoked"],
                    "revoked_by": t["revoked_by"],
                    "created": iso(t["created"]),
                    "expires": iso(t["expires"]) if t["expires"] else None,
                    "expired": bool(t["expires"] and now >= t["expires"]),
                    "last_used": iso(t["last_used"]) if t["last_used"] else None,
                }
                for t in self.tokens.values()
            ],
            "refresh_tokens": [
                {
                    "id": r["id"],
                    "kind": r["kind"],
                    "owner": r["owner"],
                    "app_id": r["app_id"],
                    "created": iso(r["created"]),
                    "used": r["used_at"] is not None,
                    "used_at": iso(r["used_at"]) if r["used_at"] else None,
                    "uses": r["uses"],
                    "revoked": self._refresh_dead(r, now),
                }
                for r in self.refresh.values()
            ],
            "oauth_refresh_calls": list(self.refresh_calls),
        }

    def reset(self):
        if self.snapshot is None:
            self._empty()
        else:
            self._restore(copy.deepcopy(self.snapshot))

    def _dump(self):
        keys = ("team", "paid", "grace", "users", "bots", "apps", "tokens", "refresh", "values",
                "access_logs", "integration_logs", "refresh_calls", "counter", "clock")
        return {k: copy.deepcopy(getattr(self, k)) for k in keys}

    def _restore(self, d):
        for k, v in d.items():
            setattr(self, k, v)

    # ---- faults: `"answer": "after_act"` means the after_act flag
    def _take_fault(self, req):
        f = super()._take_fault(req)
        if f is not None and f.get("answer") == "after_act":
            return dict(f, after_act=True)
        return f

    def rate_limited(self, req, reset_epoch):
        wait = max(1, int(reset_epoch - time.time() + 0.999))
        return Resp(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)}, JSON_CT)

    # ---- token issue
    def _issue_access(self, kind, owner, app_id, scopes, rotating, created=None):
        now = self.now()
        tnum = self.team["num"]
        if rotating:
            value = f"xoxe.xox{'b' if kind == 'bot' else 'p'}-1-{_rand(90)}"
        elif kind == "bot":
            value = f"xoxb-{tnum}-{secrets.randbelow(10**12):012d}-{_rand(24)}"
        else:
            value = f"xoxp-{tnum}-{secrets.randbelow(10**12):012d}-{tnum}-{secrets.token_hex(16)}"
        tid = self._id("tok-")
        self.tokens[tid] = {
            "id": tid,
            "kind": kind,
            "owner": owner,
            "app_id": app_id,
            "scopes": list(scopes),
            "rotating": rotating,
            "created": created if created is not None else now,
            "expires": (now + ACCESS_TTL) if rotating else None,
            "revoked": False,
            "revoked_by": None,
            "last_used": None,
            "value": value,
        }
        self.values[value] = ("access", tid)
        return tid, value

    def _issue_refresh(self, kind, owner, app_id):
        value = f"xoxe-1-{_rand(140)}"
        rid = self._id("rt-")
        self.refresh[rid] = {
            "id": rid,
            "kind": kind,
            "owner": owner,
            "app_id": app_id,
            "created": self.now(),
            "used_at": None,
            "uses": 0,
            "revoked": False,
            "value": value,
        }
        self.values[value] = ("refresh", rid)
        return rid, value

    def _refresh_dead(self, r, now):
        if r["revoked"]:
            return True
        return r["used_at"] is not None and now >= r["used_at"] + self.grace

    # ---- seeding
    def seed(self, spec):
        self._empty()
        name = spec.get("team", "acme")
        tnum = 1000000000 + secrets.randbelow(9000000000)
        self.team = {
            "id": "T" + _rand(10).upper(),
            "num": tnum,
            "name": name,
            "domain": name.lower(),
            "url": f"https://{name.lower()}.slack.com/",
        }
        self.paid = bool(spec.get("paid", True))
        self.grace = float(spec.get("refresh_grace_seconds", 0))
        now = self.now()
        out = {"team": {k: self.team[k] for k in ("id", "name", "domain", "url")}, "users": [], "apps": []}
        by_name = {}
        self.users["USLACKBOT"] = {
            "id": "USLACKBOT", "name": "slackbot", "real_name": "Slackbot", "email": None,
            "is_admin": False, "is_owner": False, "is_bot": False, "deleted": False,
            "bot_id": None, "app_id": None, "updated": int(now),
        }
        for u in spec.get("users", []):
            uid = self._id("U")
            admin = bool(u.get("admin", False))
            user = {
                "id": uid,
                "name": u["name"],
                "real_name": u.get("real_name", u["name"]),
                "email": u.get("email", f"{u['name']}@{self.team['domain']}.example"),
                "is_admin": admin,
                "is_owner": bool(u.get("owner", False)),
                "is_bot": False,
                "deleted": False,
                "bot_id": None,
                "app_id": None,
                "updated": int(now),
            }
            self.users[uid] = user
            by_name[u["name"]] = uid
            row = {"name": u["name"], "id": uid, "admin": admin}
            if u.get("user_token", True):
                scopes = u.get("scopes") or (["admin", "users:read"] if admin else ["users:read"])
                tid, value = self._issue_access("user", uid, None, scopes, False)
                row.update(token_id=tid, token=value)
            out["users"].append(row)
        first_admin = next((uid for uid, x in self.users.items() if x["is_admin"]), None)
        for a in spec.get("apps", []):
            app_id = self._id("A")
            bot_id = self._id("B")
            bot_uid = self._id("U")
            rotation = bool(a.get("rotation", False))
            scopes = list(a.get("scopes", []))
            installer = by_name.get(a.get("installed_by")) or first_admin
            installed = now - float(a.get("installed_days_ago", 0)) * 86400
            app = {
                "id": app_id,
                "name": a["name"],
                "rotation": rotation,
                "scopes": scopes,
                "client_id": f"{self.team['num']}.{secrets.randbelow(10**13):013d}",
                "client_secret": secrets.token_hex(16),
                "bot_id": bot_id,
                "bot_user_id": bot_uid,
                "installed_by": installer,
                "installed": installed,
            }
            self.apps[app_id] = app
            self.bots[bot_id] = {"id": bot_id, "name": a["name"], "app_id": app_id, "user_id": bot_uid,
                                 "deleted": False, "updated": int(now)}
            self.users[bot_uid] = {
                "id": bot_uid, "name": a["name"], "real_name": a["name"], "email": None,
                "is_admin": False, "is_owner": False, "is_bot": True, "deleted": False,
                "bot_id": bot_id, "app_id": app_id, "updated": int(now),
            }
            tid, value = self._issue_access("bot", bot_uid, app_id, scopes, rotation)
            row = {"name": a["name"], "app_id": app_id, "bot_id": bot_id, "bot_user_id": bot_uid,
                   "rotation": rotation, "token_id": tid, "token": value}
            if rotation:
                rid, rvalue = self._issue_refresh("bot", bot_uid, app_id)
                row.update(refresh_token_id=rid, refresh_token=rvalue, expires_in=ACCESS_TTL,
                           client_id=app["client_id"], client_secret=app["client_secret"])
            user_rows = []
            for uname in a.get("user_tokens", []):
                uid = by_name[uname]
                utid, uvalue = self._issue_access("user", uid, app_id, scopes, rotation)
                urow = {"user": uname, "user_id": uid, "token_id": utid, "token": uvalue}
                if rotation:
                    urid, urvalue = self._issue_refresh("user", uid, app_id)
                    urow.update(refresh_token_id=urid, refresh_token=urvalue)
                user_rows.append(urow)
            if user_rows:
                row["user_tokens"] = user_rows
            out["apps"].append(row)
            if installer:
                self.integration_logs.append({
                    "app_id": app_id,
                    "app_type": a["name"],
                    "user_id": installer,
                    "user_name": self.users[installer]["name"],
                    "date": str(int(installed)),
                    "change_type": "added",
                    "scope": ",".join(scopes),
                })
        self.snapshot = self._dump()
        return out

    # ---- request plumbing
    def _args(self, req):
        args = dict(req.query)
        ctype = (req.header("Content-Type") or "").lower()
        form_token = None
        if req.method == "POST" and req.body:
            if "application/json" in ctype:
                body = req.json()
                if not isinstance(body, dict):
                    return None, None, err("invalid_json")
                args.update({k: v for k, v in body.items()})
            else:
                form = req.form()
                form_token = form.pop("token", None)
                args.update(form)
        args.pop("token", None)  # query-string tokens are not honoured
        return args, form_token, None

    def _owner_inactive(self, t):
        u = self.users.get(t["owner"])
        return u is None or u["deleted"]

    def authenticate(self, req, form_token, allow_refresh=False):
        value = req.bearer() or form_token
        if not value:
            return None, err("not_authed")
        hit = self.values.get(value)
        if hit is None:
            return None, err("invalid_auth")
        kind, rid = hit
        now = self.now()
        if kind == "refresh":
            if not allow_refresh:
                return None, err("invalid_auth")
            r = self.refresh[rid]
            if self._refresh_dead(r, now):
                return None, err("token_revoked")
            return ("refresh", r), None
        t = self.tokens[rid]
        if t["revoked"]:
            return None, err("token_revoked")
        if self._owner_inactive(t):
            return None, err("account_inactive")
        if t["expires"] and now >= t["expires"]:
            return None, err("token_expired")
        t["last_used"] = now
        if t["kind"] == "user":
            key = (t["owner"], "127.0.0.1", req.header("User-Agent") or "")
            e = self.access_logs.get(key)
            if e is None:
                self.access_logs[key] = {"user_id": t["owner"], "username": self.users[t["owner"]]["name"],
                                         "date_first": int(now), "date_last": int(now), "count": 1,
                                         "ip": key[1], "user_agent": key[2], "isp": None,
                                         "country": None, "region": None}
            else:
                e["date_last"] = int(now)
                e["count"] += 1
        return ("access", t), None

    def api(self, req):
        method = req.params["method"]
        handler = {
            "api.test": self.m_api_test,
            "auth.test": self.m_auth_test,
            "auth.revoke": self.m_auth_revoke,
            "oauth.v2.access": self.m_oauth_access,
            "users.list": self.m_users_list,
            "users.info": self.m_users_info,
            "bots.info": self.m_bots_info,
            "team.integrationLogs": self.m_integration_logs,
            "team.accessLogs": self.m_access_logs,
        }.get(method)
        if handler is None:
            return err("unknown_method", status=404, req_method=method)
        args, form_token, bad = self._args(req)
        if bad is not None:
            return bad
        if self.team is None and method != "api.test":
            return err("invalid_auth")
        return handler(req, args, form_token)

    def _need_scope(self, t, scope):
        if scope in t["scopes"]:
            return None
        return err("missing_scope", needed=scope, provided=",".join(t["scopes"]))

    # ---- methods
    def m_api_test(self, req, args, form_token):
        args.pop("token", None)
        return ok(args=args) if args else ok()

    def m_auth_test(self, req, args, form_token):
        who, bad = self.authenticate(req, form_token)
        if bad:
            return bad
        t = who[1]
        u = self.users[t["owner"]]
        body = {"url": self.team["url"], "team": self.team["name"], "user": u["name"],
                "team_id": self.team["id"], "user_id": u["id"]}
        if t["kind"] == "bot":
            body["bot_id"] = u["bot_id"]
            body["app_id"] = t["app_id"]
        body["is_enterprise_install"] = False
        if t["expires"]:
            body["expires_in"] = max(0, int(t["expires"] - self.now()))
        return ok(**body)

    def m_auth_revoke(self, req, args, form_token):
        who, bad = self.authenticate(req, form_token, allow_refresh=True)
        if bad:
            return bad
        if _truthy(args.get("test", "")):
            return ok(revoked=False)
        kind, rec = who
        if kind == "refresh":
            rec["revoked"] = True
            return ok(revoked=True)
        rec["revoked"] = True
        rec["revoked_by"] = "auth.revoke"
        if rec["kind"] == "bot" and not rec["rotating"]:
            # "Revoking a bot user token will not uninstall the bot user or
            # the app. It will, however, deactivate the bot user"
            bu = self.users.get(rec["owner"])
            if bu:
                bu["deleted"] = True
                bu["updated"] = int(self.now())
                if bu["bot_id"] in self.bots:
                    self.bots[bu["bot_id"]]["deleted"] = True
                    self.bots[bu["bot_id"]]["updated"] = int(self.now())
        return ok(revoked=True)

    def m_oauth_access(self, req, args, form_token):
        cid, secret = args.get("client_id"), args.get("client_secret")
        basic = req.bearer("Basic")
        if basic and not cid:
            try:
                cid, secret = base64.b64decode(basic).decode().split(":", 1)
            except Exception:  # noqa: BLE001
                return err("invalid_client_id")
        now = self.now()
        call = {"t": iso(now), "client_id": cid, "result": None}
        self.refresh_calls.append(call)
        app = next((a for a in self.apps.values() if a["client_id"] == cid), None)
        if app is None:
            call["result"] = "invalid_client_id"
            return err("invalid_client_id")
        if secret != app["client_secret"]:
            call["result"] = "bad_client_secret"
            return err("bad_client_secret")
        grant = args.get("grant_type")
        if grant != "refresh_token":
            call["result"] = "invalid_code" if grant in (None, "", "authorization_code") else "invalid_grant_type"
            return err(call["result"])
        hit = self.values.get(args.get("refresh_token") or "")
        r = self.refresh.get(hit[1]) if hit and hit[0] == "refresh" else None
        if r is None or r["app_id"] != app["id"] or self._refresh_dead(r, now):
            call["result"] = "invalid_refresh_token"
            return err("invalid_refresh_token")
        if r["used_at"] is None:
            r["used_at"] = now
        r["uses"] += 1
        if self.grace <= 0:
            r["revoked"] = True
        call["refresh_token_id"] = r["id"]
        tid, value = self._issue_access(r["kind"], r["owner"], app["id"], app["scopes"], True)
        rid, rvalue = self._issue_refresh(r["kind"], r["owner"], app["id"])
        call.update(result="ok", token_id=tid, new_refresh_token_id=rid)
        # "we will enforce a limit of 2 active tokens ... the oldest
        # additional token will be revoked"
        live = sorted(
            (t for t in self.tokens.values()
             if t["app_id"] == app["id"] and t["owner"] == r["owner"] and t["kind"] == r["kind"]
             and not t["revoked"] and not (t["expires"] and now >= t["expires"])),
            key=lambda t: (t["created"], t["id"]),
        )
        for t in live[:-2]:
            t["revoked"] = True
            t["revoked_by"] = "rotation_limit"
        body = {
            "app_id": app["id"],
            "access_token": value,
            "token_type": r["kind"],
            "scope": ",".join(app["scopes"]),
            "expires_in": ACCESS_TTL,
            "refresh_token": rvalue,
            "team": {"id": self.team["id"], "name": self.team["name"]},
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if r["kind"] == "bot":
            body["bot_user_id"] = r["owner"]
            body["authed_user"] = {"id": app["installed_by"]}
        else:
            body["authed_user"] = {"id": r["owner"]}
        return ok(**body)

    def _member(self, u):
        m = {
            "id": u["id"],
            "team_id": self.team["id"],
            "name": u["name"],
            "deleted": u["deleted"],
            "real_name": u["real_name"],
            "is_admin": u["is_admin"],
            "is_owner": u["is_owner"],
            "is_bot": u["is_bot"],
            "is_app_user": False,
            "updated": u["updated"],
            "profile": {"real_name": u["real_name"], "display_name": u["name"], "team": self.team["id"]},
        }
        if u["is_bot"]:
            m["profile"].update(bot_id=u["bot_id"], api_app_id=u["app_id"], always_active=False)
        elif u["email"]:
            m["profile"]["email"] = u["email"]
        return m

    def m_users_list(self, req, args, form_token):
        who, bad = self.authenticate(req, form_token)
        if bad:
            return bad
        bad = self._need_scope(who[1], "users:read")
        if bad:
            return bad
        ids = list(self.users)
        start = 0
        if args.get("cursor"):
            key = _dec_cursor(args["cursor"], "user")
            if key not in self.users:
                return err("invalid_cursor")
            start = ids.index(key)
        try:
            limit = int(args.get("limit") or 0)
        except ValueError:
            return err("invalid_arguments")
        page = ids[start:] if limit <= 0 else ids[start:start + limit]
        nxt = ""
        if limit > 0 and start + limit < len(ids):
            nxt = _enc_cursor("user", ids[start + limit])
        return ok(members=[self._member(self.users[i]) for i in page], cache_ts=int(self.now()),
                  response_metadata={"next_cursor": nxt})

    def m_users_info(self, req, args, form_token):
        who, bad = self.authenticate(req, form_token)
        if bad:
            return bad
        bad = self._need_scope(who[1], "users:read")
        if bad:
            return bad
        u = self.users.get(args.get("user", ""))
        if u is None:
            return err("user_not_found")
        return ok(user=self._member(u))

    def m_bots_info(self, req, args, form_token):
        who, bad = self.authenticate(req, form_token)
        if bad:
            return bad
        t = who[1]
        bad = self._need_scope(t, "users:read")
        if bad:
            return bad
        bid = args.get("bot")
        if not bid and t["kind"] == "bot":
            bid = self.users[t["owner"]]["bot_id"]
        b = self.bots.get(bid or "")
        if b is None:
            return err("bot_not_found")
        return ok(bot={
            "id": b["id"], "deleted": b["deleted"], "name": b["name"], "updated": b["updated"],
            "app_id": b["app_id"], "user_id": b["user_id"],
            "icons": {"image_36": "https://a.slack-edge.com/sim/36.png",
                      "image_48": "https://a.slack-edge.com/sim/48.png",
                      "image_72": "https://a.slack-edge.com/sim/72.png"},
        })

    def _admin_token(self, req, form_token):
        who, bad = self.authenticate(req, form_token)
        if bad:
            return None, bad
        t = who[1]
        if t["kind"] != "user":
            return None, err("not_allowed_token_type")
        bad = self._need_scope(t, "admin")
        if bad:
            return None, bad
        return t, None

    @staticmethod
    def _classic_page(items, args):
        try:
            count = max(1, min(1000, int(args.get("count") or 100)))
            page = max(1, int(args.get("page") or 1))
        except ValueError:
            return None, err("invalid_arguments")
        pages = max(1, -(-len(items) // count))
        chunk = items[(page - 1) * count: page * count]
        return (chunk, {"count": count, "total": len(items), "page": page, "pages": pages}), None

    def m_integration_logs(self, req, args, form_token):
        _, bad = self._admin_token(req, form_token)
        if bad:
            return bad
        logs = list(reversed(self.integration_logs))
        if args.get("app_id"):
            logs = [x for x in logs if x.get("app_id") == args["app_id"]]
        if args.get("change_type"):
            logs = [x for x in logs if x["change_type"] == args["change_type"]]
        if args.get("user"):
            logs = [x for x in logs if x["user_id"] == args["user"]]
        res, bad = self._classic_page(logs, args)
        if bad:
            return bad
        return ok(logs=res[0], paging=res[1])

    def m_access_logs(self, req, args, form_token):
        _, bad = self._admin_token(req, form_token)
        if bad:
            return bad
        if not self.paid:
            return err("paid_only")
        logins = sorted(self.access_logs.values(), key=lambda e: (-e["date_last"], e["user_id"], e["user_agent"]))
        before = args.get("before")
        if before and before != "now":
            try:
                logins = [e for e in logins if e["date_first"] <= int(before)]
            except ValueError:
                return err("invalid_arguments")
        if args.get("limit"):
            try:
                limit = int(args["limit"])
            except ValueError:
                return err("invalid_limit")
            if limit < 1 or limit > 1000:
                return err("invalid_limit")
            start = 0
            if args.get("cursor"):
                key = _dec_cursor(args["cursor"], "login")
                if key is None or not key.isdigit() or int(key) > len(logins):
                    return err("invalid_cursor")
                start = int(key)
            nxt = _enc_cursor("login", str(start + limit)) if start + limit < len(logins) else ""
            return ok(logins=logins[start:start + limit], response_metadata={"next_cursor": nxt})
        res, bad = self._classic_page(logins, args)
        if bad:
            return bad
        return ok(logins=res[0], paging=res[1])

    # ---- admin
    def admin_extra(self, req):
        p = req.path
        with self.lock:
            if p == "/_sim/seed" and req.method == "POST":
                spec = req.json()
                if not isinstance(spec, dict):
                    return Resp.json(400, {"error": "seed body must be a JSON object"})
                try:
                    return Resp.json(200, self.seed(spec))
                except (KeyError, TypeError, ValueError) as e:
                    return Resp.json(400, {"error": f"bad seed: {type(e).__name__}: {e}"})
            if p == "/_sim/deactivate" and req.method == "POST":
                who = (req.json() or {}).get("user")
                u = self.users.get(who) or next((x for x in self.users.values() if x["name"] == who), None)
                if u is None:
                    return Resp.json(404, {"error": "no such user"})
                u["deleted"] = True
                u["updated"] = int(self.now())
                return Resp.json(200, {"id": u["id"], "deleted": True})
            if p == "/_sim/issue_token" and req.method == "POST":
                who = (req.json() or {}).get("user")
                u = self.users.get(who) or next((x for x in self.users.values() if x["name"] == who), None)
                if u is None:
                    return Resp.json(404, {"error": "no such user"})
                mine = sorted((t for t in self.tokens.values() if t["owner"] == u["id"] and not t["rotating"]),
                              key=lambda t: (t["created"], t["id"]))
                if not mine:
                    return Resp.json(400, {"error": "the member holds no non-rotating token to re-issue"})
                last = mine[-1]
                if u["is_bot"]:
                    for t in mine:
                        if not t["revoked"]:
                            t["revoked"], t["revoked_by"] = True, "reinstall"
                    u["deleted"] = False
                    if u["bot_id"] in self.bots:
                        self.bots[u["bot_id"]]["deleted"] = False
                tid, value = self._issue_access(last["kind"], u["id"], last["app_id"], last["scopes"], False)
                return Resp.json(200, {"token_id": tid, "token": value})
            if p == "/_sim/clock" and req.method == "POST":
                self.clock += float((req.json() or {}).get("advance", 0))
                return Resp.json(200, {"now": iso(self.now()), "offset": self.clock})
        return None


if __name__ == "__main__":
    SlackSim().serve()
