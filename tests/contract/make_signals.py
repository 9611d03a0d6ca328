#!/usr/bin/python3
"""Writes signal lines ({"routingKey", "envelope"}) for the bridge's tests.

  make_signals.py good SWARM CONTROLLER [PREFIX]  valid signals of several types
  make_signals.py bad SWARM CONTROLLER MAX_BYTES  one invalid line per rejection kind

Each good line has a fresh correlationId starting with PREFIX; each bad line
carries a correlationId starting with "bad-" where it has one, so a test can
prove that none of them reached the controller.
"""

import json
import sys

TS = "2026-11-27T02:00:00.000Z"


def envelope(stype, swarm, role, instance, cid, ikey, data):
    return {
        "timestamp": TS,
        "version": "1",
        "kind": "signal",
        "type": stype,
        "origin": "phctl-test",
        "scope": {"swarmId": swarm, "role": role, "instance": instance},
        "correlationId": cid,
        "idempotencyKey": ikey,
        "data": data,
    }


def rk(stype, swarm, role, instance):
    return ".".join(["signal", stype] + ["ALL" if s is None else s for s in (swarm, role, instance)])


def line(stype, swarm, role, instance, cid, ikey, data, routing_key=None):
    env = envelope(stype, swarm, role, instance, cid, ikey, data)
    return json.dumps({"routingKey": routing_key or rk(stype, swarm, role, instance), "envelope": env})


def good(swarm, ctl, prefix):
    return [
        line("swarm-start", swarm, "swarm-controller", ctl, f"{prefix}start", f"{prefix}ik-start", {}),
        line("config-update", swarm, "generator", None, f"{prefix}cfg-role", f"{prefix}ik-cfg-role",
             {"data": {"enabled": "false", "password": "not-for-logs"}}),
        line("config-update", swarm, "generator", "gen-1", f"{prefix}cfg-inst", None, {"enabled": True}),
        line("status-request", swarm, "swarm-controller", ctl, f"{prefix}status", None, {}),
        line("swarm-stop", swarm, "swarm-controller", ctl, f"{prefix}stop", f"{prefix}ik-stop", {}),
    ]


def bad(swarm, ctl, max_bytes):
    ok = dict(stype="swarm-start", swarm=swarm, role="swarm-controller", instance=ctl, ikey=None, data={})
    wrong_kind = json.loads(line(cid="bad-kind", **ok))
    wrong_kind["envelope"]["kind"] = "outcome"
    return [
        "this is not json {",
        "[1, 2, 3]",
        json.dumps(wrong_kind),
        line("swarm-explode", swarm, "swarm-controller", ctl, "bad-type", None, {}),
        line("swarm-start", swarm, "swarm-controller", ctl, "bad-scope", None, {},
             routing_key=rk("swarm-start", swarm, "generator", None)),
        line(cid=None, **ok),
        line("swarm-start", swarm, "swarm-controller", ctl, "bad-data", None, ["enabled"]),
        line("swarm-start", swarm, "swarm-controller", ctl, "bad-size", None, {"pad": "x" * max_bytes}),
        line("swarm-start", "other-swarm", "swarm-controller", ctl, "bad-swarm", None, {}),
    ]


def main(argv):
    if len(argv) < 4 or argv[1] not in ("good", "bad"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "good":
        lines = good(argv[2], argv[3], argv[4] if len(argv) > 4 else "")
    else:
        lines = bad(argv[2], argv[3], int(argv[4]) if len(argv) > 4 else 262144)
    sys.stdout.write("".join(s + "\n" for s in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
