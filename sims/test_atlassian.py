"""Tests of the Atlassian Cloud simulator (sims/atlassian.py), started as a real subprocess.

Run: cd /work/main && python3 -m unittest sims/test_atlassian.py -v
"""

import base64
import json
import os
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_slack import SimProcess  # noqa: E402  (same subprocess/HTTP helper)

SEED = {
    "org": "acme",
    "users": [
        {"email": "smartsheet-svc@acme.com", "admin": True, "tokens": [
            {"label": "smartsheet", "created": "2025-01-02T03:04:05.000Z", "last_access": "2025-06-01T00:00:00Z"},
            {"label": "old-script", "created": "2024-03-01T00:00:00Z", "last_access": None},
        ]},
        {"email": "carol@acme.com", "tokens": [{"label": "laptop", "created": "2025-02-01T00:00:00Z"}]},
        {"email": "dave@acme.com", "tokens": []},
    ],
    "service_accounts": [{"name": "ci-bot", "admin": True, "credentials": 1},
                         {"name": "reporting", "admin": False, "credentials": 2}],
}


def basic(email, token):
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode()}


class AtlassianTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = SimProcess("atlassian.py")

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.sim.admin("faults", {"rules": []})
        self.s = self.sim.admin("seed", SEED)
        self.key = {"Authorization": "Bearer " + self.s["admin_api_key"]}
        self.org = self.s["org"]["id"]
        self.svc = self.s["users"][0]
        self.sas = {x["name"]: x for x in self.s["service_accounts"]}

    def get(self, path, headers=None):
        return self.sim.request("GET", path, headers=self.key if headers is None else headers)

    def myself(self, email, token):
        return self.sim.request("GET", "/rest/api/3/myself", headers=basic(email, token))

    # ---- Jira basic auth
    def test_myself_valid_and_refused(self):
        tok = self.svc["tokens"][0]
        status, _, body = self.myself(self.svc["email"], tok["value"])
        self.assertEqual(status, 200)
        self.assertEqual((body["accountId"], body["emailAddress"], body["accountType"]),
                         (self.svc["account_id"], self.svc["email"], "atlassian"))
        status, h, body = self.myself(self.svc["email"], "not-a-token")
        self.assertEqual(status, 401)
        self.assertEqual(h["X-Seraph-LoginReason"], "AUTHENTICATED_FAILED")
        status, _, _ = self.myself("nobody@acme.com", tok["value"])
        self.assertEqual(status, 401)
        status, _, _ = self.sim.request("GET", "/rest/api/3/myself")
        self.assertEqual(status, 401)
        # lastAccess moved
        st = self.sim.admin("state")
        rec = next(t for t in st["api_tokens"] if t["id"] == tok["id"])
        self.assertGreater(rec["last_access"], "2025-06-01T00:00:00")

    def test_list_delete_then_proven_refused(self):
        acct = self.svc["account_id"]
        status, _, rows = self.get(f"/users/{acct}/manage/api-tokens")
        self.assertEqual(status, 200)
        self.assertEqual(sorted(r["label"] for r in rows), ["old-script", "smartsheet"])
        smart = next(r for r in rows if r["label"] == "smartsheet")
        self.assertEqual(smart["createdAt"], "2025-01-02T03:04:05.000Z")
        self.assertIn("lastAccess", smart)
        self.assertNotIn("lastAccess", next(r for r in rows if r["label"] == "old-script"))
        for k in ("id", "label", "createdAt", "expiry"):
            self.assertIn(k, smart)
        tok = next(t for t in self.svc["tokens"] if t["id"] == smart["id"])
        status, _, _ = self.sim.request("DELETE", f"/users/{acct}/manage/api-tokens/{smart['id']}", headers=self.key)
        self.assertEqual(status, 204)
        self.assertEqual(self.myself(self.svc["email"], tok["value"])[0], 401)
        status, _, rows = self.get(f"/users/{acct}/manage/api-tokens")
        self.assertEqual([r["label"] for r in rows], ["old-script"])
        status, _, _ = self.sim.request("DELETE", f"/users/{acct}/manage/api-tokens/{smart['id']}", headers=self.key)
        self.assertEqual(status, 404)
        st = self.sim.admin("state")
        self.assertEqual(next(t for t in st["api_tokens"] if t["id"] == smart["id"])["revoked_by"], "user-management")
        self.assertEqual(st["bulk_revoke_calls"], [])

    def test_admin_key_required(self):
        acct = self.svc["account_id"]
        self.assertEqual(self.get(f"/users/{acct}/manage/api-tokens", headers={"Authorization": "Bearer nope"})[0], 401)
        self.assertEqual(self.get(f"/users/{acct}/manage/api-tokens", headers={})[0], 401)
        self.assertEqual(self.get("/users/712020:missing/manage/api-tokens")[0], 404)

    def test_issue_token_like_a_human(self):
        acct = self.s["users"][2]["account_id"]
        t = self.sim.admin("issue_token", {"account_id": acct, "label": "new-integration"})
        self.assertEqual(set(t), {"id", "value"})
        self.assertEqual(self.myself("dave@acme.com", t["value"])[0], 200)
        rows = self.get(f"/users/{acct}/manage/api-tokens")[2]
        self.assertEqual([(r["id"], r["label"]) for r in rows], [(t["id"], "new-integration")])

    def test_deactivated_account_and_expiry(self):
        carol = self.s["users"][1]
        self.assertEqual(self.myself(carol["email"], carol["tokens"][0]["value"])[0], 200)
        self.sim.admin("deactivate", {"account_id": carol["account_id"]})
        self.assertEqual(self.myself(carol["email"], carol["tokens"][0]["value"])[0], 401)
        # tokens of a deactivated account are still listed (they are not revoked)
        self.assertEqual(len(self.get(f"/users/{carol['account_id']}/manage/api-tokens")[2]), 1)
        self.sim.admin("clock", {"advance": 366 * 86400})
        self.assertEqual(self.myself(self.svc["email"], self.svc["tokens"][0]["value"])[0], 401)

    def test_org_users_paging_links_next(self):
        users = [{"email": f"u{i}@acme.com"} for i in range(7)]
        s = self.sim.admin("seed", dict(SEED, users=users, page_size=3))
        key = {"Authorization": "Bearer " + s["admin_api_key"]}
        url = f"/admin/v1/orgs/{s['org']['id']}/users"
        seen, pages = [], 0
        while url:
            status, _, body = self.sim.request("GET", url, headers=key)
            self.assertEqual(status, 200, body)
            pages += 1
            self.assertEqual(body["meta"]["total"], 7)
            seen += [u["email"] for u in body["data"]]
            nxt = body["links"].get("next")
            if nxt:
                self.assertTrue(nxt.startswith("http://"), nxt)
                parts = urllib.parse.urlsplit(nxt)
                url = parts.path + "?" + parts.query
            else:
                url = None
        self.assertEqual(pages, 3)
        self.assertEqual(seen, [u["email"] for u in users])
        self.assertEqual(self.sim.request("GET", "/admin/v1/orgs/not-my-org/users", headers=key)[0], 404)

    def test_role_assignments(self):
        base = f"/admin/v2/orgs/{self.org}/directories/-/users"
        status, _, body = self.get(f"{base}/{self.svc['account_id']}/role-assignments")
        self.assertEqual(status, 200, body)
        roles = [r["role"] for row in body["data"] for r in row["roleAssignments"]]
        self.assertIn("atlassian/org-admin", roles)
        org_row = next(row for row in body["data"] if "atlassian/org-admin" in row["roles"])
        self.assertIsNone(org_row["directoryId"])
        carol = self.s["users"][1]["account_id"]
        body = self.get(f"{base}/{carol}/role-assignments")[2]
        self.assertEqual([r["role"] for row in body["data"] for r in row["roleAssignments"]], ["atlassian/user"])
        ci = self.sas["ci-bot"]["account_id"]
        body = self.get(f"{base}/{ci}/role-assignments")[2]
        self.assertEqual([r["role"] for row in body["data"] for r in row["roleAssignments"]], ["atlassian/admin"])
        self.assertEqual(self.get(f"{base}/712020:missing/role-assignments")[0], 404)
        self.assertEqual(self.get(f"/admin/v2/orgs/other/directories/-/users/{carol}/role-assignments")[0], 404)
        self.assertEqual(self.get(f"{base}/{carol}/role-assignments", headers={})[0], 401)

    def test_org_api_tokens_cursor_paging(self):
        base = f"/admin/api-access/v1/orgs/{self.org}/api-tokens"
        seen, cursor, pages = [], None, 0
        while True:
            q = {"pageSize": "1"} if cursor is None else {"pageSize": "1", "cursor": cursor}
            status, _, body = self.get(base + "?" + urllib.parse.urlencode(q))
            self.assertEqual(status, 200, body)
            pages += 1
            for t in body["data"]:
                self.assertEqual(t["status"], "ALLOWED")
                self.assertIn("email", t["user"])
                seen.append(t["label"])
            cursor = body["links"].get("next")
            if not cursor:
                break
        self.assertEqual(pages, 3)
        self.assertEqual(sorted(seen), ["laptop", "old-script", "smartsheet"])

    def test_bulk_revoke_is_recorded(self):
        self.assertEqual(self.sim.admin("state")["bulk_revoke_calls"], [])
        status, _, _ = self.sim.request("DELETE", f"/admin/api-access/v1/orgs/{self.org}/api-tokens", headers=self.key)
        self.assertEqual(status, 204)
        st = self.sim.admin("state")
        self.assertEqual(len(st["bulk_revoke_calls"]), 1)
        self.assertTrue(all(t["revoked"] for t in st["api_tokens"]))
        self.assertEqual(self.myself(self.svc["email"], self.svc["tokens"][0]["value"])[0], 401)

    def token(self, cid, secret, as_json=True, **extra):
        body = {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret, **extra}
        if as_json:
            return self.sim.request("POST", "/oauth/token", body=body)
        return self.sim.request("POST", "/oauth/token", form=body)

    def test_service_account_client_credentials(self):
        ci = self.sas["ci-bot"]
        cred = ci["credentials"][0]
        status, _, tok = self.token(cred["client_id"], cred["client_secret"])
        self.assertEqual(status, 200, tok)
        self.assertEqual((tok["token_type"], tok["expires_in"]), ("Bearer", 3600))
        bearer = {"Authorization": "Bearer " + tok["access_token"]}
        res = self.sim.request("GET", "/oauth/token/accessible-resources", headers=bearer)[2]
        cloud = res[0]["id"]
        self.assertEqual(cloud, self.s["cloud_id"])
        status, _, me = self.sim.request("GET", f"/ex/jira/{cloud}/rest/api/3/myself", headers=bearer)
        self.assertEqual((status, me["accountId"], me["accountType"]), (200, ci["account_id"], "app"))
        # form body works as well
        self.assertEqual(self.token(cred["client_id"], cred["client_secret"], as_json=False)[0], 200)
        # wrong secret, unknown client, wrong grant
        status, _, body = self.token(cred["client_id"], "wrong")
        self.assertEqual((status, body), (401, {"error": "access_denied", "error_description": "Unauthorized"}))
        self.assertEqual(self.token("nope", "nope")[0], 401)
        status, _, body = self.token(cred["client_id"], cred["client_secret"], grant_type="password")
        self.assertEqual((status, body["error"]), (400, "unsupported_grant_type"))
        # admin side: listing, then revoke, then proven refused
        lst = self.get(f"/admin/api-access/v1/orgs/{self.org}/service-accounts")[2]
        self.assertEqual(lst["total"], 2)
        self.assertEqual({i["displayName"] for i in lst["items"]}, {"ci-bot", "reporting"})
        clients = self.get(f"/admin/api-access/v1/orgs/{self.org}/service-accounts/{ci['id']}/oauth-clients")[2]
        self.assertEqual([c["clientId"] for c in clients["data"]], [cred["client_id"]])
        status, _, _ = self.sim.request("DELETE", f"/admin/api-access/v1/orgs/{self.org}/oauth-clients/{cred['client_id']}",
                                        headers=self.key)
        self.assertEqual(status, 204)
        self.assertEqual(self.token(cred["client_id"], cred["client_secret"])[0], 401)
        clients = self.get(f"/admin/api-access/v1/orgs/{self.org}/service-accounts/{ci['id']}/oauth-clients")[2]
        self.assertEqual(clients["data"], [])
        st = self.sim.admin("state")
        self.assertTrue(next(s for s in st["service_accounts"] if s["name"] == "ci-bot")["admin"])
        self.assertTrue(next(c for c in st["oauth_clients"] if c["client_id"] == cred["client_id"])["deleted"])
        # access tokens expire after an hour
        self.sim.admin("clock", {"advance": 3601})
        self.assertEqual(self.sim.request("GET", f"/ex/jira/{cloud}/rest/api/3/myself", headers=bearer)[0], 401)

    def test_second_credential_by_ui(self):
        rep = self.sas["reporting"]
        self.assertEqual(len(rep["credentials"]), 2)
        new = self.sim.admin("issue_credential", {"account_id": rep["account_id"], "name": "rotated"})
        self.assertEqual(self.token(new["client_id"], new["client_secret"])[0], 200)
        clients = self.get(f"/admin/api-access/v1/orgs/{self.org}/service-accounts/{rep['account_id']}/oauth-clients")[2]
        self.assertEqual(len(clients["data"]), 3)

    def test_captcha_fault_and_threshold(self):
        tok = self.svc["tokens"][0]["value"]
        self.sim.admin("faults", {"rules": [{"path": "/myself$", "answer": "captcha", "times": 1}]})
        status, h, _ = self.myself(self.svc["email"], tok)
        self.assertEqual(status, 403)
        self.assertEqual(h["X-Seraph-LoginReason"], "AUTHENTICATION_DENIED")
        self.assertTrue(h["X-Authentication-Denied-Reason"].startswith("CAPTCHA_CHALLENGE"))
        self.assertEqual(self.myself(self.svc["email"], tok)[0], 200)
        # seeded threshold: after 2 failures even the valid token gets the CAPTCHA answer
        seeded = self.sim.admin("seed", dict(SEED, captcha_after=2))
        self.assertEqual(self.sim.admin("state")["captcha"]["after"], 2)
        svc = seeded["users"][0]
        for _ in range(2):
            self.assertEqual(self.myself(svc["email"], "bad")[0], 401)
        status, h, _ = self.myself(svc["email"], svc["tokens"][0]["value"])
        self.assertEqual((status, h["X-Seraph-LoginReason"]), (403, "AUTHENTICATION_DENIED"))
        self.sim.admin("captcha", {"email": svc["email"], "clear": True})
        self.assertEqual(self.myself(svc["email"], svc["tokens"][0]["value"])[0], 200)

    def test_seraph_failed_200_fault(self):
        self.sim.admin("faults", {"rules": [{"path": "/myself$", "answer": "seraph_failed_200", "times": 1}]})
        status, h, _ = self.myself(self.svc["email"], "whatever")
        self.assertEqual((status, h["X-Seraph-LoginReason"]), (200, "AUTHENTICATED_FAILED"))

    def test_rate_limit_headers(self):
        self.sim.admin("rate", {"per_second": 2})
        try:
            tok = self.svc["tokens"][0]["value"]
            seen_ok = seen_429 = None
            for _ in range(6):
                status, h, body = self.myself(self.svc["email"], tok)
                if status == 200:
                    seen_ok = h
                elif status == 429:
                    seen_429 = h
            self.assertIsNotNone(seen_ok)
            self.assertIsNotNone(seen_429)
            self.assertEqual(seen_ok["X-RateLimit-Limit"], "2")
            self.assertIn("X-RateLimit-Remaining", seen_ok)
            self.assertGreaterEqual(int(seen_429["Retry-After"]), 1)
            self.assertEqual(seen_429["X-RateLimit-Remaining"], "0")
            self.assertRegex(seen_429["X-RateLimit-Reset"], r"^\d{4}-\d\d-\d\dT\d\d:\d\dZ$")
            self.assertEqual(seen_429["RateLimit-Reason"], "jira-burst-based")
            codes = [self.get(f"/users/{self.svc['account_id']}/manage/api-tokens")[0] for _ in range(4)]
            self.assertIn(429, codes)
        finally:
            self.sim.admin("rate", {"per_second": None})

    def test_after_act_fault(self):
        acct = self.svc["account_id"]
        tid = self.svc["tokens"][0]["id"]
        self.sim.admin("faults", {"rules": [{"method": "DELETE", "path": "/api-tokens/", "answer": "after_act", "times": 1}]})
        with self.assertRaises(Exception):
            self.sim.request("DELETE", f"/users/{acct}/manage/api-tokens/{tid}", headers=self.key)
        st = self.sim.admin("state")
        self.assertTrue(next(t for t in st["api_tokens"] if t["id"] == tid)["revoked"])

    def test_state_holds_no_secret_and_reset(self):
        dump = json.dumps(self.sim.admin("state"))
        secrets_ = [self.s["admin_api_key"]]
        for u in self.s["users"]:
            secrets_ += [t["value"] for t in u["tokens"]]
        for sa in self.s["service_accounts"]:
            secrets_ += [c["client_secret"] for c in sa["credentials"]]
        for s in secrets_:
            self.assertNotIn(s, dump)
        self.assertNotIn("ATATT", dump)
        acct = self.svc["account_id"]
        tid = self.svc["tokens"][0]["id"]
        self.sim.request("DELETE", f"/users/{acct}/manage/api-tokens/{tid}", headers=self.key)
        self.sim.admin("reset", {})
        self.assertEqual(self.myself(self.svc["email"], self.svc["tokens"][0]["value"])[0], 200)


if __name__ == "__main__":
    unittest.main()
