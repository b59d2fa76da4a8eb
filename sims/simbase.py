"""Shared plumbing of keysweep's vendor simulators.

The SaaS systems keysweep rotates credentials in (Okta, Slack, Atlassian,
Smartsheet, ...) cannot be reached from a test machine, so each has a
simulator here: a real HTTP server on loopback that keeps state and answers
as the vendor documents (each simulator names the pages it follows). This
module holds what they share, with the Python standard library only:

- routing (`Sim.route`), JSON answers (`Resp.json`), query/JSON/form bodies;
- a request log an independent client reads (`GET /_sim/log`), never holding
  a secret: header values are not logged, only header names;
- injected faults (`POST /_sim/faults`): per method/path pattern, the next N
  requests (or all) get a WAF page, a CAPTCHA, an IP allow-list refusal, a
  429 with the vendor's rate-limit headers, a 5xx, a dropped connection, or
  the answer is lost after the server acted (`after_act`). A rule may also
  wait `delay` seconds before the request is handled (alone, with no
  `answer`, it is a slow but correct answer: a test holds a client inside
  one step that way), and let the first `skip` matching requests through
  untouched (they do not count against `times`);
- a server-side rate limit (`POST /_sim/rate`) answered with the vendor's own
  429 shape (`Sim.rate_limited`, `Sim.rate_headers`), and a per-second count
  of what arrived (`GET /_sim/arrivals`) so a test can check a declared rate;
- `POST /_sim/reset` back to the seeded state, `GET /_sim/state` for the
  vendor's own state (what a test checks outcomes against).

Run a simulator as `python3 sims/<vendor>.py [--port N]`: it prints
`listening on 127.0.0.1:<port>` once ready and serves until killed.
"""

import argparse
import ssl
import json
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Req:
    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query  # dict: name -> first value
        self.headers = headers  # email.message.Message (case-insensitive)
        self.body = body
        self.params = {}  # named groups of the route pattern

    def json(self):
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def form(self):
        return {k: v[0] for k, v in urllib.parse.parse_qs(self.body.decode("utf-8", "replace")).items()}

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def bearer(self, scheme="Bearer"):
        """The credential of an `Authorization: <scheme> <value>` header."""
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith(scheme.lower() + " "):
            return auth[len(scheme) + 1 :].strip()
        return None


class Resp:
    def __init__(self, status, body=b"", headers=None, content_type="application/json"):
        self.status = status
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.body = body
        self.headers = dict(headers or {})
        if content_type and body:
            self.headers.setdefault("Content-Type", content_type)

    @staticmethod
    def json(status, obj, headers=None):
        return Resp(status, obj, headers)


class Drop(Exception):
    """Close the connection without an answer."""


# Pages a proxy or firewall in front of a vendor answers with: never the
# vendor's own refusal, so never proof of anything.
WAF_PAGE = (
    "<html><head><title>Attention Required! | Cloudflare</title></head><body>"
    "<h1>Sorry, you have been blocked</h1><p>Ray ID: 7d1f3a2b9c</p></body></html>"
)


class Sim:
    def __init__(self, name):
        self.name = name
        self.routes = []
        self.lock = threading.RLock()
        self.log = []
        self.faults = []
        self.rate = None  # requests per second the "vendor" answers
        self.window = []  # arrival times inside the last second
        self.arrivals = {}  # int(second) -> count
        self.state_fn = lambda: {}
        self.reset_fn = lambda: None
        self.fault_answers = {}  # vendor-specific named faults: name -> fn(req) -> Resp

    # ---- routing
    def route(self, method, pattern):
        rx = re.compile("^" + pattern + "$")

        def deco(fn):
            self.routes.append((method, rx, fn))
            return fn

        return deco

    # ---- vendor hooks (override per simulator)
    def rate_limited(self, req, reset_epoch):
        return Resp.json(429, {"error": "rate_limited"}, {"Retry-After": "1"})

    def rate_headers(self, limit, remaining, reset_epoch):
        return {}

    def named_fault(self, name, req):
        if name in self.fault_answers:
            return self.fault_answers[name](req)
        if name == "waf":
            return Resp(403, WAF_PAGE, {"Server": "cloudflare", "CF-RAY": "7d1f3a2b9c-FRA"}, "text/html")
        if name == "503":
            return Resp(503, "<html><body>503 Service Temporarily Unavailable</body></html>", {}, "text/html")
        if name == "502":
            return Resp(502, "<html><body>502 Bad Gateway</body></html>", {}, "text/html")
        if name == "429":
            return self.rate_limited(req, int(time.time()) + 1)
        raise ValueError("unknown fault " + name)

    # ---- dispatch
    def handle(self, req):
        if req.path.startswith("/_sim/"):
            return self.admin(req)
        now = time.time()
        with self.lock:
            self.arrivals[int(now)] = self.arrivals.get(int(now), 0) + 1
            fault = self._take_fault(req)
            limited = None
            remaining = None
            if self.rate:
                self.window = [t for t in self.window if now - t < 1.0]
                if len(self.window) >= self.rate:
                    limited = int(now) + 1
                else:
                    self.window.append(now)
                    remaining = self.rate - len(self.window)
        entry = {"t": now, "method": req.method, "path": req.path, "headers": sorted(req.headers.keys())}
        try:
            if limited is None and fault is not None and fault.get("delay"):
                # Outside the lock: other requests are answered meanwhile.
                entry["delayed"] = float(fault["delay"])
                time.sleep(float(fault["delay"]))
            if limited is not None:
                resp = self.rate_limited(req, limited)
            elif fault is not None and not fault.get("after_act") and "answer" in fault:
                if fault["answer"] == "drop":
                    raise Drop()
                resp = self.answer_of(fault, req)
            else:
                resp = self.dispatch(req)
                if fault is not None and fault.get("after_act"):  # acted; the answer is lost
                    raise Drop()
            if self.rate and remaining is not None:
                resp.headers.update(self.rate_headers(self.rate, remaining, int(now) + 1))
            entry["status"] = resp.status
            return resp
        except Drop:
            entry["status"] = None
            raise
        finally:
            with self.lock:
                self.log.append(entry)

    def answer_of(self, fault, req):
        a = fault["answer"]
        if isinstance(a, dict):
            return Resp(a.get("status", 500), a.get("body", ""), a.get("headers"), a.get("content_type", "application/json"))
        return self.named_fault(a, req)

    def _take_fault(self, req):
        for f in self.faults:
            if f.get("method") and f["method"] != req.method:
                continue
            if not re.search(f.get("path", ".*"), req.path):
                continue
            if f.get("skip"):
                f["skip"] -= 1  # let this one through untouched
                continue
            if f.get("times") is not None:
                if f["times"] <= 0:
                    continue
                f["times"] -= 1
            return f
        return None

    def dispatch(self, req):
        for method, rx, fn in self.routes:
            m = rx.match(req.path)
            if m and method == req.method:
                req.params = m.groupdict()
                with self.lock:
                    return fn(req)
        return self.not_found(req)

    def not_found(self, req):
        return Resp.json(404, {"error": "not_found"})

    def admin(self, req):
        p = req.path
        with self.lock:
            if p == "/_sim/log":
                return Resp.json(200, self.log)
            if p == "/_sim/arrivals":
                return Resp.json(200, {str(k): v for k, v in sorted(self.arrivals.items())})
            if p == "/_sim/state":
                return Resp.json(200, self.state_fn())
            if p == "/_sim/faults" and req.method == "POST":
                body = req.json() or {}
                self.faults = list(body.get("rules", []))
                return Resp.json(200, {"rules": len(self.faults)})
            if p == "/_sim/rate" and req.method == "POST":
                self.rate = (req.json() or {}).get("per_second")
                self.window = []
                return Resp.json(200, {"per_second": self.rate})
            if p == "/_sim/reset" and req.method == "POST":
                self.faults, self.rate, self.window, self.log, self.arrivals = [], None, [], [], {}
                self.reset_fn()
                return Resp.json(200, {"reset": True})
        extra = self.admin_extra(req)
        if extra is not None:
            return extra
        return Resp.json(404, {"error": "no such admin endpoint"})

    def admin_extra(self, req):
        """Vendor-specific admin endpoints (seeding, clock); None if not one."""
        return None

    # ---- serving
    def serve(self, argv=None):
        ap = argparse.ArgumentParser(description=f"{self.name} simulator")
        ap.add_argument("--port", type=int, default=0)
        ap.add_argument("--host", default="127.0.0.1")
        # HTTPS with this certificate and key (PEM), as the vendor serves it.
        ap.add_argument("--tls-cert")
        ap.add_argument("--tls-key")
        args = ap.parse_args(argv)
        scheme = "https" if args.tls_cert else "http"
        sim = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _go(self):
                u = urllib.parse.urlsplit(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                req = Req(self.command, u.path, query, self.headers, body)
                req.raw_query = u.query
                req.base = f"{scheme}://{self.headers.get('Host', f'{args.host}:{sim.port}')}"
                try:
                    resp = sim.handle(req)
                except Drop:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(2)
                    except OSError:
                        pass
                    return
                except Exception as e:  # a simulator bug: say so plainly, as a 500
                    resp = Resp.json(500, {"error": "simulator error", "detail": type(e).__name__})
                    print(f"{sim.name}: {type(e).__name__}: {e}", file=sys.stderr)
                self.send_response(resp.status)
                for k, v in resp.headers.items():
                    self.send_header(k, str(v))
                self.send_header("Content-Length", str(len(resp.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(resp.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _go

        httpd = ThreadingHTTPServer((args.host, args.port), H)
        httpd.daemon_threads = True
        if args.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        self.port = httpd.server_address[1]
        print(f"listening on {args.host}:{self.port}", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


def iso(t):
    """RFC 3339 UTC with milliseconds, as Okta and Atlassian write times."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)
