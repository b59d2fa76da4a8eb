"""Helpers for the simulators' unittest suites (stdlib only): start one
simulator process per test module on a free port, call it as a client would.
"""

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


class Server:
    def __init__(self, script):
        self.proc = subprocess.Popen(
            [sys.executable, "-u", os.path.join(HERE, script), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline()
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"{script} did not start: {line!r} {self.proc.stderr.read()!r}")
        self.base = f"http://127.0.0.1:{m.group(1)}"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def call(self, method, path, auth=None, body=None):
        """(status, headers, parsed JSON or text). `path` may be an absolute URL."""
        url = path if path.startswith("http") else self.base + path
        h = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        elif method in ("POST", "PUT"):
            data = b""
        if auth is not None:
            h["Authorization"] = auth
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, hdrs, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        text = raw.decode()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return status, hdrs, parsed

    def admin(self, method, what, body=None):
        s, _, v = self.call(method, "/_sim/" + what, body=body)
        assert s == 200, (what, s, v)
        return v
