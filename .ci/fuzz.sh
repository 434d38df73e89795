#!/usr/bin/env bash
# CI: a short run of every fuzz target (fuzz/, see FUZZING.md). Installs
# cargo-fuzz (pinned) unless present, builds all targets once, runs each
# for FUZZ_SECONDS (default 15) from its committed seeds, and fails if any
# target crashes or breaks one of its properties. New inputs the runs find
# go to a temporary directory: the committed corpus is only read.
#
# cargo-fuzz needs nightly compiler flags: the nightly toolchain when
# rustup has one, else stable with RUSTC_BOOTSTRAP=1. No sanitizer: the
# code under test is safe Rust, so AddressSanitizer would only halve the
# executions; the properties and Rust's own checks (debug assertions,
# overflow checks, bounds) are what find bugs here.
set -euo pipefail

cd "$(dirname "$0")/.."
started=$(date +%s)
seconds=${FUZZ_SECONDS:-15}
CARGO_FUZZ_VERSION=0.13.1

step() { echo "== fuzz: $*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    step "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
cargo fuzz --version

toolchains=$(rustup toolchain list 2>/dev/null || true)
if [[ $toolchains == nightly* || $toolchains == *$'\n'nightly* ]]; then
    toolchain=+nightly
else
    toolchain=+stable
    export RUSTC_BOOTSTRAP=1
    step "no nightly toolchain: stable with RUSTC_BOOTSTRAP=1"
fi
cargo "$toolchain" --version

cd fuzz
step "building every target"
cargo "$toolchain" fuzz build --sanitizer none
built=$(date +%s)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
targets=$(cargo "$toolchain" fuzz list)
failed=()
summary=()
for target in $targets; do
    step "running $target for ${seconds}s"
    mkdir -p "$work/$target"
    log="$work/$target.log"
    if cargo "$toolchain" fuzz run --sanitizer none "$target" "$work/$target" "corpus/$target" \
        -- -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        outcome=ok
    else
        outcome=FAILED
        failed+=("$target")
        # The panic (or libFuzzer's report), then the input that caused it.
        sed -n '/panicked at/,/^stack backtrace/p' "$log" | sed -n 1,40p
        tail -n 20 "$log"
        for crash in artifacts/"$target"/*; do
            [ -f "$crash" ] || continue
            echo "-- $crash (first 512 bytes):"
            head -c 512 "$crash" | od -A d -c
        done
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    coverage=$(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*\(cov: [0-9]* ft: [0-9]*\).*/\1/p' "$log")
    summary+=("$(printf '%-14s %-6s %10s executions  %s' "$target" "$outcome" "${execs:-?}" "$coverage")")
done

step "summary (${seconds}s per target; build $((built - started))s, total $(($(date +%s) - started))s)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets failed: ${failed[*]} (inputs in fuzz/artifacts/; see FUZZING.md)" >&2
    exit 1
fi
