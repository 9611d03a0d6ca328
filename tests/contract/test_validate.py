#!/usr/bin/python3
"""The contract validator (validate.py) catches what it promises to catch:
each test starts from a valid message and breaks one rule. Also proves that
both schemas accept the valid messages, so the project's schema is not looser
than needed nor in conflict with the upstream one."""

import io
import json
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

sys.dont_write_bytecode = True  # keep the source tree clean when run by ctest
sys.path.insert(0, str(Path(__file__).resolve().parent))
import validate  # noqa: E402

TS = "2026-11-27T02:00:00.123Z"
S = "demo"
CTL = "demo-controller"


def env(kind, mtype, role, instance, data, cid=None, ikey=None, swarm=S):
    return {
        "timestamp": TS,
        "version": "1",
        "kind": kind,
        "type": mtype,
        "origin": CTL,
        "scope": {"swarmId": swarm, "role": role, "instance": instance},
        "correlationId": cid,
        "idempotencyKey": ikey,
        "data": data,
    }


IOSTATE = {"work": {"input": "ok", "output": "ok"}}
AGG = {
    "swarmStatus": "RUNNING",
    "state": "RUNNING",
    "totals": {"desired": 2, "healthy": 2, "running": 2, "enabled": 2},
    "watermark": TS,
    "maxStalenessSec": 1.5,
    "scenario": {},
}


def worker_entry(role, inst):
    return {"role": role, "instance": inst, "enabled": True, "tps": 3, "ioState": IOSTATE,
            "lastSeenAt": TS, "stale": False, "location": "host-a", "transport": "shm"}


def controller_full(cid=None, workers=None):
    ctx = dict(AGG, workers=workers if workers is not None
               else [worker_entry("generator", "gen-1"), worker_entry("moderator", "mod-1")])
    return env("metric", "status-full", "swarm-controller", CTL,
               {"enabled": True, "tps": 6, "ioState": IOSTATE, "config": {"a": 1}, "io": {},
                "startedAt": TS, "context": ctx}, cid=cid)


def controller_delta():
    return env("metric", "status-delta", "swarm-controller", CTL,
               {"enabled": True, "tps": 6, "ioState": IOSTATE, "context": dict(AGG)})


def worker_full():
    return env("metric", "status-full", "generator", "gen-1",
               {"enabled": True, "tps": 3, "ioState": IOSTATE, "config": {},
                "io": {"work": {"queues": {"in": ["q"]}}}, "startedAt": TS,
                "context": {"location": "here"}})


def worker_delta():
    return env("metric", "status-delta", "generator", "gen-1",
               {"enabled": False, "tps": 0, "ioState": {"work": {"input": "out-of-data", "output": "ok"}}})


def outcome(cid="c-1", ikey="i-1", mtype="swarm-start"):
    return env("outcome", mtype, "swarm-controller", CTL, {"status": "Running"}, cid=cid, ikey=ikey)


def alert():
    return env("event", "alert", None, None,
               {"level": "warn", "code": "io.out-of-data", "message": "done", "logRef": None})


def signal(mtype="swarm-start", cid="c-1", ikey="i-1"):
    e = env("signal", mtype, "swarm-controller", CTL, {}, cid=cid, ikey=ikey)
    e["origin"] = "orchestrator-1"
    return e


def rk_of(e):
    return validate.expected_routing_key(e)


class EnvelopeChecks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.checker = validate.Checker()

    def problems(self, e, rk=None):
        return self.checker.check_envelope(rk if rk is not None else rk_of(e), e)

    def assertClean(self, e):
        self.assertEqual(self.problems(e), [])

    def assertFlagged(self, e, needle, rk=None):
        found = self.problems(e, rk)
        self.assertTrue(any(needle in p for p in found), f"'{needle}' not in {found}")

    def test_valid_messages_of_every_kind_pass_both_schemas(self):
        if not validate.UPSTREAM_SCHEMA.exists():
            self.skipTest("no upstream schema beside the checkout")
        self.assertEqual(self.checker.schema_names, ["project schema", "upstream schema"])
        for e in (controller_full(), controller_delta(), worker_full(), worker_delta(),
                  outcome(), alert(), signal()):
            self.assertClean(e)

    def test_keys_out_of_order(self):
        e = worker_delta()
        reordered = {"version": e["version"], "timestamp": e["timestamp"]}
        reordered.update({k: v for k, v in e.items() if k not in reordered})
        self.assertFlagged(reordered, "envelope keys out of order")

    def test_routing_key_must_match_scope_and_type(self):
        e = worker_delta()
        self.assertFlagged(e, "does not match", rk="event.metric.status-delta.demo.generator.ALL")
        self.assertFlagged(e, "does not match", rk="event.metric.status-full.demo.generator.gen-1")
        self.assertClean(alert())
        self.assertEqual(rk_of(alert()), "event.alert.alert.demo.ALL.ALL")

    def test_delta_must_not_carry_heavy_fields_anywhere(self):
        e = worker_delta()
        e["data"]["config"] = {}
        self.assertFlagged(e, "status-delta carries data.config")
        e = controller_delta()
        e["data"]["context"]["summary"] = {"generator": {"io": {}}}
        self.assertFlagged(e, "status-delta carries data.context.summary.generator.io")

    def test_worker_status_must_not_carry_workers(self):
        e = worker_full()
        e["data"]["context"]["workers"] = []
        self.assertFlagged(e, "a worker's status carries data.context.workers")

    def test_controller_workers_say_where_they_run_and_how(self):
        w = worker_entry("generator", "gen-1")
        del w["location"]
        self.assertFlagged(controller_full(workers=[w]), "has no location")
        w = worker_entry("generator", "gen-1")
        w["transport"] = "carrier-pigeon"
        self.assertFlagged(controller_full(workers=[w]), "transport is 'carrier-pigeon'")
        for tr in ("shm", "relay", "amqp"):
            w = worker_entry("generator", "gen-1")
            w["transport"] = tr
            self.assertClean(controller_full(workers=[w]))

    def test_controller_workers_sorted_by_role_then_instance(self):
        e = controller_full(workers=[worker_entry("moderator", "mod-1"), worker_entry("generator", "gen-1")])
        self.assertFlagged(e, "not sorted")
        e = controller_full(workers=[worker_entry("generator", "gen-2"), worker_entry("generator", "gen-10")])
        self.assertFlagged(e, "not sorted")  # byte order: "gen-10" < "gen-2"

    def test_schema_rules(self):
        cases = [
            (lambda e: e.update(version="2"), worker_delta),
            (lambda e: e["data"].update(tps=-1), worker_delta),
            (lambda e: e["data"].update(tps=1.5), worker_delta),
            (lambda e: e["data"]["ioState"]["work"].update(input="sleepy"), worker_delta),
            (lambda e: e["data"].pop("startedAt"), worker_full),
            (lambda e: e["data"].pop("code"), alert),
            (lambda e: e.update(correlationId=None), outcome),
            (lambda e: e.update(kind="gossip"), worker_delta),
            (lambda e: e["scope"].update(role="gen.erator"), worker_delta),
            (lambda e: e["scope"].update(role="ALL"), worker_delta),
            (lambda e: e.update(timestamp="yesterday"), worker_delta),
            (lambda e: e.update(timestamp="2026-02-30T00:00:00Z"), worker_delta),
            (lambda e: e.update(idempotencyKey=""), outcome),
            (lambda e: e["data"]["context"].pop("workers"), controller_full),
            (lambda e: e["data"].pop("context"), controller_delta),
            (lambda e: e.update(type="swarm-explode"), signal),
            (lambda e: e.update(extra=1), worker_delta),
        ]
        for i, (mutate, make) in enumerate(cases):
            e = make()
            mutate(e)
            with self.subTest(case=i):
                self.assertTrue(any(p.startswith("project schema") for p in self.problems(e)),
                                f"case {i} not flagged by the project schema")


class ConversationChecks(unittest.TestCase):
    def msgs(self, *envs):
        return [(f"out:{i}", rk_of(e), e) for i, e in enumerate(envs, 1)]

    def test_each_signal_answered_exactly_once_with_echoed_ids(self):
        sigs = [("sig:1", None, signal(cid="c-1", ikey="i-1")),
                ("sig:2", None, signal("status-request", cid="c-2", ikey=None))]
        ok = self.msgs(outcome("c-1", "i-1"), controller_full(cid="c-2"))
        self.assertEqual(validate.check_conversation(ok, sigs), [])
        none = self.msgs(controller_full(cid="c-2"))
        self.assertIn("got 0 outcomes", validate.check_conversation(none, sigs)[0][1])
        two = self.msgs(outcome("c-1", "i-1"), outcome("c-1", "i-1"), controller_full(cid="c-2"))
        self.assertIn("got 2 outcomes", validate.check_conversation(two, sigs)[0][1])
        wrong_ikey = self.msgs(outcome("c-1", "other"), controller_full(cid="c-2"))
        self.assertIn("idempotencyKey", validate.check_conversation(wrong_ikey, sigs)[0][1])
        no_full = self.msgs(outcome("c-1", "i-1"))
        self.assertIn("status-request", validate.check_conversation(no_full, sigs)[0][1])

    def test_last_controller_full_lists_the_live_workers(self):
        msgs = self.msgs(controller_full(workers=[]), controller_full())
        self.assertEqual(validate.check_conversation(msgs, expect_live_workers=2), [])
        self.assertEqual(len(validate.check_conversation(msgs, expect_live_workers=0)), 1)
        self.assertEqual(len(validate.check_conversation([], expect_live_workers=0)), 1)


class CommandLine(unittest.TestCase):
    def run_main(self, lines, *args):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write("".join(l + "\n" for l in lines))
        out = io.StringIO()
        with redirect_stdout(out):
            rc = validate.main([f.name, "-q", *args])
        Path(f.name).unlink()
        return rc, out.getvalue()

    def line(self, e, rk=None):
        return json.dumps({"routingKey": rk or rk_of(e), "envelope": e})

    def test_clean_file_exits_0_with_summary(self):
        rc, out = self.run_main([self.line(worker_delta()), self.line(alert())])
        self.assertEqual(rc, 0)
        self.assertIn("contract: 2 envelopes checked, 0 violations", out)

    def test_violations_are_listed_with_their_line_and_exit_1(self):
        bad = worker_delta()
        bad["data"]["config"] = {}
        rc, out = self.run_main([self.line(worker_delta()), self.line(bad), "not json",
                                 '{"routingKey":"x","envelope":{},"more":1}',
                                 '{"a":1,"a":2}'])
        self.assertEqual(rc, 1)
        self.assertRegex(out, r":2: .*status-delta carries data\.config")
        self.assertRegex(out, r":3: not JSON")
        self.assertRegex(out, r":4: line keys are")
        self.assertRegex(out, r":5: not JSON: duplicate key 'a'")
        self.assertIn("contract: 5 envelopes checked", out)

    def test_missing_file_is_a_usage_error(self):
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(out):
            self.assertEqual(validate.main(["/nonexistent/file.jsonl", "-q"]), 2)
        self.assertIn("No such file", out.getvalue())


if __name__ == "__main__":
    unittest.main(verbosity=1)
