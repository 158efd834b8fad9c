#!/usr/bin/env bash
# Runs the Autobahn|TestSuite fuzzing client against `myriad serve` (echo) on 127.0.0.1, for
# each backend, and fails unless every case it runs is strictly OK. The harness is ours:
# Tests/autobahn (the Python 3 port, see its README), installed on first use into
# .venv-autobahn/ at the repository root from PyPI sdists pinned by hash.
#   scripts/conformance.sh [CASES] [BACKENDS]
# CASES: comma-separated Autobahn case patterns; default '*' (or 'all'): every case of every
# group, 1-7, 9, 10, and 12 and 13 (permessage-deflate) in full, as `make test` runs it.
# BACKENDS: default "io_uring epoll".
#
# Time: the Autobahn client is Python and compresses, masks and inflates every message itself,
# so it, not the server, is the work (a debug or a release server take the same 36 s for
# 12.3.15-16). The backends therefore run side by side, one client per core: 12 and 13 in full
# on both backends took 620 s of wall time here (216 cases shared, 126 dedicated, per
# backend), the whole default set about 12 minutes.
#
# The cases are split by group into runs, each against a fresh server:
#   - 1.*-7.*, 10.* (and anything not below): the server's default limits, no overrides.
#   - 9.* (performance): MYRIAD_MAX_MESSAGE_SIZE=32M and MYRIAD_MAX_QUEUED_BYTES=64M. Only
#     this group needs more than the defaults (1 MiB messages, 4 MiB queued): it sends
#     messages of up to 16 MiB, and the echo must accept one and queue it whole.
#   - 12.*, 13.* (permessage-deflate): MYRIAD_COMPRESSION=shared, and again (13.* only, whose
#     cases offer every parameter combination) with MYRIAD_COMPRESSION=dedicated.
# Strict everywhere: a failed, non-strict or unimplemented case fails the run
# (AUTOBAHN_STRICT=1 in Tests/autobahn/run.sh). Reports: /tmp/autobahn-reports/.
set -euo pipefail
cd "$(dirname "$0")/.."

CASES="${1:-*}"
BACKENDS="${2:-io_uring epoll}"
AUTOBAHN=Tests/autobahn
BINARY="${TEST_MYRIAD_BINARY:-.build/debug/myriad}"

[ -x "$BINARY" ] || { echo "conformance: $BINARY not built (run swift build)" >&2; exit 2; }
# "Default limits" means the server's own defaults: no MYRIAD_* knob leaks in from outside.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^MYRIAD_' || true)
setup_started=$(date +%s)
"$AUTOBAHN/setup.sh" >/dev/null
setup_seconds=$(( $(date +%s) - setup_started ))

# Split the selection into the three runs above.
default_cases=() performance_cases=() deflate_cases=()
IFS=',' read -r -a patterns <<<"$CASES"
for pattern in "${patterns[@]}"; do
    pattern="${pattern// /}"
    [ -n "$pattern" ] || continue
    case "$pattern" in
        '*'|all)
            default_cases+=('1.*' '2.*' '3.*' '4.*' '5.*' '6.*' '7.*' '10.*')
            performance_cases+=('9.*')
            deflate_cases+=('12.*' '13.*') ;;
        9|9.*) performance_cases+=("$pattern") ;;
        12|12.*|13|13.*) deflate_cases+=("$pattern") ;;
        *) default_cases+=("$pattern") ;;
    esac
done
join() { local IFS=','; echo "$*"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
now() { date +%s; }
elapsed() { echo $(( $(now) - $1 )); }

# run BACKEND LABEL CASES FAIL_ON [MYRIAD_VAR=value ...]: one server, one Autobahn run.
run() {
    local backend=$1 label=$2 cases=$3 fail_on=$4
    shift 4
    local port log server result=0 started
    port=$(free_port)
    log=$(mktemp /tmp/myriad-conformance-XXXXXX.log)
    env "$@" MYRIAD_BACKEND="$backend" MYRIAD_HOST=127.0.0.1 MYRIAD_PORT="$port" MYRIAD_WORKERS=2 \
        timeout 4000 "$BINARY" serve >"$log" 2>&1 &
    server=$!
    for _ in $(seq 50); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), timeout=1).close()" 2>/dev/null && break
        sleep 0.1
    done
    echo "conformance: $backend, $label, cases $cases (port $port${*:+, $*})"
    started=$(now)
    if ! AUTOBAHN_AGENT="myriad-$backend" AUTOBAHN_FAIL_ON="$fail_on" "$AUTOBAHN/run.sh" 127.0.0.1 "$port" "$cases"; then
        result=1
    fi
    if ! kill -0 "$server" 2>/dev/null; then
        echo "conformance: the $backend server died; its log:" >&2
        tail -40 "$log" >&2
        result=1
    else
        kill -TERM "$server"
        wait "$server" || true
    fi
    rm -f "$log"
    echo "conformance: $backend, $label: $( ((result == 0)) && echo passed || echo FAILED) in $(elapsed "$started") s"
    return $result
}

strict=failed,non-strict,unimplemented

# run_backend BACKEND: every selected run against that backend, one after the other.
run_backend() {
    local backend=$1 status=0 started
    started=$(now)
    if ((${#default_cases[@]})); then
        run "$backend" "default limits" "$(join "${default_cases[@]}")" "$strict" || status=1
    fi
    if ((${#performance_cases[@]})); then
        run "$backend" "32 MiB messages, 64 MiB queue" "$(join "${performance_cases[@]}")" "$strict" \
            MYRIAD_MAX_MESSAGE_SIZE=32M MYRIAD_MAX_QUEUED_BYTES=64M || status=1
    fi
    if ((${#deflate_cases[@]})); then
        run "$backend" "permessage-deflate, shared" "$(join "${deflate_cases[@]}")" "$strict" \
            MYRIAD_COMPRESSION=shared || status=1
        local dedicated=() pattern
        for pattern in "${deflate_cases[@]}"; do [[ "$pattern" == 13* ]] && dedicated+=("$pattern"); done
        if ((${#dedicated[@]})); then
            run "$backend" "permessage-deflate, dedicated" "$(join "${dedicated[@]}")" "$strict" \
                MYRIAD_COMPRESSION=dedicated || status=1
        fi
    fi
    echo "conformance: $backend: $( ((status == 0)) && echo passed || echo FAILED) in $(elapsed "$started") s"
    return $status
}

# The backends run side by side (CONFORMANCE_PARALLEL=0: one after the other). Each run is one
# server and one Autobahn client, a single-threaded Python process that compresses and masks
# every message itself and is most of the work: on two cores two of them take about half the
# wall time of one after the other. Each backend's output is kept apart and printed once it ends.
status=0
total_started=$(now)
if [[ "${CONFORMANCE_PARALLEL:-1}" == 1 ]]; then
    pids=() outputs=()
    for backend in $BACKENDS; do
        output=$(mktemp "/tmp/myriad-conformance-$backend-XXXXXX.out")
        run_backend "$backend" >"$output" 2>&1 &
        pids+=("$!")
        outputs+=("$output")
    done
    for index in "${!pids[@]}"; do
        wait "${pids[$index]}" || status=1
        cat "${outputs[$index]}"
        rm -f "${outputs[$index]}"
    done
else
    for backend in $BACKENDS; do run_backend "$backend" || status=1; done
fi
echo "conformance: $( ((status == 0)) && echo passed || echo FAILED); total $(elapsed "$total_started") s (harness set-up before that: $setup_seconds s)"
exit $status
