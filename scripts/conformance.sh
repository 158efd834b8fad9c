#!/usr/bin/env bash
# Runs the Autobahn|TestSuite fuzzing client (../shared/tools/autobahn, Python 3 port) against
# `myriad serve` (echo) on 127.0.0.1, for each backend, and fails if any case fails.
#   scripts/conformance.sh [CASES] [BACKENDS]
# CASES defaults to groups 1-7, 9 and 10; BACKENDS to "io_uring epoll".
set -euo pipefail
cd "$(dirname "$0")/.."

CASES="${1:-1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*}"
BACKENDS="${2:-io_uring epoll}"
AUTOBAHN="${AUTOBAHN_TOOLS:-$(cd .. && pwd)/shared/tools/autobahn}"
BINARY="${TEST_MYRIAD_BINARY:-.build/debug/myriad}"

[ -x "$AUTOBAHN/run.sh" ] || { echo "conformance: Autobahn tools not found at $AUTOBAHN" >&2; exit 2; }
[ -x "$BINARY" ] || { echo "conformance: $BINARY not built (run swift build)" >&2; exit 2; }
"$AUTOBAHN/setup.sh" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

status=0
for backend in $BACKENDS; do
    port=$(free_port)
    log=$(mktemp /tmp/myriad-conformance-XXXXXX.log)
    # Autobahn 9.* sends 16 MiB messages; the echo must be allowed to queue one.
    MYRIAD_BACKEND=$backend MYRIAD_HOST=127.0.0.1 MYRIAD_PORT=$port MYRIAD_WORKERS=2 \
        MYRIAD_MAX_MESSAGE_SIZE=32M MYRIAD_MAX_QUEUED_BYTES=64M \
        timeout 1200 "$BINARY" serve >"$log" 2>&1 &
    server=$!
    for _ in $(seq 50); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), timeout=1).close()" 2>/dev/null && break
        sleep 0.1
    done
    echo "conformance: $backend on port $port, cases $CASES"
    if ! AUTOBAHN_AGENT="myriad-$backend" "$AUTOBAHN/run.sh" 127.0.0.1 "$port" "$CASES"; then
        status=1
    fi
    if ! kill -0 "$server" 2>/dev/null; then
        echo "conformance: the $backend server died; its log:" >&2
        tail -40 "$log" >&2
        status=1
    else
        kill -TERM "$server"
        wait "$server" || true
    fi
    rm -f "$log"
done
exit $status
