#!/usr/bin/env bash
# Where a delivery's CPU goes: `perf record -g` on `myriad serve --app broadcast` (one worker,
# core 0) for 6 s while `myriad load fanout` (core 1) holds 19,000 subscribers and publishes a
# 32 B message every 0.2 s. Prints the share per binary and the top kernel symbols.
#   bench/topics/profile.sh        (root, perf from linux-perf, a release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
while read -r name; do unset "$name"; done < <(compgen -e | grep '^MYRIAD_' || true)
BIN=.build/release/myriad
OUT=$(mktemp -d /tmp/myriad-profile-XXXXXX)
MYRIAD_APP=broadcast MYRIAD_HOST=127.0.0.1 MYRIAD_PORT=18999 MYRIAD_WORKERS=1 MYRIAD_MAX_CONNECTIONS=20000 \
    MYRIAD_BACKLOG=65535 taskset -c 0 "$BIN" serve >"$OUT/serve.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
sleep 1
taskset -c 1 "$BIN" load fanout --port 18999 --path /b --connections 19000 --size 32 --publish-interval 200ms \
    --duration 20s --threads 1 --json "$OUT/fanout.json" >/dev/null 2>&1 &
load=$!
sleep 9
perf record -g -p "$server" -o "$OUT/perf.data" -- sleep 6 >/dev/null 2>&1
load_status=0
wait "$load" || load_status=$?
[ "$load_status" -eq 0 ] || { echo "profile: the fanout run failed (exit $load_status): no profile" >&2; exit 1; }
perf report -i "$OUT/perf.data" --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -5
perf report -i "$OUT/perf.data" --no-children --sort symbol -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
echo "profile: data in $OUT/perf.data"
