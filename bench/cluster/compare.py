#!/usr/bin/env python3
"""Topics across two Myriad nodes through NATS (issue 17), on this machine.

    bench/cluster/compare.py [--subscribers-per-node 100000] [--runs 1/s:30s,100/s:3s]
                             [--size 32] [--drain 600s] [--no-write]

For each run (a publish rate and a duration), a fresh nats-server and two fresh
`myriad serve --app broadcast` nodes with MYRIAD_CLUSTER_URL (the defaults otherwise: one
worker per core, as many io_uring rings as the connections need), all on 127.0.0.1, and one
`myriad load fanout --port A,B --connections 2N`: N subscribers of one path on each node, the
publisher on node A. Once every subscriber is open the publisher sends a --size message at
the rate for the duration; every subscriber on both nodes must get every message once, in
order. Reported per run:
  - deliveries per second while publishing (both nodes together);
  - publish-to-receive latency p50 / p99 of the deliveries on node A (the publishing node:
    local fan-out) and on node B (through the broker), from `fanout.node_latency_ms`;
  - nats-server CPU per publish: its utime + stime from /proc over the window from the first
    publish (node A's `publishes` counter moving) to the end of the drain, over the publishes;
  - each node's RSS once its N subscribers are held, and its peak (VmHWM) at the end;
  - the nodes' cluster counters at the end (exported, imported, dropped).
A run fails when the load generator exits non-zero (a message lost, duplicated or out of
order, a subscriber lost), a process dies, or a node counts a cluster drop; a failed run is
reported as FAILED, no row is written for it, and the exit status is 1. Rows are stamped with
the commit (bench/commit_stamp.py) and written between the markers in bench/README.md.
The nodes wait 60 s for a pong instead of 10 s (SHARED_MACHINE_PONG_TIMEOUT in bench/benchlib.py says why).
Sets the same sysctls as bench/scale/scale.sh when root. Bounded: every process has a time
limit and is stopped by its PID.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import BIN, SHARED_MACHINE_PONG_TIMEOUT, cpu_seconds, free_port, load_failures, loopback_sysctls, proc_status  # noqa: E402
from commit_stamp import commit_stamp  # noqa: E402

BEGIN = "<!-- cluster rows: appended by bench/cluster/compare.py -->"


def seconds(text):
    for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


class Child:
    """A child process with its output in a temporary file, stopped by PID."""

    def __init__(self, name, argv, env):
        self.name = name
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"myriad-cluster-{name}-", suffix=".log", delete=False)
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.poll() is None

    def output(self):
        return open(self.log.name, errors="replace").read()

    def stop(self, grace=60):
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def remove(self):
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


def nats_server(port, monitor):
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    child = Child("nats", [binary, "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)], dict(os.environ))
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return child
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nats-server did not start: " + child.output()[-2000:])


PONG_TIMEOUT = SHARED_MACHINE_PONG_TIMEOUT  # benchlib says why


class Node(Child):
    def __init__(self, name, port, nats_url, capacity):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYRIAD_")}
        env.update({"MYRIAD_APP": "broadcast", "MYRIAD_HOST": "127.0.0.1", "MYRIAD_PORT": str(port),
                    "MYRIAD_MAX_CONNECTIONS": str(capacity), "MYRIAD_STATS_INTERVAL": "1s",
                    "MYRIAD_BUFFER_COUNT": "256", "MYRIAD_BUFFER_SIZE": "1024", "MYRIAD_RING_ENTRIES": "2048",
                    "MYRIAD_BACKLOG": "65535", "MYRIAD_CLUSTER_URL": nats_url, "MYRIAD_PONG_TIMEOUT": PONG_TIMEOUT})
        super().__init__(name, [BIN, "serve"], env)
        self.port = port
        deadline = time.time() + 30
        while time.time() < deadline:
            text = self.output()
            if "listening on" in text and "NATS connected" in text:
                return
            if not self.alive():
                break
            time.sleep(0.1)
        raise RuntimeError(f"node {name} did not start and connect: " + self.output()[-2000:])

    def stats(self):
        lines = [line for line in self.output().splitlines() if line.startswith("stats ") or line.startswith("final cluster ")]
        fields = {}
        for line in lines[-1:]:
            for part in line.split():
                if "=" in part:
                    key, value = part.split("=", 1)
                    fields[key] = value
        return fields

    def final_cluster(self):
        lines = [line for line in self.output().splitlines() if line.startswith("final cluster ")]
        return dict(part.split("=", 1) for part in lines[-1].split()[2:] if "=" in part) if lines else {}


def run_once(rate, duration, n, size, drain):
    """One run; returns (row fields, problems)."""
    interval_ms = round(1000 / rate)
    nats_port, monitor = free_port(), free_port()
    port_a, port_b = free_port(), free_port()
    nats = nats_server(nats_port, monitor)
    url = f"nats://127.0.0.1:{nats_port}"
    capacity = n * 105 // 100
    nodes = []
    problems = []
    load = None
    try:
        nodes = [Node("a", port_a, url, capacity), Node("b", port_b, url, capacity)]
        out = tempfile.NamedTemporaryFile("w+", prefix="myriad-cluster-load-", suffix=".json", delete=False)
        limit = f"{int(600 + 2 * n / 1000 + duration + seconds(drain))}s"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYRIAD_")}
        argv = [BIN, "load", "fanout", "--port", f"{port_a},{port_b}", "--connections", str(2 * n), "--path", "/all",
                "--size", str(size), "--publish-interval", f"{interval_ms}ms", "--duration", f"{duration}s",
                "--drain", drain, "--concurrency", "4096", "--server-pid", str(nodes[0].pid),
                "--time-limit", limit, "--json", out.name]
        load = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        held_rss = [None, None]
        nats_cpu_start = None
        deadline = time.time() + seconds(limit) + 60
        while load.poll() is None and time.time() < deadline:
            if not all(node.alive() for node in nodes) or not nats.alive():
                problems.append("a server died during the run")
                break
            for index, node in enumerate(nodes):
                if held_rss[index] is None and int(node.stats().get("open", "0")) >= n:
                    held_rss[index] = proc_status(node.pid, "VmRSS:")
            if nats_cpu_start is None and int(nodes[0].stats().get("publishes", "0")) > 0:
                nats_cpu_start = cpu_seconds(nats.pid)
            time.sleep(0.2)
        if load.poll() is None:
            load.kill()
            load.wait()
            problems.append("the load generator passed its time limit")
        nats_cpu_end = cpu_seconds(nats.pid)
        peak = [proc_status(node.pid, "VmHWM:") for node in nodes]
        try:
            summary = json.load(open(out.name))
        except Exception:
            summary = {}
        os.unlink(out.name)
        if load.returncode != 0:
            fanout = summary.get("fanout") or {}
            problems.append(f"load exited {load.returncode}: lost {fanout.get('lost')}, duplicated {fanout.get('duplicated')}, "
                            f"out of order {fanout.get('out_of_order')}, failures {summary.get('failures_total')} "
                            f"{json.dumps(load_failures(summary))}, "
                            f"error {summary.get('error')}")
            # What the servers say ended those connections (their last stats line, before stopping).
            for node in nodes:
                fields = node.stats()
                problems.append(f"node {node.name}: open {fields.get('open')}, closes {fields.get('closes')}")
        # Stop the nodes (their final line carries the cluster counters after the last flush).
        for node in nodes:
            status = node.stop()
            if status != 0:
                problems.append(f"node {node.name} exited {status}")
        cluster = [node.final_cluster() for node in nodes]
        for node, counters in zip(nodes, cluster):
            for key in ("cluster_dropped_disconnected", "cluster_dropped_buffer_full", "cluster_lost_in_flight",
                        "cluster_import_queue_full", "cluster_refused_over_max_payload"):
                if int(counters.get(key, "0")) != 0:
                    problems.append(f"node {node.name}: {key}={counters[key]}")
        fanout = summary.get("fanout") or {}
        published = fanout.get("published", 0)
        if nats_cpu_start is None:
            problems.append("never saw node a publish")
        latency = fanout.get("node_latency_ms") or {}
        key_a, key_b = f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"
        row = {
            "rate": rate, "duration": duration, "published": published,
            "delivered": fanout.get("delivered", 0), "expected": fanout.get("expected", 0), "lost": fanout.get("lost"),
            "deliveries_per_s": fanout.get("deliveries_per_s", 0),
            "local": latency.get(key_a, {}), "remote": latency.get(key_b, {}),
            "nats_cpu_us_per_publish": (nats_cpu_end - nats_cpu_start) * 1e6 / published if published and nats_cpu_start is not None else None,
            "held_rss": held_rss, "peak_rss": peak, "cluster": cluster,
            "nodes": fanout.get("nodes", {}),
        }
        return row, problems
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait()
        for node in nodes:
            node.stop()
            node.remove()
        nats.stop()
        nats.remove()


def mib(value):
    return f"{value / 1048576:,.0f}" if value else "?"


def format_row(stamp, n, size, row):
    local, remote = row["local"], row["remote"]
    a, b = row["cluster"]
    ratio = remote.get("p99", 0) / local["p99"] if local.get("p99") else float("nan")
    return (f"| {time.strftime('%Y-%m-%d')} | {stamp} | 2 x {n:,} | {row['rate']}/s x {row['duration']:g} s, {size} B | "
            f"{row['published']} | {row['delivered']:,} of {row['expected']:,} | {row['lost']} | "
            f"{row['deliveries_per_s']:,.0f} | "
            f"{local.get('p50', 0):,.1f} / {local.get('p99', 0):,.1f} | {remote.get('p50', 0):,.1f} / {remote.get('p99', 0):,.1f} | "
            f"{ratio:.2f}x | {row['nats_cpu_us_per_publish']:,.0f} | "
            f"{mib(row['held_rss'][0])} / {mib(row['peak_rss'][0])}, {mib(row['held_rss'][1])} / {mib(row['peak_rss'][1])} | "
            f"a: {a.get('cluster_published', '?')} out, {a.get('cluster_imported', '?')} in; "
            f"b: {b.get('cluster_published', '?')} out, {b.get('cluster_imported', '?')} in; 0 dropped | "
            f"`bench/cluster/compare.py` |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers-per-node", type=int, default=100_000)
    parser.add_argument("--runs", default="1/s:30s,100/s:3s", help="rate/s:duration, comma-separated")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--drain", default="600s")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} not found: swift build -c release --product myriad")
    loopback_sysctls()
    stamp = commit_stamp()
    n = args.subscribers_per_node
    rows = []
    failed = False
    for spec in args.runs.split(","):
        rate_text, duration_text = spec.split(":")
        rate = float(rate_text.removesuffix("/s"))
        rate = int(rate) if rate == int(rate) else rate
        duration = seconds(duration_text)
        print(f"run: {rate}/s for {duration:g} s, 2 x {n:,} subscribers", flush=True)
        row, problems = run_once(rate, duration, n, args.size, args.drain)
        print(json.dumps(row), flush=True)
        if problems:
            failed = True
            print(f"FAILED ({rate}/s): " + "; ".join(problems), file=sys.stderr, flush=True)
            continue
        rows.append(format_row(stamp, n, args.size, row))
        print(rows[-1], flush=True)
    if rows and not args.no_write:
        readme = os.path.join(ROOT, "bench", "README.md")
        content = open(readme).read()
        at = content.index(BEGIN)
        open(readme, "w").write(content[:at] + "".join(r + "\n" for r in rows) + content[at:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
