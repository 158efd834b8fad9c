"""What the benchmark scripts share: the binary, a free port, /proc readings, the sysctls a
million loopback connections need, and waiting for a `myriad load` run and its JSON summary.

    sys.path.insert(0, os.path.join(ROOT, "bench")); from benchlib import ...
"""
import json
import os
import socket
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_BINARY", os.path.join(ROOT, ".build/release/myriad"))
HZ = os.sysconf("SC_CLK_TCK")


# How long a server under benchmark waits for a pong (its default is 10 s) when the load
# generator that must answer shares this machine's 2 cores with it and is itself receiving a
# broadcast: it reads a ping only after the messages queued ahead of it, and at 10 s answered
# late. Seen twice: a publish to a million subscribers (614,156 closed as pong_timeout at
# 6d87a5d, bench/topics/million.py) and two nodes and nats-server beside a 200,000-connection
# client (10,002 closed, 815 deliveries lost at f95d2c0, bench/cluster/compare.py). A
# deployment has its clients on other machines; the knob exists for exactly this.
SHARED_MACHINE_PONG_TIMEOUT = "60s"

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sysctl(key, value):
    """Sets a sysctl when it differs (root only; otherwise left as it is)."""
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        if " ".join(open(path).read().split()) != value:
            subprocess.run(["sysctl", "-q", "-w", f"{key}={value}"], check=False)
    except OSError:
        pass


def loopback_sysctls():
    """As bench/scale/scale.sh: more ephemeral ports per source address, deeper accept queues."""
    if os.geteuid() != 0:
        return
    sysctl("net.ipv4.ip_local_port_range", "10000 65535")
    sysctl("net.core.somaxconn", "65535")
    sysctl("net.ipv4.tcp_max_syn_backlog", "65535")
    sysctl("net.core.netdev_max_backlog", "16384")


def proc_status(pid, field):
    """A byte figure of /proc/PID/status (e.g. "VmRSS:", "VmHWM:"), 0 when the process is gone."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes(pid):
    return proc_status(pid, "VmRSS:")


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def finish_load(process, path, seconds):
    """Waits for a `myriad load` process (killed past `seconds`); returns its exit status and
    its JSON summary ({} when it wrote none), and removes the summary file."""
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    try:
        summary = json.load(open(path))
    except Exception:
        summary = {}
    os.unlink(path)
    return process.returncode, summary


def load_failures(summary):
    """Failures by kind and reason (non-zero kinds only) from a load summary."""
    return {kind: reasons for kind, reasons in (summary.get("failures") or {}).items() if reasons}


def spread(values, digits=1):
    """`median (min-max)` of the values that are not None, with thousands separators."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    fmt = f"{{:,.{digits}f}}"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def fanout_problems(fanout):
    """Why a fanout run's deliveries are not a result: loss, duplicates, reordering, or fewer
    deliveries than expected (its `fanout` summary object)."""
    problems = [f"{key} {fanout[key]}" for key in ("lost", "duplicated", "out_of_order") if fanout.get(key)]
    if fanout and fanout.get("delivered") != fanout.get("expected"):
        problems.append(f"delivered {fanout.get('delivered')} of {fanout.get('expected')}")
    return problems
