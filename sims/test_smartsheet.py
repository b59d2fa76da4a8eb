"""Tests of the Smartsheet simulator (sims/smartsheet.py), run as a real server.

    python3 -m unittest discover -s sims -p 'test_smartsheet.py' -v
"""

import json
import unittest

from simtest import Server

S = None


def setUpModule():
    global S
    S = Server("smartsheet.py")


def tearDownModule():
    S.stop()


def bearer(v):
    return "Bearer " + v


class SmartsheetSimTest(unittest.TestCase):
    def setUp(self):
        S.admin("POST", "reset")
        out = S.admin(
            "POST",
            "seed",
            {
                "users": [{"email": "admin@example.com", "admin": True}, {"email": "svc@example.com"}, {"email": "sso@example.com", "sso": True}],
                "tokens": [{"user": "admin@example.com", "name": "keysweep"}, {"user": "svc@example.com", "name": "sync"}, {"user": "sso@example.com", "name": "s"}],
            },
        )
        self.admin_tok, self.svc, self.sso = (t["value"] for t in out["tokens"])
        self.svc_id = out["tokens"][1]["id"]

    def assertError(self, s, body, status, code, message):
        self.assertEqual(s, status, body)
        self.assertEqual(set(body), {"errorCode", "message", "refId"}, body)
        self.assertEqual((body["errorCode"], body["message"]), (code, message))

    def test_me_and_the_documented_refusals(self):
        s, h, me = S.call("GET", "/2.0/users/me", bearer(self.svc))
        self.assertEqual(s, 200, me)
        self.assertTrue(h["Content-Type"].startswith("application/json"))
        self.assertEqual((me["email"], me["admin"]), ("svc@example.com", False))
        self.assertIn("account", me)
        s, _, b = S.call("GET", "/2.0/users/me")
        self.assertError(s, b, 401, 1001, "An Access Token is required.")
        s, _, b = S.call("GET", "/2.0/users/me", bearer("no-such-token"))
        self.assertError(s, b, 401, 1002, "Your Access Token is invalid.")
        s, _, b = S.call("GET", "/2.0/users/me", bearer(self.sso))
        self.assertError(s, b, 401, 1005, "Single Sign-On is required for this account.")
        S.admin("POST", "expire", {"id": self.svc_id})
        s, _, b = S.call("GET", "/2.0/users/me", bearer(self.svc))
        self.assertError(s, b, 401, 1003, "Your Access Token has expired.")

    def test_delete_token_revokes_the_token_it_is_sent_with_only(self):
        s, _, b = S.call("DELETE", "/2.0/token", bearer(self.svc))
        self.assertEqual((s, b), (200, {"message": "SUCCESS", "resultCode": 0}))
        s, _, b = S.call("GET", "/2.0/users/me", bearer(self.svc))
        self.assertError(s, b, 401, 1002, "Your Access Token is invalid.")
        s, _, b = S.call("DELETE", "/2.0/token", bearer(self.svc))
        self.assertError(s, b, 401, 1002, "Your Access Token is invalid.")
        s, _, _ = S.call("GET", "/2.0/users/me", bearer(self.admin_tok))
        self.assertEqual(s, 200, "other tokens are untouched")
        st = S.admin("GET", "state")
        tok = next(t for t in st["tokens"] if t["id"] == self.svc_id)
        self.assertEqual((tok["revoked"], tok["valid"]), (True, False))
        self.assertNotIn(self.svc, json.dumps(st), "state never holds a token value")

    def test_users_are_admin_only_and_paged_by_number(self):
        S.admin("POST", "seed", {"users": [{"email": f"u{i}@example.com"} for i in range(8)]})
        s, _, b = S.call("GET", "/2.0/users", bearer(self.svc))
        self.assertError(s, b, 403, 1004, "You are not authorized to perform this action.")
        seen = []
        for page in (1, 2, 3, 4):
            s, _, b = S.call("GET", f"/2.0/users?pageSize=3&page={page}&include=lastLogin", bearer(self.admin_tok))
            self.assertEqual(s, 200, b)
            self.assertEqual((b["pageNumber"], b["pageSize"], b["totalPages"], b["totalCount"]), (page, 3, 4, 11))
            seen += [u["email"] for u in b["data"]]
        self.assertEqual(len(seen), 11)
        self.assertEqual(len(set(seen)), 11)
        s, _, b = S.call("GET", "/2.0/users?pageSize=3&page=5", bearer(self.admin_tok))
        self.assertEqual(b["data"], [], "beyond the last page: empty")
        s, _, b = S.call("GET", "/2.0/users?pageSize=100", bearer(self.admin_tok))
        self.assertNotIn("lastLogin", b["data"][0], "lastLogin only with include=lastLogin")

    def test_rate_limit_and_faults(self):
        S.admin("POST", "rate", {"per_second": 1})
        codes = [S.call("GET", "/2.0/users/me", bearer(self.svc))[0] for _ in range(3)]
        self.assertIn(429, codes)
        s, h, b = S.call("GET", "/2.0/users/me", bearer(self.svc))
        if s == 429:
            self.assertError(s, b, 429, 4003, "Rate limit exceeded.")
        S.admin("POST", "rate", {"per_second": None})
        S.admin("POST", "faults", {"rules": [{"path": "^/2.0/users/me", "answer": "waf", "times": 1}, {"path": "^/2.0/users/me", "answer": "gateway_401", "times": 1}]})
        s, h, b = S.call("GET", "/2.0/users/me", bearer(self.svc))
        self.assertEqual(s, 403)
        self.assertTrue(h["Content-Type"].startswith("text/html"))
        s, _, b = S.call("GET", "/2.0/users/me", bearer(self.svc))
        self.assertEqual((s, b), (401, {"message": "Unauthorized"}), "a gateway's 401 has no errorCode")
        s, _, b = S.call("GET", "/2.0/users/me", bearer(self.svc))
        self.assertEqual(s, 200)
        log = S.admin("GET", "log")
        self.assertNotIn(self.svc, json.dumps(log), "the log holds no token value")
        s, _, b = S.call("GET", "/2.0/nothing", bearer(self.svc))
        self.assertError(s, b, 404, 1006, "Not Found.")


if __name__ == "__main__":
    unittest.main()
