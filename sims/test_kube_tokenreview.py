"""Tests of the Kubernetes TokenReview simulator (sims/kube_tokenreview.py), run as a real server.

    python3 -m unittest discover -s sims -p 'test_kube_tokenreview.py' -v
"""

import base64
import json
import unittest

from simtest import Server

S = None
REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
API_AUD = "https://kubernetes.default.svc.cluster.local"


def setUpModule():
    global S
    S = Server("kube_tokenreview.py")


def tearDownModule():
    S.stop()


def bearer(t):
    return "Bearer " + t


def claims(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def review(token, audiences=None):
    spec = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}


class KubeTokenReviewSimTest(unittest.TestCase):
    def setUp(self):
        S.admin("POST", "reset")
        self.reviewer_uid = S.admin("POST", "serviceaccounts", {"namespace": "vault", "name": "reviewer", "auth_delegator": True})["uid"]
        self.app_uid = S.admin("POST", "serviceaccounts", {"namespace": "ci", "name": "keysweep"})["uid"]
        self.reviewer = S.admin("POST", "token", {"namespace": "vault", "name": "reviewer"})["token"]
        self.app = S.admin("POST", "token", {"namespace": "ci", "name": "keysweep", "pod": "keysweep-28514"})["token"]

    def assertStatus(self, s, body, code, reason):
        self.assertEqual(s, code, body)
        self.assertEqual(body["kind"], "Status", body)
        self.assertEqual(body["apiVersion"], "v1", body)
        self.assertEqual(body["status"], "Failure", body)
        self.assertEqual(body["reason"], reason, body)
        self.assertEqual(body["code"], code, body)

    def test_tokens_carry_the_bound_service_account_claims(self):
        c = claims(self.app)
        self.assertEqual(c["sub"], "system:serviceaccount:ci:keysweep")
        self.assertEqual(c["aud"], [API_AUD])
        self.assertEqual(c["kubernetes.io"]["namespace"], "ci")
        self.assertEqual(c["kubernetes.io"]["serviceaccount"], {"name": "keysweep", "uid": self.app_uid})
        self.assertEqual(c["kubernetes.io"]["pod"]["name"], "keysweep-28514")
        self.assertTrue(c["iat"] <= c["nbf"] + 1 and c["exp"] > c["iat"])
        header = json.loads(base64.urlsafe_b64decode(self.app.split(".")[0] + "=="))
        self.assertEqual(header["alg"], "RS256")

    def test_a_good_token_is_authenticated_as_its_service_account(self):
        s, _, b = S.call("POST", REVIEWS, bearer(self.reviewer), review(self.app, [API_AUD]))
        self.assertEqual(s, 201, b)
        self.assertEqual((b["kind"], b["apiVersion"]), ("TokenReview", "authentication.k8s.io/v1"))
        st = b["status"]
        self.assertTrue(st["authenticated"], st)
        self.assertEqual(st["user"]["username"], "system:serviceaccount:ci:keysweep")
        self.assertEqual(st["user"]["uid"], self.app_uid)
        self.assertEqual(st["user"]["groups"], ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"])
        self.assertEqual(st["user"]["extra"]["authentication.kubernetes.io/pod-name"], ["keysweep-28514"])
        self.assertEqual(st["audiences"], [API_AUD])
        # No audiences asked: the API server's own.
        s, _, b = S.call("POST", REVIEWS, bearer(self.reviewer), review(self.app))
        self.assertEqual((s, b["status"]["audiences"]), (201, [API_AUD]))
        # The state records the review, never a token.
        st = S.admin("GET", "state")
        self.assertEqual(st["reviews"][0]["subject"], "system:serviceaccount:ci:keysweep")
        self.assertNotIn(self.app, json.dumps(st))

    def test_a_token_for_other_audiences_is_not_authenticated(self):
        s, _, b = S.call("POST", REVIEWS, bearer(self.reviewer), review(self.app, ["vault"]))
        self.assertEqual(s, 201, b)
        self.assertNotIn("authenticated", b["status"])
        self.assertEqual(b["status"]["user"], {})
        self.assertIn("is invalid for the target audiences", b["status"]["error"])
        tok = S.admin("POST", "token", {"namespace": "ci", "name": "keysweep", "audiences": ["vault"]})["token"]
        s, _, b = S.call("POST", REVIEWS, bearer(self.reviewer), review(tok, ["vault"]))
        self.assertEqual((s, b["status"]["audiences"]), (201, ["vault"]))

    def test_expired_forged_and_orphaned_tokens_are_not_authenticated(self):
        expired = S.admin("POST", "token", {"namespace": "ci", "name": "keysweep", "expiration_seconds": -10})["token"]
        h, p, sig = self.app.split(".")
        forged = ".".join([h, base64.urlsafe_b64encode(json.dumps({**claims(self.app), "sub": "system:serviceaccount:kube-system:admin"}).encode()).rstrip(b"=").decode(), sig])
        for tok, why in [(expired, "expired"), (forged, "cryptographic"), ("not-a-jwt", "token lookup failed")]:
            s, _, b = S.call("POST", REVIEWS, bearer(self.reviewer), review(tok))
            self.assertEqual(s, 201, b)
            self.assertFalse(b["status"].get("authenticated"), b)
            self.assertIn(why, b["status"]["error"])
        S.admin("POST", "delete_serviceaccount", {"namespace": "ci", "name": "keysweep"})
        s, _, b = S.call("POST", REVIEWS, bearer(self.reviewer), review(self.app))
        self.assertIn('serviceaccounts "keysweep" not found', b["status"]["error"])
        # Recreated under the same name: a new uid, the old token stays dead.
        S.admin("POST", "serviceaccounts", {"namespace": "ci", "name": "keysweep"})
        s, _, b = S.call("POST", REVIEWS, bearer(self.reviewer), review(self.app))
        self.assertIn("does not match claim", b["status"]["error"])

    def test_the_reviewer_must_be_authenticated_and_an_auth_delegator(self):
        s, _, b = S.call("POST", REVIEWS, None, review(self.app))
        self.assertStatus(s, b, 401, "Unauthorized")
        s, _, b = S.call("POST", REVIEWS, bearer("garbage"), review(self.app))
        self.assertStatus(s, b, 401, "Unauthorized")
        s, _, b = S.call("POST", REVIEWS, bearer(self.app), review(self.app))
        self.assertStatus(s, b, 403, "Forbidden")
        self.assertIn('User "system:serviceaccount:ci:keysweep" cannot create resource "tokenreviews"', b["message"])
        self.assertEqual(b["details"], {"group": "authentication.k8s.io", "kind": "tokenreviews"})
        # Granted the role, it may review (its own token, as Vault does without a reviewer JWT).
        S.admin("POST", "serviceaccounts", {"namespace": "ci", "name": "keysweep", "auth_delegator": True})
        s, _, b = S.call("POST", REVIEWS, bearer(self.app), review(self.app))
        self.assertTrue(b["status"]["authenticated"], b)

    def test_a_body_that_is_not_a_token_review_is_refused(self):
        s, _, b = S.call("POST", REVIEWS, bearer(self.reviewer), {"kind": "Pod", "apiVersion": "v1", "spec": {}})
        self.assertStatus(s, b, 400, "BadRequest")
        s, _, b = S.call("POST", REVIEWS, bearer(self.reviewer), {"nothing": True})
        self.assertStatus(s, b, 400, "BadRequest")
        s, _, b = S.call("GET", "/api/v1/namespaces", bearer(self.reviewer))
        self.assertStatus(s, b, 404, "NotFound")


if __name__ == "__main__":
    unittest.main()
