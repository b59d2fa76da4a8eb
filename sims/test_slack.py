"""Tests of the Slack simulator (sims/slack.py), started as a real subprocess.

Run: cd /work/main && python3 -m unittest sims/test_slack.py -v
"""

import base64
import http.client
import json
import os
import subprocess
import sys
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

SEED = {
    "team": "acme",
    "users": [{"name": "alice", "admin": True}, {"name": "bob"}],
    "apps": [
        {"name": "pagerduty-bot", "rotation": False, "scopes": ["chat:write"]},
        {"name": "deploy-bot", "rotation": True, "scopes": ["chat:write", "channels:read"]},
        {"name": "reader-bot", "rotation": False, "scopes": ["users:read"]},
    ],
}


class SimProcess:
    def __init__(self, script):
        self.proc = subprocess.Popen(
            [sys.executable, "-u", os.path.join(HERE, script), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"{script} did not start: {line!r} {self.proc.stderr.read()}")
        self.base = "http://" + line.strip().rsplit(" ", 1)[1]

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def request(self, method, path, body=None, headers=None, form=None):
        data = None
        hdrs = dict(headers or {})
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw, status, rh = r.read(), r.status, r.headers
        except urllib.error.HTTPError as e:
            raw, status, rh = e.read(), e.code, e.headers
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return status, rh, parsed

    def admin(self, what, body=None):
        status, _, parsed = self.request("POST" if body is not None else "GET", "/_sim/" + what, body=body)
        assert status == 200, (what, status, parsed)
        return parsed


class SlackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = SimProcess("slack.py")

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.seed = self.sim.admin("seed", SEED)
        self.alice = self.seed["users"][0]["token"]
        self.apps = {a["name"]: a for a in self.seed["apps"]}

    def call(self, method, token=None, http="POST", form=None, body=None, query=None, headers=None):
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = "Bearer " + token
        path = "/api/" + method + ("?" + urllib.parse.urlencode(query) if query else "")
        if http == "POST" and form is None and body is None:
            form = {}
        return self.sim.request(http, path, body=body, headers=hdrs, form=form)

    def slack(self, method, token=None, **kw):
        status, _, body = self.call(method, token, **kw)
        self.assertEqual(status, 200, body)
        return body

    # ---- auth.test
    def test_auth_test_shapes(self):
        b = self.slack("auth.test", self.apps["pagerduty-bot"]["token"])
        self.assertTrue(b["ok"])
        for k in ("url", "team", "user", "team_id", "user_id", "bot_id"):
            self.assertIn(k, b)
        self.assertEqual(b["url"], "https://acme.slack.com/")
        self.assertEqual(b["bot_id"], self.apps["pagerduty-bot"]["bot_id"])
        u = self.slack("auth.test", self.alice)
        self.assertEqual((u["user"], u["user_id"]), ("alice", self.seed["users"][0]["id"]))
        self.assertNotIn("bot_id", u)
        r = self.slack("auth.test", self.apps["deploy-bot"]["token"])
        self.assertTrue(0 < r["expires_in"] <= 43200)

    def test_token_transports(self):
        tok = self.apps["pagerduty-bot"]["token"]
        self.assertTrue(self.slack("auth.test", form={"token": tok})["ok"])  # legacy POST field
        self.assertTrue(self.slack("auth.test", tok, http="GET")["ok"])
        self.assertTrue(self.slack("auth.test", tok, body={})["ok"])  # JSON body
        # a token only in the query string is not honoured
        self.assertEqual(self.slack("auth.test", http="GET", query={"token": tok})["error"], "not_authed")

    def test_refusals(self):
        self.assertEqual(self.slack("auth.test")["error"], "not_authed")
        self.assertEqual(self.slack("auth.test", "xoxb-1-2-nope")["error"], "invalid_auth")
        status, _, b = self.call("no.such.method", self.alice)
        self.assertEqual((status, b["error"]), (404, "unknown_method"))

    def test_revoke_then_proven_refused(self):
        bot = self.apps["pagerduty-bot"]
        t = self.slack("auth.revoke", bot["token"], form={"test": "1"})
        self.assertEqual(t, {"ok": True, "revoked": False})
        self.assertTrue(self.slack("auth.test", bot["token"])["ok"])
        self.assertEqual(self.slack("auth.revoke", bot["token"]), {"ok": True, "revoked": True})
        self.assertEqual(self.slack("auth.test", bot["token"]), {"ok": False, "error": "token_revoked"})
        st = self.sim.admin("state")
        rec = next(x for x in st["tokens"] if x["id"] == bot["token_id"])
        self.assertTrue(rec["revoked"])
        self.assertEqual(rec["revoked_by"], "auth.revoke")
        # the bot user is deactivated (admin-side view)
        reader = self.apps["reader-bot"]["token"]
        members = self.slack("users.list", reader)["members"]
        bu = next(m for m in members if m["id"] == bot["bot_user_id"])
        self.assertTrue(bu["deleted"])
        self.assertTrue(self.slack("bots.info", reader, form={"bot": bot["bot_id"]})["bot"]["deleted"])
        # reset brings the seeded state back
        self.sim.admin("reset", {})
        self.assertTrue(self.slack("auth.test", bot["token"])["ok"])

    def test_deactivated_user_account_inactive(self):
        self.sim.admin("deactivate", {"user": "alice"})
        self.assertEqual(self.slack("auth.test", self.alice), {"ok": False, "error": "account_inactive"})
        st = self.sim.admin("state")
        self.assertTrue(next(u for u in st["users"] if u["name"] == "alice")["deleted"])

    def refresh(self, app, refresh_token, secret=None, **extra):
        form = {"client_id": app["client_id"], "client_secret": secret or app["client_secret"],
                "grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
        return self.slack("oauth.v2.access", form=form)

    def test_rotation_single_use_refresh_and_expiry(self):
        app = self.apps["deploy-bot"]
        self.assertTrue(app["token"].startswith("xoxe.xoxb-"))
        self.assertTrue(app["refresh_token"].startswith("xoxe-1-"))
        r = self.refresh(app, app["refresh_token"])
        self.assertTrue(r["ok"], r)
        self.assertEqual((r["token_type"], r["expires_in"]), ("bot", 43200))
        self.assertTrue(r["access_token"].startswith("xoxe.xoxb-1-"))
        self.assertTrue(r["refresh_token"].startswith("xoxe-1-"))
        self.assertNotEqual(r["access_token"], app["token"])
        # the new token works, and the previous one stays valid until it expires
        self.assertTrue(self.slack("auth.test", r["access_token"])["ok"])
        self.assertTrue(self.slack("auth.test", app["token"])["ok"])
        # a refresh token is single-use
        again = self.refresh(app, app["refresh_token"])
        self.assertEqual(again, {"ok": False, "error": "invalid_refresh_token"})
        st = self.sim.admin("state")
        used = next(x for x in st["refresh_tokens"] if x["id"] == app["refresh_token_id"])
        self.assertTrue(used["used"] and used["revoked"])
        # after 12 h the access tokens expire
        self.sim.admin("clock", {"advance": 43201})
        self.assertEqual(self.slack("auth.test", app["token"]), {"ok": False, "error": "token_expired"})
        self.assertEqual(self.slack("auth.test", r["access_token"])["error"], "token_expired")
        # the newest refresh token still mints
        r2 = self.refresh(app, r["refresh_token"])
        self.assertTrue(self.slack("auth.test", r2["access_token"])["ok"])

    def test_oauth_errors_and_basic_client_auth(self):
        app = self.apps["deploy-bot"]
        self.assertEqual(self.refresh(app, app["refresh_token"], secret="wrong")["error"], "bad_client_secret")
        form = {"client_id": "1.2", "client_secret": "x", "grant_type": "refresh_token",
                "refresh_token": app["refresh_token"]}
        self.assertEqual(self.slack("oauth.v2.access", form=form)["error"], "invalid_client_id")
        self.assertEqual(self.refresh(app, app["refresh_token"], grant_type="password")["error"], "invalid_grant_type")
        self.assertEqual(self.refresh(app, "xoxe-1-nope")["error"], "invalid_refresh_token")
        basic = base64.b64encode(f"{app['client_id']}:{app['client_secret']}".encode()).decode()
        r = self.slack("oauth.v2.access", headers={"Authorization": "Basic " + basic},
                       form={"grant_type": "refresh_token", "refresh_token": app["refresh_token"]})
        self.assertTrue(r["ok"], r)

    def test_two_active_token_limit(self):
        app = self.apps["deploy-bot"]
        r1 = self.refresh(app, app["refresh_token"])
        r2 = self.refresh(app, r1["refresh_token"])
        # three unexpired tokens would exist: the oldest (the seeded one) is revoked
        self.assertEqual(self.slack("auth.test", app["token"])["error"], "token_revoked")
        self.assertTrue(self.slack("auth.test", r1["access_token"])["ok"])
        self.assertTrue(self.slack("auth.test", r2["access_token"])["ok"])
        st = self.sim.admin("state")
        self.assertEqual(next(x for x in st["tokens"] if x["id"] == app["token_id"])["revoked_by"], "rotation_limit")

    def test_refresh_grace_period(self):
        seed = dict(SEED, refresh_grace_seconds=30)
        app = {a["name"]: a for a in self.sim.admin("seed", seed)["apps"]}["deploy-bot"]
        self.assertTrue(self.refresh(app, app["refresh_token"])["ok"])
        self.assertTrue(self.refresh(app, app["refresh_token"])["ok"])  # inside the grace
        self.sim.admin("clock", {"advance": 31})
        self.assertEqual(self.refresh(app, app["refresh_token"])["error"], "invalid_refresh_token")

    def test_rotating_user_token(self):
        seed = dict(SEED, apps=[{"name": "deploy-bot", "rotation": True, "scopes": ["chat:write"],
                                 "user_tokens": ["bob"]}])
        app = self.sim.admin("seed", seed)["apps"][0]
        ut = app["user_tokens"][0]
        self.assertTrue(ut["token"].startswith("xoxe.xoxp-1-"))
        self.assertEqual(self.slack("auth.test", ut["token"])["user"], "bob")
        r = self.refresh(app, ut["refresh_token"])
        self.assertEqual((r["token_type"], r["authed_user"]["id"]), ("user", ut["user_id"]))
        self.assertTrue(r["access_token"].startswith("xoxe.xoxp-1-"))
        self.sim.admin("deactivate", {"user": "bob"})
        self.assertEqual(self.slack("auth.test", r["access_token"])["error"], "account_inactive")

    def test_revoke_refresh_token(self):
        app = self.apps["deploy-bot"]
        self.assertEqual(self.slack("auth.revoke", app["refresh_token"]), {"ok": True, "revoked": True})
        self.assertEqual(self.refresh(app, app["refresh_token"])["error"], "invalid_refresh_token")
        self.assertTrue(self.slack("auth.test", app["token"])["ok"])  # the installation stays

    def test_users_list_cursor_paging(self):
        seed = dict(SEED, users=SEED["users"] + [{"name": f"u{i}"} for i in range(5)])
        s = self.sim.admin("seed", seed)
        apps = {a["name"]: a for a in s["apps"]}
        reader = apps["reader-bot"]["token"]
        everyone = self.slack("users.list", reader)["members"]
        self.assertEqual(len(everyone), 1 + 7 + 3)  # USLACKBOT + users + bot users
        seen, cursor, pages = [], None, 0
        while True:
            form = {"limit": "3"} if cursor is None else {"limit": "3", "cursor": cursor}
            b = self.slack("users.list", reader, form=form)
            pages += 1
            seen += [m["id"] for m in b["members"]]
            cursor = b["response_metadata"]["next_cursor"]
            if not cursor:
                break
        self.assertGreaterEqual(pages, 3)
        self.assertEqual(seen, [m["id"] for m in everyone])
        bots = [m for m in everyone if m["is_bot"]]
        self.assertEqual(len(bots), 3)
        self.assertTrue(all(m["profile"]["bot_id"].startswith("B") and m["profile"]["api_app_id"] for m in bots))
        self.assertEqual(self.slack("users.list", reader, form={"cursor": "bm9wZQ=="})["error"], "invalid_cursor")
        miss = self.slack("users.list", apps["pagerduty-bot"]["token"])
        self.assertEqual((miss["error"], miss["needed"]), ("missing_scope", "users:read"))

    def test_access_logs_cursor_paging(self):
        for ua in ("agent-a", "agent-b", "agent-c"):
            self.slack("auth.test", self.alice, headers={"User-Agent": ua})
        seen, cursor, pages = [], None, 0
        while True:
            form = {"limit": "1"} if cursor is None else {"limit": "1", "cursor": cursor}
            b = self.slack("team.accessLogs", self.alice, form=form)
            pages += 1
            seen += [(x["user_id"], x["user_agent"]) for x in b["logins"]]
            cursor = b["response_metadata"]["next_cursor"]
            if not cursor:
                break
        self.assertGreaterEqual(pages, 4)
        self.assertTrue({"agent-a", "agent-b", "agent-c"} <= {ua for _, ua in seen})
        classic = self.slack("team.accessLogs", self.alice, form={"count": "2", "page": "1"})
        self.assertEqual(classic["paging"]["page"], 1)
        self.assertGreaterEqual(classic["paging"]["pages"], 2)
        bob = self.seed["users"][1]["token"]
        self.assertEqual(self.slack("team.accessLogs", bob)["error"], "missing_scope")
        self.assertEqual(self.slack("team.accessLogs", self.apps["reader-bot"]["token"])["error"],
                         "not_allowed_token_type")

    def test_integration_logs(self):
        seen = []
        for page in (1, 2, 3):
            b = self.slack("team.integrationLogs", self.alice, form={"count": "1", "page": str(page)})
            self.assertEqual(b["paging"]["pages"], 3)
            seen += [x["app_id"] for x in b["logs"]]
        self.assertEqual(sorted(seen), sorted(a["app_id"] for a in self.seed["apps"]))
        self.assertEqual(b["logs"][0]["change_type"], "added")

    def test_bots_info(self):
        reader = self.apps["reader-bot"]
        b = self.slack("bots.info", reader["token"], form={"bot": self.apps["deploy-bot"]["bot_id"]})["bot"]
        self.assertEqual((b["app_id"], b["deleted"]), (self.apps["deploy-bot"]["app_id"], False))
        self.assertEqual(self.slack("bots.info", reader["token"], form={"bot": "BNOPE"})["error"], "bot_not_found")

    def test_issue_token(self):
        bot = self.apps["pagerduty-bot"]
        new = self.sim.admin("issue_token", {"user": bot["bot_user_id"]})
        # a bot's re-issue is revoke + reinstall: one bot token per installation
        self.assertEqual(self.slack("auth.test", bot["token"])["error"], "token_revoked")
        b = self.slack("auth.test", new["token"])
        self.assertEqual((b["user_id"], b["app_id"]), (bot["bot_user_id"], bot["app_id"]))
        st = self.sim.admin("state")
        self.assertEqual(next(x for x in st["tokens"] if x["id"] == bot["token_id"])["revoked_by"], "reinstall")
        # a person's re-issue leaves the old user token valid
        alice = self.seed["users"][0]
        mine = self.sim.admin("issue_token", {"user": "alice"})
        self.assertTrue(mine["token"].startswith("xoxp-"))
        self.assertEqual(self.slack("auth.test", mine["token"])["user_id"], alice["id"])
        self.assertTrue(self.slack("auth.test", alice["token"])["ok"])
        status, _, body = self.sim.request("POST", "/_sim/issue_token", body={"user": "nobody"})
        self.assertEqual(status, 404)

    def test_faults(self):
        tok = self.apps["pagerduty-bot"]["token"]
        self.sim.admin("faults", {"rules": [{"path": "auth.test", "answer": "ip_allowlist", "times": 1}]})
        self.assertEqual(self.slack("auth.test", tok), {"ok": False, "error": "invalid_auth"})
        self.assertTrue(self.slack("auth.test", tok)["ok"])
        self.sim.admin("faults", {"rules": [{"path": "auth.test", "answer": "waf", "times": 1}]})
        status, h, body = self.call("auth.test", tok)
        self.assertEqual(status, 403)
        self.assertIn("text/html", h["Content-Type"])
        # the answer is lost after the server acted: the revoke happened
        self.sim.admin("faults", {"rules": [{"path": "auth.revoke", "answer": "after_act", "times": 1}]})
        with self.assertRaises((http.client.RemoteDisconnected, urllib.error.URLError, ConnectionError)):
            self.call("auth.revoke", tok)
        self.assertEqual(self.slack("auth.test", tok)["error"], "token_revoked")
        self.sim.admin("faults", {"rules": []})

    def test_rate_limit(self):
        self.sim.admin("rate", {"per_second": 1})
        try:
            codes = []
            for _ in range(4):
                status, h, body = self.call("auth.test", self.alice)
                codes.append(status)
                if status == 429:
                    self.assertEqual(body, {"ok": False, "error": "ratelimited"})
                    self.assertGreaterEqual(int(h["Retry-After"]), 1)
            self.assertIn(429, codes)
        finally:
            self.sim.admin("rate", {"per_second": None})

    def test_state_holds_no_secret(self):
        app = self.apps["deploy-bot"]
        self.refresh(app, app["refresh_token"])
        dump = json.dumps(self.sim.admin("state"))
        secrets_ = [u["token"] for u in self.seed["users"]]
        for a in self.seed["apps"]:
            secrets_ += [a["token"], a.get("refresh_token"), a.get("client_secret")]
        for s in filter(None, secrets_):
            self.assertNotIn(s, dump)
        self.assertNotIn("xoxe-1-", dump)
        self.assertNotIn("xoxb-", dump)
        self.assertNotIn("xoxp-", dump)


if __name__ == "__main__":
    unittest.main()
