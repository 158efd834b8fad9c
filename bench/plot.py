#!/usr/bin/env python3
"""Charts of the benchmark runs, with matplotlib (PyPI). Needs no set-up: when matplotlib is
missing, the script makes a venv for it (.venv-bench/ at the repository root) and runs
itself again there.

    bench/plot.py scale SERIES.csv PHASES.csv OUT.png [--title TEXT]
        The scale run over time (bench/scale/scale.sh writes both files): connections the
        server holds, its RSS and its CPU (% of one core, from /proc/PID/stat between samples),
        with the ramp and the hold marked.
    bench/plot.py engine RESULTS.json OUT.png [--title TEXT]
        io_uring against epoll per echoed message (bench/engine/compare.py writes the file):
        server CPU-µs and system calls per message for each echo configuration, medians with
        their min-max spread.
"""
import argparse
import csv
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv-bench")


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return
    except ImportError:
        pass
    python = os.path.join(VENV, "bin", "python")
    if os.path.abspath(sys.executable) == os.path.abspath(python):
        sys.exit("plot: matplotlib is still missing in " + VENV)
    if not os.path.exists(python):
        print("plot: creating .venv-bench with matplotlib (PyPI)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "matplotlib>=3.7"], check=True)
    os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])


def scale(series_path, phases_path, out, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(series_path)))
    if len(rows) < 2:
        sys.exit(f"plot: {series_path} has {len(rows)} sample(s); nothing to draw")
    phases = {row["phase"]: float(row["t"]) for row in csv.DictReader(open(phases_path))} if os.path.exists(phases_path) else {}
    t0 = float(rows[0]["t"])
    hz = float(rows[0].get("hz") or os.sysconf("SC_CLK_TCK"))
    times = [float(r["t"]) - t0 for r in rows]
    open_ = [int(r["open"] or 0) for r in rows]
    rss = [int(r["rss_kb"] or 0) / 1024 for r in rows]
    cpu = [0.0]
    for previous, current in zip(rows, rows[1:]):
        elapsed = float(current["t"]) - float(previous["t"])
        ticks = int(current["cpu_ticks"] or 0) - int(previous["cpu_ticks"] or 0)
        cpu.append(ticks / hz / elapsed * 100 if elapsed > 0 else 0)

    figure, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    axes[0].plot(times, open_, color="tab:blue")
    axes[0].set_ylabel("connections held")
    axes[0].ticklabel_format(axis="y", style="plain")
    axes[0].yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    axes[1].plot(times, rss, color="tab:green")
    axes[1].set_ylabel("server RSS (MiB)")
    axes[2].plot(times, cpu, color="tab:red")
    axes[2].set_ylabel("server CPU (% of a core)")
    axes[2].set_xlabel("seconds since myriad serve started")
    for axis in axes:
        axis.grid(True, alpha=0.3)
        for name, style in (("ramp_start", ":"), ("ramp_end", "--"), ("hold_end", "-.")):
            if name in phases:
                axis.axvline(phases[name] - t0, color="gray", linestyle=style, linewidth=1,
                             label=name.replace("_", " ") if axis is axes[0] else None)
    if phases:
        axes[0].legend(loc="lower right")
    figure.suptitle(title or "scale run")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    print("plot: wrote", out)


def engine(results_path, out, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.load(open(results_path))
    configurations = results["echo"]
    labels = [f"{c['connections']:,} conns\ndepth {c['depth']}, {c['size']} B" for c in configurations]
    figure, axes = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    width = 0.38
    colors = {"io_uring": "tab:blue", "epoll": "tab:orange"}
    for axis, key, ylabel in ((axes[0], "cpu_us_per_message", "server CPU-µs per message"),
                              (axes[1], "syscalls_per_message", "system calls per message")):
        for offset, backend in ((-width / 2, "io_uring"), (width / 2, "epoll")):
            medians, lows, highs = [], [], []
            for configuration in configurations:
                cell = configuration[backend].get(key) or {}
                median = cell.get("median")
                medians.append(median if median is not None else 0)
                lows.append(median - cell["min"] if median is not None else 0)
                highs.append(cell["max"] - median if median is not None else 0)
            positions = [index + offset for index in range(len(configurations))]
            axis.bar(positions, medians, width, yerr=[lows, highs], capsize=3, label=backend, color=colors[backend])
        axis.set_ylabel(ylabel)
        axis.grid(True, axis="y", alpha=0.3)
        axis.legend()
    axes[1].set_xticks(range(len(configurations)))
    axes[1].set_xticklabels(labels, fontsize=8)
    figure.suptitle(title or "io_uring against epoll: echo")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    print("plot: wrote", out)


def main():
    ensure_matplotlib()
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("scale")
    s.add_argument("series")
    s.add_argument("phases")
    s.add_argument("out")
    s.add_argument("--title", default="")
    e = sub.add_parser("engine")
    e.add_argument("results")
    e.add_argument("out")
    e.add_argument("--title", default="")
    options = parser.parse_args()
    if options.kind == "scale":
        scale(options.series, options.phases, options.out, options.title)
    else:
        engine(options.results, options.out, options.title)


if __name__ == "__main__":
    main()
