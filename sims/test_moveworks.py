"""Tests of the Moveworks-style service-token simulator (sims/moveworks.py),
run as a real server.

    python3 -m unittest discover -s sims -p 'test_moveworks.py' -v
"""

import json
import re
import unittest

from simtest import Server

S = None


def setUpModule():
    global S
    S = Server("moveworks.py")


def tearDownModule():
    S.stop()


def bearer(v):
    return "Bearer " + v


class MoveworksStyleSimTest(unittest.TestCase):
    def setUp(self):
        S.admin("POST", "reset")
        out = S.admin(
            "POST",
            "seed",
            {
                "principals": [{"id": "keysweep-admin", "role": "admin"}, {"id": "svc_itsm"}],
                "tokens": [{"principal": "keysweep-admin", "name": "keysweep"}, {"principal": "svc_itsm", "name": "itsm"}],
            },
        )
        self.admin_tok, self.svc = (t["value"] for t in out["tokens"])
        self.svc_id = out["tokens"][1]["id"]

    def assertError(self, s, body, status, code):
        self.assertEqual(s, status, body)
        self.assertEqual(set(body), {"error"}, body)
        self.assertEqual(body["error"]["code"], code, body)

    def test_whoami_and_refusals(self):
        s, _, b = S.call("GET", "/api/v1/whoami", bearer(self.svc))
        self.assertEqual((s, b["token"]["id"], b["principal"]["id"], b["principal"]["role"]), (200, self.svc_id, "svc_itsm", "integration"))
        s, h, b = S.call("GET", "/api/v1/whoami", bearer("nope"))
        self.assertError(s, b, 401, "invalid_token")
        self.assertIn('error="invalid_token"', h["WWW-Authenticate"])
        s, _, b = S.call("GET", "/api/v1/service-tokens", bearer(self.svc))
        self.assertError(s, b, 403, "insufficient_scope")

    def test_mint_list_by_cursor_and_link(self):
        s, _, b = S.call("POST", "/api/v1/service-tokens", bearer(self.admin_tok), {"name": "itsm", "principal": "svc_itsm", "description": "issued by keysweep n1"})
        self.assertEqual(s, 201, b)
        self.assertTrue(b["token"].startswith("mw_"))
        s, _, me = S.call("GET", "/api/v1/whoami", bearer(b["token"]))
        self.assertEqual(me["principal"]["id"], "svc_itsm")
        for i in range(6):
            S.call("POST", "/api/v1/service-tokens", bearer(self.admin_tok), {"name": f"t{i}", "principal": "svc_itsm"})
        ids, url, pages = [], "/api/v1/service-tokens?limit=4", 0
        while url:
            s, h, b = S.call("GET", url, bearer(self.admin_tok))
            self.assertEqual(s, 200, b)
            pages += 1
            ids += [t["id"] for t in b["data"]]
            cur = b["pagination"]["next_cursor"]
            link = re.match(r'<([^>]+)>; rel="next"', h.get("Link") or "")
            self.assertEqual(bool(cur), bool(link), "the cursor and the Link header agree")
            url = link.group(1) if link else None
        self.assertEqual((pages, len(ids), len(set(ids))), (3, 9, 9))
        S.admin("POST", "config", {"link_base": "http://127.0.0.9:1"})
        _, h, _ = S.call("GET", "/api/v1/service-tokens?limit=4", bearer(self.admin_tok))
        self.assertTrue(h["Link"].startswith("<http://127.0.0.9:1/"))

    def test_revocation_is_asynchronous_and_polled(self):
        s, _, b = S.call("DELETE", f"/api/v1/service-tokens/{self.svc_id}", bearer(self.admin_tok))
        self.assertEqual(s, 202, b)
        op = b["operation"]
        self.assertEqual(op["status"], "pending")
        self.assertEqual(S.call("GET", "/api/v1/whoami", bearer(self.svc))[0], 200, "still works until done")
        s, _, b = S.call("GET", f"/api/v1/service-tokens/{self.svc_id}", bearer(self.admin_tok))
        self.assertEqual(b["status"], "revoking")
        self.assertEqual(S.call("GET", op["url"], bearer(self.admin_tok))[2]["status"], "pending")
        self.assertEqual(S.call("GET", op["url"], bearer(self.admin_tok))[2]["status"], "succeeded")
        s, _, b = S.call("GET", "/api/v1/whoami", bearer(self.svc))
        self.assertError(s, b, 401, "token_revoked")
        s, _, b = S.call("GET", f"/api/v1/service-tokens/{self.svc_id}", bearer(self.admin_tok))
        self.assertError(s, b, 404, "token_not_found")
        s, _, b = S.call("DELETE", f"/api/v1/service-tokens/{self.svc_id}", bearer(self.admin_tok))
        self.assertError(s, b, 404, "token_not_found")
        st = S.admin("GET", "state")
        self.assertNotIn(self.svc, json.dumps(st))

    def test_a_stuck_operation_never_completes_and_poll_urls_can_name_another_host(self):
        S.admin("POST", "config", {"stuck": True, "poll_base": "http://127.0.0.9:1"})
        s, _, b = S.call("DELETE", f"/api/v1/service-tokens/{self.svc_id}", bearer(self.admin_tok))
        self.assertTrue(b["operation"]["url"].startswith("http://127.0.0.9:1/api/v1/operations/"))
        path = "/api/v1/operations/" + b["operation"]["id"]
        for _ in range(5):
            self.assertEqual(S.call("GET", path, bearer(self.admin_tok))[2]["status"], "pending")
        self.assertEqual(S.call("GET", "/api/v1/whoami", bearer(self.svc))[0], 200)

    def test_rate_limit_and_faults(self):
        S.admin("POST", "rate", {"per_second": 1})
        limited = [a for a in (S.call("GET", "/api/v1/whoami", bearer(self.svc)) for _ in range(3)) if a[0] == 429]
        self.assertTrue(limited)
        s, h, b = limited[0]
        self.assertError(s, b, 429, "rate_limited")
        self.assertEqual(h["Retry-After"], "1")
        self.assertEqual(h["X-RateLimit-Remaining"], "0")
        S.admin("POST", "rate", {"per_second": None})
        S.admin("POST", "faults", {"rules": [{"path": "^/api/v1/whoami", "answer": "ip_not_allowed", "times": 1}, {"path": "^/api/v1/whoami", "answer": "gateway_401", "times": 1}]})
        s, _, b = S.call("GET", "/api/v1/whoami", bearer(self.svc))
        self.assertError(s, b, 403, "ip_not_allowed")
        s, _, b = S.call("GET", "/api/v1/whoami", bearer(self.svc))
        self.assertEqual((s, b), (401, {"message": "Unauthorized"}))


if __name__ == "__main__":
    unittest.main()
