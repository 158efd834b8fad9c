#!/usr/bin/env bash
# Installs what the build and the tests need when it is missing, and says what to install
# when it cannot (not root). Idempotent and quiet when everything is there.
#   Debian packages: liburing-dev (the engine's C dependency), zlib1g-dev (permessage-deflate's
#   zlib, WebSocketCompression), pkg-config, node-ws (Node's `ws` client for the
#   interoperability tests), nats-server (Debian's 2.9: the NATS client and cluster tests run a
#   real one), prometheus (Debian's 2.42: the metrics tests and `make prometheus-demo` run a real
#   one scraping `myriad serve`; about 20 s to install here), chromium (the browser the
#   permessage-deflate test drives headless: Tests/clients/chromium_check.py).
#   Python: a venv in .venv with `websockets` (the other third-party client) and
#   `prometheus_client` (its parser checks /metrics) from PyPI.
#   `patch`, which Tests/autobahn/setup.sh needs to apply the Autobahn Python 3 port (the
#   conformance run installs that harness itself, into .venv-autobahn).
#   With --bench, also what bench/ needs: libdeflate-dev (compared with zlib there).
set -euo pipefail
cd "$(dirname "$0")/.."
bench=0
if [ "${1:-}" = "--bench" ]; then bench=1; fi

missing=()
pkg-config --exists liburing 2>/dev/null || missing+=(liburing-dev pkg-config)
pkg-config --exists zlib 2>/dev/null || missing+=(zlib1g-dev pkg-config)
if [ $bench = 1 ]; then pkg-config --exists libdeflate 2>/dev/null || missing+=(libdeflate-dev); fi
[ -f /usr/share/nodejs/ws/package.json ] || missing+=(node-ws)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
# Debian installs it in /usr/sbin, which an ordinary user's PATH may lack.
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v patch >/dev/null 2>&1 || missing+=(patch)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
# A real browser for the permessage-deflate interoperability test (headless, Debian's build).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: missing Debian packages: ${missing[*]}" >&2
        echo "       install them with: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! .venv/bin/python -c 'import websockets, prometheus_client' 2>/dev/null; then
    echo "setting up .venv with websockets and prometheus_client (PyPI)"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check 'websockets>=12' 'prometheus_client>=0.17'
fi
