"""Tests of the Okta simulator (sims/okta.py), run as a real server.

    cd /work/main && python3 -m unittest sims/test_okta.py -v

Each test starts from `POST /_sim/reset` on one simulator process started for
the module on a free port.
"""

import base64
import http.client
import json
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = None
BASE = None

ERROR_KEYS = {"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"}


def setUpModule():
    global SIM, BASE
    SIM = subprocess.Popen(
        [sys.executable, "-u", os.path.join(HERE, "okta.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = SIM.stdout.readline()
    m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        SIM.kill()
        raise RuntimeError(f"simulator did not start: {line!r} {SIM.stderr.read()!r}")
    BASE = f"http://127.0.0.1:{m.group(1)}"


def tearDownModule():
    SIM.terminate()
    try:
        SIM.wait(5)
    except subprocess.TimeoutExpired:
        SIM.kill()
    SIM.stdout.close()
    SIM.stderr.close()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def call(method, path, token=None, body=None, headers=None, form=None, raw_auth=None):
    """(status, headers, parsed body or text). `path` may be an absolute URL."""
    url = path if path.startswith("http") else BASE + path
    h = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        h["Content-Type"] = "application/x-www-form-urlencoded"
    if method in ("POST", "PUT") and data is None:
        data = b""
    if token is not None:
        h["Authorization"] = "SSWS " + token
    if raw_auth is not None:
        h["Authorization"] = raw_auth
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with OPENER.open(req, timeout=10) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    text = raw.decode()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return status, hdrs, parsed


def admin(method, what, body=None):
    s, _, v = call(method, "/_sim/" + what, body=body)
    assert s == 200, (what, s, v)
    return v


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def next_link(headers):
    for part in (headers.get("Link") or "").split(","):
        m = re.match(r'\s*<([^>]+)>;\s*rel="next"', part)
        if m:
            return m.group(1)
    return None


class OktaSimTest(unittest.TestCase):
    def setUp(self):
        admin("POST", "reset")
        v = admin(
            "POST",
            "seed",
            {
                "users": [
                    {"login": "svc-keysweep@example.com", "roles": ["SUPER_ADMIN"]},
                    {"login": "org-admin@example.com", "roles": ["ORG_ADMIN"]},
                    {"login": "reader@example.com", "roles": ["READ_ONLY_ADMIN"]},
                    {"login": "plain@example.com", "roles": []},
                ],
                "tokens": [
                    {"user": "svc-keysweep@example.com", "name": "keysweep"},
                    {"user": "org-admin@example.com", "name": "org"},
                    {"user": "reader@example.com", "name": "reader"},
                    {"user": "plain@example.com", "name": "plain"},
                ],
                "apps": [{"label": "smartsheet-sync", "secrets": 1}],
            },
        )
        self.users = {u["login"]: u["id"] for u in v["users"]}
        self.tok = {t["name"]: t for t in v["tokens"]}
        self.admin_token = self.tok["keysweep"]["value"]
        self.app = v["apps"][0]

    def assertOktaError(self, status, body, want_status, code):
        self.assertEqual(status, want_status, body)
        self.assertIsInstance(body, dict, body)
        self.assertEqual(set(body), ERROR_KEYS, body)
        self.assertEqual(body["errorCode"], code)
        self.assertEqual(body["errorLink"], code)
        self.assertTrue(body["errorId"].startswith("oae"), body)
        self.assertIsInstance(body["errorCauses"], list)

    # ------------------------------------------------------------------ auth
    def test_auth_and_invalid_token(self):
        s, h, me = call("GET", "/api/v1/users/me", self.admin_token)
        self.assertEqual(s, 200, me)
        self.assertTrue(h["Content-Type"].startswith("application/json"))
        self.assertEqual(me["id"], self.users["svc-keysweep@example.com"])
        self.assertEqual(me["status"], "ACTIVE")
        self.assertEqual(me["profile"]["login"], "svc-keysweep@example.com")
        self.assertEqual(me["profile"]["email"], "svc-keysweep@example.com")
        s, _, u = call("GET", f"/api/v1/users/{me['id']}", self.admin_token)
        self.assertEqual((s, u["id"]), (200, me["id"]))
        s, _, roles = call("GET", f"/api/v1/users/{me['id']}/roles", self.admin_token)
        self.assertEqual(s, 200)
        self.assertEqual([r["type"] for r in roles], ["SUPER_ADMIN"])
        self.assertEqual(roles[0]["assignmentType"], "USER")
        s, _, roles = call("GET", f"/api/v1/users/{self.users['plain@example.com']}/roles", self.admin_token)
        self.assertEqual((s, roles), (200, []))

        for auth in [None, "SSWS 00notatoken", "Bearer " + self.admin_token, "SSWS "]:
            s, h, body = call("GET", "/api/v1/users/me", raw_auth=auth)
            self.assertOktaError(s, body, 401, "E0000011")
            self.assertEqual(body["errorSummary"], "Invalid token provided")
            self.assertEqual(body["errorCauses"], [])
            self.assertTrue(h["Content-Type"].startswith("application/json"))
        s, _, body = call("GET", "/api/v1/users/00u000000000nobody", self.admin_token)
        self.assertOktaError(s, body, 404, "E0000007")
        s, _, body = call("GET", "/api/v1/nothing-here", self.admin_token)
        self.assertOktaError(s, body, 404, "E0000008")

    def test_token_and_secret_values_look_like_oktas(self):
        v = self.tok["keysweep"]
        self.assertRegex(v["value"], r"^00[A-Za-z0-9_-]{40}$")
        self.assertRegex(v["id"], r"^00T[A-Za-z0-9]{17}$")
        self.assertRegex(self.app["id"], r"^0oa[A-Za-z0-9]{17}$")
        self.assertEqual(self.app["client_id"], self.app["id"])
        self.assertRegex(self.app["secrets"][0]["client_secret"], r"^[A-Za-z0-9_-]{64}$")
        self.assertRegex(self.app["secrets"][0]["id"], r"^ocs[A-Za-z0-9]{17}$")
        s, _, t = call("GET", f"/api/v1/api-tokens/{v['id']}", self.admin_token)
        self.assertEqual(s, 200, t)
        for k in ["id", "name", "userId", "clientName", "created", "lastUpdated", "expiresAt", "tokenWindow", "network", "_links"]:
            self.assertIn(k, t)
        self.assertEqual(t["network"], {"connection": "ANYWHERE"})
        self.assertEqual(t["tokenWindow"], "P30D")
        self.assertEqual(t["clientName"], "Okta API")
        self.assertEqual(t["_links"]["self"]["href"], f"{BASE}/api/v1/api-tokens/{v['id']}")

    def test_sliding_expiry(self):
        v = admin("POST", "seed", {"tokens": [{"user": "svc-keysweep@example.com", "name": "short", "token_window": "P1D"}]})
        tid, value = v["tokens"][0]["id"], v["tokens"][0]["value"]

        def meta():
            s, _, t = call("GET", f"/api/v1/api-tokens/{tid}", self.admin_token)
            self.assertEqual(s, 200, t)
            return t

        first = meta()
        self.assertEqual(first["tokenWindow"], "P1D")
        self.assertEqual(self.parse(first["expiresAt"]) - self.parse(first["lastUpdated"]), 86400)
        admin("POST", "clock", {"advance_seconds": 20 * 3600})
        self.assertEqual(call("GET", "/api/v1/users/me", value)[0], 200)  # slides to now + 1 day
        slid = meta()
        self.assertAlmostEqual(self.parse(slid["expiresAt"]) - self.parse(first["expiresAt"]), 20 * 3600, delta=2)
        admin("POST", "clock", {"advance_seconds": 20 * 3600})  # 40 h after creation, 20 h after use
        self.assertEqual(call("GET", "/api/v1/users/me", value)[0], 200)
        admin("POST", "clock", {"advance_seconds": 25 * 3600})  # 25 h without use
        s, _, body = call("GET", "/api/v1/users/me", value)
        self.assertOktaError(s, body, 401, "E0000011")
        s, _, body = call("GET", f"/api/v1/api-tokens/{tid}", self.admin_token)
        self.assertOktaError(s, body, 404, "E0000007")
        st = {t["id"]: t for t in admin("GET", "state")["tokens"]}[tid]
        self.assertEqual((st["expired"], st["revoked"], st["valid"]), (True, False, False))
        # A token seeded 40 days ago and never used is already past its 30 days.
        old = admin(
            "POST",
            "seed",
            {"tokens": [{"user": "svc-keysweep@example.com", "name": "stale", "created": "2020-01-01T00:00:00.000Z", "last_used": None}]},
        )["tokens"][0]
        self.assertEqual(call("GET", "/api/v1/users/me", old["value"])[0], 401)

    @staticmethod
    def parse(s):
        from datetime import datetime

        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

    # --------------------------------------------------------------- listing
    def test_listing_pages_through_link_headers(self):
        admin("POST", "seed", {"tokens": [{"user": "plain@example.com", "name": f"bulk-{i}"} for i in range(7)]})
        # Make the listing change between pages: a revoked item must not break the cursor.
        url, pages, seen = "/api/v1/api-tokens?limit=3", 0, []
        while url:
            s, h, body = call("GET", url, self.admin_token)
            self.assertEqual(s, 200, body)
            self.assertIn('rel="self"', h["Link"])
            self.assertLessEqual(len(body), 3)
            seen += [t["id"] for t in body]
            pages += 1
            nxt = next_link(h)
            if nxt:
                self.assertTrue(nxt.startswith(BASE + "/api/v1/api-tokens?"), nxt)
                self.assertIn("after=", nxt)
                self.assertIn("limit=3", nxt)
            if pages == 2:  # plain, bulk-0, bulk-1: revoke bulk-1 between pages
                self.assertEqual(call("DELETE", f"/api/v1/api-tokens/{body[-1]['id']}", self.admin_token)[0], 204)
            url = nxt
        self.assertGreaterEqual(pages, 3)
        state = admin("GET", "state")
        valid = [t["id"] for t in state["tokens"] if t["valid"]]
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual(len(seen), 11)  # 4 + 7, one revoked after it was listed
        self.assertEqual(set(valid), set(seen) - {t["id"] for t in state["tokens"] if t["revoked"]})
        s, h, body = call("GET", "/api/v1/api-tokens?q=bulk&limit=200", self.admin_token)
        self.assertEqual((s, len(body), next_link(h)), (200, 6, None))
        s, _, body = call("GET", "/api/v1/api-tokens?after=garbage", self.admin_token)
        self.assertOktaError(s, body, 400, "E0000029")

    def test_apps_page_and_show_client_id(self):
        admin("POST", "seed", {"apps": [{"label": f"svc-{i}", "secrets": 0} for i in range(6)]})
        url, labels, pages = "/api/v1/apps?limit=2", [], 0
        while url:
            s, h, body = call("GET", url, self.admin_token)
            self.assertEqual(s, 200, body)
            labels += [a["label"] for a in body]
            pages += 1
            url = next_link(h)
        self.assertEqual(pages, 4)
        self.assertEqual(labels, ["smartsheet-sync"] + [f"svc-{i}" for i in range(6)])
        s, _, a = call("GET", f"/api/v1/apps/{self.app['id']}", self.admin_token)
        self.assertEqual(s, 200)
        self.assertEqual(a["credentials"]["oauthClient"]["client_id"], self.app["client_id"])
        self.assertNotIn("client_secret", a["credentials"]["oauthClient"])
        self.assertEqual(a["settings"]["oauthClient"]["application_type"], "service")
        s, _, body = call("GET", "/api/v1/apps/0oa0000000000missing", self.admin_token)
        self.assertOktaError(s, body, 404, "E0000007")

    # -------------------------------------------------------------- revoking
    def test_revoke_by_id_and_current(self):
        org = self.tok["org"]
        s, _, body = call("DELETE", f"/api/v1/api-tokens/{org['id']}", self.admin_token)
        self.assertEqual((s, body), (204, None))
        s, _, body = call("GET", "/api/v1/users/me", org["value"])
        self.assertOktaError(s, body, 401, "E0000011")
        s, _, body = call("GET", f"/api/v1/api-tokens/{org['id']}", self.admin_token)
        self.assertOktaError(s, body, 404, "E0000007")
        s, _, body = call("DELETE", f"/api/v1/api-tokens/{org['id']}", self.admin_token)
        self.assertOktaError(s, body, 404, "E0000007")
        s, _, body = call("DELETE", "/api/v1/api-tokens/00T0000000000unknown", self.admin_token)
        self.assertOktaError(s, body, 404, "E0000007")

        plain = self.tok["plain"]  # any valid token may revoke itself
        self.assertEqual(call("DELETE", "/api/v1/api-tokens/current", plain["value"])[0], 204)
        s, _, body = call("GET", "/api/v1/users/me", plain["value"])
        self.assertOktaError(s, body, 401, "E0000011")
        s, _, body = call("DELETE", "/api/v1/api-tokens/current", plain["value"])
        self.assertOktaError(s, body, 401, "E0000011")
        st = {t["id"]: t for t in admin("GET", "state")["tokens"]}
        self.assertTrue(st[org["id"]]["revoked"] and st[plain["id"]]["revoked"])
        self.assertFalse(st[self.tok["keysweep"]["id"]]["revoked"])
        s, _, body = call("GET", "/api/v1/api-tokens", self.admin_token)
        self.assertNotIn(org["id"], [t["id"] for t in body])

    def test_non_admins_get_403(self):
        for name in ["plain", "reader"]:
            value = self.tok[name]["value"]
            s, _, body = call("GET", "/api/v1/api-tokens", value)
            self.assertOktaError(s, body, 403, "E0000006")
            self.assertEqual(body["errorSummary"], "You do not have permission to perform the requested action")
            s, _, body = call("DELETE", f"/api/v1/api-tokens/{self.tok['keysweep']['id']}", value)
            self.assertOktaError(s, body, 403, "E0000006")
            self.assertEqual(call("GET", "/api/v1/users/me", value)[0], 200)
        s, _, body = call("GET", f"/api/v1/users/{self.users['svc-keysweep@example.com']}", self.tok["plain"]["value"])
        self.assertOktaError(s, body, 403, "E0000006")
        s, _, body = call("POST", f"/api/v1/apps/{self.app['id']}/credentials/secrets", self.tok["reader"]["value"], body={})
        self.assertOktaError(s, body, 403, "E0000006")
        self.assertEqual(call("GET", f"/api/v1/apps/{self.app['id']}/credentials/secrets", self.tok["reader"]["value"])[0], 200)
        self.assertEqual(call("GET", "/api/v1/api-tokens", self.tok["org"]["value"])[0], 200)
        self.assertTrue(all(t["valid"] for t in admin("GET", "state")["tokens"]))

    def test_issue_token_like_the_admin_console(self):
        v = admin("POST", "issue_token", {"user": "svc-keysweep@example.com", "name": "moveworks-2"})
        self.assertRegex(v["value"], r"^00[A-Za-z0-9_-]{40}$")
        s, _, me = call("GET", "/api/v1/users/me", v["value"])
        self.assertEqual((s, me["profile"]["login"]), (200, "svc-keysweep@example.com"))
        s, _, t = call("GET", f"/api/v1/api-tokens/{v['id']}", self.admin_token)
        self.assertEqual((s, t["name"], t["userId"]), (200, "moveworks-2", self.users["svc-keysweep@example.com"]))
        s, _, body = call("POST", "/_sim/issue_token", body={"user": "plain@example.com", "name": "x"})
        self.assertEqual(s, 400, body)

    def test_network_condition_on_a_token(self):
        v = admin(
            "POST",
            "seed",
            {"tokens": [{"user": "svc-keysweep@example.com", "name": "zoned", "network": {"connection": "ZONE", "include": ["nzo1a2b3c4d5e6f7g8h9"]}}]},
        )["tokens"][0]
        s, _, body = call("GET", "/api/v1/users/me", v["value"])
        self.assertOktaError(s, body, 403, "E0000006")
        s, _, t = call("GET", f"/api/v1/api-tokens/{v['id']}", self.admin_token)
        self.assertEqual((s, t["network"]["connection"]), (200, "ZONE"))

    # --------------------------------------------------------------- secrets
    def test_client_secret_rules(self):
        app = self.app["id"]
        path = f"/api/v1/apps/{app}/credentials/secrets"
        s, _, listed = call("GET", path, self.admin_token)
        self.assertEqual((s, len(listed)), (200, 1))
        first = listed[0]
        for k in ["id", "status", "client_secret", "secret_hash", "created", "lastUpdated", "_links"]:
            self.assertIn(k, first)
        self.assertEqual(first["status"], "ACTIVE")
        self.assertIn("deactivate", first["_links"])

        s, _, second = call("POST", path, self.admin_token, body={})
        self.assertEqual(s, 201, second)
        self.assertEqual(second["status"], "ACTIVE")
        self.assertEqual(len(second["client_secret"]), 64)
        s, _, body = call("POST", path, self.admin_token, body={})
        self.assertOktaError(s, body, 400, "E0000001")
        self.assertEqual(body["errorSummary"], "Api validation failed: OAuth2ClientSecretMediated")
        self.assertEqual(body["errorCauses"], [{"errorSummary": "You've reached the maximum number of client secrets per client."}])

        s, _, body = call("DELETE", f"{path}/{first['id']}", self.admin_token)
        self.assertOktaError(s, body, 400, "E0000001")
        self.assertIn("can't delete an active client secret", body["errorCauses"][0]["errorSummary"])

        s, _, off = call("POST", f"{path}/{first['id']}/lifecycle/deactivate", self.admin_token)
        self.assertEqual((s, off["status"]), (200, "INACTIVE"))
        self.assertEqual(set(off["_links"]), {"activate", "delete"})
        s, _, body = call("POST", f"{path}/{second['id']}/lifecycle/deactivate", self.admin_token)
        self.assertOktaError(s, body, 400, "E0000001")
        self.assertEqual(body["errorCauses"][0]["errorSummary"], "You can't deactivate the only active client secret.")
        s, _, body = call("DELETE", f"{path}/{first['id']}", self.admin_token)
        self.assertEqual((s, body), (204, None))
        s, _, body = call("GET", f"{path}/{first['id']}", self.admin_token)
        self.assertOktaError(s, body, 404, "E0000007")
        s, _, listed = call("GET", path, self.admin_token)
        self.assertEqual([x["id"] for x in listed], [second["id"]])
        s, _, on = call("POST", f"{path}/{second['id']}/lifecycle/activate", self.admin_token)
        self.assertEqual((s, on["status"]), (200, "ACTIVE"))

        s, _, mine = call("POST", path, self.admin_token, body={"client_secret": "brought-my-own-secret-0123456789", "status": "INACTIVE"})
        self.assertEqual((s, mine["status"], mine["client_secret"]), (201, "INACTIVE", "brought-my-own-secret-0123456789"))
        self.assertEqual(call("DELETE", f"{path}/{mine['id']}", self.admin_token)[0], 204)
        s, _, body = call("POST", path, self.admin_token, body={"client_secret": "short"})
        self.assertOktaError(s, body, 400, "E0000001")
        self.assertEqual([x["status"] for x in admin("GET", "state")["apps"][0]["secrets"]], ["ACTIVE"])

    def test_client_credentials(self):
        cid, old = self.app["client_id"], self.app["secrets"][0]
        token_url = "/oauth2/default/v1/token"
        form = {"grant_type": "client_credentials", "scope": "sheets.read"}
        s, h, body = call("POST", token_url, form=form, raw_auth=basic(cid, old["client_secret"]))
        self.assertEqual(s, 200, body)
        self.assertEqual((body["token_type"], body["expires_in"], body["scope"]), ("Bearer", 3600, "sheets.read"))
        self.assertEqual(len(body["access_token"].split(".")), 3)
        self.assertEqual(h["Cache-Control"], "no-store")
        s, _, body = call("POST", token_url, form=dict(form, client_id=cid, client_secret=old["client_secret"]))
        self.assertEqual(s, 200, body)  # client_secret_post

        # Rotate: second secret, deactivate the first.
        path = f"/api/v1/apps/{self.app['id']}/credentials/secrets"
        s, _, new = call("POST", path, self.admin_token, body={})
        self.assertEqual(s, 201)
        self.assertEqual(call("POST", f"{path}/{old['id']}/lifecycle/deactivate", self.admin_token)[0], 200)
        s, _, body = call("POST", token_url, form=form, raw_auth=basic(cid, old["client_secret"]))
        self.assertEqual(s, 401, body)
        self.assertEqual(body, {"error": "invalid_client", "error_description": "The client secret supplied for a confidential client is invalid."})
        s, _, body = call("POST", token_url, form=form, raw_auth=basic(cid, new["client_secret"]))
        self.assertEqual(s, 200, body)
        self.assertEqual(call("DELETE", f"{path}/{old['id']}", self.admin_token)[0], 204)

        state = admin("GET", "state")["access_tokens"]
        self.assertEqual([a["secret_id"] for a in state], [old["id"], old["id"], new["id"]])
        self.assertEqual([a["secret_deleted"] for a in state], [True, True, False])
        self.assertTrue(all(a["alive"] and a["client_id"] == cid for a in state))
        admin("POST", "clock", {"advance_seconds": 3601})
        self.assertFalse(any(a["alive"] for a in admin("GET", "state")["access_tokens"]))

        # The org authorization server refuses client-secret client credentials.
        s, _, body = call("POST", "/oauth2/v1/token", form=form, raw_auth=basic(cid, new["client_secret"]))
        self.assertEqual((s, body["error"]), (401, "invalid_client"))
        self.assertIn("private_key_jwt", body["error_description"])
        # Other refusals, each the spec's example.
        s, _, body = call("POST", token_url, form=form)
        self.assertEqual((s, body), (401, {"error": "invalid_client", "error_description": "No client credentials found"}))
        s, _, body = call("POST", token_url, form=form, raw_auth=basic("0oanobody00000000000", "x"))
        self.assertEqual((s, body["error"]), (401, "invalid_client"))
        s, _, body = call("POST", token_url, form=dict(form, client_secret=new["client_secret"]), raw_auth=basic(cid, new["client_secret"]))
        self.assertEqual((s, body["error"]), (400, "invalid_request"))
        s, _, body = call("POST", token_url, form={"grant_type": "client_credentials"}, raw_auth=basic(cid, new["client_secret"]))
        self.assertEqual((s, body["error"]), (400, "invalid_scope"))
        s, _, body = call("POST", token_url, form={"grant_type": "password", "scope": "x"}, raw_auth=basic(cid, new["client_secret"]))
        self.assertEqual((s, body["error"]), (400, "unsupported_grant_type"))

    # ----------------------------------------------------------- rate limit
    def test_rate_limit_headers_and_429(self):
        admin("POST", "rate", {"per_second": 2})
        time.sleep(1.05)
        answers = [call("GET", "/api/v1/users/me", self.admin_token) for _ in range(3)]
        (s1, h1, _), (s2, h2, _), (s3, h3, body) = answers
        self.assertEqual((s1, s2), (200, 200))
        self.assertEqual((h1["X-Rate-Limit-Limit"], h1["X-Rate-Limit-Remaining"]), ("2", "1"))
        self.assertEqual(h2["X-Rate-Limit-Remaining"], "0")
        self.assertOktaError(s3, body, 429, "E0000047")
        self.assertEqual(body["errorSummary"], "API call exceeded rate limit due to too many requests.")
        self.assertEqual((h3["X-Rate-Limit-Limit"], h3["X-Rate-Limit-Remaining"]), ("2", "0"))
        reset = int(h3["X-Rate-Limit-Reset"])
        self.assertTrue(time.time() - 1 <= reset <= time.time() + 2, reset)
        admin("POST", "rate", {"per_second": None})
        s, h, _ = call("GET", "/api/v1/users/me", self.admin_token)
        self.assertEqual(s, 200)
        self.assertNotIn("X-Rate-Limit-Limit", h)

    # --------------------------------------------------------- named faults
    def fault(self, answer, path, method=None, times=1):
        rule = {"path": path, "answer": answer, "times": times}
        if method:
            rule["method"] = method
        admin("POST", "faults", {"rules": [rule]})

    def test_named_faults(self):
        me = "/api/v1/users/me"
        self.fault("network_zone", "^/api/v1/users/me$")
        s, _, body = call("GET", me, self.admin_token)
        self.assertOktaError(s, body, 403, "E0000006")
        self.assertEqual(call("GET", me, self.admin_token)[0], 200)  # times: 1

        self.fault("network_zone", "/token$")
        cid, secret = self.app["client_id"], self.app["secrets"][0]["client_secret"]
        s, _, body = call("POST", "/oauth2/default/v1/token", form={"grant_type": "client_credentials", "scope": "x"}, raw_auth=basic(cid, secret))
        self.assertEqual(s, 403)
        self.assertEqual(body, {"error": "access_denied", "error_description": "The request is made from outside the client's permitted network zones."})

        self.fault("access_denied", me)
        s, _, body = call("GET", me, self.admin_token)
        self.assertOktaError(s, body, 403, "E0000006")

        self.fault("waf", me)
        s, h, body = call("GET", me, self.admin_token)
        self.assertEqual(s, 403)
        self.assertTrue(h["Content-Type"].startswith("text/html"))
        self.assertIn("Cloudflare", body)

        self.fault("503", me)
        s, h, _ = call("GET", me, self.admin_token)
        self.assertEqual(s, 503)
        self.assertTrue(h["Content-Type"].startswith("text/html"))

        self.fault("429", me)
        s, h, body = call("GET", me, self.admin_token)
        self.assertOktaError(s, body, 429, "E0000047")
        self.assertEqual((h["X-Rate-Limit-Limit"], h["X-Rate-Limit-Remaining"]), ("0", "0"))
        self.assertGreaterEqual(int(h["X-Rate-Limit-Reset"]), int(time.time()))

        self.fault("drop", me)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
            call("GET", me, self.admin_token)
        self.assertEqual(call("GET", me, self.admin_token)[0], 200)

        # after_act: the revocation happens, the answer is lost.
        victim = self.tok["org"]
        self.fault("after_act", "^/api/v1/api-tokens/00T", method="DELETE")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
            call("DELETE", f"/api/v1/api-tokens/{victim['id']}", self.admin_token)
        st = {t["id"]: t for t in admin("GET", "state")["tokens"]}
        self.assertTrue(st[victim["id"]]["revoked"])
        self.assertEqual(call("GET", me, victim["value"])[0], 401)
        # the base's flag form works too
        admin("POST", "faults", {"rules": [{"path": "/lifecycle/deactivate$", "after_act": True, "times": 1}]})
        path = f"/api/v1/apps/{self.app['id']}/credentials/secrets"
        self.assertEqual(call("POST", path, self.admin_token, body={})[0], 201)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
            call("POST", f"{path}/{self.app['secrets'][0]['id']}/lifecycle/deactivate", self.admin_token)
        self.assertEqual(admin("GET", "state")["apps"][0]["secrets"][0]["status"], "INACTIVE")

    def test_delay_and_skip(self):
        """A `delay` alone answers correctly, late, while other requests are
        answered meanwhile; `skip` lets the first matching requests through."""
        import threading

        me = "/api/v1/users/me"
        path = f"/api/v1/apps/{self.app['id']}/credentials/secrets"
        admin("POST", "faults", {"rules": [{"method": "POST", "path": path + "$", "delay": 1.5, "skip": 1, "times": 1}]})
        t0 = time.time()
        self.assertEqual(call("POST", path, self.admin_token, body={})[0], 201)  # skipped: at once
        self.assertLess(time.time() - t0, 1.0)
        self.assertEqual(call("DELETE", f"{path}/{self.app['secrets'][0]['id']}", self.admin_token)[0], 400)  # active
        # Two secrets now; the delayed POST still acts (and is refused: a third).
        done = {}

        def slow():
            done["status"] = call("POST", path, self.admin_token, body={})[0]
            done["t"] = time.time()

        t0 = time.time()
        th = threading.Thread(target=slow)
        th.start()
        time.sleep(0.3)
        self.assertEqual(call("GET", me, self.admin_token)[0], 200)  # not held up by the delayed one
        self.assertNotIn("status", done)
        th.join(5)
        self.assertEqual(done["status"], 400)
        self.assertGreaterEqual(done["t"] - t0, 1.5)
        log = admin("GET", "log")
        self.assertEqual([e.get("delayed") for e in log if e["method"] == "POST" and e["path"] == path], [None, 1.5])
        # times: 1 spent, and a deactivated secret is deleted at once.
        t0 = time.time()
        secrets = [x["id"] for x in admin("GET", "state")["apps"][0]["secrets"]]
        self.assertEqual(call("POST", f"{path}/{secrets[1]}/lifecycle/deactivate", self.admin_token)[0], 200)
        self.assertEqual(call("DELETE", f"{path}/{secrets[1]}", self.admin_token)[0], 204)
        self.assertEqual(call("POST", path, self.admin_token, body={})[0], 201)
        self.assertLess(time.time() - t0, 1.0)

    # ------------------------------------------------ no secret in the open
    def test_state_and_log_hold_no_secret_value(self):
        issued = admin("POST", "issue_token", {"user": "org-admin@example.com", "name": "fresh"})
        cid, secret = self.app["client_id"], self.app["secrets"][0]["client_secret"]
        s, _, tok = call("POST", "/oauth2/default/v1/token", form={"grant_type": "client_credentials", "scope": "x"}, raw_auth=basic(cid, secret))
        self.assertEqual(s, 200)
        s, _, listed = call("GET", f"/api/v1/apps/{self.app['id']}/credentials/secrets", self.admin_token)
        values = [t["value"] for t in self.tok.values()] + [issued["value"], secret, tok["access_token"], listed[0]["secret_hash"]]
        for what in ["state", "log"]:
            s, _, text = call("GET", "/_sim/" + what)
            raw = json.dumps(text)
            self.assertEqual(s, 200)
            for v in values:
                self.assertNotIn(v, raw, what)
        log = admin("GET", "log")
        self.assertTrue(any("Authorization" in e["headers"] for e in log))
        state = admin("GET", "state")
        self.assertEqual(set(state["tokens"][0]), {"id", "name", "userId", "created", "lastUpdated", "expiresAt", "tokenWindow", "network", "revoked", "expired", "valid"})
        self.assertEqual(set(state["apps"][0]["secrets"][0]), {"id", "status", "created"})

    def test_seed_is_additive_and_reset_clears(self):
        before = admin("GET", "state")
        admin("POST", "seed", {"users": [{"login": "another@example.com", "roles": ["ORG_ADMIN"]}]})
        after = admin("GET", "state")
        self.assertEqual(len(after["users"]), len(before["users"]) + 1)
        self.assertEqual(len(after["tokens"]), len(before["tokens"]))
        s, _, body = call("POST", "/_sim/seed", body={"users": [{"login": "another@example.com"}]})
        self.assertEqual(s, 400, body)
        admin("POST", "clock", {"advance_seconds": 100})
        admin("POST", "reset")
        st = admin("GET", "state")
        self.assertEqual((st["users"], st["tokens"], st["apps"], st["access_tokens"]), ([], [], [], []))
        self.assertEqual(admin("GET", "clock")["offset_seconds"], 0)
        self.assertEqual(call("GET", "/api/v1/users/me", self.admin_token)[0], 401)


if __name__ == "__main__":
    unittest.main()
