#!/usr/bin/env python3
"""User-space memory per idle connection, before and after a burst (issue 15), on this machine.

    bench/memory/idle.py [--sizes 1000,10000,19000] [--million] [--runs 3] [--no-write] [--smaps] [--compression shared]

For each backend (io_uring, epoll), each N and each run: a fresh `myriad serve` (echo, one
worker for the --sizes, the default workers for --million; pings every 25 s as by default),
its RSS read from /proc once it has started (R0). Then `myriad load hold` opens N connections
at the default concurrency and holds them idle; once the server holds N and 20 s have passed
(the ramp is a burst too), RSS R1. Then a burst on the same worker: a second `myriad load echo` of B connections
(B = 500, 2,000 with --million) sending 4 KiB messages 16 deep for 5 s, which then closes
its connections; 20 s later (the workers give back what a burst left behind after a quiet
spell: see Worker+Memory.swift), with the N connections still held, RSS R2.
Reported per backend and N, median (min-max) of the runs: (R1 - R0) / N after the ramp,
(R2 - R0) / N after the burst and the return to idle, and their ratio; the same two for
anonymous memory alone (RssAnon: VmRSS without the pages of the binary's code, of which a
ramp faults in some 600-750 KiB the first time connections run through it, about 35 B per
connection at 19,000, a per-process cost that varies from build to build); and the worker's
gauges at R2 (pool_free_bytes, receive_buffer_bytes, side_table_bytes, memory_returned_bytes).
The server's RSS is read by this script, not taken from the load generator. --smaps also
prints, per run, the mappings whose resident memory changed most over the ramp and over the
burst (/proc/PID/smaps): where a difference between the two figures lives. --compression
shared runs the server with MYRIAD_COMPRESSION=shared, the held connections offering (and
required to agree) permessage-deflate (`--deflate receive`) and the burst compressing JSON both
ways (`--deflate both --payload json`): what an idle compressed connection costs (issue 16).

A run fails when a load exits non-zero, the server never holds N or dies, or holds fewer
than N at R2; a failed run is reported as FAILED and no row is written (exit status 1).
epoll cannot hold 1,000,000 connections in one process (its ceiling is the fd limit), so
--million measures io_uring only. Rows are stamped with the commit (bench/commit_stamp.py).
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import BIN, free_port, finish_load, load_failures, loopback_sysctls, proc_status, rss_bytes  # noqa: E402
from commit_stamp import commit_stamp  # noqa: E402

BEGIN = "<!-- idle memory rows: appended by bench/memory/idle.py -->"
# Both readings wait this long after their burst: a worker gives back what a burst left behind
# within about 12 s (a buffer ring halves its posting target every 2 quiet seconds).
SETTLE_SECONDS = 20
GAUGES = ("pool_free_bytes", "receive_buffer_bytes", "side_table_bytes", "memory_returned_bytes")


def stats_fields(line):
    """The stats line's counters as {name: int}; per-worker lists summed."""
    fields = {}
    for word in line.split():
        if "=" in word:
            name, value = word.split("=", 1)
            digits = value.split("[")[0]
            if digits.isdigit():
                fields[name] = int(digits)
    return fields


class Server:
    def __init__(self, backend, workers, capacity, compression="off"):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile("w+", prefix="myriad-idle-", suffix=".log", delete=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYRIAD_")}
        env.update({"MYRIAD_BACKEND": backend, "MYRIAD_HOST": "127.0.0.1", "MYRIAD_PORT": str(self.port),
                    "MYRIAD_STATS_INTERVAL": "1s", "MYRIAD_BACKLOG": "65535", "MYRIAD_COMPRESSION": compression})
        if capacity:
            env["MYRIAD_MAX_CONNECTIONS"] = str(capacity)
        if workers:
            env["MYRIAD_WORKERS"] = str(workers)
        self.process = subprocess.Popen([BIN, "serve"], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        for _ in range(200):
            if "listening on" in open(self.log.name).read():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("server did not start: " + open(self.log.name).read()[-2000:])

    def stats(self):
        lines = [line for line in open(self.log.name) if line.startswith("stats ")]
        return stats_fields(lines[-1]) if lines else {}

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        os.unlink(self.log.name)


def start_load(port, mode, *arguments, time_limit):
    out = tempfile.NamedTemporaryFile("w+", prefix="myriad-idle-load-", suffix=".json", delete=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYRIAD_")}
    process = subprocess.Popen([BIN, "load", mode, "--port", str(port), "--time-limit", time_limit, *arguments,
                                "--json", out.name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return process, out.name


def smaps(pid):
    """Resident KiB per mapping of `pid` ({"start-end name": kB}), from /proc/PID/smaps."""
    mappings, current = {}, None
    with open(f"/proc/{pid}/smaps") as lines:
        for line in lines:
            fields = line.split()
            if fields and "-" in fields[0] and not fields[0].endswith(":"):
                current = fields[0] + (" " + fields[5] if len(fields) > 5 else " [anon]")
            elif fields and fields[0] == "Rss:" and current:
                mappings[current] = int(fields[1])
    return mappings


def print_growth(label, earlier, later, top=8):
    """The mappings whose resident memory changed most between two `smaps` readings."""
    keys = set(earlier) | set(later)
    changes = sorted(((later.get(k, 0) - earlier.get(k, 0), k) for k in keys), key=lambda item: -abs(item[0]))
    total = sum(change for change, _ in changes)
    print(f"  smaps {label}: {total:+,} KiB resident in all; largest changes:", flush=True)
    for change, key in changes[:top]:
        if change:
            print(f"    {change:+,} KiB  {key} (now {later.get(key, 0):,} KiB)", flush=True)


def one_run(backend, n, workers, burst_connections, show_smaps=False, compression="off"):
    """One measurement; returns (result dict, problem or None)."""
    hold_seconds = 600 + n // 1000
    # The default capacity up to one ring's (or epoll's) fd budget; a million needs more rings.
    server = Server(backend, workers, n * 105 // 100 if n > 100_000 else None, compression)
    # With compression every connection offers permessage-deflate and must get it; the burst
    # sends JSON that both sides compress.
    held_deflate = [] if compression == "off" else ["--deflate", "receive"]
    burst_deflate = [] if compression == "off" else ["--deflate", "both", "--payload", "json"]
    try:
        time.sleep(1)
        r0 = rss_bytes(server.process.pid)
        a0 = proc_status(server.process.pid, "RssAnon:")
        s0 = smaps(server.process.pid) if show_smaps else None
        hold, hold_path = start_load(server.port, "hold", "--connections", str(n), "--duration", f"{hold_seconds}s", *held_deflate,
                                     time_limit=f"{hold_seconds + 300}s")
        deadline = time.time() + 300 + n / 1000
        while time.time() < deadline and server.alive() and hold.poll() is None:
            if server.stats().get("open", 0) >= n:
                break
            time.sleep(0.5)
        if not server.alive() or server.stats().get("open", 0) < n:
            hold.kill()
            finish_load(hold, hold_path, 60)
            return None, f"the server never held {n} (held {server.stats().get('open')})"
        time.sleep(SETTLE_SECONDS)  # the ramp is a burst too: let its trims run (Worker+Memory.swift)
        r1 = rss_bytes(server.process.pid)
        a1 = proc_status(server.process.pid, "RssAnon:")
        gauges_before = {gauge: server.stats().get(gauge, 0) for gauge in GAUGES[:3]}
        if show_smaps:
            s1 = smaps(server.process.pid)
            print_growth("start -> after the ramp", s0, s1)
        # Its own source address: the held connections use 127.0.0.2 upwards (about 55,000 ports
        # each). A server keeping a million connections alive on 2 shared cores answers some
        # upgrades after the default 10 s (16 of 2,000 timed out in one run at 760e544).
        burst, burst_path = start_load(server.port, "echo", *burst_deflate, "--connections", str(burst_connections), "--size", "4096",
                                       "--depth", "16", "--duration", "5s", "--source", "127.0.0.250",
                                       "--handshake-timeout", "60s", time_limit="240s")
        burst_status, burst_summary = finish_load(burst, burst_path, 240)
        time.sleep(SETTLE_SECONDS)
        r2 = rss_bytes(server.process.pid)
        a2 = proc_status(server.process.pid, "RssAnon:")
        if show_smaps:
            print_growth("after the ramp -> after the burst", s1, smaps(server.process.pid))
        stats = server.stats()
        held = stats.get("open", 0)
        hold.send_signal(signal.SIGTERM)  # ends the hold early; its exit status is not the point
        finish_load(hold, hold_path, 300)
        if burst_status != 0:
            return None, (f"the burst's load exited {burst_status} ({burst_summary.get('error')}, "
                          f"failures {load_failures(burst_summary)})")
        if held < n:
            return None, f"{n - held} held connections lost during the burst"
        result = {"before": (r1 - r0) / n, "after": (r2 - r0) / n, "r0": r0,
                  "anon_before": (a1 - a0) / n, "anon_after": (a2 - a0) / n,
                  **{gauge: stats.get(gauge, 0) for gauge in GAUGES},
                  **{gauge + "_before": value for gauge, value in gauges_before.items()}}
        return result, None
    finally:
        server.stop()


def spread(values):
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,19000")
    parser.add_argument("--million", action="store_true", help="also 1,000,000 connections on the default workers (io_uring)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="io_uring,epoll")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--compression", default="off", choices=["off", "shared"],
                        help="MYRIAD_COMPRESSION for the server; shared: every held connection agrees permessage-deflate")
    parser.add_argument("--smaps", action="store_true",
                        help="print which mappings' resident memory grew (/proc/PID/smaps) after the ramp and the burst")
    args = parser.parse_args()
    loopback_sysctls()
    stamp = commit_stamp()
    plans = [(backend, int(n), 1, 500) for n in args.sizes.split(",") if n for backend in args.backends.split(",")]
    if args.million:
        plans.append(("io_uring", 1_000_000, None, 2000))
    rows, failures = [], []
    for backend, n, workers, burst in plans:
        results = []
        for run in range(args.runs):
            result, problem = one_run(backend, n, workers, burst, args.smaps, args.compression)
            print(f"{backend} N={n} run {run + 1}: {json.dumps(result) if result else 'FAILED: ' + problem}", flush=True)
            if problem:
                failures.append(f"{backend} N={n} run {run + 1}: {problem}")
            else:
                results.append(result)
            time.sleep(5 if n < 100_000 else 65)  # TIME_WAIT of the last run's sockets
        if len(results) != args.runs:
            continue
        before = [r["before"] for r in results]
        after = [r["after"] for r in results]
        ratio = statistics.median(after) / statistics.median(before)
        gauges = ", ".join(f"{g} {statistics.median(r[g] for r in results) / 1024:.0f} KiB" for g in GAUGES)
        label = backend if args.compression == "off" else f"{backend}, permessage-deflate {args.compression}"
        rows.append(f"| {time.strftime('%Y-%m-%d')} | {stamp} | {label} | {n:,} | {workers or 'default'} | "
                    f"{spread(before)} B | {spread(after)} B | {ratio:.2f} | "
                    f"{spread([r['anon_before'] for r in results])} B, {spread([r['anon_after'] for r in results])} B | "
                    f"{gauges} | `bench/memory/idle.py` |")
    for row in rows:
        print(row)
    if failures:
        print(f"{len(failures)} run(s) FAILED; no row written:", file=sys.stderr)
        for failure in failures:
            print("  " + failure, file=sys.stderr)
        return 1
    if not args.no_write:
        readme = os.path.join(ROOT, "bench", "README.md")
        content = open(readme).read()
        at = content.index(BEGIN)
        open(readme, "w").write(content[:at] + "\n".join(rows) + "\n" + content[at:])
        print("rows written to bench/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
