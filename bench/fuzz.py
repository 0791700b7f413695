"""Fuzz the proxy's request path: `python bench/fuzz.py [--cases 100000] [--seed 1]`.

Runs one proxy and one scripted upstream in process (tests/support/hostile.py) and sends
generated cases: client bodies mutated at a random place, arbitrary bytes, nesting around the
limit, valid bodies for every front end x provider protocol, and hostile upstream replies
(wrong shapes, not JSON, truncated, 200-with-error, echoed keys, oversized events, garbage SSE).
Every answer is checked as the property tests check it (no 500, client faults < 500, the
client protocol's JSON, no key in any answer or log, the config watcher alive). Prints the cases
tried per class, the statuses seen, the rate, and every failure kind with one example. Asserts
nothing: exit status 1 when something failed, so it can run in CI as a long smoke run.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.hostile import (
    CLIENT_KEY,
    FRONT_ENDS,
    NATIVE,
    PROVIDER_KEY,
    PROVIDERS,
    Gateway,
    LogTap,
    body_for,
    keys_in_logs,
    paths_of,
    problems,
    replaced,
)
from tests.support.scripted_upstream import Script
from vpipe_proxy.shapes import MAX_DEPTH

ECHO = f"Authorization: Bearer {PROVIDER_KEY}; x-api-key: {CLIENT_KEY}"


def random_json(rng: random.Random, depth: int = 0, *, echo: bool = False) -> Any:
    """A random JSON value; with `echo`, strings may carry the keys (as an upstream that
    echoes headers would; a client cannot know the provider's key)."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**63 - 1, -(2**63), rng.randrange(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e-300, 3.0])
    if kind in (4, 5):
        return rng.choice(["", "x", "user", "assistant", "tool", "text", "function", "é☕",
                           "\x00", "a" * rng.randrange(1, 300), ECHO if echo else "k"])
    if kind in (6, 7):
        return [random_json(rng, depth + 1, echo=echo) for _ in range(rng.randrange(4))]
    return {rng.choice(["type", "role", "content", "text", "id", "x", ""]):
            random_json(rng, depth + 1, echo=echo) for _ in range(rng.randrange(4))}


def client_case(rng: random.Random) -> tuple[str, str, bytes, Script | None, bool]:
    path = rng.choice(sorted(FRONT_ENDS))
    provider = rng.choice(PROVIDERS)
    roll = rng.random()
    if roll < 0.70:
        body = body_for(path, provider, stream=rng.random() < 0.5)
        places = [p for p in paths_of(body) if p and p != ("model",)]
        return "client/mutated", path, orjson.dumps(
            replaced(body, rng.choice(places), random_json(rng))), None, True
    if roll < 0.80:
        raw = rng.randbytes(rng.randrange(200))
        return "client/bytes", path, raw, None, True
    if roll < 0.85:
        depth = rng.randrange(MAX_DEPTH - 5, 1100)
        raw = orjson.dumps(body_for(path, provider))[:-1] + b',"metadata":' + (
            b"[" * depth + b"]" * depth) + b"}"
        return "client/nested", path, raw, None, True
    body = body_for(path, provider, stream=rng.random() < 0.5)
    return "client/valid", path, orjson.dumps(body), None, True


def upstream_case(rng: random.Random) -> tuple[str, str, bytes, Script, bool]:
    path = rng.choice(sorted(FRONT_ENDS))
    provider = rng.choice(PROVIDERS)
    body = orjson.dumps(body_for(path, provider, stream=rng.random() < 0.5))
    status = rng.choice([200, 200, 200, 400, 401, 404, 429, 500, 502, 503])
    headers = {"Retry-After": "3"} if rng.random() < 0.3 else {}
    roll = rng.random()
    if roll < 0.35:
        reply = rng.choice([
            orjson.dumps(random_json(rng, echo=True)),
            rng.randbytes(rng.randrange(100)),
            b'{"id": "x", "choices": [{"message": {"content": "trunc',
            orjson.dumps({"error": {"message": ECHO, "type": "server_error"}}),
            orjson.dumps({"type": "error", "error": {"type": "api_error", "message": ECHO}}),
            orjson.dumps({"error": ECHO}),
            b"[" * 600 + b"]" * 600,
        ])
        return "upstream/whole", path, body, Script(status=status, body=reply,
                                                    headers=headers), False
    if roll < 0.85:
        events = []
        for _ in range(rng.randrange(7)):
            pick = rng.random()
            if pick < 0.5:
                events.append(b"data: " + orjson.dumps(random_json(rng, echo=True)) + b"\n\n")
            elif pick < 0.65:
                events.append(rng.randbytes(rng.randrange(60)))
            elif pick < 0.75:
                events.append(b'data: {"error": {"message": "' + ECHO.encode() + b'"}}\n\n')
            elif pick < 0.8:
                events.append(b"data: " + b"y" * 70_000 + b"\n\n")
            else:
                events.append(b"data: [DONE]\n\n")
        return ("upstream/stream", path, body, Script(status=200, chunks=events),
                (path, provider) not in NATIVE)
    return "upstream/echo", path, body, Script(status=status, echo_headers=True), False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tap = LogTap()
    root = logging.getLogger()
    root.addHandler(tap)
    root.setLevel(logging.INFO)
    logging.getLogger("vpipe_proxy.frontend").propagate = True
    tried: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    examples: dict[str, str] = {}
    started = time.perf_counter()
    with Gateway(settings={"max_upstream_body_bytes": 1024 * 1024,
                           "max_sse_event_bytes": 64 * 1024}) as gateway:
        for n in range(args.cases):
            if rng.random() < 0.5:
                kind, path, raw, script, check_events = client_case(rng)
                client_fault = True
            else:
                kind, path, raw, script, check_events = upstream_case(rng)
                client_fault = False
            tried[kind] += 1
            answer = gateway.post(path, raw, script=script)
            statuses[f"{kind} {answer.status}"] += 1
            found = problems(path, answer, client_fault=client_fault,
                             check_events=check_events)
            if n % 1000 == 0:
                if keys_in_logs(tap):
                    found.append("a key reached the log")
                tap.texts.clear()
                if not gateway.tasks_alive():
                    found.append("the config watcher died")
            for problem in found:
                label = f"{kind}: {problem[:80]}"
                failures[label] += 1
                examples.setdefault(label, f"{path} {raw[:300]!r} script={script!r}"[:600])
        if keys_in_logs(tap):
            failures["a key reached the log"] += 1
    seconds = time.perf_counter() - started
    print(f"vpipe fuzz: {args.cases} cases, seed {args.seed}, {seconds:.0f} s "
          f"({args.cases / seconds:.0f} cases/s), proxy + scripted upstream in one process")
    print("\ncases per class:")
    for kind, count in sorted(tried.items()):
        print(f"  {kind:18} {count:8}")
    print("\nstatuses seen:")
    for key, count in sorted(statuses.items()):
        print(f"  {key:24} {count:8}")
    print(f"\nfailures: {sum(failures.values())}")
    for label, count in failures.most_common():
        print(f"  {count:6}  {label}\n          e.g. {examples.get(label, '')}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
