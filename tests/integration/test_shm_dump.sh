#!/usr/bin/env bash
# Integration test of `phctl shm-dump` and `phctl shm-rm` against real and
# crafted segments:
#
#   - every refusal exits with its own code and a message naming the
#     problem: no such swarm, uninitialised and bad magic, unsupported layout
#     version, truncated segment, permission denied, unknown option, missing
#     and invalid swarm id
#   - with a live controller and two workers, --json shows both alive with
#     their roles and every documented key; processed grows between dumps
#   - the text table fits 100 columns; --watch --json prints one document per
#     line and exits 0 on SIGINT
#   - shm-rm refuses while the controller lives, and only --force removes a
#     segment it cannot read
#   - after kill -9 of the controller, shm-dump still reads the segment and
#     reports the controller dead
#
# Usage: tests/integration/test_shm_dump.sh [BIN_DIR]
#   BIN_DIR (or $PH_BIN_DIR): where phctl, ph-swarm-controller and ph-worker
#   are; default <checkout>/build/bin.
#
# Swarm ids carry this shell's pid (pht-dump-<pid>-...) so concurrent runs and a
# developer's own swarms never meet; every /dev/shm file made here is removed
# on exit, whatever happened.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${PH_BIN_DIR:-$ROOT/build/bin}}
[[ -d "$BIN" ]] || { echo "test_shm_dump: no bin dir $BIN (build first)" >&2; exit 1; }
BIN=$(cd "$BIN" && pwd)
PHCTL=$BIN/phctl
PY=/usr/bin/python3
TAG=pht-dump-$$
TMP=$(mktemp -d /tmp/ph-test-shm-dump.XXXXXX)

for b in phctl ph-swarm-controller ph-worker; do
    [[ -x "$BIN/$b" ]] || { echo "test_shm_dump: $BIN/$b is missing" >&2; exit 1; }
done
[[ -x $PY ]] || { echo "test_shm_dump: $PY is missing" >&2; exit 1; }

pids=()     # processes this test started
segments=() # swarm ids whose /dev/shm/ph.<id> this test may have created

. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"

cleanup() {
    local pid id
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
    for id in "${segments[@]}"; do rm -f "/dev/shm/ph.$id" "/dev/shm/ph.$id.bridge"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# expect NAME CODE FRAGMENT -- COMMAND...: COMMAND exits with CODE and its
# stdout+stderr contain FRAGMENT.
expect() {
    local name=$1 code=$2 frag=$3
    shift 4
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [[ $rc -ne $code ]]; then
        fail "$name" "exit status $rc, expected $code; output: $out"
    elif [[ $out != *"$frag"* ]]; then
        fail "$name" "output lacks '$frag'; output: $out"
    else
        pass "$name"
    fi
}

# Writes a file that looks like a segment header: magic, version, and a
# geometry of one slot with 256-byte rings, at the offsets of
# struct ph_shm_header (include/ph/shm.h); layout 4 puts a one-page claim
# index between the header and the slot.
craft_header() { # PATH SWARM VERSION FILE_SIZE
    "$PY" - "$@" <<'EOF'
import struct, sys
path, swarm, version, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
slots, status_ring, command_ring = 1, 256, 256
slot_size = 768 + status_ring + command_ring
hdr = struct.pack("<QIIQIIIIQ64s",
                  0x31304d4853485050,      # magic "PPHSHM01"
                  version, 4096,           # layout_version, header_size
                  4096 + 4096 + slots * slot_size,  # segment_size
                  slots, slot_size, status_ring, command_ring,
                  0,                       # created_real_ns
                  swarm.encode())
with open(path, "wb") as f:
    f.write(hdr.ljust(size, b"\0")[:size])
EOF
}

# ---------------------------------------------------------------- refusals

expect "help exits 0 and shows usage" 0 "usage: phctl shm-dump" -- "$PHCTL" shm-dump --help
expect "top-level help lists shm-dump" 0 "shm-dump" -- "$PHCTL" --help
expect "unknown option is a usage error" 2 "unknown option '--bogus'" -- \
    "$PHCTL" shm-dump --swarm x --bogus
expect "missing --swarm is a usage error" 2 "--swarm ID is required" -- "$PHCTL" shm-dump --json
expect "swarm id a.b is refused" 2 "contains '.'" -- "$PHCTL" shm-dump --swarm a.b
expect "unknown subcommand is a usage error" 2 "unknown command" -- "$PHCTL" no-such-command

ID=$TAG-none
expect "no such swarm" 3 "/dev/shm/ph.$ID does not exist" -- "$PHCTL" shm-dump --swarm "$ID"
expect "shm-rm of no such swarm" 3 "does not exist" -- "$PHCTL" shm-rm --swarm "$ID"

ID=$TAG-zero
segments+=("$ID")
head -c 8192 /dev/zero >"/dev/shm/ph.$ID"
expect "all-zero object is not initialised" 5 "not initialised" -- "$PHCTL" shm-dump --swarm "$ID"

ID=$TAG-magic
segments+=("$ID")
printf 'this is not a swarm segment' | head -c 8192 >"/dev/shm/ph.$ID"
truncate -s 8192 "/dev/shm/ph.$ID"
expect "foreign object has a bad magic" 5 "bad magic" -- "$PHCTL" shm-dump --swarm "$ID"
expect "shm-rm refuses an unreadable segment" 5 "without --force" -- "$PHCTL" shm-rm --swarm "$ID"
[[ -e /dev/shm/ph.$ID ]] || fail "shm-rm refusal leaves the object" "/dev/shm/ph.$ID is gone"
expect "shm-rm --force removes an unreadable segment" 0 "removed" -- \
    "$PHCTL" shm-rm --swarm "$ID" --force
[[ ! -e /dev/shm/ph.$ID ]] || fail "shm-rm --force" "/dev/shm/ph.$ID still exists"

ID=$TAG-v99
segments+=("$ID")
craft_header "/dev/shm/ph.$ID" "$ID" 99 8192
expect "layout version 99 is unsupported" 6 "has layout version 99, this" -- \
    "$PHCTL" shm-dump --swarm "$ID"

ID=$TAG-v1
segments+=("$ID")
craft_header "/dev/shm/ph.$ID" "$ID" 1 8192
expect "layout version 1 (before the identity words) is refused" 6 \
    "has layout version 1, this program reads 4" -- "$PHCTL" shm-dump --swarm "$ID"

ID=$TAG-v2
segments+=("$ID")
craft_header "/dev/shm/ph.$ID" "$ID" 2 8192
expect "layout version 2 (before the claim index) is refused" 6 \
    "has layout version 2, this program reads 4" -- "$PHCTL" shm-dump --swarm "$ID"

ID=$TAG-v3
segments+=("$ID")
craft_header "/dev/shm/ph.$ID" "$ID" 3 $((4096 + 4096 + 768 + 256 + 256))
expect "layout version 3 (rings beside each slot) is refused" 6 \
    "has layout version 3, this program reads 4" -- "$PHCTL" shm-dump --swarm "$ID"

# A slot whose claimer is checking for duplicates (state JOINING, identity
# published as 64-bit words at the offsets of struct ph_slot) shows as such.
ID=$TAG-joining
segments+=("$ID")
craft_header "/dev/shm/ph.$ID" "$ID" 4 $((4096 + 4096 + 768 + 256 + 256))
"$PY" - "/dev/shm/ph.$ID" "$$" <<'EOF'
import struct, sys
path, pid = sys.argv[1], int(sys.argv[2])
state = (pid << 32) | (1 << 8) | 4              # JOINING, claim 1
slot = struct.pack("<QQQQQ64s64s", state, 0, pid, 0, 0, b"gen", b"gen-1")
with open(path, "r+b") as f:
    f.seek(4096 + 4096)  # after the header and the claim index
    f.write(slot)
EOF
expect "a slot in JOINING is shown as joining" 0 " joining " -- "$PHCTL" shm-dump --swarm "$ID"
expect "a slot in JOINING is shown as joining (json)" 0 '"state": "joining"' -- \
    "$PHCTL" shm-dump --swarm "$ID" --json

ID=$TAG-short
segments+=("$ID")
craft_header "/dev/shm/ph.$ID" "$ID" 4 5000
expect "crafted header longer than its object is truncated" 7 "is truncated" -- \
    "$PHCTL" shm-dump --swarm "$ID"

# A segment the real controller made, cut short after it died.
ID=$TAG-trunc
segments+=("$ID")
"$BIN/ph-swarm-controller" --swarm "$ID" --slots 4 >"$TMP/ctl-trunc.log" 2>&1 &
ctl=$!
pids+=("$ctl")
for _ in $(seq 100); do
    "$PHCTL" shm-dump --swarm "$ID" >/dev/null 2>&1 && break
    sleep 0.1
done
{ kill -9 "$ctl" && wait "$ctl"; } 2>/dev/null
if [[ -e /dev/shm/ph.$ID ]]; then
    truncate -s 5000 "/dev/shm/ph.$ID"
    expect "controller's segment cut to 5000 bytes is truncated" 7 "is truncated: 5000 bytes" -- \
        "$PHCTL" shm-dump --swarm "$ID"
else
    fail "truncated segment" "ph-swarm-controller did not create /dev/shm/ph.$ID (see its log: $(cat "$TMP/ctl-trunc.log"))"
fi

ID=$TAG-perm
if [[ $(id -u) -ne 0 ]]; then
    echo "SKIP: permission denied (needs root to run phctl as nobody on a root-owned segment)"
elif ! command -v setpriv >/dev/null; then
    echo "SKIP: permission denied (setpriv is not installed)"
else
    segments+=("$ID")
    craft_header "/dev/shm/ph.$ID" "$ID" 4 8192
    chmod 0600 "/dev/shm/ph.$ID"
    expect "root-owned 0600 segment read as nobody is permission denied" 4 "Permission denied" -- \
        setpriv --reuid=65534 --regid=65534 --clear-groups "$PHCTL" shm-dump --swarm "$ID"
fi

# --------------------------------------------------------------- live swarm

ID=$TAG-live
segments+=("$ID")
"$BIN/ph-swarm-controller" --swarm "$ID" >"$TMP/ctl.log" 2>&1 &
ctl=$!
pids+=("$ctl")
"$BIN/ph-worker" --swarm "$ID" --role generator --instance gen-1 \
    --config '{"ratePerSec":100}' >"$TMP/gen.log" 2>&1 &
gen=$!
pids+=("$gen")
"$BIN/ph-worker" --swarm "$ID" --role processor --instance proc-1 \
    --config '{"ratePerSec":100}' >"$TMP/proc.log" 2>&1 &
proc=$!
pids+=("$proc")

# check_json FILE CONTROLLER_ALIVE: the document has every documented key
# with the right type, and both workers are there, alive, with their roles
# and pids. Prints what is wrong and exits 1 otherwise.
check_json() {
    "$PY" - "$1" "$2" "$ID" "$gen" "$proc" <<'EOF'
import json, sys
path, ctl_alive, swarm, gen_pid, proc_pid = sys.argv[1:6]
doc = json.load(open(path))
problems = []
def need(obj, key, types, where):
    if not isinstance(obj, dict) or key not in obj:
        problems.append(f"{where}: missing key {key!r}")
        return None
    v = obj[key]
    if not isinstance(v, types) or (types == int and isinstance(v, bool)):
        problems.append(f"{where}.{key}: {v!r} is not {types}")
    return v
if set(doc) < {"header", "workers"}:
    problems.append(f"top-level keys are {sorted(doc)}")
h = doc.get("header", {})
for k, t in [("layoutVersion", int), ("generation", int), ("controllerPid", int),
             ("controllerAlive", bool), ("controllerHeartbeatAgeMs", int),
             ("slotCapacity", int), ("slotsUsed", int), ("segmentBytes", int),
             ("quarantinedTotal", int), ("reclaimedTotal", int), ("swarmId", str)]:
    need(h, k, t, "header")
if h.get("swarmId") != swarm: problems.append(f"header.swarmId is {h.get('swarmId')!r}")
if h.get("layoutVersion") != 4: problems.append(f"header.layoutVersion is {h.get('layoutVersion')}")
if h.get("controllerAlive") != (ctl_alive == "true"):
    problems.append(f"header.controllerAlive is {h.get('controllerAlive')}, expected {ctl_alive}")
ws = doc.get("workers", [])
if not isinstance(ws, list): problems.append("workers is not an array"); ws = []
if h.get("slotsUsed") != len(ws): problems.append(f"slotsUsed {h.get('slotsUsed')} != {len(ws)} rows")
for i, w in enumerate(ws):
    where = f"workers[{i}]"
    for k, t in [("slot", int), ("state", str), ("role", str), ("instance", str), ("pid", int),
                 ("alive", bool), ("enabled", bool), ("processed", int), ("errors", int),
                 ("tps", int), ("ioState", dict), ("heartbeatAgeMs", int), ("ring", dict),
                 ("quarantined", bool), ("quarantineReason", str)]:
        need(w, k, t, where)
    for k in ("input", "output"): need(w.get("ioState", {}), k, str, where + ".ioState")
    for k in ("used", "capacity", "overflows"): need(w.get("ring", {}), k, int, where + ".ring")
    r = w.get("ring", {})
    if isinstance(r.get("used"), int) and isinstance(r.get("capacity"), int) and not 0 <= r["used"] <= r["capacity"]:
        problems.append(f"{where}.ring.used {r['used']} outside 0..{r['capacity']}")
    if not 0 <= w.get("slot", -1) < h.get("slotCapacity", 0):
        problems.append(f"{where}.slot {w.get('slot')} outside the slot table")
by_role = {w.get("role"): w for w in ws}
for role, inst, pid in [("generator", "gen-1", gen_pid), ("processor", "proc-1", proc_pid)]:
    w = by_role.get(role)
    if w is None: problems.append(f"no {role} row"); continue
    if w.get("instance") != inst: problems.append(f"{role} instance is {w.get('instance')!r}")
    if w.get("pid") != int(pid): problems.append(f"{role} pid is {w.get('pid')}, started {pid}")
    if w.get("alive") is not True: problems.append(f"{role} is not alive")
    if w.get("state") != "active": problems.append(f"{role} state is {w.get('state')!r}")
    if w.get("quarantined") is not False: problems.append(f"{role} is quarantined")
if problems:
    print("; ".join(problems))
    sys.exit(1)
EOF
}

# processed_of FILE ROLE: the role's processed count.
processed_of() {
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))
print(next(w["processed"] for w in d["workers"] if w["role"] == sys.argv[2]))' "$1" "$2"
}

why="no dump succeeded"
up=false
for _ in $(seq 100); do
    if "$PHCTL" shm-dump --swarm "$ID" --json >"$TMP/d0.json" 2>"$TMP/d0.err"; then
        if why=$(check_json "$TMP/d0.json" true); then
            up=true
            break
        fi
    else
        why=$(cat "$TMP/d0.err")
    fi
    sleep 0.1
done
if $up; then
    pass "live swarm: both workers alive with role, pid and every documented key"
else
    fail "live swarm" "not both workers alive within 10 s: $why"
    echo "controller log:" >&2; cat "$TMP/ctl.log" >&2
    echo "worker logs:" >&2; cat "$TMP/gen.log" "$TMP/proc.log" >&2
    echo "passed $passed, failed $failed" >&2
    exit 1
fi

"$PHCTL" shm-dump --swarm "$ID" --json >"$TMP/d1.json"
sleep 1.5
"$PHCTL" shm-dump --swarm "$ID" --json >"$TMP/d2.json"
for role in generator processor; do
    a=$(processed_of "$TMP/d1.json" $role)
    b=$(processed_of "$TMP/d2.json" $role)
    if [[ -n $a && -n $b ]] && ((b > a)); then
        pass "processed of the $role grows between dumps 1.5 s apart ($a -> $b)"
    else
        fail "processed of the $role grows" "$a then $b"
    fi
done

if "$PHCTL" shm-dump --swarm "$ID" >"$TMP/text.out" 2>&1; then
    wide=$(awk 'length($0) > 100' "$TMP/text.out")
    if [[ -n $wide ]]; then
        fail "text output fits 100 columns" "lines longer than 100: $wide"
    elif ! grep -q '^SLOT STATE' "$TMP/text.out" || ! grep -q ' generator ' "$TMP/text.out"; then
        fail "text output has the table" "$(cat "$TMP/text.out")"
    else
        pass "text output is a table with the workers, within 100 columns"
    fi
else
    fail "text output" "$(cat "$TMP/text.out")"
fi

"$PHCTL" shm-dump --swarm "$ID" --json --watch --interval-ms 100 --count 3 >"$TMP/watch.out" 2>&1
rc=$?
lines=$(wc -l <"$TMP/watch.out")
if [[ $rc -eq 0 && $lines -eq 3 ]] &&
    "$PY" -c 'import json,sys; [json.loads(l)["workers"] for l in open(sys.argv[1])]' "$TMP/watch.out"; then
    pass "--watch --json --count 3 prints three one-line documents"
else
    fail "--watch --json --count 3" "exit $rc, $lines lines: $(head -c 400 "$TMP/watch.out")"
fi

"$PHCTL" shm-dump --swarm "$ID" --watch --interval-ms 100 >"$TMP/watch-int.out" 2>&1 &
watcher=$!
pids+=("$watcher")
sleep 0.5
kill -INT "$watcher"
wait "$watcher"
rc=$?
if [[ $rc -eq 0 ]] && grep -q '^SLOT STATE' "$TMP/watch-int.out" &&
    ! grep -q $'\033' "$TMP/watch-int.out"; then
    pass "--watch exits 0 on SIGINT and does not clear a non-tty"
else
    fail "--watch on SIGINT" "exit $rc; output: $(head -c 400 "$TMP/watch-int.out" | cat -v)"
fi

expect "shm-rm refuses while the controller is alive" 8 "live controller" -- \
    "$PHCTL" shm-rm --swarm "$ID"
[[ -e /dev/shm/ph.$ID ]] || fail "shm-rm refusal leaves the live segment" "it is gone"

{ kill -9 "$ctl" && wait "$ctl"; } 2>/dev/null
if "$PHCTL" shm-dump --swarm "$ID" --json >"$TMP/d3.json" 2>"$TMP/d3.err"; then
    if why=$(check_json "$TMP/d3.json" false); then
        pass "after kill -9 of the controller shm-dump still works and says it is dead"
    else
        fail "shm-dump after controller death" "$why"
    fi
else
    fail "shm-dump after controller death" "$(cat "$TMP/d3.err")"
fi

kill "$gen" "$proc" 2>/dev/null
wait "$gen" "$proc" 2>/dev/null
expect "shm-rm --force removes the dead swarm's segment" 0 "removed /dev/shm/ph.$ID" -- \
    "$PHCTL" shm-rm --swarm "$ID" --force
[[ ! -e /dev/shm/ph.$ID ]] || fail "shm-rm --force" "/dev/shm/ph.$ID still exists"

echo "test_shm_dump: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
