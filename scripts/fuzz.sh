#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/: -sanitize=fuzzer,address) and runs each.
#   scripts/fuzz.sh [SECONDS]          fuzz each target for SECONDS (default 30), starting
#                                      from the committed corpus; new finds stay in /tmp
#   scripts/fuzz.sh --replay           replay the committed corpus only (every input once)
#   scripts/fuzz.sh --merge SECONDS    fuzz, then minimise the finds into fuzz/corpus/
# Exit status non-zero when a target crashes or breaks an invariant (the input is kept in
# fuzz/artifacts/).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

mode=fuzz
if [ "${1:-}" = "--replay" ]; then mode=replay; shift; fi
if [ "${1:-}" = "--merge" ]; then mode=merge; shift; fi
seconds="${1:-30}"

# lld, not the default gold: gold drops the coverage counters' registration when AddressSanitizer
# is on, and libFuzzer then fuzzes blind ("no interesting inputs... instrumented?").
# -Xswiftc -sanitize=fuzzer,address: SwiftPM hands the Swift driver --sanitize as two flags,
# -sanitize=fuzzer -sanitize=address, and the 6.3 driver keeps only the last, so the Swift code
# (the codec) lost its coverage instrumentation and only swift-crypto's C code was covered.
swift build -c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address \
    -Xswiftc -use-ld=lld --scratch-path .build-fuzz >/dev/null
bin=.build-fuzz/release

# The targets, each with its committed corpus in corpus/<target>.
targets="handshake frames inflate worker client"
executable() {
    case $1 in
        handshake) echo $bin/FuzzHandshake ;;
        frames) echo $bin/FuzzFrames ;;
        inflate) echo $bin/FuzzInflate ;;
        worker) echo $bin/FuzzWorker ;;
        client) echo $bin/FuzzClient ;;
    esac
}

# Refuse to fuzz blind: replaying the committed corpus must reach the codec's code. Blind
# builds reach 29 edges (SHA-1 in swift-crypto's C code) or none; instrumented ones 350-450
# (zlib, a system library, is never instrumented: FuzzInflate's edges are the Swift side's).
minimum_edges=200
for target in $targets; do
    exe=$(executable $target)
    corpus=corpus/$target
    edges=$("$exe" -runs=0 "$corpus" 2>&1 | sed -n 's/.*INITED cov: \([0-9]*\).*/\1/p')
    if [ "${edges:-0}" -lt $minimum_edges ]; then
        echo "fuzz: $exe covers ${edges:-0} edges replaying $corpus (at least $minimum_edges expected): not instrumented" >&2
        exit 1
    fi
done
mkdir -p artifacts

for target in $targets; do
    exe=$(executable $target)
    corpus=corpus/$target
    case $mode in
        replay)
            echo "fuzz: replaying $(ls "$corpus" | wc -l) inputs for $target"
            "$exe" -runs=0 -artifact_prefix=artifacts/$target- "$corpus" 2>&1 | grep -E "INITED|ERROR|Fatal" || true
            "$exe" -runs=0 -artifact_prefix=artifacts/$target- "$corpus" >/dev/null 2>&1
            ;;
        fuzz|merge)
            work=$(mktemp -d /tmp/myriad-fuzz-$target-XXXXXX)
            echo "fuzz: $target for ${seconds}s (corpus $corpus, new inputs in $work)"
            "$exe" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
                -artifact_prefix=artifacts/$target- "$work" "$corpus" 2>&1 | tail -n 12
            if [ $mode = merge ]; then
                "$exe" -merge=1 "$corpus" "$work" 2>&1 | tail -n 1
            fi
            rm -rf "$work"
            ;;
    esac
done
