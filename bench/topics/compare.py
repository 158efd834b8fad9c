#!/usr/bin/env python3
"""Topics against a naive broadcast in the same engine and the same run (issue 13).

    bench/topics/compare.py [--runs 3] [--subscribers 19000] [--interval 200ms] [--duration 10s]

One worker pinned to core 0 (`myriad serve --app broadcast`, and `--app naive-broadcast`: a
handler that loops over its own connections and sends to each, a copy per connection), the
load generator (`myriad load fanout`, one thread) pinned to core 1: N subscribers of one path,
one of them publishing a 32 B message every interval for the duration. Each app runs `--runs`
times, alternating; the table gives the median and the spread (min-max) of server CPU-µs per
delivery (from /proc/PID/stat, so it includes the kernel's loopback TCP work done on the
server's core), deliveries per second, publish-to-receive latency and publish-to-last-delivery
time. A run that lost, duplicated or reordered a message, or whose load generator failed, is
printed as FAILED and never folded into a median; then bench/README.md is left as it is and
the exit status is 1. Results are stamped with the commit (`-dirty` for uncommitted changes).
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "bench", "engine"))
from benchlib import fanout_problems, spread  # noqa: E402
from commit_stamp import commit_stamp  # noqa: E402
from compare import BIN, Server, finish_load, start_load  # noqa: E402

APPS = ["broadcast", "naive-broadcast"]
BEGIN = "<!-- topics results: written by bench/topics/compare.py -->"
END = "<!-- topics results: end -->"


def run_once(app, subscribers, interval, duration):
    server = Server("io_uring", env={"MYRIAD_APP": app, "MYRIAD_MAX_CONNECTIONS": str(subscribers + 1000)})
    try:
        process, path = start_load(server, "fanout", "--connections", str(subscribers), "--path", "/bench",
                                   "--size", "32", "--publish-interval", interval, "--duration", duration,
                                   "--server-pid", str(server.pid))
        load = finish_load(process, path, seconds=600)
        fanout = load.get("fanout", {}) or {}
        problems = load.problems() + fanout_problems(fanout)
        server_side = fanout.get("server", {}) or {}
        return {
            "app": app, "ok": not problems, "why": "; ".join(problems),
            "published": fanout.get("published"), "delivered": fanout.get("delivered"),
            "cpu_us": server_side.get("cpu_us_per_delivery"), "rss_mib": server_side.get("rss_mib"),
            "per_s": fanout.get("deliveries_per_s"),
            "p50": (load.get("latency_ms") or {}).get("p50"), "p99": (load.get("latency_ms") or {}).get("p99"),
            "last_p50": (fanout.get("publish_to_last_delivery_ms") or {}).get("p50"),
            "last_max": (fanout.get("publish_to_last_delivery_ms") or {}).get("max"),
        }
    finally:
        server.stop()


def table(results, args, stamp):
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} at commit {stamp} with `bench/topics/compare.py --runs {args.runs}"
        f" --subscribers {args.subscribers} --interval {args.interval} --duration {args.duration}`; median (min-max)"
        f" of {args.runs} runs per app, alternating. Server: 1 worker (io_uring) on core 0; `myriad load fanout`:"
        " 1 thread on core 1; 32 B messages.",
        "",
        "| app | published | delivered (each run) | lost | server CPU-µs / delivery | deliveries/s | latency p50 / p99 ms | publish-to-last-delivery p50 / max ms | server RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    medians = {}
    for app in APPS:
        runs = [r for r in results if r["app"] == app and r["ok"]]
        medians[app] = statistics.median([r["cpu_us"] for r in runs]) if runs else None
        delivered = ", ".join(f"{r['delivered']:,}" for r in runs)
        lines.append(
            f"| {app} | {runs[0]['published'] if runs else 'n/a'} | {delivered} | 0 | "
            f"{spread([r['cpu_us'] for r in runs], 2)} | {spread([r['per_s'] for r in runs], 0)} | "
            f"{spread([r['p50'] for r in runs])} / {spread([r['p99'] for r in runs])} | "
            f"{spread([r['last_p50'] for r in runs])} / {spread([r['last_max'] for r in runs])} | "
            f"{spread([r['rss_mib'] for r in runs])} |")
    if medians["broadcast"] and medians["naive-broadcast"]:
        lines.append(f"| **topics / naive** | | | | **{medians['broadcast'] / medians['naive-broadcast']:.2f}x** | | | | |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=19000)
    parser.add_argument("--interval", default="200ms")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} missing: swift build -c release --product myriad")
    stamp = commit_stamp()
    results = []
    for run in range(args.runs):
        for app in APPS:
            result = run_once(app, args.subscribers, args.interval, args.duration)
            state = "ok" if result["ok"] else "FAILED: " + result["why"]
            print(f"run {run + 1} {app}: {state}; {result['delivered']} delivered, {result['cpu_us']} CPU-µs/delivery,"
                  f" last delivery p50 {result['last_p50']} ms", flush=True)
            results.append(result)
    text = table(results, args, stamp)
    print(text)
    if any(not r["ok"] for r in results):
        print("FAILED runs above: bench/README.md left as it is", file=sys.stderr)
        return 1
    if not args.no_write:
        readme = os.path.join(ROOT, "bench", "README.md")
        content = open(readme).read()
        start, end = content.index(BEGIN) + len(BEGIN), content.index(END)
        open(readme, "w").write(content[:start] + "\n" + text + "\n" + content[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
