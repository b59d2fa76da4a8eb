#!/usr/bin/env python3
"""Prints how many conformance trials each credential kind ran (from the log
the tests append to, see src/provider/conformance.rs) and fails when a kind
the registry knows (read from `keysweep schema`) ran none.

usage: conformance_summary.py <log> <keysweep binary>
"""
import json
import subprocess
import sys
from collections import defaultdict

log, binary = sys.argv[1], sys.argv[2]
schema = json.loads(subprocess.run([binary, "schema"], check=True, capture_output=True, text=True).stdout)
defs = schema.get("$defs") or schema.get("definitions") or {}
kinds = sorted(v["properties"]["kind"]["const"] for v in defs["Target"]["oneOf"])

trials = defaultdict(set)
runs = defaultdict(int)
try:
    with open(log) as f:
        for line in f:
            kind, _, trial = line.strip().partition(" ")
            if kind:
                trials[kind].add(trial)
                runs[kind] += 1
except FileNotFoundError:
    pass

print("\nconformance trials per kind (distinct trials / trial runs):")
missing = []
for k in kinds + sorted(k for k in trials if k not in kinds):
    n = len(trials.get(k, ()))
    print(f"  {k:<28} {n:>2} / {runs.get(k, 0):>3}  {', '.join(sorted(trials.get(k, ())))}")
    if k in kinds and n == 0:
        missing.append(k)
if missing:
    print(f"conformance: no trial ran for {', '.join(missing)}: every registered kind must run its trials", file=sys.stderr)
    sys.exit(1)
