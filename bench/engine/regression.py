#!/usr/bin/env python3
"""Two builds of the engine under the same load: is the newer one slower?

    bench/engine/regression.py --baseline /path/to/older/myriad [--runs 3] [--backend io_uring]
                               [--whole] [--only "echo 10,000 x 16 x 4096 B,handshakes"]

Runs bench/engine/compare.py's handshake, echo and keep-alive experiments with the server
started from the current build (BENCH_BINARY, default .build/release/myriad) and from
`--baseline`, alternating which goes first, with the current build's `myriad load` driving
both, so the only difference is the server. The baseline must understand the same MYRIAD_*
knobs compare.py sets. With --whole each build's own `myriad load` drives its own server (for a
change to the load generator as well: both sides are the build under test). --only keeps the
experiments whose titles it lists. Prints one table: the median (min-max) of each figure for both builds
and their ratio (current/baseline; for server CPU-µs below 1.00x is better).

A run that failed or fell short is printed as FAILED and left out, and the script exits 1;
nothing is written anywhere: copy a complete table into bench/README.md by hand, with the
command and both commits.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402


def build_name(binary):
    """How the table names a build: its path (name the copies after their commits)."""
    return f"`{binary}`"


def ratio_cell(current, baseline, key):
    a = [r[key] for r in current if r.get("ok")]
    b = [r[key] for r in baseline if r.get("ok")]
    if not a or not b or statistics.median(b) == 0:
        return "-"
    return f"{statistics.median(a) / statistics.median(b):.2f}x"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="the older release myriad binary")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backend", default="io_uring", choices=compare.BACKENDS)
    parser.add_argument("--whole", action="store_true", help="each build's load generator drives its own server")
    parser.add_argument("--only", default="", help="comma list of experiment titles to run (default: all)")
    options = parser.parse_args()
    builds = {"current": compare.BIN, "baseline": options.baseline}
    for name, binary in builds.items():
        if not os.access(binary, os.X_OK):
            sys.exit(f"regression: no executable {name} build at {binary}")

    experiments = [("handshakes", compare.handshakes, (), ["cpu_us_per_handshake", "handshakes_per_s"]),
                   ("keep-alive", compare.keepalive, (), ["cpu_us_per_round_trip"])]
    for connections, depth, size in [(100, 1, 32), (100, 16, 4096), (100, 8, 32), (10_000, 1, 32), (10_000, 16, 4096)]:
        experiments.append((f"echo {connections:,} x {depth} x {size} B", compare.echo, (connections, depth, size),
                            ["cpu_us_per_message", "messages_per_s"]))

    if options.only:
        wanted = [title.strip() for title in options.only.split(",") if title.strip()]
        unknown = [title for title in wanted if title not in [experiment[0] for experiment in experiments]]
        if unknown:
            sys.exit(f"regression: no experiment titled {unknown}; titles: {[experiment[0] for experiment in experiments]}")
        experiments = [experiment for experiment in experiments if experiment[0] in wanted]

    rows = []
    for title, function, arguments, keys in experiments:
        print(title, flush=True)
        results = {"current": [], "baseline": []}
        for run in range(options.runs):
            order = ["current", "baseline"] if run % 2 == 0 else ["baseline", "current"]
            for name in order:
                compare.SERVER_BINARY = builds[name]
                compare.BIN = builds[name] if options.whole else builds["current"]
                result = compare.attempt(function, options.backend, run + 1, *arguments)
                results[name].append(result)
        for key in keys:
            rows.append(f"| {title} | {key} | {compare.summarize(results['current'], key)} | "
                        f"{compare.summarize(results['baseline'], key)} | {ratio_cell(results['current'], results['baseline'], key)} |")

    driver = "each build's own" if options.whole else "the current build's"
    flags = (" --whole" if options.whole else "") + (f" --only \"{options.only}\"" if options.only else "")
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} with `bench/engine/regression.py --baseline ... --runs {options.runs} "
          f"--backend {options.backend}{flags}`: current {build_name(builds['current'])}, baseline {build_name(builds['baseline'])}; "
          f"median (min-max) of {options.runs} runs each, alternating; server 1 worker on core 0, "
          f"load generator ({driver}) 1 thread on core 1.\n")
    print("| experiment | figure | current | baseline | current/baseline |\n| --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    if compare.FAILED_RUNS:
        print(f"\n{len(compare.FAILED_RUNS)} run(s) FAILED or fell short and are left out:")
        for name, arguments, backend, run, why in compare.FAILED_RUNS:
            print(f"  {name}{arguments} {backend} run {run}: {why}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
