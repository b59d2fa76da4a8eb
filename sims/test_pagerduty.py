"""Tests of the PagerDuty simulator (sims/pagerduty.py), run as a real server.

    python3 -m unittest discover -s sims -p 'test_pagerduty.py' -v
"""

import json
import unittest

from simtest import Server

S = None


def setUpModule():
    global S
    S = Server("pagerduty.py")


def tearDownModule():
    S.stop()


def token(v):
    return "Token token=" + v


class PagerDutySimTest(unittest.TestCase):
    def setUp(self):
        S.admin("POST", "reset")
        out = S.admin(
            "POST",
            "seed",
            {
                "users": [{"email": "owner@example.com", "role": "owner"}, {"email": "bot@example.com", "role": "user"}],
                "keys": [{"user": None, "description": "general", "read_only": True}, {"user": "bot@example.com", "description": "bot"}],
            },
        )
        self.general, self.bot = (k["value"] for k in out["keys"])
        self.bot_id = out["keys"][1]["id"]

    def assertError(self, s, body, status, code):
        self.assertEqual(s, status, body)
        self.assertEqual(set(body), {"error"}, body)
        self.assertEqual(body["error"]["code"], code, body)
        self.assertIsInstance(body["error"]["message"], str)

    def test_keys_are_twenty_characters_and_refused_with_2006_once_deleted(self):
        self.assertEqual(len(self.bot), 20)
        s, _, b = S.call("GET", "/abilities", token(self.bot))
        self.assertEqual(s, 200, b)
        self.assertIn("teams", b["abilities"])
        s, _, b = S.call("GET", "/abilities", token("x" * 20))
        self.assertError(s, b, 401, 2006)
        self.assertEqual(b["error"]["message"], "Authentication failed")
        S.admin("POST", "delete_key", {"id": self.bot_id})
        s, _, b = S.call("GET", "/abilities", token(self.bot))
        self.assertError(s, b, 401, 2006)
        st = S.admin("GET", "state")
        self.assertEqual(next(k for k in st["keys"] if k["id"] == self.bot_id)["deleted"], True)
        self.assertNotIn(self.bot, json.dumps(st))

    def test_users_me_needs_a_user_key(self):
        s, _, b = S.call("GET", "/users/me", token(self.bot))
        self.assertEqual((s, b["user"]["email"], b["user"]["role"]), (200, "bot@example.com", "user"))
        s, _, b = S.call("GET", "/users/me", token(self.general))
        self.assertError(s, b, 400, 2001)
        self.assertIn("account-level access token", b["error"]["errors"][0])

    def test_read_only_keys_make_gets_only(self):
        s, _, b = S.call("POST", "/abilities", token(self.general), body={})
        self.assertError(s, b, 403, 2010)

    def test_users_page_by_offset_with_more(self):
        S.admin("POST", "seed", {"users": [{"email": f"u{i:02}@example.com"} for i in range(9)]})
        seen, offset = [], 0
        while True:
            s, _, b = S.call("GET", f"/users?limit=4&offset={offset}", token(self.general))
            self.assertEqual(s, 200, b)
            self.assertEqual((b["limit"], b["offset"], b["total"]), (4, offset, None))
            seen += [u["email"] for u in b["users"]]
            offset += len(b["users"])
            if not b["more"]:
                break
        self.assertEqual(len(seen), 11)
        self.assertEqual(len(set(seen)), 11)
        s, _, b = S.call("GET", "/users?limit=4&total=true", token(self.general))
        self.assertEqual(b["total"], 11)

    def test_rate_limit_headers_and_faults(self):
        S.admin("POST", "rate", {"per_second": 1})
        answers = [S.call("GET", "/abilities", token(self.bot)) for _ in range(3)]
        limited = [a for a in answers if a[0] == 429]
        self.assertTrue(limited)
        s, h, b = limited[0]
        self.assertError(s, b, 429, 2020)
        for k in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
            self.assertIn(k, h)
        self.assertEqual(h["ratelimit-remaining"], "0")
        S.admin("POST", "rate", {"per_second": None})
        S.admin("POST", "faults", {"rules": [{"path": "^/abilities", "answer": "access_denied", "times": 1}, {"path": "^/abilities", "answer": "waf", "times": 1}]})
        s, _, b = S.call("GET", "/abilities", token(self.bot))
        self.assertError(s, b, 403, 2010)
        s, h, _ = S.call("GET", "/abilities", token(self.bot))
        self.assertEqual(s, 403)
        self.assertTrue(h["Content-Type"].startswith("text/html"))
        s, _, b = S.call("GET", "/nope", token(self.bot))
        self.assertError(s, b, 404, 2100)


if __name__ == "__main__":
    unittest.main()
