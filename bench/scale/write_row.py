"""Appends a scale run's result as a row of bench/README.md's scale table.

    python3 bench/scale/write_row.py RESULT.json COMMAND [CHART]

CHART (a path relative to bench/, e.g. charts/scale-1000000-2026-11-29-abc1234.png, copied
there by scale.sh) is linked from the list under the table, beside the row's date and commit.
Refuses (exit 1, nothing written) a result that scale.sh did not mark ok, or that carries no
commit stamp: a failed or short run never becomes a row.
"""
import json
import sys

result = json.load(open(sys.argv[1]))
command = sys.argv[2]
chart = sys.argv[3] if len(sys.argv) > 3 else ""
if result.get("ok") is not True:
    sys.exit("scale: REFUSED, no row written: the run failed or fell short: "
             + ("; ".join(result.get("failures") or []) or "no ok flag in the result"))
if not result.get("commit"):
    sys.exit("scale: REFUSED, no row written: the result has no commit stamp")
path = "bench/README.md"
text = open(path).read()
marker = "<!-- scale rows: appended by bench/scale/write_row.py -->"
r = result
workers = f"{r['workers']} x {r['rings'] // r['workers']} rings" if r.get("rings") and r.get("workers") and r["rings"] % r["workers"] == 0 else r["workers"]
row = (f"| {r['date']} | {r['commit']} | {r['N']:,} | {r['reached']:,} | {workers} | {r['ramp_s']} s | "
       f"{r['server_rss_per_conn_B']} B ({r['server_rss_mib']} MiB) | {r['kernel_slab_per_conn_B']} B | "
       f"{r['server_cpu_pct_holding']} % ({r['server_cpu_us_per_ping']} µs / ping) | "
       f"{r['pings_sent']:,} / {r['pongs_received']:,} | {r['unexpected_closes_client']} / {r['server_abnormal_closes']} | "
       f"{r['load_failures']:,} | {r['teardown_clean_closes']:,} / {r['teardown_server_abnormal']:,} | "
       f"{r['client_rss_mib']} MiB | `{command}` |")
if marker not in text:
    sys.exit("bench/README.md has no scale table marker")
text = text.replace(marker, row + "\n" + marker)
charts = "<!-- scale charts: appended by bench/scale/write_row.py -->"
if chart:
    if charts not in text:
        sys.exit("bench/README.md has no scale charts marker")
    link = f"- [{r['date']}, {r['commit']}, N = {r['N']:,}: connections, server RSS and CPU over the ramp and the hold]({chart})"
    text = text.replace(charts, link + "\n" + charts)
open(path, "w").write(text)
print("scale: row written to", path + (f", chart linked ({chart})" if chart else ""))
