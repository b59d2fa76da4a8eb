#!/usr/bin/env python3
"""Value-based canary scan over everything a test run wrote.

The tests record every secret value they create or read back from a server
(tests/common: `canary()`), hex-encoded, one per line, in the file named by
KEYSWEEP_CANARY_FILE. This scans the test run's whole output log and every
file left under the run's TMPDIR for any of those values -- raw, URL-encoded,
JSON-escaped or base64 -- and fails naming the file, the offset and the
canary's index, never the value itself.

The data directories of the servers under test (PostgreSQL, MariaDB, Redis,
slapd: `keysweep-pg-*` and the like) are not scanned: they hold what the
tests gave those servers, not what keysweep wrote.

usage: canary_scan.py CANARY_FILE PATH...
"""
import base64
import json
import os
import sys
import urllib.parse

SERVER_DIRS = ("keysweep-pg-", "keysweep-mariadb-", "keysweep-redis-", "keysweep-slapd-")


def forms(v: bytes):
    s = v.decode("utf-8", "replace")
    out = {v, urllib.parse.quote(s, safe="").encode(), json.dumps(s)[1:-1].encode()}
    # base64 of the value, at each of the three alignments a surrounding text can give it
    for pad in range(3):
        b = base64.b64encode(b"\0" * pad + v)[4 * ((pad + 2) // 3):]
        out.add(b[: len(b) - 4] if len(b) > 8 else b)
    return {f for f in out if len(f) >= 8}


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    canary_file = sys.argv[1]
    try:
        with open(canary_file) as f:
            values = sorted({bytes.fromhex(l.strip()) for l in f if l.strip()})
    except FileNotFoundError:
        values = []
    patterns = [(i, p) for i, v in enumerate(values) for p in forms(v)]
    scanned, hits = 0, []
    paths = []
    for root in sys.argv[2:]:
        if os.path.isfile(root):
            paths.append(root)
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if not x.startswith(SERVER_DIRS)]
            paths.extend(os.path.join(d, n) for n in files)
    for path in paths:
        if os.path.abspath(path) == os.path.abspath(canary_file):
            continue
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        scanned += 1
        for i, p in patterns:
            at = data.find(p)
            if at >= 0:
                hits.append(f"{path}: offset {at}: canary #{i} ({len(values[i])} bytes)")
    print(f"canary scan: {len(values)} secret values the tests created or read back, "
          f"{len(patterns)} forms, {scanned} files scanned: {len(hits)} found")
    for h in hits[:50]:
        print("  LEAK " + h)
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
