#!/usr/bin/env python3
"""permessage-deflate in the engine (issue 16): CPU per message, bytes on the wire, and a
broadcast compressed once against once per subscriber, each against its baseline in the same run.

    bench/compression/engine.py [--runs 3] [--subscribers 100000] [--skip-echo] [--skip-broadcast] [--no-write]

One worker pinned to core 0 (`myriad serve`), the load generator (`myriad load`, one thread)
pinned to core 1, as bench/engine/compare.py does. Every message is `--payload json` (a JSON
array of feed records after the load's 8- or 16-byte header; bench/README.md's codec figures
use the same kind of text), and the load's offer is permessage-deflate without context
takeover either way (`--deflate`), which every connection must agree to.

Echo (1 KiB messages, 100 connections x 8 in flight, 5 s, server CPU from /proc over the
middle of the run, divided by the messages the server received in it):
  - off:      MYRIAD_COMPRESSION=off, `--deflate off`: the baseline.
  - compress: `--deflate receive`: the load sends plain, the server compresses every echo.
  - inflate:  MYRIAD_COMPRESSION_THRESHOLD=64M, `--deflate both`: the server inflates every
              message and echoes it plain.
  - both:     `--deflate both`: the server inflates and compresses every message.
each with MYRIAD_COMPRESSION=shared and =dedicated (context kept per connection, 11-bit
windows: the load offers `client_max_window_bits` as browsers do, and keeps a decompressor per
connection for a server that keeps context). Server CPU-us per message compressed = compress
- off, per message inflated = inflate - off (medians); bytes on the wire per message from the
server's bytes_in/bytes_out counters.

Broadcast (`myriad serve --app broadcast`, `myriad load fanout`): N subscribers of one path
all agreed on permessage-deflate, one of them publishing a 4 KiB JSON message every 2 s for
10 s (5 messages, 5 x N deliveries, each checked once and in order): compression off, shared
(compress-once), and shared with MYRIAD_COMPRESSION_PER_RECIPIENT=on (what a server without
compress-once does). Server CPU-us per delivery from /proc over the publishing and the drain
(`--server-pid`), bytes sent per delivery from bytes_out.

Each configuration runs --runs times, the configurations alternating; a run whose load failed
(a lost, duplicated or reordered message, a failed handshake, a declined offer) is printed as
FAILED and the script writes nothing and exits 1. Results are stamped with the commit.
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
from compare import Server, echo, finish_load, start_load  # noqa: E402

MARKERS = {
    "echo": ("<!-- compression echo results: written by bench/compression/engine.py -->",
             "<!-- compression echo results: end -->"),
    "broadcast": ("<!-- compression broadcast results: written by bench/compression/engine.py -->",
                  "<!-- compression broadcast results: end -->"),
}

ECHO = [("off", {"MYRIAD_COMPRESSION": "off"}, "off")] + [
    (f"{kind}, {mode}", {"MYRIAD_COMPRESSION": mode, **extra}, deflate)
    for mode in ("shared", "dedicated")
    for kind, extra, deflate in (("compress", {}, "receive"),
                                 ("inflate", {"MYRIAD_COMPRESSION_THRESHOLD": "64M"}, "both"),
                                 ("both", {}, "both"))
]
BROADCAST = [
    ("off", {"MYRIAD_COMPRESSION": "off"}, "off"),
    ("compress-once", {"MYRIAD_COMPRESSION": "shared"}, "receive"),
    ("compress-per-subscriber", {"MYRIAD_COMPRESSION": "shared", "MYRIAD_COMPRESSION_PER_RECIPIENT": "on"}, "receive"),
]


def echo_once(name, env, deflate, connections=100, depth=8, size=1024, seconds=5):
    """compare.py's echo experiment with compression knobs and JSON messages; a run in which a
    connection did not get the mode asked for is not a result."""
    def check(a, b):
        problems = []
        agreed = b["stats"].get("deflate_agreed", 0)
        if deflate != "off" and agreed < connections:
            problems.append(f"{agreed} of {connections} connections agreed permessage-deflate")
        dedicated = b["stats"].get("dedicated_deflate", 0)
        if env.get("MYRIAD_COMPRESSION") == "dedicated" and dedicated < connections:
            problems.append(f"{dedicated} of {connections} connections had dedicated streams")
        return problems

    result = echo("io_uring", connections, depth, size, seconds, env=env,
                  load_arguments=("--payload", "json", "--deflate", deflate), check=check)
    return {"name": name, "ok": result["ok"], "why": result.get("why", ""),
            "cpu_us": result["cpu_us_per_message"], "messages_per_s": result["messages_per_s"],
            "bytes_in": result["bytes_in_per_message"], "bytes_out": result["bytes_out_per_message"],
            "compressed": result["compressed"], "inflated": result["inflated"]}


def broadcast_once(name, env, deflate, subscribers, size=4096):
    server = Server("io_uring", {"MYRIAD_APP": "broadcast", "MYRIAD_MAX_CONNECTIONS": str(subscribers + 1000),
                                 "MYRIAD_PONG_TIMEOUT": "60s", **env})
    try:
        load, path = start_load(server, "fanout", "--connections", str(subscribers), "--path", "/feed",
                                "--size", str(size), "--payload", "json", "--deflate", deflate,
                                "--publish-interval", "2s", "--duration", "10s", "--drain", "120s",
                                "--server-pid", str(server.pid))
        summary = finish_load(load, path, seconds=900)
        stats = server.stats()
        fanout = summary.get("fanout", {}) or {}
        problems = summary.problems() + fanout_problems(fanout)
        if not fanout:
            problems.append("no fanout summary")
        delivered = fanout.get("delivered") or 0
        server_side = fanout.get("server", {}) or {}
        return {"name": name, "ok": not problems, "why": "; ".join(problems),
                "cpu_us": server_side.get("cpu_us_per_delivery"), "delivered": delivered,
                "published": fanout.get("published"),
                # Everything the server sent (the upgrade responses and pings too, a few
                # hundred bytes per subscriber against 5 x 4 KiB of messages) per delivery.
                "bytes_out": stats.get("bytes_out", 0) / max(1, delivered),
                "compressed": stats.get("messages_compressed", 0),
                "p50": (summary.get("latency_ms") or {}).get("p50"),
                "last_max": (fanout.get("publish_to_last_delivery_ms") or {}).get("max")}
    finally:
        server.stop()


def median(results, name, key):
    return statistics.median(r[key] for r in results if r["name"] == name)


def echo_table(results, runs, stamp):
    off_cpu = median(results, "off", "cpu_us")
    lines = [
        f"Echo: measured {time.strftime('%Y-%m-%d')} at commit {stamp} with `bench/compression/engine.py --runs {runs}`;"
        " 1 worker (io_uring) on core 0, `myriad load echo` 1 thread on core 1, 100 connections x 8 in flight,"
        " 1 KiB JSON messages; median (min-max) of the runs, configurations alternating.",
        "",
        "| configuration | server CPU-µs / message | over off | messages/s | bytes in / message | bytes out / message | compressed, inflated by the server |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, _, deflate in ECHO:
        rows = [r for r in results if r["name"] == name]
        if not rows:
            continue
        extra = statistics.median(r["cpu_us"] for r in rows) - off_cpu
        lines.append(
            f"| {name} (load --deflate {deflate}) | {spread([r['cpu_us'] for r in rows], 2)} | "
            f"{'-' if name == 'off' else f'{extra:+.2f} µs'} | {spread([r['messages_per_s'] for r in rows], 0)} | "
            f"{spread([r['bytes_in'] for r in rows], 0)} | {spread([r['bytes_out'] for r in rows], 0)} | "
            f"{int(statistics.median(r['compressed'] for r in rows)):,}, {int(statistics.median(r['inflated'] for r in rows)):,} |")
    return lines


def broadcast_table(results, runs, subscribers, stamp):
    lines = [
        f"Broadcast: measured {time.strftime('%Y-%m-%d')} at commit {stamp} with `bench/compression/engine.py --runs {runs}"
        f" --subscribers {subscribers}`; 1 worker (io_uring) on core 0, `myriad load fanout` 1 thread on core 1,"
        f" {subscribers:,} subscribers agreed on permessage-deflate (none with compression off), 5 publishes of a"
        " 4 KiB JSON message 2 s apart; median (min-max) of the runs.",
        "",
        "| configuration | server CPU-µs / delivery | bytes sent / delivery | messages sent compressed (counter) | latency p50 ms | publish-to-last-delivery max ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, _, _ in BROADCAST:
        rows = [r for r in results if r["name"] == name]
        lines.append(f"| {name} | {spread([r['cpu_us'] for r in rows], 2)} | {spread([r['bytes_out'] for r in rows], 0)} | "
                     f"{int(statistics.median(r['compressed'] for r in rows)):,} | {spread([r['p50'] for r in rows], 1)} | "
                     f"{spread([r['last_max'] for r in rows], 0)} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--skip-echo", action="store_true")
    parser.add_argument("--skip-broadcast", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    stamp = commit_stamp()
    echo_results, broadcast_results, failed = [], [], []
    for run in range(args.runs):
        for name, env, deflate in ([] if args.skip_echo else ECHO):
            result = echo_once(name, env, deflate)
            print(f"echo {name} run {run + 1}: {result}", flush=True)
            (echo_results if result["ok"] else failed).append(result)
        for name, env, deflate in ([] if args.skip_broadcast else BROADCAST):
            result = broadcast_once(name, env, deflate, args.subscribers)
            print(f"broadcast {name} run {run + 1}: {result}", flush=True)
            (broadcast_results if result["ok"] else failed).append(result)
            time.sleep(65)  # the last run's TIME_WAIT sockets
    if failed:
        print(f"{len(failed)} run(s) FAILED; nothing written:", file=sys.stderr)
        for result in failed:
            print(f"  {result['name']}: {result['why']}", file=sys.stderr)
        return 1
    tables = {}
    if echo_results:
        tables["echo"] = echo_table(echo_results, args.runs, stamp)
    if broadcast_results:
        tables["broadcast"] = broadcast_table(broadcast_results, args.runs, args.subscribers, stamp)
    for name, lines in tables.items():
        text = "\n".join(lines)
        print(text + "\n")
        if not args.no_write:
            readme = os.path.join(ROOT, "bench", "README.md")
            content = open(readme).read()
            begin, end = MARKERS[name]
            start, stop = content.index(begin) + len(begin), content.index(end)
            open(readme, "w").write(content[:start] + "\n" + text + "\n" + content[stop:])
            print(f"{name} table written to bench/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
