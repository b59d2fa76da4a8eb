#!/usr/bin/env python3
"""Kubernetes API server simulator: service accounts, their tokens, and the
TokenReview API that Vault's/OpenBao's `kubernetes` auth method calls to
check a service-account token.

keysweep's Vault adapter logs in with a pod's service-account token
(`auth: { method: kubernetes }`); OpenBao then asks the cluster whether the
token is good. No cluster can run here, so the tests point OpenBao's
`kubernetes_host` at this server. Sources:

- Kubernetes API reference, "TokenReview v1 authentication.k8s.io"
  (`POST /apis/authentication.k8s.io/v1/tokenreviews`; `spec.token`,
  `spec.audiences`; `status.authenticated`, `status.user` {`username`, `uid`,
  `groups`, `extra`}, `status.audiences` — "the audiences the token is
  valid for, a subset of spec.audiences, or the API server's audiences when
  spec.audiences is empty", `status.error`; the create answers 201), and
  "TokenRequest v1" (the claims of a bound service-account token).
- Kubernetes documentation, "Managing Service Accounts" (bound tokens:
  `iss`, `sub` = `system:serviceaccount:<namespace>:<name>`, `aud`, `exp`,
  `iat`, `nbf`, `jti`, and the private claim `kubernetes.io` {`namespace`,
  `serviceaccount` {`name`, `uid`}, `pod` {`name`, `uid`}}; a token stops
  authenticating when its service account (or bound pod) is deleted, or it
  expires) and "Authenticating" (service-account users have the groups
  `system:serviceaccounts`, `system:serviceaccounts:<namespace>` and
  `system:authenticated`; bound tokens add `extra`
  `authentication.kubernetes.io/credential-id` = `JTI=<jti>` and, when bound
  to a pod, `.../pod-name`, `.../pod-uid`).
- Kubernetes API conventions, "Response Status Kind": a refused request
  answers a `Status` object (`kind: Status`, `apiVersion: v1`, `status:
  Failure`, `message`, `reason`, `code`): 401 `Unauthorized` for a missing or
  invalid bearer token, 403 `Forbidden` (with `details` {`group`, `kind`})
  when the caller may not create the resource, 400 `BadRequest`.
- "Using RBAC Authorization": creating a TokenReview needs the
  `system:auth-delegator` cluster role. Vault's kubernetes auth documentation:
  with `disable_local_ca_jwt=true` and no `token_reviewer_jwt`, the client's
  own token is the reviewer, so the client's service account needs that role.
- OpenBao `builtin/credential/kubernetes` (`token_review.go`,
  `path_login.go`): the JSON it sends and reads, the username split into
  `system:serviceaccount:<ns>:<name>`, the uid compared with the token's
  claim, the audiences it asks for (the token's own `aud` unless the role
  names one) and the intersection it requires in `status.audiences`.

What it does:
- Service accounts are created by `POST /_sim/serviceaccounts` {namespace,
  name, auth_delegator} (answer: uid). `POST /_sim/token` {namespace, name,
  audiences, expiration_seconds, pod} issues a bound token the way the
  kubelet projects one into a pod (the answer is the only place its value
  appears). `POST /_sim/delete_serviceaccount` {namespace, name} deletes
  one: its tokens stop authenticating.
- `POST /apis/authentication.k8s.io/v1/tokenreviews`: the bearer must be a
  valid token (401 otherwise) of an account with `auth_delegator` (403
  otherwise); the body must be a TokenReview (400 otherwise). The token under
  review is checked (signature, expiry, its account still there with the same
  uid, audiences) and the answer is 201 with the TokenReview and its status:
  authenticated with the user, or `error` and no user.
- `GET /_sim/state`: service accounts (no token values), tokens issued per
  account, and the reviews made (who asked, for whom, the verdict).

Known simplifications: tokens are signed with HMAC-SHA256 under a key of
the process (stdlib only) although their header says RS256, as the
API server's own tokens do; OpenBao does not check the signature unless its
mount is given the cluster's public keys, which the tests do not do, and
this server checks its own. No TokenRequest API (tokens come from
`/_sim/token`), no legacy secret-based tokens, no `system:anonymous`,
one API-server audience (`https://kubernetes.default.svc.cluster.local`),
no authorization beyond the auth-delegator flag. The `error` texts follow
the API server's, abridged.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simbase import Resp, Sim  # noqa: E402

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
ISSUER = "https://kubernetes.default.svc.cluster.local"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def status(code, reason, message, details=None):
    """A Kubernetes `Status` answer (API conventions)."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return Resp.json(code, body)


class KubeSim(Sim):
    def __init__(self):
        super().__init__("kube_tokenreview")
        self.key = secrets.token_bytes(32)
        self.kid = b64url(hashlib.sha256(self.key).digest()[:12])
        self.reset_state()
        self.state_fn = self.state_view
        self.reset_fn = self.reset_state
        self.add_routes()

    def reset_state(self):
        self.accounts = {}  # (namespace, name) -> {"uid", "auth_delegator", "tokens", "created"}
        self.reviews = []

    def not_found(self, req):
        return status(404, "NotFound", "the server could not find the requested resource")

    def state_view(self):
        return {
            "serviceaccounts": [
                {"namespace": ns, "name": n, "uid": a["uid"], "auth_delegator": a["auth_delegator"], "tokens_issued": a["tokens"]}
                for (ns, n), a in sorted(self.accounts.items())
            ],
            "reviews": list(self.reviews),
        }

    # ---- tokens
    def sign(self, claims):
        header = b64url(json.dumps({"alg": "RS256", "kid": self.kid}, separators=(",", ":")).encode())
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        sig = hmac.new(self.key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64url(sig)}"

    def issue(self, namespace, name, audiences=None, expiration_seconds=3600, pod=None):
        a = self.accounts.get((namespace, name))
        if a is None:
            raise KeyError(f"{namespace}/{name}")
        now = int(time.time())
        jti = str(uuid.uuid4())
        private = {"namespace": namespace, "serviceaccount": {"name": name, "uid": a["uid"]}}
        if pod:
            private["pod"] = {"name": pod, "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"pod/{namespace}/{pod}"))}
        claims = {
            "aud": list(audiences or [API_AUDIENCE]),
            "exp": now + int(expiration_seconds),
            "iat": now,
            "iss": ISSUER,
            "jti": jti,
            "kubernetes.io": private,
            "nbf": now,
            "sub": f"system:serviceaccount:{namespace}:{name}",
        }
        a["tokens"] += 1
        return self.sign(claims)

    def authenticate_token(self, token):
        """(claims, None) for a token this server issued that still
        authenticates, else (None, why) in the API server's words."""
        parts = (token or "").split(".")
        if len(parts) != 3:
            return None, "invalid bearer token, token lookup failed"
        try:
            header = json.loads(unb64url(parts[0]))
            claims = json.loads(unb64url(parts[1]))
            sig = unb64url(parts[2])
        except (ValueError, TypeError):
            return None, "invalid bearer token, token lookup failed"
        want = hmac.new(self.key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if header.get("kid") != self.kid or not hmac.compare_digest(sig, want) or claims.get("iss") != ISSUER:
            return None, "invalid bearer token, square/go-jose: error in cryptographic primitive"
        now = time.time()
        if claims.get("exp", 0) < now:
            return None, "invalid bearer token, service account token has expired"
        if claims.get("nbf", 0) > now + 60:
            return None, "invalid bearer token, service account token is not valid yet"
        k8s = claims.get("kubernetes.io") or {}
        ns, sa = k8s.get("namespace"), (k8s.get("serviceaccount") or {})
        a = self.accounts.get((ns, sa.get("name")))
        if a is None:
            return None, f'invalid bearer token, serviceaccounts "{sa.get("name")}" not found'
        if a["uid"] != sa.get("uid"):
            return None, f'invalid bearer token, service account UID ({a["uid"]}) does not match claim ({sa.get("uid")})'
        return claims, None

    def user_info(self, claims):
        k8s = claims["kubernetes.io"]
        ns, sa = k8s["namespace"], k8s["serviceaccount"]
        extra = {"authentication.kubernetes.io/credential-id": [f"JTI={claims['jti']}"]}
        if k8s.get("pod"):
            extra["authentication.kubernetes.io/pod-name"] = [k8s["pod"]["name"]]
            extra["authentication.kubernetes.io/pod-uid"] = [k8s["pod"]["uid"]]
        return {
            "username": f"system:serviceaccount:{ns}:{sa['name']}",
            "uid": sa["uid"],
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
            "extra": extra,
        }

    # ---- the API
    def add_routes(self):
        @self.route("POST", r"/apis/authentication\.k8s\.io/v1/tokenreviews")
        def token_review(req):
            caller, _ = self.authenticate_token(req.bearer())
            if caller is None:
                return status(401, "Unauthorized", "Unauthorized")
            k8s = caller["kubernetes.io"]
            who = f"system:serviceaccount:{k8s['namespace']}:{k8s['serviceaccount']['name']}"
            if not self.accounts[(k8s["namespace"], k8s["serviceaccount"]["name"])]["auth_delegator"]:
                return status(
                    403,
                    "Forbidden",
                    f'tokenreviews.authentication.k8s.io is forbidden: User "{who}" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope',
                    {"group": "authentication.k8s.io", "kind": "tokenreviews"},
                )
            body = req.json()
            if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
                return status(400, "BadRequest", "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf")
            if body.get("kind", "TokenReview") != "TokenReview" or body.get("apiVersion", "authentication.k8s.io/v1") != "authentication.k8s.io/v1":
                return status(400, "BadRequest", f"TokenReview in version \"v1\" cannot be handled as a {body.get('kind')}")
            spec = body["spec"]
            token = spec.get("token") or ""
            wanted = list(spec.get("audiences") or [])
            claims, why = self.authenticate_token(token)
            st = {"user": {}}
            if claims is not None:
                token_aud = claims.get("aud") or []
                valid_for = [a for a in (wanted or [API_AUDIENCE]) if a in token_aud]
                if not valid_for:
                    why = f"invalid bearer token, token audiences {json.dumps(token_aud)} is invalid for the target audiences {json.dumps(wanted or [API_AUDIENCE])}"
                else:
                    st = {"authenticated": True, "user": self.user_info(claims), "audiences": valid_for}
            if why:
                st = {"user": {}, "error": f"[{why}]"}
            self.reviews.append(
                {
                    "reviewer": who,
                    "subject": claims["sub"] if claims else None,
                    "audiences": wanted,
                    "authenticated": bool(st.get("authenticated")),
                    "error": st.get("error"),
                }
            )
            out = {
                "kind": "TokenReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "spec": {"token": token, **({"audiences": wanted} if wanted else {})},
                "status": st,
            }
            return Resp.json(201, out)

    def admin_extra(self, req):
        p = req.path
        body = req.json() or {}
        with self.lock:
            if p == "/_sim/serviceaccounts" and req.method == "POST":
                key = (body["namespace"], body["name"])
                a = self.accounts.get(key)
                if a is None:
                    a = {"uid": str(uuid.uuid4()), "auth_delegator": False, "tokens": 0, "created": time.time()}
                    self.accounts[key] = a
                a["auth_delegator"] = bool(body.get("auth_delegator", a["auth_delegator"]))
                return Resp.json(200, {"namespace": key[0], "name": key[1], "uid": a["uid"]})
            if p == "/_sim/token" and req.method == "POST":
                try:
                    tok = self.issue(body["namespace"], body["name"], body.get("audiences"), body.get("expiration_seconds", 3600), body.get("pod"))
                except KeyError as e:
                    return Resp.json(404, {"error": f"no such service account {e}"})
                return Resp.json(200, {"token": tok})
            if p == "/_sim/delete_serviceaccount" and req.method == "POST":
                a = self.accounts.pop((body.get("namespace"), body.get("name")), None)
                if a is None:
                    return Resp.json(404, {"error": "no such service account"})
                return Resp.json(200, {"deleted": True, "uid": a["uid"]})
        return None


if __name__ == "__main__":
    KubeSim().serve()
