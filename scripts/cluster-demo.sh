#!/usr/bin/env bash
# `make cluster-demo`: a nats-server and two `myriad serve --app broadcast` nodes sharing their
# topics through it, on this machine, until Ctrl-C (which stops all three, by PID).
#
#   NATS_PORT (4222), NATS_MONITOR_PORT (8222), NODE_A_PORT (8081), NODE_B_PORT (8082),
#   DEMO_HOST (127.0.0.1: loopback only unless you say otherwise), DEMO_BINARY
#   (.build/release/myriad); other MYRIAD_* variables reach both nodes.
set -euo pipefail
cd "$(dirname "$0")/.."

nats_port=${NATS_PORT:-4222}
monitor_port=${NATS_MONITOR_PORT:-8222}
port_a=${NODE_A_PORT:-8081}
port_b=${NODE_B_PORT:-8082}
host=${DEMO_HOST:-127.0.0.1}
binary=${DEMO_BINARY:-.build/release/myriad}
nats=$(command -v nats-server || echo /usr/sbin/nats-server)

[ -x "$binary" ] || { echo "error: $binary not found (make build-release)" >&2; exit 1; }
[ -x "$nats" ] || { echo "error: nats-server not found (scripts/ensure-deps.sh installs it)" >&2; exit 1; }
for port in "$nats_port" "$monitor_port" "$port_a" "$port_b"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "error: port $port is in use (set NATS_PORT, NATS_MONITOR_PORT, NODE_A_PORT, NODE_B_PORT)" >&2
        exit 1
    fi
done

pids=()
stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping: nodes, then nats-server"
    # Nodes first (they flush their last publishes), each by its PID.
    for pid in "${pids[@]:1}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]:1}"; do wait "$pid" 2>/dev/null || true; done
    kill -TERM "${pids[0]}" 2>/dev/null || true
    wait "${pids[0]}" 2>/dev/null || true
    echo "stopped"
}
trap stop INT TERM EXIT

# Output through process substitution, so that $! is the server's PID, not sed's.
(trap '' INT; exec "$nats" -a 127.0.0.1 -p "$nats_port" -m "$monitor_port") > >(trap '' INT; exec sed -u 's/^/[nats]   /') 2>&1 &
pids+=($!)
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.05; done

start_node() {
    local name=$1 port=$2
    MYRIAD_HOST=$host MYRIAD_PORT=$port MYRIAD_APP=broadcast MYRIAD_STATS_INTERVAL=${MYRIAD_STATS_INTERVAL:-10s} \
        MYRIAD_CLUSTER_URL="nats://127.0.0.1:$nats_port" "$binary" serve > >(trap '' INT; exec sed -u "s/^/[$name] /") 2>&1 &
    pids+=($!)
}
start_node node-a "$port_a"
start_node node-b "$port_b"
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$nats_port" "$port_a" "$port_b"; do
    for _ in $(seq 200); do listening "$port" && break; sleep 0.05; done
    listening "$port" || { echo "error: nothing listens on port $port after 10 s (see the lines above)" >&2; exit 1; }
done

cat <<EOF

Myriad cluster demo: nats-server on 127.0.0.1:$nats_port, node A on $host:$port_a, node B on $host:$port_b.
Every connection subscribes to its request path; what it sends reaches every connection on
that path, on both nodes. Try, in two terminals:
    .venv/bin/python -m websockets ws://127.0.0.1:$port_a/lobby
    .venv/bin/python -m websockets ws://127.0.0.1:$port_b/lobby
(or: NODE_PATH=/usr/share/nodejs node -e "const ws=new (require('ws'))('ws://127.0.0.1:$port_a/lobby');ws.on('message',m=>console.log(String(m)));ws.on('open',()=>ws.send('hi'))")
The broker's view, one subscription per topic per node: curl -s 'http://127.0.0.1:$monitor_port/connz?subs=1'
Ctrl-C stops all three.
EOF
wait
