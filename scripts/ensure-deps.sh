#!/usr/bin/env bash
# Installs what the build and the tests need when it is missing; says what to install when it
# cannot (not root). Idempotent and quiet when everything is there.
set -euo pipefail

missing=()
pkg-config --exists liburing 2>/dev/null || missing+=(liburing-dev pkg-config)

if [ ${#missing[@]} -eq 0 ]; then exit 0; fi

if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]}" >&2
    echo "       install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
