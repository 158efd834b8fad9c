#!/usr/bin/env python3
"""A publish to a million subscribers, and a million topics (issue 13), on this machine.

    bench/topics/million.py [--subscribers 1000000] [--interval 20s] [--duration 120s]

Three phases, each a fresh `myriad serve` with the defaults (one worker per core, as many
rings as the connections need) and one `myriad load` on loopback:
  A. echo, N connections held idle: the baseline RSS;
  B. broadcast, N subscribers of one path (`myriad load fanout`), one of them publishing a
     32 B message every interval for the duration: lost (must be 0), publish-to-last-delivery
     per message, deliveries/s, server CPU-µs per delivery; RSS per subscription = (RSS_B -
     RSS_A) / N;
  C. broadcast, N connections each on its own path (`--path /t/{i}`, N topics of one
     subscriber), every connection's message coming back through its topic (--verify-echo);
     RSS per topic and subscription = (RSS_C - RSS_A) / N.
The server waits 60 s for a pong instead of 10 s (SHARED_MACHINE_PONG_TIMEOUT in bench/benchlib.py says why).
Sets the same sysctls as bench/scale/scale.sh (root: ephemeral ports, backlogs). A phase that
fails (the load generator exits non-zero, a message is lost, the server dies) is reported as
FAILED and no row is written; the exit status is then 1.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import BIN, SHARED_MACHINE_PONG_TIMEOUT, cpu_seconds, finish_load, load_failures, loopback_sysctls, rss_bytes  # noqa: E402
from commit_stamp import commit_stamp  # noqa: E402

PORT = 18666
BEGIN = "<!-- million topics rows: appended by bench/topics/million.py -->"
PONG_TIMEOUT = SHARED_MACHINE_PONG_TIMEOUT  # benchlib says why


class Server:
    def __init__(self, app, capacity):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="myriad-million-", suffix=".log", delete=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYRIAD_")}
        env.update({"MYRIAD_APP": app, "MYRIAD_HOST": "127.0.0.1", "MYRIAD_PORT": str(PORT),
                    "MYRIAD_MAX_CONNECTIONS": str(capacity), "MYRIAD_STATS_INTERVAL": "1s",
                    "MYRIAD_BUFFER_COUNT": "256", "MYRIAD_BUFFER_SIZE": "1024", "MYRIAD_RING_ENTRIES": "2048",
                    "MYRIAD_BACKLOG": "65535", "MYRIAD_PONG_TIMEOUT": PONG_TIMEOUT})
        self.process = subprocess.Popen([BIN, "serve"], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        for _ in range(200):
            if "listening on" in open(self.log.name).read():
                return
            time.sleep(0.1)
        raise RuntimeError("server did not start: " + open(self.log.name).read()[-2000:])

    def open_connections(self):
        lines = [line for line in open(self.log.name) if line.startswith("stats ")]
        if not lines:
            return 0
        return int(lines[-1].split("open=")[1].split()[0])

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        """Stops the server; returns its last stats line (closes by reason, for a failure's report)."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
        lines = [line.strip() for line in open(self.log.name) if "stats " in line]
        os.unlink(self.log.name)
        return lines[-1] if lines else ""


def load(mode, *arguments, time_limit):
    out = tempfile.NamedTemporaryFile("w+", prefix="myriad-million-load-", suffix=".json", delete=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYRIAD_")}
    process = subprocess.Popen([BIN, "load", mode, "--port", str(PORT), "--concurrency", "4096",
                                "--time-limit", time_limit, *arguments, "--json", out.name],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return process, out.name


def failures(summary):
    """What went wrong, from a load summary: failures by kind and reason, unexpected closes."""
    return (f"failures {json.dumps(load_failures(summary))}, "
            f"unexpected closes {summary.get('unexpected_closes')}")


def held_rss(server, n, load_process):
    """RSS of the server once it holds n connections and has settled for 5 s."""
    deadline = time.time() + 600
    while time.time() < deadline and server.alive() and load_process.poll() is None:
        if server.open_connections() >= n:
            time.sleep(5)
            return rss_bytes(server.process.pid)
        time.sleep(0.5)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--interval", default="20s")
    parser.add_argument("--duration", default="120s")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    n = args.subscribers
    capacity = n * 105 // 100
    loopback_sysctls()
    stamp = commit_stamp()
    problems = []
    limit = f"{900 + n // 1000}s"

    # A: the baseline.
    server = Server("echo", capacity)
    process, path = load("hold", "--connections", str(n), "--duration", "30s", time_limit=limit)
    rss_a = held_rss(server, n, process)
    status, summary = finish_load(process, path, 1200)
    final = server.stop()
    if status != 0 or rss_a is None:
        problems.append(f"A (echo, hold): load exited {status}, connected {summary.get('connected')}, "
                        f"{failures(summary)}; server: {final}")
    print(f"A echo hold: status {status}, RSS {rss_a}", flush=True)

    # B: one topic, N subscribers.
    server = Server("broadcast", capacity)
    cpu_before = cpu_seconds(server.process.pid)
    process, path = load("fanout", "--connections", str(n), "--path", "/all", "--size", "32",
                         "--publish-interval", args.interval, "--duration", args.duration, "--drain", "60s",
                         "--server-pid", str(server.process.pid), time_limit=limit)
    rss_b = held_rss(server, n, process)
    status, summary = finish_load(process, path, 1800)
    server_alive = server.alive()
    final = server.stop()
    fanout = summary.get("fanout") or {}
    if status != 0 or not server_alive or fanout.get("lost") != 0 or rss_b is None:
        problems.append(f"B (broadcast, one topic): load exited {status}, lost {fanout.get('lost')}, server alive {server_alive}, "
                        f"{failures(summary)}; server: {final}")
    print(f"B fanout: status {status}, lost {fanout.get('lost')}, RSS {rss_b}, {json.dumps(fanout)[:400]}", flush=True)

    # C: N topics of one subscriber.
    server = Server("broadcast", capacity)
    process, path = load("hold", "--connections", str(n), "--path", "/t/{i}", "--duration", "30s", "--verify-echo",
                         time_limit=limit)
    rss_c = held_rss(server, n, process)
    status, summary_c = finish_load(process, path, 1200)
    final = server.stop()
    verify = summary_c.get("verify_echo") or {}
    if status != 0 or verify.get("ok") != n or rss_c is None:
        problems.append(f"C (broadcast, a topic each): load exited {status}, verify {verify}, {failures(summary_c)}; server: {final}")
    print(f"C topics: status {status}, verify {verify}, RSS {rss_c}", flush=True)

    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    last = fanout.get("publish_to_last_delivery_ms") or {}
    server_side = fanout.get("server") or {}
    row = (f"| {time.strftime('%Y-%m-%d')} | {stamp} | {n:,} | {fanout['published']} x {args.interval} | "
           f"{fanout['delivered']:,} of {fanout['expected']:,} | {fanout['lost']} | "
           f"{last.get('p50', 0) / 1000:.2f} s / {last.get('max', 0) / 1000:.2f} s | "
           f"{fanout.get('deliveries_per_s', 0):,.0f} | {server_side.get('cpu_us_per_delivery', 0):.2f} | "
           f"{(rss_b - rss_a) / n:.1f} B | {(rss_c - rss_a) / n:.1f} B ({verify['ok']:,} topics verified) | "
           f"{rss_a / n:.0f} B | `bench/topics/million.py` |")
    print(row)
    if not args.no_write:
        readme = os.path.join(ROOT, "bench", "README.md")
        content = open(readme).read()
        at = content.index(BEGIN)
        open(readme, "w").write(content[:at] + row + "\n" + content[at:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
