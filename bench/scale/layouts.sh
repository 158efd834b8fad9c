#!/usr/bin/env bash
# Server layouts side by side, in one run (issue 14): the same `bench/scale/scale.sh N HOLD` with
# the server's default worker count (one per core, as many rings as MYRIAD_MAX_CONNECTIONS needs)
# and with MYRIAD_WORKERS=11 and =53 (each worker one ring or a few), the server pinging every
# connection every PING_INTERVAL; `myriad load` with its defaults in every run. Appends one row
# per layout to bench/README.md's layout table: server CPU-µs per ping round trip, wake-ups per
# second (the stats line's waits), server CPU-µs per handshake during the ramp, ramp time, RSS per
# connection, the client's CPU, and the kernel's TCP retransmits over the ramp and the hold.
#
# Refuses (exit 1, no row at all) when any run of the set fails: scale.sh's own refusals (a
# connection lost on either side, N not reached, no ping in the window, the server died).
#
#   bench/scale/layouts.sh N HOLD_SECONDS PING_INTERVAL     e.g. 200000 60 5s, or 1000000 120 25s
# Env: LAYOUTS (default "default 11 53"); SCALE_SERVER_ENV (more KEY=VALUE for every server of the
# set, for experiments: it goes into every row's command); LAYOUTS_SETTLE (seconds between runs,
# default 65: the previous run's TIME_WAIT sockets expire); LAYOUTS_WRITE_ROWS=0 to print only.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:?usage: layouts.sh N HOLD_SECONDS PING_INTERVAL}"
HOLD="${2:?usage: layouts.sh N HOLD_SECONDS PING_INTERVAL}"
PING="${3:?usage: layouts.sh N HOLD_SECONDS PING_INTERVAL}"
LAYOUTS="${LAYOUTS:-default 11 53}"
SETTLE="${LAYOUTS_SETTLE:-65}"
SERVER_ENV="${SCALE_SERVER_ENV:-}"
OUT=$(mktemp -d /tmp/myriad-layouts-XXXXXX)
port=18600
results=()
first=1
for layout in $LAYOUTS; do
    [ $first = 1 ] || { echo "layouts: settling ${SETTLE}s"; sleep "$SETTLE"; }
    first=0
    workers=""
    [ "$layout" = default ] || workers=$layout
    port=$(( port + 1 ))
    echo "layouts: N=$N hold ${HOLD}s pings every $PING, server workers ${workers:-default}${SERVER_ENV:+, $SERVER_ENV}"
    status=0
    SCALE_WRITE_ROW=0 SCALE_PORT=$port SCALE_WORKERS="$workers" SCALE_PING_INTERVAL="$PING" SCALE_SERVER_ENV="$SERVER_ENV" \
        bench/scale/scale.sh "$N" "$HOLD" >"$OUT/$layout.out" 2>&1 || status=$?
    cat "$OUT/$layout.out"
    if [ $status != 0 ]; then
        echo "layouts: REFUSED, no row written: the run with workers ${workers:-default} failed (exit $status); logs in $OUT" >&2
        exit 1
    fi
    sed -n 's/^scale: result //p' "$OUT/$layout.out" >"$OUT/$layout.json"
    results+=("$OUT/$layout.json")
done

python3 - "$N" "$HOLD" "$PING" "$SERVER_ENV" "${LAYOUTS_WRITE_ROWS:-1}" "$LAYOUTS" "${results[@]}" <<'PY'
import json, sys
n, hold, ping, server_env, write, layouts = sys.argv[1:7]
rows = []
for path in sys.argv[7:]:
    r = json.load(open(path))
    if r.get("ok") is not True or not r.get("commit"):
        sys.exit(f"layouts: REFUSED, no row written: {path} is not a clean run")
    knobs = ("SCALE_SERVER_ENV='%s' " % server_env) if server_env else ""
    if layouts != "default 11 53":
        knobs += "LAYOUTS='%s' " % layouts
    command = f"{knobs}bench/scale/layouts.sh {n} {hold} {ping}"
    rings = r.get("rings") or 0
    workers = r.get("workers")
    per_worker = f"{rings / workers:.0f}" if workers and rings % workers == 0 else f"{rings}/{workers}"
    tr, th = r.get("tcp_ramp", {}), r.get("tcp_hold", {})
    rows.append(
        f"| {r['date']} | {r['commit']} | {r['N']:,} | {ping} | {workers} x {per_worker} ({rings} rings) | "
        f"**{r['server_cpu_us_per_ping']} µs** ({r['server_cpu_pct_holding']} %) | {r['server_waits_per_s']:,} | "
        f"{r['server_cpu_us_per_handshake_ramp']} µs | {r['ramp_s']} s | {r['server_rss_per_conn_B']} B ({r['server_rss_mib']} MiB) | "
        f"{r['client_threads']} x {round((r['client_rings'] or 0) / max(r['client_threads'] or 1, 1))} ({r['client_rings']} rings), "
        f"{r['client_cpu_pct_holding']} % | "
        f"{tr.get('TcpRetransSegs', 0):,} / {th.get('TcpRetransSegs', 0):,} | {tr.get('ListenOverflows', 0):,} | "
        f"{r['pongs_received']:,} | `{command}` |")
    print("layouts:", rows[-1])
if write == "1":
    path = "bench/README.md"
    marker = "<!-- layout rows: appended by bench/scale/layouts.sh -->"
    text = open(path).read()
    if marker not in text:
        sys.exit("bench/README.md has no layout table marker")
    text = text.replace(marker, "\n".join(rows) + "\n" + marker)
    open(path, "w").write(text)
    print("layouts: %d rows written to %s" % (len(rows), path))
PY
echo "layouts: logs in $OUT"
