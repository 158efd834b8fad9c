#!/usr/bin/env bash
# The million-connection run: `make scale N=1000000` (any N). One machine, loopback, server and
# clients together. Prints what it needs, applies only what is safe here (the ephemeral port
# range and the accept backlogs), starts `myriad serve` with its defaults (one worker per core)
# and MYRIAD_MAX_CONNECTIONS = N + 5% (SO_REUSEPORT spreads connections over the workers by
# hash; the server decides how many rings that takes), ramps `myriad load hold` (its defaults:
# one thread per core, as many rings as each needs) to N, holds 120 s after the ramp with the
# server pinging every connection every 25 s, then reports and appends a row to bench/README.md's
# scale table.
#
# Every second it samples the connections the server holds (its stats line), its RSS and its
# CPU into a time series (series.csv among the logs), and draws them (bench/plot.py, matplotlib)
# with the ramp and the hold marked: scale.png among the logs; a run that becomes a row also
# gets its chart copied to bench/charts/ and linked under the table.
#
# Only a clean run becomes a row. The script refuses (says why, exits 1, writes no row) when
# `myriad load` exits non-zero or writes no summary, when the server never holds N or holds
# fewer at the sample, when the server dies, or when either side lost a connection before the
# end of the hold. The row is stamped with the commit the run measured, `-dirty` when the work
# tree had uncommitted changes (bench/commit_stamp.py). Inherited MYRIAD_* variables are
# cleared: the row's command must be all it takes to repeat the run.
#
#   bench/scale/scale.sh N [HOLD_SECONDS]
# Env: SCALE_WRITE_ROW=0 to skip writing the row (and the chart into bench/charts/); SCALE_BINARY (default .build/release/myriad);
# SCALE_PORT (18555). For comparisons (bench/scale/layouts.sh), each part of the row's command:
# SCALE_WORKERS (MYRIAD_WORKERS: unset, the server's default), SCALE_PING_INTERVAL (25s),
# SCALE_SERVER_ENV (more KEY=VALUE words for the server, for experiments).
# Besides the row, $OUT/result.json has the server's CPU per handshake during the ramp, its
# wake-ups (the stats line's waits) per second in the hold, the client's CPU, and the kernel's
# TCP counters (retransmits, listen overflows and drops, timeouts, softnet drops) over the ramp
# and the hold; $OUT/samples.log has them every 2 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
while read -r name; do unset "$name"; done < <(compgen -e | grep '^MYRIAD_' || true)

N="${1:-1000000}"
HOLD="${2:-120}"
BIN="${SCALE_BINARY:-.build/release/myriad}"
PORT="${SCALE_PORT:-18555}"
OUT=$(mktemp -d /tmp/myriad-scale-XXXXXX)
[ -x "$BIN" ] || { echo "scale: $BIN missing: build with 'swift build -c release'" >&2; exit 2; }
commit=$(python3 bench/commit_stamp.py)

say() { echo "scale: $*"; }
# The time series' chart, drawn whatever the outcome (a failed run's curves say where it failed).
draw() {
    [ -s "$OUT/series.csv" ] || return 0
    python3 bench/plot.py scale "$OUT/series.csv" "$OUT/phases.csv" "$OUT/scale.png" \
        --title "myriad scale N=$N (workers: ${WORKERS:-one per core}), commit $commit" >"$OUT/plot.log" 2>&1 \
        || say "chart: not drawn ($(tail -n 1 "$OUT/plot.log"))"
}
refuse() {
    echo "scale: REFUSED, no row written: $*" >&2
    if [ -n "${series_sampler:-}" ]; then kill "$series_sampler" 2>/dev/null || true; fi
    draw
    echo "scale: logs in $OUT" >&2
    exit 1
}
hard_limit=$(ulimit -Hn)
ulimit -n "$hard_limit"
PING_INTERVAL="${SCALE_PING_INTERVAL:-25s}"
WORKERS="${SCALE_WORKERS:-}"
SERVER_ENV="${SCALE_SERVER_ENV:-}"
# SO_REUSEPORT spreads connections over the workers by hash, so their shares differ (by a few
# hundred at 19,000 a worker): 5% more slots than N leaves room for that.
capacity=$(( N + (N * 5 + 99) / 100 ))
doctor_args=(--connections "$N")
[ -n "$WORKERS" ] && doctor_args+=(--workers "$WORKERS")

say "commit $commit; N=$N: MYRIAD_MAX_CONNECTIONS=$capacity, workers ${WORKERS:-the default (one per core)}, pings every $PING_INTERVAL${SERVER_ENV:+, $SERVER_ENV} (fd limit $hard_limit per process)"
say "the host check for N (myriad doctor ${doctor_args[*]}):"
"$BIN" doctor "${doctor_args[@]}" | tail -n 1 || true

# Safe on this machine: more ephemeral ports per source address, deeper accept queues.
# (fd limits cannot be raised here: no CAP_SYS_RESOURCE, which is why the engine uses rings.)
apply() {
    local key=$1 value=$2 path=/proc/sys/${1//.//}
    local current; current=$(tr -s '\t ' ' ' < "$path")
    if [ "$current" != "$value" ]; then
        if sysctl -q -w "$key=$value" 2>/dev/null; then say "sysctl $key: $current -> $value"
        else say "sysctl $key: could not set (now $current); continuing"; fi
    fi
}
if [ "$(id -u)" -eq 0 ]; then
    apply net.ipv4.ip_local_port_range "10000 65535"
    apply net.core.somaxconn 65535
    apply net.ipv4.tcp_max_syn_backlog 65535
    apply net.core.netdev_max_backlog 16384
else
    say "not root: leaving sysctls as they are (see kernel-tuning/apply.sh)"
fi

meminfo_slab_kb() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
now() { date +%s.%N; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
latest_stats() { grep '^stats ' "$OUT/serve.log" | tail -n 1; }
field() { sed -n "s/.*[ {,]$1[=:]\([0-9]*\).*/\1/p" <<<"$2" | head -n 1; }

tcp_counters() {
    nstat -asz 2>/dev/null | awk '/TcpRetransSegs|ListenOverflows|ListenDrops|TCPTimeouts|TCPSynRetrans|TCPAbortOnMemory|TCPMemoryPressures|TCPBacklogDrop|TCPRcvQDrop|TCPOFODrop|TCPReqQFullDrop|TCPSpuriousRTOs|TCPLossProbes / {printf "%s=%s ", $1, $2}'
    # softnet_stat column 2: packets dropped because a CPU's input backlog (netdev_max_backlog)
    # was full; column 3: times net_rx_action ran out of budget with work left (time_squeeze).
    local dropped=0 squeezed=0 processed column_dropped column_squeezed rest
    while read -r processed column_dropped column_squeezed rest; do
        dropped=$(( dropped + 16#$column_dropped )); squeezed=$(( squeezed + 16#$column_squeezed ))
    done </proc/net/softnet_stat
    printf 'softnet_dropped=%d softnet_squeezed=%d' "$dropped" "$squeezed"
}
echo "before: $(tcp_counters)" >"$OUT/tcp.log"
slab_before=$(meminfo_slab_kb)
server_env=(MYRIAD_HOST=127.0.0.1 MYRIAD_PORT="$PORT" MYRIAD_MAX_CONNECTIONS="$capacity"
    MYRIAD_PING_INTERVAL="$PING_INTERVAL" MYRIAD_PONG_TIMEOUT=10s MYRIAD_STATS_INTERVAL=1s
    MYRIAD_BUFFER_COUNT=256 MYRIAD_BUFFER_SIZE=1024 MYRIAD_RING_ENTRIES=2048 MYRIAD_BACKLOG=65535)
[ -n "$WORKERS" ] && server_env+=(MYRIAD_WORKERS="$WORKERS")
# shellcheck disable=SC2206
[ -n "$SERVER_ENV" ] && server_env+=($SERVER_ENV)
env "${server_env[@]}" "$BIN" serve >"$OUT/serve.log" 2>&1 &
server=$!
sampler=""
series_sampler=""
# Every kill may find its process gone already: none of them may fail the script (set -e).
cleanup() {
    if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; fi
    if [ -n "$series_sampler" ]; then kill "$series_sampler" 2>/dev/null || true; fi
    if kill -0 "$server" 2>/dev/null; then kill -TERM "$server" 2>/dev/null || true; fi
    if [ -n "${load:-}" ] && kill -0 "$load" 2>/dev/null; then kill -TERM "$load" 2>/dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q "listening on" "$OUT/serve.log" && break; sleep 0.1; done
grep -q "listening on" "$OUT/serve.log" || { cat "$OUT/serve.log"; refuse "myriad serve did not start"; }
sleep 1
rss_idle=$(rss_kb "$server")

# The time series for the chart: one sample a second until the server exits.
sample_series() {
    local hz line
    hz=$(getconf CLK_TCK)
    echo "t,open,rss_kb,cpu_ticks,hz" >"$OUT/series.csv"
    while kill -0 "$server" 2>/dev/null; do
        line=$(tail -n 40 "$OUT/serve.log" | grep '^stats ' | tail -n 1 || true)
        echo "$(date +%s.%N),$(field open "$line"),$(rss_kb "$server" 2>/dev/null),$(cpu_ticks "$server" 2>/dev/null),$hz" >>"$OUT/series.csv"
        sleep 1
    done
}
sample_series &
series_sampler=$!

started=$(now); cpu_start=$(cpu_ticks "$server")
printf 'phase,t\nramp_start,%s\n' "$started" >"$OUT/phases.csv"
"$BIN" load hold --port "$PORT" --connections "$N" --duration "${HOLD}s" \
    --concurrency 4096 --time-limit "$(( HOLD + 600 ))s" --json "$OUT/load.json" >"$OUT/load.out" 2>"$OUT/load.err" &
load=$!
# Every 2 s: the server's open connections, waits and CPU, the client's CPU, the TCP counters.
( while kill -0 "$server" 2>/dev/null; do
      stats=$(latest_stats)
      echo "$(now) open=$(field open "$stats") waits=$(field waits "$stats") pongs=$(field pongs_received "$stats") server_cpu=$(cpu_ticks "$server" 2>/dev/null) load_cpu=$(cpu_ticks "$load" 2>/dev/null) $(tcp_counters)"
      sleep 2
  done ) >"$OUT/samples.log" 2>/dev/null &
sampler=$!

# Ramp: until the server holds N (or the client gives up).
ramp_seconds=""
while kill -0 "$load" 2>/dev/null; do
    open=$(field open "$(latest_stats)")
    if [ "${open:-0}" -ge "$N" ]; then
        ramp_end=$(now)
        ramp_seconds=$(echo "$ramp_end - $started" | bc)
        echo "ramp_end,$ramp_end" >>"$OUT/phases.csv"
        cpu_ramp_end=$(cpu_ticks "$server")
        break
    fi
    sleep 0.5
done
echo "ramp end: $(tcp_counters)" >>"$OUT/tcp.log"
if [ -z "$ramp_seconds" ]; then
    load_status=0
    wait "$load" || load_status=$?
    refuse "the server never held $N connections (myriad load exited with $load_status; last server stats: $(latest_stats))"
fi

# Hold: sample after the ramp settles, and again 100 s later (inside the 120 s hold).
window=$(( HOLD > 20 ? HOLD - 20 : HOLD / 2 ))
alive() { kill -0 "$server" 2>/dev/null || refuse "myriad serve died during the hold; tail of its log: $(tail -n 5 "$OUT/serve.log")"; }
sleep 5
alive
a_time=$(now); a_cpu=$(cpu_ticks "$server"); a_rss=$(rss_kb "$server"); a_slab=$(meminfo_slab_kb)
a_load_cpu=$(cpu_ticks "$load")
a_stats=$(latest_stats)
echo "hold start: $(tcp_counters)" >>"$OUT/tcp.log"
sleep "$window"
alive
b_time=$(now); b_cpu=$(cpu_ticks "$server"); b_stats=$(latest_stats); b_load_cpu=$(cpu_ticks "$load")
echo "hold end: $(tcp_counters)" >>"$OUT/tcp.log"
load_status=0
wait "$load" || load_status=$?
echo "hold_end,$(now)" >>"$OUT/phases.csv"
alive
kill -TERM "$server"; wait "$server" || true
wait "$series_sampler" 2>/dev/null || true
series_sampler=""
draw
final=$(grep '^final stats' "$OUT/serve.log" | tail -n 1)
echo "end: $(tcp_counters)" >>"$OUT/tcp.log"

kill "$sampler" 2>/dev/null || true
sampler=""
hz=$(getconf CLK_TCK)
held=$(field open "$a_stats")
workers=$(grep -o '[0-9]* worker(s)' "$OUT/serve.log" | head -n 1 | grep -o '[0-9]*' || true)
python3 - "$OUT" "$N" "${workers:-?}" "$ramp_seconds" "$rss_idle" "$a_rss" "$slab_before" "$a_slab" \
    "$a_cpu" "$b_cpu" "$a_time" "$b_time" "$hz" "$held" "$a_stats" "$b_stats" "$final" "$HOLD" \
    "$commit" "$load_status" "$cpu_start" "$cpu_ramp_end" "$a_load_cpu" "$b_load_cpu" "$PING_INTERVAL" \
    "$WORKERS" "$SERVER_ENV" <<'PY'
import json, sys, datetime, os, re
(out, n, workers, ramp, rss_idle, rss_held, slab0, slab1, cpu_a, cpu_b, t_a, t_b, hz, held,
 a_stats, b_stats, final, hold, commit, load_status, cpu_start, cpu_ramp_end, load_cpu_a, load_cpu_b,
 ping_interval, workers_asked, server_env) = sys.argv[1:]
n = int(n); held = int(held or 0); load_status = int(load_status)
load = {}
try:
    load = json.load(open(os.path.join(out, "load.json")))
except Exception as error:
    print("scale: no load summary:", error)
def counter(line, name):
    m = re.search(r"[ {,]%s[=:](\d+)" % re.escape(name), line)
    return int(m.group(1)) if m else 0
cpu_pct = (int(cpu_b) - int(cpu_a)) / int(hz) / (float(t_b) - float(t_a)) * 100
rss_per = (int(rss_held) - int(rss_idle)) * 1024 / max(held, 1)
slab_per = (int(slab1) - int(slab0)) * 1024 / max(held, 1)
pings = counter(b_stats, "pings_sent") - counter(a_stats, "pings_sent")
pongs = counter(b_stats, "pongs_received") - counter(a_stats, "pongs_received")
# Abnormal server closes from the start to the end of the hold window (the teardown that
# follows is reported separately, from the client's side).
abnormal = ["peer_eof", "socket_error", "pong_timeout", "protocol_error", "slow_consumer", "out_of_memory", "idle_timeout"]
lost_server = sum(counter(b_stats, r) for r in abnormal)
unexpected = load.get("unexpected_closes", "?")
cpu_us_per_round_trip = (int(cpu_b) - int(cpu_a)) / int(hz) * 1e6 / max(counter(b_stats, "pongs_received") - counter(a_stats, "pongs_received"), 1)
window_s = float(t_b) - float(t_a)
waits_per_s = (counter(b_stats, "waits") - counter(a_stats, "waits")) / window_s
cpu_us_per_handshake = (int(cpu_ramp_end) - int(cpu_start)) / int(hz) * 1e6 / n
load_cpu_pct = (int(load_cpu_b) - int(load_cpu_a)) / int(hz) / window_s * 100
rings = counter(a_stats, "rings")
if workers == "?":
    workers = int(workers_asked) if workers_asked else None
else:
    workers = int(workers)
# The kernel's TCP counters: deltas over the ramp and over the hold window (tcp.log).
def counters(label):
    for line in open(os.path.join(out, "tcp.log")):
        if line.startswith(label + ":"):
            return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    return {}
before, ramp_end, hold_a, hold_b = counters("before"), counters("ramp end"), counters("hold start"), counters("hold end")
tcp_ramp = {k: ramp_end.get(k, 0) - before.get(k, 0) for k in ramp_end}
tcp_hold = {k: hold_b.get(k, 0) - hold_a.get(k, 0) for k in hold_b}
# A row only from a clean run: every reason this one is not.
failures = []
if load_status != 0:
    failures.append(f"myriad load exited with {load_status} (failures: {load.get('failures')})")
if not load:
    failures.append("myriad load wrote no summary")
elif load.get("peak") != n or load.get("connected") != n:
    failures.append(f"myriad load reached peak {load.get('peak')}, connected {load.get('connected')} of {n}")
if held != n:
    failures.append(f"the server held {held} of {n} connections when the hold was sampled")
if load and load.get("unexpected_closes") != 0:
    failures.append(f"{load.get('unexpected_closes')} connections lost (client side)")
if lost_server != 0:
    failures.append(f"{lost_server} abnormal server closes by the end of the hold")
if pongs == 0:
    failures.append("no ping round trip in the measuring window, so no CPU per ping (a hold under 40 s is too short)")
row = {
    "ok": not failures, "failures": failures,
    "date": datetime.date.today().isoformat(),
    "commit": commit,
    "N": n, "reached": held, "workers": workers, "rings": rings,
    "workers_asked": workers_asked or "default", "ping_interval": ping_interval, "server_env": server_env,
    "ramp_s": round(float(ramp), 1) if ramp else None,
    "server_rss_per_conn_B": round(rss_per), "server_rss_mib": round(int(rss_held) / 1024), "kernel_slab_per_conn_B": round(slab_per),
    "server_cpu_pct_holding": round(cpu_pct, 1), "server_cpu_us_per_ping": round(cpu_us_per_round_trip, 1),
    "pings_sent": pings, "pongs_received": pongs,
    "server_cpu_us_per_handshake_ramp": round(cpu_us_per_handshake, 1), "server_waits_per_s": round(waits_per_s),
    "client_threads": load.get("threads"), "client_rings": load.get("rings"), "client_ramp_s": load.get("ramp_s"),
    "client_cpu_pct_holding": round(load_cpu_pct, 1), "client_waits": (load.get("diagnostics") or {}).get("waits"),
    "tcp_ramp": tcp_ramp, "tcp_hold": tcp_hold,
    "unexpected_closes_client": unexpected, "server_abnormal_closes": lost_server,
    "client_rss_mib": load.get("client_rss_mib"), "load_failures": load.get("failures_total"),
    "teardown_clean_closes": load.get("clean_closes"), "teardown_server_abnormal": sum(counter(final, r) for r in abnormal) - lost_server,
}
print("scale: result", json.dumps(row))
json.dump(row, open(os.path.join(out, "result.json"), "w"))
PY
say "load exit status $load_status; logs in $OUT"
ok=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ok"])' "$OUT/result.json")
if [ "$ok" != True ]; then
    refuse "$(python3 -c 'import json, sys; print("; ".join(json.load(open(sys.argv[1]))["failures"]))' "$OUT/result.json")"
fi
if [ "${SCALE_WRITE_ROW:-1}" = "1" ]; then
    command="make scale N=$N"
    [ "$HOLD" = 120 ] || command="bench/scale/scale.sh $N $HOLD"
    knobs=""
    [ -n "$WORKERS" ] && knobs+="SCALE_WORKERS=$WORKERS "
    [ "$PING_INTERVAL" != 25s ] && knobs+="SCALE_PING_INTERVAL=$PING_INTERVAL "
    [ -n "$SERVER_ENV" ] && knobs+="SCALE_SERVER_ENV='$SERVER_ENV' "
    [ -n "$knobs" ] && command="$knobs""bench/scale/scale.sh $N $HOLD"
    chart=""
    if [ -s "$OUT/scale.png" ]; then
        mkdir -p bench/charts
        chart="charts/scale-$N-$(date +%Y-%m-%d)-$commit.png"
        cp "$OUT/scale.png" "bench/$chart"
    fi
    python3 bench/scale/write_row.py "$OUT/result.json" "$command" "$chart"
fi
