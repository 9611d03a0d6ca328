#!/usr/bin/python3
"""Checks ph.control messages against the contract.

Reads JSON-lines files of {"routingKey": ..., "envelope": {...}} objects (what
ph-bridge's file sink writes) and checks every envelope:

  * against the project's schema, docs/spec/control-events.schema.json, and the
    upstream reference ../shared/spec/control-events.schema.json (relative to
    the repository root) when that file exists;
  * against the semantic guards a schema cannot state: envelope keys in the
    contract's order; routing key equal to kind, type and scope (null <=> ALL);
    no config/io/startedAt/workers anywhere in a status-delta's data; no
    workers anywhere in a worker's status; every controller worker entry with
    a location and a transport (shm, relay or amqp); the controller's workers sorted by
    role then instance;
  * across messages, when asked: every signal of --signals FILE answered by
    exactly one outcome echoing its correlationId and idempotencyKey (a
    status-request by a status-full carrying its correlationId); the last
    controller status-full listing exactly --expect-live-workers N workers.

Prints every violation and a summary line; exits 1 on any violation, 2 on a
usage error. The functions are importable: an AMQP capture audit builds a
Checker once and calls check_envelope() per captured message, then
check_conversation() over all of them.

Uses Debian's python3-jsonschema (Draft 2020-12). Format checking of
date-time uses a checker defined here, because the one jsonschema offers needs
an optional package that Debian does not install with it.
"""

import argparse
import datetime
import json
import re
import sys
from pathlib import Path

import jsonschema

REPO_ROOT = Path(__file__).resolve().parents[2]
OWN_SCHEMA = REPO_ROOT / "docs" / "spec" / "control-events.schema.json"
UPSTREAM_SCHEMA = REPO_ROOT.parent / "shared" / "spec" / "control-events.schema.json"

ENVELOPE_KEYS = [
    "timestamp",
    "version",
    "kind",
    "type",
    "origin",
    "scope",
    "correlationId",
    "idempotencyKey",
    "data",
]
CONTROLLER_ROLE = "swarm-controller"
DELTA_FORBIDDEN = ("config", "io", "startedAt", "workers")

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$"
)


def is_rfc3339(value):
    """RFC 3339 date-time with field ranges (leap second 60 allowed)."""
    if not isinstance(value, str):
        return False
    m = _RFC3339.match(value)
    if not m:
        return False
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    if hour > 23 or minute > 59 or second > 60:
        return False
    if m.group(9) and (int(m.group(10)) > 23 or int(m.group(11)) > 59):
        return False
    return True


def format_checker():
    checker = jsonschema.FormatChecker()

    @checker.checks("date-time")
    def _date_time(instance):  # non-strings are the "type" keyword's business
        return not isinstance(instance, str) or is_rfc3339(instance)

    return checker


def _pairs_no_duplicates(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key '{key}'")
        seen.add(key)
    return dict(pairs)  # dicts keep the order the keys were written in


def loads(text):
    """json.loads that refuses duplicate keys and keeps key order."""
    return json.loads(text, object_pairs_hook=_pairs_no_duplicates)


def find_keys(value, names, path="data"):
    """Paths of every member named one of `names`, anywhere under value."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            here = f"{path}.{key}"
            if key in names:
                found.append(here)
            found.extend(find_keys(child, names, here))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found.extend(find_keys(child, names, f"{path}[{i}]"))
    return found


def expected_routing_key(env):
    """The routing key the contract derives from kind, type and scope."""
    scope = env.get("scope") if isinstance(env.get("scope"), dict) else {}
    segs = [scope.get(k) for k in ("swarmId", "role", "instance")]
    segs = ["ALL" if s is None else str(s) for s in segs]
    family = {
        "signal": "signal",
        "outcome": "event.outcome",
        "metric": "event.metric",
        "event": "event.alert",
    }.get(env.get("kind"))
    if family is None:
        return None
    return ".".join([family, str(env.get("type"))] + segs)


def is_controller(env):
    scope = env.get("scope")
    return isinstance(scope, dict) and scope.get("role") == CONTROLLER_ROLE


class Checker:
    """Schema validators plus the per-envelope semantic guards."""

    def __init__(self, own_schema=OWN_SCHEMA, upstream_schema=UPSTREAM_SCHEMA):
        self.validators = []
        fc = format_checker()
        for name, path in (("project schema", own_schema), ("upstream schema", upstream_schema)):
            if path is None:
                continue
            path = Path(path)
            if name == "upstream schema" and not path.exists():
                continue
            schema = json.loads(path.read_text(encoding="utf-8"))
            jsonschema.Draft202012Validator.check_schema(schema)
            self.validators.append((name, jsonschema.Draft202012Validator(schema, format_checker=fc)))

    @property
    def schema_names(self):
        return [name for name, _ in self.validators]

    def check_envelope(self, routing_key, env):
        """Every problem of one message, as sentences."""
        problems = []
        for name, validator in self.validators:
            for err in sorted(validator.iter_errors(env), key=lambda e: list(e.absolute_path)):
                where = "/".join(str(p) for p in err.absolute_path) or "(envelope)"
                problems.append(f"{name}: {where}: {_short(err.message)}")
        if not isinstance(env, dict):
            return problems or ["envelope is not an object"]
        keys = list(env.keys())
        if keys != ENVELOPE_KEYS and set(keys) == set(ENVELOPE_KEYS):
            problems.append(f"envelope keys out of order: {keys}")
        want = expected_routing_key(env)
        if want is not None and routing_key != want:
            problems.append(f"routing key '{routing_key}' does not match the envelope (expected '{want}')")
        data = env.get("data")
        if env.get("kind") == "metric" and isinstance(data, dict):
            if env.get("type") == "status-delta":
                for path in find_keys(data, DELTA_FORBIDDEN):
                    problems.append(f"status-delta carries {path}")
            if not is_controller(env):
                for path in find_keys(data, ("workers",)):
                    problems.append(f"a worker's status carries {path}")
            elif env.get("type") == "status-full":
                problems.extend(_check_worker_order(data))
                problems.extend(_check_worker_where(data))
        return problems


TRANSPORTS = ("shm", "relay", "amqp")


def _check_worker_where(data):
    """The project's rule: every entry of the controller's worker list says
    where the worker runs (location) and how it reports (transport)."""
    ctx = data.get("context")
    workers = ctx.get("workers") if isinstance(ctx, dict) else None
    if not isinstance(workers, list):
        return []
    for i, w in enumerate(workers):
        if not isinstance(w, dict):
            continue
        loc, tr = w.get("location"), w.get("transport")
        if not isinstance(loc, str) or not loc:
            return [f"data.context.workers[{i}] has no location"]
        if tr not in TRANSPORTS:
            return [f"data.context.workers[{i}].transport is {tr!r}, not one of {', '.join(TRANSPORTS)}"]
    return []


def _check_worker_order(data):
    ctx = data.get("context")
    workers = ctx.get("workers") if isinstance(ctx, dict) else None
    if not isinstance(workers, list):
        return []
    keys = [
        (w.get("role"), w.get("instance")) if isinstance(w, dict) else (None, None)
        for w in workers
    ]
    try:
        for i in range(1, len(keys)):
            if not keys[i - 1] < keys[i]:
                return [f"data.context.workers not sorted by role then instance (or a worker listed twice) at entry {i}: {keys[i]}"]
    except TypeError:
        return []  # entries without string role/instance: the schema reports them
    return []


def _short(message, limit=200):
    return message if len(message) <= limit else message[:limit] + "..."


def parse_line(text):
    """One sink line -> (routingKey, envelope, problems)."""
    try:
        obj = loads(text)
    except ValueError as e:
        return None, None, [f"not JSON: {e}"]
    if not isinstance(obj, dict):
        return None, None, ["line is not a JSON object"]
    problems = []
    if list(obj.keys()) != ["routingKey", "envelope"]:
        problems.append(f"line keys are {list(obj.keys())}, expected ['routingKey', 'envelope']")
    rk = obj.get("routingKey")
    env = obj.get("envelope")
    if not isinstance(rk, str):
        problems.append("routingKey is not a string")
    if not isinstance(env, dict):
        problems.append("envelope is not an object")
        env = None
    return rk, env, problems


def read_records(path):
    """Every non-blank line of a JSON-lines file as (where, rk, env, problems)."""
    records = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            rk, env, problems = parse_line(line)
            records.append((f"{path}:{n}", rk, env, problems))
    return records


def check_conversation(messages, signals=None, expect_live_workers=None):
    """Rules across messages. messages: [(where, rk, env)] of emitted
    envelopes in order; signals: [(where, rk, env)] sent to the swarm.
    Returns [(where, what)]."""
    violations = []
    if signals is not None:
        for where, _rk, sig in signals:
            if not isinstance(sig, dict):
                continue
            cid, ikey, stype = sig.get("correlationId"), sig.get("idempotencyKey"), sig.get("type")
            if stype == "status-request":
                fulls = [m for m in messages if m[2].get("kind") == "metric"
                         and m[2].get("type") == "status-full" and m[2].get("correlationId") == cid]
                if not fulls:
                    violations.append((where, f"status-request {cid} was answered by no status-full carrying its correlationId"))
                continue
            outcomes = [m for m in messages if m[2].get("kind") == "outcome" and m[2].get("correlationId") == cid]
            if len(outcomes) != 1:
                violations.append((where, f"{stype} {cid} got {len(outcomes)} outcomes, expected exactly one"))
            for owhere, _ork, out in outcomes:
                if out.get("idempotencyKey") != ikey:
                    violations.append((owhere, f"outcome for {cid} carries idempotencyKey {out.get('idempotencyKey')!r}, the signal had {ikey!r}"))
                if out.get("type") != stype:
                    violations.append((owhere, f"outcome for {cid} has type {out.get('type')!r}, the signal was {stype!r}"))
    if expect_live_workers is not None:
        fulls = [m for m in messages if m[2].get("kind") == "metric" and m[2].get("type") == "status-full" and is_controller(m[2])]
        if not fulls:
            violations.append(("(all)", "no controller status-full to count live workers in"))
        else:
            where, _rk, last = fulls[-1]
            ctx = last.get("data", {}).get("context") or {}
            workers = ctx.get("workers") if isinstance(ctx, dict) else None
            n = len(workers) if isinstance(workers, list) else 0
            if n != expect_live_workers:
                violations.append((where, f"the last controller status-full lists {n} workers, expected {expect_live_workers}"))
    return violations


def main(argv=None):
    ap = argparse.ArgumentParser(description="Check ph.control envelopes (JSON lines) against the contract.")
    ap.add_argument("files", nargs="+", help="JSON-lines files of {routingKey, envelope}")
    ap.add_argument("--signals", metavar="FILE", help="signal lines sent to the swarm: each must be answered exactly once")
    ap.add_argument("--expect-live-workers", type=int, metavar="N", help="the last controller status-full lists exactly N workers")
    ap.add_argument("--schema", default=str(OWN_SCHEMA), help="project schema (default: %(default)s)")
    ap.add_argument("--upstream-schema", default=str(UPSTREAM_SCHEMA), help="also validate against this schema when it exists (default: %(default)s)")
    ap.add_argument("--no-upstream", action="store_true", help="skip the upstream schema")
    ap.add_argument("-q", "--quiet", action="store_true", help="print only violations and the summary")
    args = ap.parse_args(argv)

    try:
        checker = Checker(args.schema, None if args.no_upstream else args.upstream_schema)
    except (OSError, ValueError, jsonschema.exceptions.SchemaError) as e:
        print(f"contract: cannot load a schema: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"contract: validating against {', '.join(checker.schema_names)}")

    violations = []
    messages = []
    checked = 0
    for path in args.files:
        try:
            records = read_records(path)
        except OSError as e:
            print(f"contract: {e}", file=sys.stderr)
            return 2
        for where, rk, env, problems in records:
            checked += 1
            if env is not None:
                problems = problems + checker.check_envelope(rk, env)
                messages.append((where, rk, env))
            violations.extend((where, p) for p in problems)

    signals = None
    if args.signals:
        signals = []
        try:
            srecords = read_records(args.signals)
        except OSError as e:
            print(f"contract: {e}", file=sys.stderr)
            return 2
        for where, rk, env, problems in srecords:
            if env is None or problems:
                violations.extend((where, f"signal line: {p}") for p in problems)
                continue
            signals.append((where, rk, env))
    violations.extend(check_conversation(messages, signals, args.expect_live_workers))

    for where, what in violations:
        print(f"{where}: {what}")
    print(f"contract: {checked} envelopes checked, {len(violations)} violations")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
