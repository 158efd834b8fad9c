#!/usr/bin/env bash
# Builds every example under examples/ against this checkout and runs its check with real
# clients (each example has check.py, run with the project's venv from scripts/ensure-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT="${SWIFT:-swift}"
status=0
for example in examples/*/; do
    name=$(basename "$example")
    echo "examples: building $name"
    "$SWIFT" build --package-path "$example"
    binary="$("$SWIFT" build --package-path "$example" --show-bin-path)"
    product=$(ls "$example/Sources")
    if ! timeout 120 .venv/bin/python "$example/check.py" "$binary/$product"; then
        echo "examples: $name FAILED" >&2
        status=1
    fi
done
exit $status
