#!/usr/bin/env python3
"""Seeds the Cloudflare-shaped incident demo (playbooks/incident-okta.yaml):
the vendor simulators (Okta, Atlassian, Slack, Smartsheet, Moveworks-style),
a fresh moto (AWS) and the Vault KV entries consumers read.

Listed in the playbook: Okta API tokens of integration service accounts and
keysweep's own (no API re-issues them: a person does), an Okta service app's
client secret, an Atlassian admin service account's OAuth credential, a Slack
bot token, a Smartsheet token, a Moveworks-style service token, an IAM key
and a shared secret in Vault. Not listed — the four "assumed unused" ones,
shaped like the four Cloudflare's responders missed (one service token and
three service accounts' credentials), each last used weeks ago and still
live: the HR bot's Moveworks-style service token, two Okta API tokens of
integration service accounts, and an Atlassian API token of the Smartsheet
service user (an org admin). `keysweep discover` finds them.

  seed_incident.py --okta URL --atlassian URL --slack URL --smartsheet URL
                   --moveworks URL --vault URL --moto URL --env FILE
writes the environment the playbook needs to FILE (mode 0600) and prints
nothing secret. keysweep's own Okta and Slack logins go to Vault.
"""
import argparse
import json
import os
import re
import time
import urllib.parse
import urllib.request


def call(url, body=None, headers=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
        return json.loads(raw) if raw else {}


def iam(endpoint, **params):
    """One IAM Query API call while moto's authentication is still off (setup only)."""
    body = urllib.parse.urlencode({"Version": "2010-05-08", **params}).encode()
    req = urllib.request.Request(endpoint + "/", data=body, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    # Any well-formed key id will do while auth is off (built here, so no
    # credential-shaped literal sits in the source).
    key_id = "AKIA" + "SETUPONLY" + "0" * 7
    req.add_header("Authorization", f"AWS4-HMAC-SHA256 Credential={key_id}/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def xml_text(xml, tag):
    m = re.search(f"<{tag}>([^<]*)</{tag}>", xml)
    return m.group(1) if m else ""


def seed_aws(endpoint):
    """keysweep's admin (AdministratorAccess) and the CI deployer whose key sat in
    a HAR file of the breached support system; then turns authentication on."""
    iam(endpoint, Action="CreateUser", UserName="keysweep-admin")
    admin = iam(endpoint, Action="CreateAccessKey", UserName="keysweep-admin")
    iam(endpoint, Action="AttachUserPolicy", UserName="keysweep-admin", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    iam(endpoint, Action="CreateUser", UserName="ci-deployer")
    whoami = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}]})
    iam(endpoint, Action="PutUserPolicy", UserName="ci-deployer", PolicyName="whoami", PolicyDocument=whoami)
    key = iam(endpoint, Action="CreateAccessKey", UserName="ci-deployer")
    req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST")
    req.add_header("Content-Type", "text/plain")
    urllib.request.urlopen(req, timeout=10).read()
    return (
        (xml_text(admin, "AccessKeyId"), xml_text(admin, "SecretAccessKey")),
        (xml_text(key, "AccessKeyId"), xml_text(key, "SecretAccessKey")),
    )


def ago(days=0, hours=0):
    t = time.time() - days * 86400 - hours * 3600
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--okta", required=True)
    ap.add_argument("--vault", required=True)
    ap.add_argument("--moto", required=True, help="a fresh moto_server (authentication still off)")
    ap.add_argument("--atlassian", required=True)
    ap.add_argument("--slack", required=True)
    ap.add_argument("--smartsheet", required=True)
    ap.add_argument("--moveworks", required=True)
    ap.add_argument("--vault-token", default="root")
    ap.add_argument("--env", required=True)
    a = ap.parse_args()

    users = [
        {"login": "keysweep@acme.example", "roles": ["SUPER_ADMIN"]},
        {"login": "svc-moveworks@acme.example", "roles": ["SUPER_ADMIN"]},
        {"login": "svc-smartsheet@acme.example", "roles": ["ORG_ADMIN"]},
        {"login": "svc-workflows@acme.example", "roles": ["READ_ONLY_ADMIN"]},
    ]
    tokens = [
        {"user": "keysweep@acme.example", "name": "keysweep", "created": ago(days=3)},
        # Listed: in daily use.
        {"user": "svc-moveworks@acme.example", "name": "moveworks", "created": ago(days=200), "last_used": ago(hours=1)},
        {"user": "svc-smartsheet@acme.example", "name": "smartsheet-sync", "created": ago(days=400), "last_used": ago(hours=3)},
        # Not listed, "assumed unused": still live (used within Okta's 30 days).
        {"user": "svc-smartsheet@acme.example", "name": "smartsheet-2022", "created": ago(days=700), "last_used": ago(days=23)},
        {"user": "svc-workflows@acme.example", "name": "workflows-poc", "created": ago(days=60), "last_used": ago(days=17)},
    ]
    apps = [{"label": "smartsheet-scim", "secrets": 1}]
    out = call(a.okta + "/_sim/seed", {"users": users, "tokens": tokens, "apps": apps})
    tok = {t["name"]: t for t in out["tokens"]}
    app = out["apps"][0]

    def kv(path, data):
        call(f"{a.vault}/v1/secret/data/{path}", {"data": data}, {"X-Vault-Token": a.vault_token})

    kv("okta/moveworks", {"value": tok["moveworks"]["value"], "token_id": tok["moveworks"]["id"]})
    kv("okta/smartsheet-sync", {"value": tok["smartsheet-sync"]["value"], "token_id": tok["smartsheet-sync"]["id"]})
    kv("okta/apps/smartsheet-scim", {"value": app["secrets"][0]["client_secret"], "secret_id": app["secrets"][0]["id"], "client_id": app["client_id"]})
    kv("okta/keysweep", {"value": tok["keysweep"]["value"], "token_id": tok["keysweep"]["id"]})
    kv("integrations/scim-bearer", {"value": os.urandom(24).hex()})
    (admin_id, admin_secret), (ci_id, ci_secret) = seed_aws(a.moto)
    # Atlassian: the Smartsheet integration's service account (an org admin),
    # listed; and an API token of its Atlassian user that nobody listed,
    # "assumed unused" (last used 20 days ago).
    atl = call(a.atlassian + "/_sim/seed", {
        "org": "acme", "site": "acme",
        "users": [{"email": "svc-smartsheet@acme.example", "admin": True,
                   "tokens": [{"label": "smartsheet-2023", "created": ago(days=600), "last_access": ago(days=20)}]}],
        "service_accounts": [{"name": "smartsheet-integration", "admin": True, "credentials": 1}],
    })
    sa = next(x for x in atl["service_accounts"] if x["name"] == "smartsheet-integration")
    cred = sa["credentials"][0]
    kv("atlassian/smartsheet-integration", {"value": cred["client_secret"], "client_id": cred["client_id"]})
    # Slack: keysweep's login (an admin's user token) and the PagerDuty app's
    # bot token, which sat where the attacker could read it.
    sl = call(a.slack + "/_sim/seed", {
        "team": "acme",
        "users": [{"name": "keysweep", "admin": True}],
        "apps": [{"name": "pagerduty", "installed_by": "keysweep"}],
    })
    pd = next(x for x in sl["apps"] if x["name"] == "pagerduty")
    kv("slack/keysweep", {"value": sl["users"][0]["token"]})
    kv("slack/pagerduty-bot", {"value": pd["token"]})
    # Smartsheet (an `http` recipe): keysweep's admin account and the Okta
    # sync's service account, each with a token; a person re-issues it.
    ss = call(a.smartsheet + "/_sim/seed", {
        "users": [{"email": "admin@acme.example", "admin": True}, {"email": "svc-smartsheet@acme.example"}],
        "tokens": [{"user": "admin@acme.example", "name": "keysweep"}, {"user": "svc-smartsheet@acme.example", "name": "okta-sync"}],
    })
    kv("smartsheet/okta-sync", {"value": ss["tokens"][1]["value"]})
    # Moveworks-style service tokens (an `http` recipe): keysweep's admin
    # token, the listed ITSM connector, and the HR bot's token nobody listed:
    # "assumed unused", last used 40 days ago, still live.
    mw = call(a.moveworks + "/_sim/seed", {
        "principals": [{"id": "keysweep-admin", "role": "admin"}, {"id": "svc_itsm"}, {"id": "svc_hr"}],
        "tokens": [{"principal": "keysweep-admin", "name": "keysweep"},
                   {"principal": "svc_itsm", "name": "itsm-connector"},
                   {"principal": "svc_hr", "name": "hr-bot", "created_at": ago(days=400), "last_used_at": ago(days=40)}],
    })
    kv("moveworks/itsm-connector", {"value": mw["tokens"][1]["value"], "token_id": mw["tokens"][1]["id"]})
    kv("aws/ci-deployer", {"secret_access_key": ci_secret, "access_key_id": ci_id})

    fd = os.open(a.env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"export OKTA_URL={a.okta}\n")
        f.write(f"export OKTA_APP_ID={app['id']}\n")
        f.write(f"export AWS_ENDPOINT_URL={a.moto}\n")
        f.write("export AWS_REGION=us-east-1\n")
        f.write(f"export AWS_ACCESS_KEY_ID={admin_id}\n")
        f.write(f"export AWS_SECRET_ACCESS_KEY={admin_secret}\n")
        f.write(f"export CI_DEPLOYER_KEY_ID={ci_id}\n")
        f.write(f"export ATLASSIAN_URL={a.atlassian}\n")
        f.write(f"export ATLASSIAN_ORG_ID={atl['org']['id']}\n")
        f.write(f"export ATLASSIAN_ADMIN_KEY={atl['admin_api_key']}\n")
        f.write(f"export ATLASSIAN_SMARTSHEET_SA_ID={sa['id']}\n")
        f.write(f"export ATLASSIAN_SMARTSHEET_SA_ACCOUNT={sa['account_id']}\n")
        f.write(f"export SLACK_API_URL={a.slack}\n")
        f.write(f"export SLACK_PAGERDUTY_BOT_USER={pd['bot_user_id']}\n")
        f.write(f"export SLACK_KEYSWEEP_USER={sl['users'][0]['id']}\n")
        f.write(f"export SLACK_PAGERDUTY_APP={pd['app_id']}\n")
        f.write(f"export SMARTSHEET_URL={a.smartsheet}/2.0\n")
        f.write(f"export SMARTSHEET_ADMIN_TOKEN={ss['tokens'][0]['value']}\n")
        f.write(f"export MOVEWORKS_URL={a.moveworks}\n")
        f.write(f"export MOVEWORKS_ADMIN_TOKEN={mw['tokens'][0]['value']}\n")
        f.write(f"export MOVEWORKS_KEYSWEEP_TOKEN_ID={mw['tokens'][0]['id']}\n")
    print(f"seeded Okta ({len(tokens)} API tokens, {len(apps)} service app), Atlassian (a service account, an API token), Slack (a bot), Smartsheet (2 tokens), Moveworks-style (3 tokens), AWS IAM (2 users) and 11 Vault entries")


if __name__ == "__main__":
    main()
