#!/usr/bin/env python3
"""io_uring against epoll inside the same engine: the same connection logic, the same load,
the same run. Also the engine's memory per idle connection and its handshake and keep-alive
costs. Drives the release `myriad serve` with the release `myriad load` on loopback.

    bench/engine/compare.py [--runs 3] [--only echo,handshakes,keepalive,memory,syscalls]

The server is pinned to core 0 with one worker, the load generator to core 1 with one
thread, so the server's CPU is measured on its own core (from /proc/PID/stat) and neither
side steals the other's. Each pair runs `--runs` times, alternating backends; tables give the
median and the spread (min-max). Prints the tables and writes them into bench/README.md.

A run that failed or fell short (the load generator exited non-zero or never finished, the
server never reached the target, a connection was lost, a pong went missing, ...) is printed
as FAILED with the reason and is never folded into a median: if any run failed, the tables
are printed for inspection with the failed runs left out, and bench/README.md is left as it
is (exit status 1). The results are stamped with the commit, `-dirty` when the work tree had
uncommitted changes (bench/commit_stamp.py).

Every figure is a ratio within one run or a cost per unit:
  - handshakes/s to 19,000 connections (client-measured) and server CPU-µs per handshake;
  - echo messages/s, p50/p99 latency (client), server CPU-µs and system calls per message
    (the engine's own counters: blocking waits plus every other syscall), at 100 and 10,000
    connections, depth 1 and 16, 32 B and 4 KiB;
  - keep-alive: server CPU-µs per ping round trip at 19,000 connections, 1 s ping interval;
  - user-space RSS and kernel Slab per idle connection.

The echo figures are also drawn (bench/plot.py, matplotlib: installed into .venv-bench/ when
missing): server CPU-µs and system calls per message, io_uring beside epoll, for each echo
configuration; bench/charts/engine-echo.png, linked under the echo table, is rewritten with the
tables (only by a complete run that wrote them).
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from commit_stamp import commit_stamp  # noqa: E402
BIN = os.environ.get("BENCH_BINARY", os.path.join(ROOT, ".build/release/myriad"))
# The binary `Server` starts; the load generator is always BIN. bench/engine/regression.py
# points it at an older build to compare two engines under one load generator.
SERVER_BINARY = BIN
HZ = os.sysconf("SC_CLK_TCK")
BACKENDS = ["io_uring", "epoll"]


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_bytes(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def slab_bytes():
    for line in open("/proc/meminfo"):
        if line.startswith("Slab:"):
            return int(line.split()[1]) * 1024
    return 0


class Server:
    def __init__(self, backend, env=None, port=18777):
        self.port = port
        self.log = tempfile.NamedTemporaryFile("w+", prefix="myriad-bench-serve-", suffix=".log", delete=False)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MYRIAD_")}
        environment.update({
            "MYRIAD_BACKEND": backend, "MYRIAD_HOST": "127.0.0.1", "MYRIAD_PORT": str(port),
            "MYRIAD_WORKERS": "1", "MYRIAD_STATS_INTERVAL": "100ms", "MYRIAD_LOG_LEVEL": "info",
            "MYRIAD_BACKLOG": "65535",
        })
        environment.update(env or {})
        self.process = subprocess.Popen(["taskset", "-c", "0", SERVER_BINARY, "serve"], stdout=self.log,
                                        stderr=subprocess.STDOUT, env=environment)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.stats():
                # The start-up line names the slab slot size, the engine's own bytes per connection.
                slot = re.search(r"(\d+) bytes per connection slot", open(self.log.name).read())
                if slot:
                    Server.slot_bytes = int(slot.group(1))
                return
            time.sleep(0.05)
        raise RuntimeError("server did not start: " + open(self.log.name).read())

    slot_bytes = None

    @property
    def pid(self):
        return self.process.pid

    def stats(self):
        """The latest stats line as {counter: value}, close reasons as close.REASON."""
        lines = [line for line in open(self.log.name) if line.startswith("stats ")]
        if not lines:
            return {}
        line = lines[-1]
        values = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
        closes = re.search(r"closes=\{([^}]*)\}", line)
        if closes:
            for pair in closes.group(1).split(","):
                name, count = pair.split(":")
                values["close." + name] = int(count)
        return values

    def wait_stats(self, condition, seconds=60):
        deadline = time.time() + seconds
        while time.time() < deadline:
            values = self.stats()
            if values and condition(values):
                return values
            time.sleep(0.05)
        return None

    def sample(self):
        time.sleep(0.15)  # one stats interval, so the line is fresh
        return {"t": time.time(), "cpu": cpu_ticks(self.pid), "rss": rss_bytes(self.pid),
                "slab": slab_bytes(), "stats": self.stats()}

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        os.unlink(self.log.name)


def start_load(server, mode, *arguments):
    out = tempfile.NamedTemporaryFile("w+", prefix="myriad-bench-load-", suffix=".json", delete=False)
    process = subprocess.Popen(
        ["taskset", "-c", "1", BIN, "load", mode, "--port", str(server.port), "--threads", "1", *arguments,
         "--json", out.name],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("MYRIAD_")})
    return process, out.name


class Load:
    """How a `myriad load` run ended: its JSON summary and exit status."""

    def __init__(self, summary, status, timed_out):
        self.summary = summary
        self.status = status
        self.timed_out = timed_out

    def get(self, key, default=None):
        return self.summary.get(key, default)

    def problems(self):
        """Why the load run itself failed (empty when it exited 0 with a summary)."""
        if self.timed_out:
            return ["the load generator did not finish and was killed"]
        found = []
        if not self.summary:
            found.append("the load generator wrote no JSON summary")
        if self.status != 0:
            found.append(f"the load generator exited with {self.status}"
                         + (f" (failures: {self.summary.get('failures')})" if self.summary.get("failures_total") else ""))
        return found


def finish_load(process, path, seconds=300):
    timed_out = False
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        timed_out = True
    try:
        summary = json.load(open(path))
    except Exception:
        summary = {}
    os.unlink(path)
    return Load(summary, process.returncode, timed_out)


def verdict(result, problems):
    """Adds `ok` and, when it is false, `why` to an experiment's result."""
    result["ok"] = not problems
    if problems:
        result["why"] = "; ".join(problems)
    return result


def delta(a, b, name):
    return b["stats"].get(name, 0) - a["stats"].get(name, 0)


def cpu_us(a, b):
    return (b["cpu"] - a["cpu"]) / HZ * 1e6


# --- experiments --------------------------------------------------------------------------

def handshakes(backend, connections=19_000):
    server = Server(backend)
    try:
        before = server.sample()
        load, path = start_load(server, "hold", "--connections", str(connections), "--duration", "1s",
                                "--concurrency", "2048")
        reached = server.wait_stats(lambda s: s.get("handshakes", 0) >= connections)
        after = server.sample()
        summary = finish_load(load, path)
        problems = summary.problems()
        if reached is None:
            problems.append(f"the server never counted {connections:,} handshakes")
        if summary.get("connected") != connections:
            problems.append(f"{summary.get('connected')} of {connections:,} connected")
        return verdict({"handshakes_per_s": summary.get("handshake_rate_per_s", 0),
                        "cpu_us_per_handshake": cpu_us(before, after) / max(1, delta(before, after, "handshakes"))},
                       problems)
    finally:
        server.stop()


def echo(backend, connections, depth, size, seconds=5, env=None, load_arguments=(), check=None):
    """`env`: more MYRIAD_ knobs for the server; `load_arguments`: more `myriad load` flags;
    `check(a, b)`: more reasons the run is not a result, from the two samples (bench/compression)."""
    server = Server(backend, {"MYRIAD_PING_INTERVAL": "0", **(env or {})})
    try:
        load, path = start_load(server, "echo", "--connections", str(connections), "--depth", str(depth),
                                "--size", str(size), "--duration", f"{seconds}s", "--concurrency", "2048",
                                *load_arguments)
        reached = server.wait_stats(lambda s: s.get("handshakes", 0) >= connections and s.get("messages_in", 0) > 0)
        time.sleep(0.5)
        a = server.sample()
        time.sleep(seconds - 2)
        b = server.sample()
        summary = finish_load(load, path)
        messages = delta(a, b, "messages_in")
        syscalls = delta(a, b, "waits") + delta(a, b, "other_syscalls")
        latency = summary.get("latency_ms") or {}
        problems = summary.problems()
        if reached is None:
            problems.append(f"the server never had {connections:,} connections echoing")
        if summary.get("failures_total", 1) != 0:
            problems.append(f"{summary.get('failures_total')} load failures")
        if messages == 0:
            problems.append("no message echoed in the measuring window")
        if check:
            problems += check(a, b)
        return verdict({"messages_per_s": summary.get("messages_per_s", 0),
                        "server_messages_per_s": messages / (b["t"] - a["t"]),
                        "p50_ms": latency.get("p50", 0), "p99_ms": latency.get("p99", 0),
                        "cpu_us_per_message": cpu_us(a, b) / max(1, messages),
                        "syscalls_per_message": syscalls / max(1, messages),
                        "bytes_in_per_message": delta(a, b, "bytes_in") / max(1, messages),
                        "bytes_out_per_message": delta(a, b, "bytes_out") / max(1, delta(a, b, "messages_out")),
                        "compressed": delta(a, b, "messages_compressed"),
                        "inflated": delta(a, b, "messages_inflated")},
                       problems)
    finally:
        server.stop()


def keepalive(backend, connections=19_000, seconds=15):
    server = Server(backend, {"MYRIAD_PING_INTERVAL": "1s", "MYRIAD_PONG_TIMEOUT": "1s"})
    try:
        load, path = start_load(server, "hold", "--connections", str(connections), "--duration", f"{seconds + 6}s",
                                "--concurrency", "2048")
        reached = server.wait_stats(lambda s: s.get("open", 0) >= connections)
        time.sleep(3)
        a = server.sample()
        time.sleep(seconds)
        b = server.sample()
        summary = finish_load(load, path)
        pongs = delta(a, b, "pongs_received")
        problems = summary.problems()
        if reached is None:
            problems.append(f"the server never held {connections:,} connections")
        if summary.get("unexpected_closes", 1) != 0:
            problems.append(f"{summary.get('unexpected_closes')} connections lost")
        if b["stats"].get("close.pong_timeout", 0) != 0:
            problems.append(f"{b['stats']['close.pong_timeout']} closed as pong_timeout")
        if pongs == 0:
            problems.append("no pong in the measuring window")
        return verdict({"cpu_us_per_round_trip": cpu_us(a, b) / max(1, pongs),
                        "round_trips_per_s": pongs / (b["t"] - a["t"]),
                        "cpu_pct": cpu_us(a, b) / 1e6 / (b["t"] - a["t"]) * 100},
                       problems)
    finally:
        server.stop()


def memory(backend, connections):
    workers = max(1, -(-connections // 19_000))
    server = Server(backend, {"MYRIAD_PING_INTERVAL": "0", "MYRIAD_WORKERS": str(workers)})
    try:
        time.sleep(0.5)
        idle = server.sample()
        load, path = start_load(server, "hold", "--connections", str(connections), "--duration", "8s",
                                "--concurrency", "2048", *(["--threads", "3"] if connections > 19_000 else []))
        reached = server.wait_stats(lambda s: s.get("open", 0) >= connections)
        time.sleep(3)
        held = server.sample()
        summary = finish_load(load, path)
        count = held["stats"].get("open", 0)
        problems = summary.problems()
        if reached is None or count != connections:
            problems.append(f"the server held {count:,} of {connections:,} connections")
        return verdict({"rss_per_connection": (held["rss"] - idle["rss"]) / max(1, count),
                        "slab_per_connection": (held["slab"] - idle["slab"]) / max(1, count)},
                       problems)
    finally:
        server.stop()


def strace_syscalls(backend, connections=100, depth=8, seconds=3):
    """Syscalls per echoed message counted by strace -c (attached for `seconds`)."""
    server = Server(backend, {"MYRIAD_PING_INTERVAL": "0"})
    try:
        load, path = start_load(server, "echo", "--connections", str(connections), "--depth", str(depth),
                                "--duration", f"{seconds + 4}s")
        reached = server.wait_stats(lambda s: s.get("messages_in", 0) > 0)
        time.sleep(0.5)
        a = server.sample()
        trace = subprocess.run(["timeout", "-s", "INT", str(seconds), "strace", "-c", "-f", "-p", str(server.pid)],
                               capture_output=True, text=True)
        b = server.sample()
        summary = finish_load(load, path)
        total = 0
        for line in trace.stderr.splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[-1] == "total":
                total = int(fields[3])
        messages = delta(a, b, "messages_in")
        problems = summary.problems()
        if reached is None:
            problems.append("the server never echoed a message")
        if total == 0:
            problems.append("strace counted nothing: " + (trace.stderr.strip().splitlines() or ["no output"])[-1])
        if messages == 0:
            problems.append("no message echoed while strace was attached")
        return verdict({"strace_syscalls_per_message": total / max(1, messages)}, problems)
    finally:
        server.stop()


# --- reporting ----------------------------------------------------------------------------

# Every run that failed or fell short: (experiment, arguments, backend, run, why).
FAILED_RUNS = []


def attempt(function, backend, run, *arguments):
    """Runs one experiment once; an exception is a failed run, not the end of the script."""
    try:
        result = function(backend, *arguments)
    except Exception as error:
        result = {"ok": False, "why": f"{type(error).__name__}: {error}"}
    if not result.get("ok"):
        FAILED_RUNS.append((function.__name__, arguments, backend, run, result.get("why", "no reason given")))
    shown = {k: v for k, v in result.items() if k not in ("ok", "why")}
    print(f"  {function.__name__}{arguments} {backend} run {run}: "
          + ("" if result.get("ok") else f"FAILED ({result.get('why')}) ")
          + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()),
          flush=True)
    return result


def summarize(rows, key):
    """Median (min-max) of `key` over the runs that succeeded; failed runs are never folded in,
    and a cell with any says how many were left out."""
    values = [row[key] for row in rows if row.get("ok")]
    failed = sum(1 for row in rows if not row.get("ok"))
    if not values:
        return "FAILED" if failed else "-"
    median = statistics.median(values)
    low, high = min(values), max(values)

    def fmt(x):
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) >= 10:
            return f"{x:.1f}"
        return f"{x:.2f}"
    text = f"{fmt(median)} ({fmt(low)}-{fmt(high)})"
    return text + (f" [{failed} of {len(rows)} runs FAILED, left out]" if failed else "")


def pairs(function, runs, *arguments):
    results = {backend: [] for backend in BACKENDS}
    for run in range(runs):
        order = BACKENDS if run % 2 == 0 else list(reversed(BACKENDS))
        for backend in order:
            results[backend].append(attempt(function, backend, run + 1, *arguments))
    return results


def spread(rows, key):
    """{median, min, max} of `key` over the runs that succeeded ({} when none did)."""
    values = [row[key] for row in rows if row.get("ok")]
    if not values:
        return {}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# The echo results, for the chart: one entry per configuration.
ECHO_RESULTS = []
CHART = "charts/engine-echo.png"
CHART_PLACEHOLDER = "<!-- the echo chart goes here -->"


def draw_echo_chart(commit, runs):
    """Draws the echo chart into bench/CHART; returns the Markdown that links it, or a note
    saying why there is none."""
    results = tempfile.NamedTemporaryFile("w", prefix="myriad-bench-echo-", suffix=".json", delete=False)
    json.dump({"commit": commit, "echo": ECHO_RESULTS}, results)
    results.close()
    out = os.path.join(ROOT, "bench", CHART)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    drawn = subprocess.run([sys.executable, os.path.join(ROOT, "bench/plot.py"), "engine", results.name, out,
                            "--title", f"io_uring against epoll, echo: median (min-max) of {runs} runs, commit {commit}"],
                           capture_output=True, text=True)
    os.unlink(results.name)
    if drawn.returncode != 0:
        why = (drawn.stderr.strip().splitlines() or ["no output"])[-1]
        print("echo chart not drawn:", why)
        return f"(No chart this time: bench/plot.py failed: {why}.)"
    return (f"![io_uring against epoll: server CPU-µs and system calls per echoed message, by configuration]({CHART})\n\n"
            f"[The chart]({CHART}): server CPU-µs (top) and system calls (bottom) per echoed message, io_uring beside epoll, "
            "for each configuration of the table; bars are medians, whiskers the min-max of the runs.")


def ratio(results, key, invert=False):
    a = [r[key] for r in results["io_uring"] if r.get("ok")]
    b = [r[key] for r in results["epoll"] if r.get("ok")]
    if not a or not b:
        return "-"
    a, b = statistics.median(a), statistics.median(b)
    if a == 0 or b == 0:
        return "-"
    return f"{(b / a if invert else a / b):.2f}x"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="handshakes,echo,keepalive,memory,syscalls")
    options = parser.parse_args()
    only = set(options.only.split(","))
    runs = options.runs
    out = []
    commit = commit_stamp()
    out.append(f"Measured {time.strftime('%Y-%m-%d')} at commit {commit} with `bench/engine/compare.py --runs {runs}`; "
               f"median (min-max) of {runs} runs per backend, alternating. Server: 1 worker on core 0; "
               "load generator: 1 thread on core 1.\n")

    if "handshakes" in only:
        print("handshakes", flush=True)
        r = pairs(handshakes, runs)
        out.append("### Handshakes to 19,000 connections\n")
        out.append("| backend | handshakes/s (client) | server CPU-µs per handshake |\n| --- | --- | --- |")
        for backend in BACKENDS:
            out.append(f"| {backend} | {summarize(r[backend], 'handshakes_per_s')} | "
                       f"{summarize(r[backend], 'cpu_us_per_handshake')} |")
        out.append(f"| **io_uring/epoll** | {ratio(r, 'handshakes_per_s')} | {ratio(r, 'cpu_us_per_handshake')} |\n")

    if "echo" in only:
        print("echo", flush=True)
        out.append("### Echo\n")
        out.append("| connections | depth | size | backend | messages/s (client) | p50 ms | p99 ms | server CPU-µs / message | syscalls / message |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        configurations = [(c, d, s) for c in (100, 10_000) for d in (1, 16) for s in (32, 4096)]
        # The configuration the issue quotes other servers at: 100 connections x 8 in flight, 32 B.
        configurations.insert(4, (100, 8, 32))
        for connections, depth, size in configurations:
            r = pairs(echo, runs, connections, depth, size)
            for backend in BACKENDS:
                rows = r[backend]
                out.append(f"| {connections:,} | {depth} | {size} B | {backend} | "
                           f"{summarize(rows, 'messages_per_s')} | "
                           f"{summarize(rows, 'p50_ms')} | {summarize(rows, 'p99_ms')} | "
                           f"{summarize(rows, 'cpu_us_per_message')} | "
                           f"{summarize(rows, 'syscalls_per_message')} |")
            out.append(f"| | | | **io_uring/epoll** | {ratio(r, 'messages_per_s')} | {ratio(r, 'p50_ms')} | "
                       f"{ratio(r, 'p99_ms')} | {ratio(r, 'cpu_us_per_message')} | {ratio(r, 'syscalls_per_message')} |")
            ECHO_RESULTS.append({"connections": connections, "depth": depth, "size": size,
                                 **{backend: {key: spread(r[backend], key)
                                              for key in ("messages_per_s", "cpu_us_per_message", "syscalls_per_message")}
                                    for backend in BACKENDS}})
        out.append("")
        out.append(CHART_PLACEHOLDER)
        out.append("")

    if "syscalls" in only:
        print("syscalls (strace)", flush=True)
        r = pairs(strace_syscalls, 1)
        out.append("### System calls per message, counted by strace\n")
        out.append("`strace -c -f` attached to the server for 3 s of echo (100 connections, depth 8, 32 B); "
                   "strace slows the server, so only the count per message is meaningful.\n")
        out.append("| backend | syscalls / message |\n| --- | --- |")
        for backend in BACKENDS:
            out.append(f"| {backend} | {summarize(r[backend], 'strace_syscalls_per_message')} |")
        out.append(f"| **io_uring/epoll** | {ratio(r, 'strace_syscalls_per_message')} |\n")

    if "keepalive" in only:
        print("keepalive", flush=True)
        r = pairs(keepalive, runs)
        out.append("### Keep-alive: 19,000 connections, server ping every 1 s\n")
        out.append("| backend | server CPU-µs per ping round trip | round trips/s | server CPU % |\n| --- | --- | --- | --- |")
        for backend in BACKENDS:
            out.append(f"| {backend} | {summarize(r[backend], 'cpu_us_per_round_trip')} | "
                       f"{summarize(r[backend], 'round_trips_per_s')} | {summarize(r[backend], 'cpu_pct')} |")
        out.append(f"| **io_uring/epoll** | {ratio(r, 'cpu_us_per_round_trip')} | | |\n")

    if "memory" in only:
        print("memory", flush=True)
        out.append("### Memory per idle connection\n")
        out.append("Server RSS and kernel `Slab:` (/proc/meminfo, both ends of each loopback connection) "
                   "before and after N idle connections, divided by N.\n")
        out.append("| connections | backend | server workers | user-space RSS / connection | kernel Slab / connection (both ends) |\n| --- | --- | --- | --- | --- |")
        for connections in (10_000, 50_000):
            backends = BACKENDS if connections <= 19_000 else ["io_uring"]
            for backend in backends:
                rows = [attempt(memory, backend, run + 1, connections) for run in range(runs)]
                out.append(f"| {connections:,} | {backend} | {max(1, -(-connections // 19_000))} | "
                           f"{summarize(rows, 'rss_per_connection')} B | "
                           f"{summarize(rows, 'slab_per_connection')} B |")
        out.append(f"\nThe engine's slot is {Server.slot_bytes or '?'} B (`MemoryLayout<Connection>.stride`, from `myriad serve`'s start-up line); "
                   "the rest is per-worker memory touched as it is first used (receive buffers, pool, rings), "
                   "spread over N. epoll cannot hold 50,000 in one process: its ceiling is the fd limit.\n")

    text = "\n".join(out)
    print(text.replace(CHART_PLACEHOLDER, ""))
    if FAILED_RUNS:
        print(f"\n{len(FAILED_RUNS)} run(s) FAILED or fell short; the tables above leave them out, "
              "and bench/README.md is left as it is:")
        for name, arguments, backend, run, why in FAILED_RUNS:
            print(f"  {name}{arguments} {backend} run {run}: {why}")
        return 1
    if only == set(parser.get_default("only").split(",")):
        write_results(text.replace(CHART_PLACEHOLDER, draw_echo_chart(commit, runs)))
    else:
        print("a partial run (--only): bench/README.md left as it is")
    return 0


BEGIN = "<!-- engine results: written by bench/engine/compare.py -->"
END = "<!-- engine results: end -->"


def write_results(text):
    """Replaces the generated tables in bench/README.md (between the markers) with this run's."""
    path = os.path.join(ROOT, "bench/README.md")
    readme = open(path).read()
    if BEGIN not in readme or END not in readme:
        sys.exit("bench/README.md has no engine results markers")
    head, rest = readme.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    open(path, "w").write(head + BEGIN + "\n" + text + "\n" + END + tail)
    print("results written to bench/README.md")


if __name__ == "__main__":
    sys.exit(main())
