"""End-to-end check of the controller's status semantics through the bridge.

Starts ph-swarm-controller, three ph-workers and ph-bridge (file sink, signals
from a file) on a private swarm id, drives them with signals and process
events, and asserts on the envelopes the bridge writes:
  - worker status-full on join; controller status-full on start and on request;
  - swarm-start / config-update (swarm, instance) / swarm-template / swarm-plan /
    swarm-stop / swarm-remove each get exactly one outcome echoing the ids;
  - swarm-remove ends the swarm: the final REMOVED delta and full (no
    workers) are the controller's last envelopes, then controller and bridge
    exit 0 by themselves;
  - every controller status document states its cadence
    (data.context.intervalSeconds);
  - a replayed idempotencyKey is answered again but not applied again;
  - a malformed config-update fails with an alert;
  - io.out-of-data is alerted once;
  - kill -9 of a worker: the next delta shows it unhealthy, the full lists it
    stale and dead; restarted, it is healthy again;
  - SIGSTOP of a worker: stale after the TTL (it gets a real status-request),
    healthy again after SIGCONT;
  - the journal holds signals, outcomes, alerts and health transitions;
  - item 20: secrets in a worker's --config-file (dbPass, auth, a URL's
    user:password) and in a config-update reach no envelope, the journal or
    a process log (the files are searched for the literal secret values);
  - every envelope validates against the schema(s) and the semantic guards
    (tests/contract/validate.py).
Prints "N passed, M failed" last; exits non-zero on any failure."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

BIN = os.path.abspath(sys.argv[1])
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SWARM = "pht-e2e-%d" % os.getpid()
CTL = SWARM + "-controller"
TTL_S = 2
# Item 20: secret values, unique to the run, that must never be written out.
# Each sits under a key or in a value the old name list let through.
SECRET = {k: "%s-%d-x9" % (k, os.getpid()) for k in
          ("dbpass", "auth", "urlpass", "urltoken", "patchpass", "patchurl")}

passed = 0
failed = 0
procs = {}


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print("PASS %s" % what)
    else:
        failed += 1
        print("FAIL %s" % what)
    sys.stdout.flush()
    return ok


class Sink:
    """Reads the bridge's JSON-lines file incrementally."""

    def __init__(self, path):
        self.path = path
        self.lines = []
        self.pos = 0
        self.buf = ""

    def poll(self):
        try:
            with open(self.path) as f:
                f.seek(self.pos)
                data = f.read()
                self.pos = f.tell()
        except FileNotFoundError:
            return
        self.buf += data
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if line.strip():
                self.lines.append(json.loads(line))

    def find(self, pred, start=0):
        self.poll()
        return [m for m in self.lines[start:] if pred(m)]

    def wait(self, pred, timeout=10.0, start=0, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.find(pred, start)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        return self.find(pred, start)


def env_of(m):
    return m["envelope"]


def is_kind(kind, typ=None, role=None, instance=None, cid=None):
    def pred(m):
        e = m["envelope"]
        if e["kind"] != kind or (typ and e["type"] != typ):
            return False
        if role and e["scope"]["role"] != role:
            return False
        if instance and e["scope"]["instance"] != instance:
            return False
        if cid and e["correlationId"] != cid:
            return False
        return True

    return pred


def start(name, argv, log):
    procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    return procs[name]


def worker_argv(role, inst, cfg, config_file=None):
    """--config-file when given (the cfg is written there first), else --config."""
    if config_file:
        with open(config_file, "w") as f:
            json.dump(cfg, f)
        given = ["--config-file", config_file]
    else:
        given = ["--config", json.dumps(cfg)]
    return [BIN + "/ph-worker", "--swarm", SWARM, "--role", role, "--instance", inst] + given + [
        "--heartbeat-ms", "200"]


def main():
    tmp = tempfile.mkdtemp(prefix="ph-e2e-")
    sink_path = os.path.join(tmp, "envelopes.jsonl")
    sig_path = os.path.join(tmp, "signals.jsonl")
    open(sig_path, "w").close()
    log = open(os.path.join(tmp, "processes.log"), "w")
    swarm_file = os.path.join(tmp, "swarm.json")
    with open(swarm_file, "w") as f:
        json.dump({"swarmId": SWARM, "roles": [{"role": "generator", "count": 2},
                                               {"role": "processor", "count": 1}]}, f)
    sink = Sink(sink_path)
    sent = []

    def signal_(typ, role=None, instance=None, data=None, ikey=None, cid=None):
        cid = cid or str(uuid.uuid4())
        env = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
               "version": "1", "kind": "signal", "type": typ, "origin": "e2e-test",
               "scope": {"swarmId": SWARM, "role": role, "instance": instance},
               "correlationId": cid, "idempotencyKey": ikey, "data": data or {}}
        rk = "signal.%s.%s.%s.%s" % (typ, SWARM, role or "ALL", instance or "ALL")
        line = {"routingKey": rk, "envelope": env}
        sent.append(line)
        with open(sig_path, "a") as f:
            f.write(json.dumps(line) + "\n")
        return cid

    try:
        start("controller", [BIN + "/ph-swarm-controller", "--swarm", SWARM, "--swarm-file",
                             swarm_file, "--status-ttl-s", str(TTL_S), "--watermark-s", "1",
                             "--dead-grace-s", "4", "--journal-dir", os.path.join(tmp, "journal"),
                             "--run-id", "e2e-run"], log)
        start("bridge", [BIN + "/ph-bridge", "--swarm", SWARM, "--sink", "file:" + sink_path,
                         "--signals", sig_path], log)
        start("gen-1", worker_argv("generator", "gen-1",
                                   {"ratePerSec": 200, "enabled": False, "datasetSize": 40}), log)
        start("gen-2", worker_argv("generator", "gen-2", {"ratePerSec": 100, "enabled": False}),
              log)
        # Item 20: proc-1 reads its config from a file, secrets included, as
        # the supervisor starts workers.
        start("proc-1", worker_argv("processor", "proc-1",
                                    {"ratePerSec": 100, "maxRatePerSec": 50, "errorRatio": 0.1,
                                     "enabled": False, "apiToken": "s3cr3t",
                                     "dbPass": SECRET["dbpass"], "auth": SECRET["auth"],
                                     "url": "amqp://ph:%s@broker/" % SECRET["urlpass"],
                                     "mirrors": ["https://%s@m.example/" % SECRET["urltoken"]]},
                                    os.path.join(tmp, "proc-1.json")), log)

        # Startup: controller full, then a worker full per worker.
        check(sink.wait(is_kind("metric", "status-full", "swarm-controller")),
              "controller status-full on startup")
        for inst in ("gen-1", "gen-2", "proc-1"):
            check(sink.wait(is_kind("metric", "status-full", instance=inst)),
                  "worker status-full when %s joins" % inst)
        full = sink.find(is_kind("metric", "status-full", instance="proc-1"))
        check(full and "apiToken" not in json.dumps(full[-1]), "secret config key never sent")
        cfg = env_of(full[-1])["data"]["config"] if full else {}
        check("dbPass" not in cfg and "auth" not in cfg and
              cfg.get("url") == "amqp://ph:***@broker/" and
              cfg.get("mirrors") == ["https://***@m.example/"] and cfg.get("ratePerSec") == 100,
              "item 20: worker status-full from --config-file without dbPass, auth, URL secrets")
        check(full and full[-1]["envelope"]["data"]["ioState"]["work"]["output"] ==
              "downstream-error", "worker ioState output downstream-error from errorRatio")
        check(sink.wait(lambda m: is_kind("metric", "status-delta", "swarm-controller")(m) and
                        env_of(m)["data"]["context"]["totals"]["healthy"] == 3),
              "controller delta: 3 healthy")

        # swarm-start: outcome Running after the workers enabled, then a full.
        mark = len(sink.find(lambda m: True))
        cid = signal_("swarm-start", "swarm-controller", CTL, ikey="start-1")
        out = sink.wait(is_kind("outcome", "swarm-start", cid=cid), start=mark)
        check(out and env_of(out[0])["data"]["status"] == "Running" and
              env_of(out[0])["idempotencyKey"] == "start-1", "swarm-start outcome Running")
        check(sink.wait(lambda m: is_kind("metric", "status-full", "swarm-controller")(m) and
                        env_of(m)["data"]["context"]["swarmStatus"] == "RUNNING", start=mark),
              "controller status-full after swarm-start")
        check(sink.wait(lambda m: is_kind("metric", "status-delta", "swarm-controller")(m) and
                        env_of(m)["data"]["context"]["totals"]["running"] == 3, start=mark),
              "delta: 3 running after swarm-start")

        # io.out-of-data: gen-1's 40 items run out once.
        check(sink.wait(lambda m: is_kind("event", "alert", instance="gen-1")(m) and
                        env_of(m)["data"]["code"] == "io.out-of-data", timeout=5),
              "io.out-of-data alert from gen-1")
        check(sink.wait(lambda m: is_kind("metric", "status-delta", "swarm-controller")(m) and
                        env_of(m)["data"]["ioState"]["work"]["input"] == "out-of-data"),
              "swarm ioState input out-of-data by priority")

        # config-update to one instance, data nested as upstream does.
        mark = len(sink.find(lambda m: True))
        cid = signal_("config-update", "generator", "gen-2",
                      {"data": {"enabled": "false"}}, ikey="cfg-gen2")
        out = sink.wait(is_kind("outcome", "config-update", cid=cid), start=mark)
        check(out and env_of(out[0])["data"]["status"] == "applied" and
              env_of(out[0])["data"].get("enabled") is False and
              env_of(out[0])["scope"]["instance"] == "gen-2", "instance config-update applied")
        check(sink.wait(lambda m: is_kind("metric", "status-full", instance="gen-2")(m) and
                        env_of(m)["data"]["enabled"] is False, start=mark),
              "worker status-full after its config-update")
        # Replay: same idempotencyKey, new correlationId.
        journal_path = os.path.join(tmp, "journal", "e2e-run.jsonl")
        mark = len(sink.find(lambda m: True))
        cid2 = signal_("config-update", "generator", "gen-2",
                       {"data": {"enabled": "false"}}, ikey="cfg-gen2")
        out = sink.wait(is_kind("outcome", "config-update", cid=cid2), start=mark)
        check(out and env_of(out[0])["idempotencyKey"] == "cfg-gen2" and
              env_of(out[0])["data"]["status"] == "applied", "replayed idempotencyKey answered")
        time.sleep(0.3)
        fulls_after = sink.find(is_kind("metric", "status-full", instance="gen-2"), start=mark)
        check(not fulls_after, "replayed idempotencyKey not applied again")

        # Malformed enabled value: failed outcome and an alert.
        mark = len(sink.find(lambda m: True))
        cid = signal_("config-update", None, None, {"enabled": "maybe"})
        out = sink.wait(is_kind("outcome", "config-update", cid=cid), start=mark)
        check(out and env_of(out[0])["data"]["status"] == "failed", "bad enabled -> failed")
        check(sink.wait(lambda m: is_kind("event", "alert", "swarm-controller")(m) and
                        env_of(m)["data"]["code"] == "command.failed", start=mark),
              "bad enabled -> command.failed alert")

        # Swarm-wide config-update.
        mark = len(sink.find(lambda m: True))
        cid = signal_("config-update", None, None, {"ratePerSec": 150})
        out = sink.wait(is_kind("outcome", "config-update", cid=cid), start=mark)
        check(out and env_of(out[0])["data"]["status"] == "applied" and
              env_of(out[0])["scope"]["role"] is None, "swarm-wide config-update applied")

        # Item 20: a config-update carrying credentials is applied by the
        # worker; its next status-full shows them neither by key nor in a URL.
        mark = len(sink.find(lambda m: True))
        cid = signal_("config-update", "processor", "proc-1",
                      {"smtpPass": SECRET["patchpass"],
                       "brokerUrl": "amqp://ph:%s@b2:5672/%%2f" % SECRET["patchurl"]},
                      ikey="cfg-secrets")
        out = sink.wait(is_kind("outcome", "config-update", cid=cid), start=mark)
        check(out and env_of(out[0])["data"]["status"] == "applied",
              "item 20: config-update with credentials applied")
        full = sink.wait(lambda m: is_kind("metric", "status-full", instance="proc-1")(m) and
                         "brokerUrl" in env_of(m)["data"]["config"], start=mark)
        cfg = env_of(full[0])["data"]["config"] if full else {}
        check(cfg.get("brokerUrl") == "amqp://ph:***@b2:5672/%2f" and "smtpPass" not in cfg,
              "item 20: worker status-full after the update masks the new credentials")

        # status-request to the controller and to one worker.
        mark = len(sink.find(lambda m: True))
        cid = signal_("status-request", "swarm-controller", CTL)
        full = sink.wait(is_kind("metric", "status-full", "swarm-controller", cid=cid), start=mark)
        check(full, "status-request -> controller status-full with its correlationId")
        if full:
            ws = env_of(full[0])["data"]["context"]["workers"]
            check([w["instance"] for w in ws] == ["gen-1", "gen-2", "proc-1"],
                  "full lists the live workers sorted by role then instance")
        cid = signal_("status-request", "processor", "proc-1")
        check(sink.wait(is_kind("metric", "status-full", instance="proc-1", cid=cid),
                        start=mark), "status-request to one worker -> its status-full")
        check(not sink.find(is_kind("outcome", "status-request"), start=0),
              "status-request gets no outcome")

        # swarm-template and swarm-plan.
        mark = len(sink.find(lambda m: True))
        cid = signal_("swarm-template", "swarm-controller", CTL,
                      {"roles": [{"role": "generator", "count": 2},
                                 {"role": "processor", "count": 1}]})
        out = sink.wait(is_kind("outcome", "swarm-template", cid=cid), start=mark)
        check(out and env_of(out[0])["data"]["status"] == "Ready", "swarm-template outcome")
        cid = signal_("swarm-plan", "swarm-controller", CTL,
                      {"steps": [{"id": "slow-down", "atMs": 200, "role": "processor",
                                  "data": {"ratePerSec": 40}}]})
        out = sink.wait(is_kind("outcome", "swarm-plan", cid=cid), start=mark)
        check(out and env_of(out[0])["data"]["status"] == "applied", "swarm-plan outcome")
        check(sink.wait(lambda m: is_kind("metric", "status-delta", "swarm-controller")(m) and
                        "slow-down" in env_of(m)["data"]["context"]["scenario"].get(
                            "firedStepIds", []), start=mark),
              "scenario progress shows the fired step")

        # kill -9: unhealthy at once, listed stale+dead, back after restart.
        mark = len(sink.find(lambda m: True))
        procs["gen-2"].send_signal(signal.SIGKILL)
        procs["gen-2"].wait()
        check(sink.wait(lambda m: is_kind("metric", "status-delta", "swarm-controller")(m) and
                        env_of(m)["data"]["context"]["totals"]["healthy"] == 2,
                        timeout=TTL_S + 1, start=mark), "delta shows the killed worker unhealthy")
        check(sink.wait(lambda m: is_kind("event", "alert", instance="gen-2")(m) and
                        env_of(m)["data"]["code"] == "worker.died", start=mark),
              "worker.died alert")
        cid = signal_("status-request", "swarm-controller", CTL)
        full = sink.wait(is_kind("metric", "status-full", "swarm-controller", cid=cid), start=mark)
        g2 = [w for w in env_of(full[0])["data"]["context"]["workers"]
              if w["instance"] == "gen-2"] if full else []
        check(g2 and g2[0]["stale"] is True and g2[0].get("dead") is True,
              "next full marks the killed worker stale")
        mark = len(sink.find(lambda m: True))
        start("gen-2", worker_argv("generator", "gen-2", {"ratePerSec": 100}), log)
        check(sink.wait(lambda m: is_kind("metric", "status-delta", "swarm-controller")(m) and
                        env_of(m)["data"]["context"]["totals"]["healthy"] == 3, start=mark),
              "restarted worker is healthy again")

        # SIGSTOP: silent but alive -> stale after the TTL, recovers after SIGCONT.
        mark = len(sink.find(lambda m: True))
        procs["proc-1"].send_signal(signal.SIGSTOP)
        check(sink.wait(lambda m: is_kind("metric", "status-delta", "swarm-controller")(m) and
                        env_of(m)["data"]["context"]["totals"]["healthy"] == 2,
                        timeout=TTL_S + 2, start=mark), "silent worker unhealthy after the TTL")
        check(sink.wait(lambda m: is_kind("metric", "status-delta", instance="proc-1")(m) and
                        env_of(m)["data"]["context"]["stale"] is True, timeout=TTL_S + 6,
                        start=mark), "worker delta says stale")
        procs["proc-1"].send_signal(signal.SIGCONT)
        check(sink.wait(lambda m: is_kind("metric", "status-delta", "swarm-controller")(m) and
                        env_of(m)["data"]["context"]["totals"]["healthy"] == 3,
                        timeout=5, start=mark), "worker healthy again after it answers")

        # kill -9 the bridge and start it again: it resumes after the signals
        # it already forwarded (the one-outcome-per-signal guard at the end
        # fails on any replay) and the controller sends it a fresh full.
        mark = len(sink.find(lambda m: True))
        procs["bridge"].send_signal(signal.SIGKILL)
        procs["bridge"].wait()
        start("bridge", [BIN + "/ph-bridge", "--swarm", SWARM, "--sink", "file:" + sink_path,
                         "--signals", sig_path], log)
        check(sink.wait(is_kind("metric", "status-full", "swarm-controller"), start=mark),
              "restarted bridge gets a fresh controller status-full")
        time.sleep(0.5)
        check(not sink.find(is_kind("outcome"), start=mark),
              "restarted bridge does not replay forwarded signals")

        # swarm-stop and swarm-remove.
        mark = len(sink.find(lambda m: True))
        cid = signal_("swarm-stop", "swarm-controller", CTL)
        out = sink.wait(is_kind("outcome", "swarm-stop", cid=cid), start=mark)
        check(out and env_of(out[0])["data"]["status"] == "Stopped", "swarm-stop outcome Stopped")
        cid = signal_("swarm-remove", "swarm-controller", CTL)
        out = sink.wait(is_kind("outcome", "swarm-remove", cid=cid), start=mark)
        check(out and env_of(out[0])["data"]["status"] == "Removed", "swarm-remove outcome Removed")
        deadline = time.time() + 5
        while time.time() < deadline and any(
                p.poll() is None for n, p in procs.items() if n not in ("controller", "bridge")):
            time.sleep(0.05)
        check(all(p.poll() == 0 for n, p in procs.items() if n not in ("controller", "bridge")),
              "workers exit 0 after swarm-remove")
        check(sink.wait(lambda m: is_kind("metric", "status-delta", "swarm-controller")(m) and
                        env_of(m)["data"]["context"]["swarmStatus"] == "REMOVED", start=mark),
              "delta shows REMOVED")
        # Removal ends the swarm: a final REMOVED full with no workers, then
        # controller and bridge exit 0 by themselves (the bridge once its
        # sink has the last documents).
        final = sink.wait(lambda m: is_kind("metric", "status-full", "swarm-controller")(m) and
                          env_of(m)["data"]["context"]["swarmStatus"] == "REMOVED", start=mark)
        check(final and env_of(final[-1])["data"]["context"]["workers"] == [],
              "final status-full: REMOVED, no workers")
        for name in ("controller", "bridge"):
            try:
                procs[name].wait(10)
            except subprocess.TimeoutExpired:
                pass
        check(all(procs[n].poll() == 0 for n in ("controller", "bridge")),
              "controller and bridge exit 0 by themselves after swarm-remove")
        ctl_docs = sink.find(lambda m: env_of(m)["scope"]["role"] == "swarm-controller")
        check([(env_of(m)["type"], env_of(m)["data"].get("context", {}).get("swarmStatus"))
               for m in ctl_docs[-2:]] == [("status-delta", "REMOVED"), ("status-full", "REMOVED")],
              "the final REMOVED delta and full are the controller's last envelopes")
    finally:
        for name in ("bridge", "controller"):
            p = procs.get(name)
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for suffix in ("", ".bridge"):
            try:
                os.unlink("/dev/shm/ph.%s%s" % (SWARM, suffix))
            except FileNotFoundError:
                pass
        log.close()


    # The journal records signals, outcomes, alerts and health transitions.
    events = []
    try:
        with open(journal_path) as f:
            events = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        print("journal unreadable: %s" % e)
    kinds = {e.get("event") for e in events}
    check({"signal", "outcome", "alert", "health", "replay"} <= kinds,
          "journal has signal, outcome, alert, health and replay entries")
    check(all(e.get("runId") == "e2e-run" for e in events), "journal entries carry the runId")
    check("s3cr3t" not in open(journal_path).read() if events else False,
          "no secret in the journal")
    # Item 20: none of the literal secret values in anything written out:
    # envelopes, the journal, the processes' logs.
    for what, path in (("published envelopes", sink_path), ("the journal", journal_path),
                       ("the process logs", os.path.join(tmp, "processes.log"))):
        try:
            text = open(path).read()
        except OSError as e:
            text = None
            print("%s unreadable: %s" % (what, e))
        leaked = [k for k, v in SECRET.items() if text is not None and v in text]
        check(text and not leaked, "item 20: no secret value in %s%s" % (
            what, " (found: %s)" % ", ".join(leaked) if leaked else ""))
    ctl_metrics = [env_of(m) for m in sink.find(is_kind("metric", role="swarm-controller"))]
    check(ctl_metrics and all(isinstance(e["data"]["context"].get("intervalSeconds"), (int, float))
                              for e in ctl_metrics),
          "every controller status document states data.context.intervalSeconds")
    # Every envelope against the schema(s) and the semantic guards.
    r = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "tests", "contract", "validate.py"),
                        "--signals", sig_path, sink_path], capture_output=True, text=True)
    print(r.stdout[-3000:] + r.stderr[-2000:])
    check(r.returncode == 0, "every envelope validates (schema + semantic guards)")
    if failed:
        print("logs in %s" % tmp)
        with open(os.path.join(tmp, "processes.log")) as f:
            print(f.read()[-4000:])
    else:
        subprocess.run(["rm", "-rf", tmp])
    print("test_status_e2e: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
