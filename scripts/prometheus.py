#!/usr/bin/env python3
"""A real Prometheus (Debian's `prometheus`) scraping `myriad serve`'s /metrics.

    scripts/prometheus.py --check [--binary .build/debug/myriad]
        Starts both on free loopback ports, waits until Prometheus has scraped the target
        successfully (`up == 1` through its HTTP API) and stored a Myriad series, has it
        evaluate every query of the Grafana dashboard (monitoring/grafana-dashboard.json: each
        must parse, and name only metrics /metrics serves), then stops both (by PID) and exits
        0; exits 1 with the reason otherwise (bounded: 60 s).
    scripts/prometheus.py [--binary .build/release/myriad] [--load N]
        The demo (`make prometheus-demo`): `myriad serve` on MYRIAD_PORT (8080) with metrics on
        MYRIAD_METRICS_PORT (9100), Prometheus on PROMETHEUS_PORT (9090) scraping it every 5 s,
        and with --load N a `myriad load hold` of N connections so the graphs move. Prints the
        URLs; Ctrl-C stops everything it started.

Prometheus's data lives in a temporary directory, removed at the end. Nothing is left running.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prometheus_binary():
    for candidate in (shutil.which("prometheus"), "/usr/bin/prometheus"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("prometheus is not installed: run scripts/ensure-deps.sh (Debian package `prometheus`)")


def query(port, expression):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    return body["data"]["result"] if body.get("status") == "success" else []


def check_dashboard(prometheus_port, metrics_port):
    """Every query of the dashboard, evaluated by Prometheus: the problems found."""
    dashboard = json.load(open(os.path.join(ROOT, "monitoring", "grafana-dashboard.json")))
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        exposed = set(re.findall(r"^# TYPE (\S+) ", response.read().decode(), re.M))
    problems, count = [], 0
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            count += 1
            expression = target["expr"].replace("$__rate_interval", "1m").replace('"$job"', '"myriad"')
            for name in re.findall(r"\b((?:myriad|process)_[a-z_]+)", expression):
                base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in exposed else name
                if base not in exposed:
                    problems.append(f"{panel['title']}: {name} is not a metric /metrics serves")
            url = f"http://127.0.0.1:{prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = json.load(response)
                if body.get("status") != "success":
                    problems.append(f"{panel['title']}: {body.get('error')}")
            except urllib.error.HTTPError as error:
                problems.append(f"{panel['title']}: {expression}: {error.read().decode()[:300]}")
    print(f"dashboard: {count} queries evaluated by Prometheus, {len(problems)} problem(s)")
    return problems


def wait_for(predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def stop(process, name):
    if process and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop on SIGTERM: killed")
            process.kill()
            process.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--binary", default=None)
    parser.add_argument("--load", type=int, default=0)
    options = parser.parse_args()
    binary = options.binary or os.path.join(ROOT, ".build", "debug" if options.check else "release", "myriad")
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} missing: build it first")
    prometheus = prometheus_binary()
    if options.check:
        ws_port, metrics_port, prometheus_port, interval = free_port(), free_port(), free_port(), "1s"
    else:
        ws_port = int(os.environ.get("MYRIAD_PORT", "8080"))
        metrics_port = int(os.environ.get("MYRIAD_METRICS_PORT", "9100"))
        prometheus_port = int(os.environ.get("PROMETHEUS_PORT", "9090"))
        interval = "5s"

    work = tempfile.mkdtemp(prefix="myriad-prometheus-")
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as file:
        file.write(f"""global:
  scrape_interval: {interval}
  evaluation_interval: {interval}
scrape_configs:
  - job_name: myriad
    static_configs:
      - targets: ["127.0.0.1:{metrics_port}"]
""")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MYRIAD_")}
    environment.update({"MYRIAD_HOST": "127.0.0.1", "MYRIAD_PORT": str(ws_port),
                        "MYRIAD_METRICS_PORT": str(metrics_port), "MYRIAD_METRICS_HOST": "127.0.0.1"})
    if not options.check:
        environment["MYRIAD_STATS_INTERVAL"] = os.environ.get("MYRIAD_STATS_INTERVAL", "10s")
    serve_log = open(os.path.join(work, "serve.log"), "w+")
    prometheus_log = open(os.path.join(work, "prometheus.log"), "w+")
    server = scraper = load = None
    status = 1
    try:
        server = subprocess.Popen([binary, "serve"], env=environment, stdout=serve_log, stderr=subprocess.STDOUT)
        if not wait_for(lambda: "metrics on http" in open(serve_log.name).read() or server.poll() is not None, 20) \
                or server.poll() is not None:
            print("myriad serve did not start:\n" + open(serve_log.name).read())
            return 1
        scraper = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={os.path.join(work, 'data')}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn"],
            stdout=prometheus_log, stderr=subprocess.STDOUT)
        started = time.time()

        def scraped():
            if scraper.poll() is not None:
                raise SystemExit("prometheus exited:\n" + open(prometheus_log.name).read())
            up = query(prometheus_port, 'up{job="myriad"}')
            return bool(up) and up[0]["value"][1] == "1"
        if not wait_for(scraped, 60):
            print("Prometheus never scraped myriad serve successfully (up != 1 after 60 s)")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{prometheus_port}/api/v1/targets", timeout=5) as response:
                    print("targets:", json.dumps(json.load(response)["data"]["activeTargets"], indent=1)[:2000])
            except OSError as error:
                print("targets: unavailable:", error)
            print("prometheus log:\n" + open(prometheus_log.name).read()[-2000:])
            return 1
        # The scrape's samples are stored and queryable: a Myriad series, per worker.
        stored = wait_for(lambda: len(query(prometheus_port, "myriad_connections_open")) >= 1, 20)
        series = query(prometheus_port, "myriad_connections_open") if stored else []
        print(f"prometheus: up == 1 after {time.time() - started:.1f} s; "
              f"myriad_connections_open has {len(series)} series: {[s['metric'].get('worker') for s in series]}")
        if not stored:
            print("no myriad_connections_open series stored")
            return 1
        if options.check:
            problems = check_dashboard(prometheus_port, metrics_port)
            for problem in problems:
                print("dashboard:", problem)
            status = 0 if not problems else 1
            return status
        if options.load:
            load = subprocess.Popen([binary, "load", "hold", "--port", str(ws_port), "--connections", str(options.load),
                                     "--duration", "3600s"], env=environment, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        print(f"myriad serve: ws://127.0.0.1:{ws_port}/  metrics: http://127.0.0.1:{metrics_port}/metrics")
        print(f"Prometheus:   http://127.0.0.1:{prometheus_port}/graph?g0.expr=sum(myriad_connections_open)&g0.tab=0")
        print(f"(logs in {work}; Ctrl-C stops everything)")
        try:
            while server.poll() is None and scraper.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        status = 0
        return 0
    finally:
        stop(load, "myriad load")
        stop(scraper, "prometheus")
        stop(server, "myriad serve")
        if status == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}")


if __name__ == "__main__":
    sys.exit(main())
