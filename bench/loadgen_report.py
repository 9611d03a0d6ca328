#!/usr/bin/python3
"""loadgen_report.py RUNS.jsonl OUT.md OUT.png CPUS SECONDS

Turns the ph-loadgen runs of one sweep (bench/loadgen.sh) into a Markdown
table, with the amqp-per-worker / shm ratios of every (workers, rate) pair
measured in the same sweep, and a PNG (gnuplot) of achieved updates/s and CPU
per update against the number of workers."""
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile


def num(v, fmt="{:,.0f}"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return fmt.format(v)


def main(argv):
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    runs_path, md_path, png_path, cpus, seconds = argv[1:]
    lines = [json.loads(line) for line in open(runs_path) if line.strip()]
    runs = [d for d in lines if "ceiling" not in d]
    ceil = {d["ceiling"]: d for d in lines if "ceiling" in d}
    by = {(r.get("mode"), r.get("workers"), r.get("rate")): r for r in runs}
    pairs = sorted({(r.get("workers"), r.get("rate")) for r in runs})

    out = []
    out.append("# ph-loadgen sweep, %s" % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"))
    out.append("")
    out.append("Machine: %s CPUs; window %s s per run after a 2 s warm-up, the join burst "
               "settled (shm) and an idle baseline of up to 4 s; one private "
               "RabbitMQ node; both modes in the same sweep. `shm` is the real pipeline "
               "(worker SDK, shared memory, ph-swarm-controller, ph-bridge, one observer on "
               "the controller's deltas, aggregate-only swarm); `amqp-per-worker` has every "
               "simulated worker publish its own status-delta and one consumer receive them "
               "all. CPU counts every process involved, the broker included. "
               "Reproduce: `deploy/phive bench` (or `bench/loadgen.sh`)." % (cpus, seconds))
    out.append("")
    out.append("| mode | W | R | offered/s | achieved/s | keeps up | CPU-s per M updates | "
               "idle cores | marginal CPU-s per M | staleness p50 / p99 ms | broker msgs/s | "
               "RSS MiB | shm MiB | attach s |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for w, r in pairs:
        for mode in ("shm", "amqp-per-worker"):
            d = by.get((mode, w, r))
            if d is None:
                continue
            if d.get("error"):
                out.append("| %s | %s | %s | failed: %s |||||||||||" % (mode, w, r, d["error"]))
                continue
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s |" % (
                mode, num(w), num(r, "{:g}"), num(d["offered_updates_per_s"]),
                num(d["achieved_updates_per_s"]), "yes" if d["keeping_up"] else "**no**",
                num(d["cpu_s_per_million_updates"], "{:,.1f}"),
                num(d.get("idle_cpu_cores"), "{:.3f}"),
                num(d.get("marginal_cpu_s_per_million_updates"), "{:,.2f}"),
                num(d["staleness_p50_ms"], "{:.1f}"), num(d["staleness_p99_ms"], "{:.1f}"),
                num(d["broker_msgs_per_s"], "{:,.1f}"), num(d["rss_mib"], "{:.0f}"),
                num(d["shm_mib"], "{:.1f}"), num(d["attach_s"], "{:.2f}")))
    out.append("")
    out.append("Staleness comes from about 50 probe flips per run: its p99 is close to the "
               "largest of them. A run that does not keep up has no meaningful marginal figure "
               "(its broker is still working through the backlog during the idle baseline).")
    out.append("")
    out.append("`idle cores`: what the same processes cost with the workers paused, measured "
               "in the same run just before the window (controller ticks, bridge, broker, "
               "observer); `marginal`: the window's CPU less that baseline, per million updates: "
               "the cost of the updates themselves.")
    out.append("")
    out.append("Ratios, amqp-per-worker over shm, same W and R, same sweep (above 1: shm is "
               "cheaper or lighter):")
    out.append("")
    out.append("| W | R | CPU per update | marginal CPU per update | broker msgs/s | "
               "achieved updates/s (shm / amqp) |")
    out.append("|---|---|---|---|---|---|")
    for w, r in pairs:
        s, a = by.get(("shm", w, r)), by.get(("amqp-per-worker", w, r))
        if not s or not a or s.get("error") or a.get("error"):
            out.append("| %s | %s | – | – | – | – |" % (num(w), num(r, "{:g}")))
            continue

        def ratio(k, inv=False):
            x, y = (s.get(k), a.get(k)) if inv else (a.get(k), s.get(k))
            if not x or not y or any(isinstance(v, float) and math.isnan(v) for v in (x, y)):
                return "–"
            return "{:,.1f}".format(x / y)

        out.append("| %s | %s | %s | %s | %s | %s |" % (num(w), num(r, "{:g}"),
                   ratio("cpu_s_per_million_updates"),
                   ratio("marginal_cpu_s_per_million_updates"), ratio("broker_msgs_per_s"),
                   ratio("achieved_updates_per_s", inv=True)))
    out.append("")
    if ceil:
        out.append("Ceilings on this machine, same run (each result reads against its limit):")
        out.append("")
        if "ring" in ceil:
            c = ceil["ring"]
            out.append("- bare two-process status ring (`ph-bench-ring`): %s records/s publishing "
                       "each, %s batched; a status write %s ns (p50)" % (
                           num(c["records_per_s"]), num(c["records_per_s_batched"]),
                           num(c["write_ns_p50"], "{:.0f}")))
        if "amqp" in ceil:
            c = ceil["amqp"]
            out.append("- bare AMQP publish loop (two processes publishing status-deltas to "
                       "`ph.control` as fast as the broker takes them, one consumer): %s msgs/s "
                       "(%s offered), %s CPU-s per million messages, broker included" % (
                           num(c["msgs_per_s"]), num(c["offered_per_s"]),
                           num(c["cpu_s_per_million"], "{:,.1f}")))
        out.append("")
    out.append("![updates/s and CPU per update against W](%s)" % os.path.basename(png_path))
    out.append("")
    open(md_path, "w").write("\n".join(out))

    # The plot: one data file per (mode, rate), columns W, achieved, CPU-us per update.
    with tempfile.TemporaryDirectory() as tmp:
        series = []
        for mode in ("shm", "amqp-per-worker"):
            for rate in sorted({r for _, r in pairs}):
                rows = [by[(mode, w, rate)] for w, r in pairs
                        if r == rate and (mode, w, rate) in by and not by[(mode, w, rate)].get("error")]
                if not rows:
                    continue
                path = os.path.join(tmp, "%s-%s.dat" % (mode, rate))
                with open(path, "w") as f:
                    for d in rows:
                        cpu_us = d["cpu_s_per_million_updates"]
                        f.write("%s %s %s\n" % (d["workers"], d["achieved_updates_per_s"],
                                                cpu_us if cpu_us == cpu_us else "NaN"))
                series.append((path, "%s, R=%g" % (mode, rate)))
        if not series:
            return 0
        plot1 = ", ".join("'%s' using 1:2 with linespoints title '%s'" % (p, t) for p, t in series)
        plot2 = ", ".join("'%s' using 1:3 with linespoints title '%s'" % (p, t) for p, t in series)
        script = "\n".join([
            "set terminal pngcairo size 1200,500 font ',10'" if has_cairo() else
            "set terminal png size 1200,500",
            "set output '%s'" % png_path,
            "set multiplot layout 1,2",
            "set logscale xy", "set grid", "set key top left",
            "set xlabel 'workers (W)'", "set ylabel 'updates/s achieved'",
            "set title 'Status updates per second'",
            "plot " + plot1,
            "set ylabel 'CPU microseconds per update (all processes)'",
            "set title 'CPU per status update'",
            "plot " + plot2,
            "unset multiplot", ""])
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        if r.returncode != 0:
            print("loadgen_report: gnuplot failed: %s" % r.stderr.strip(), file=sys.stderr)
            return 1
    return 0


def has_cairo():
    r = subprocess.run(["gnuplot", "-e", "set terminal"], text=True, capture_output=True)
    return "pngcairo" in (r.stdout + r.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
