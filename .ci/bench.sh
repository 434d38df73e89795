#!/usr/bin/env bash
# CI: the benchmark command must keep working. Runs hapgent-bench in its
# short correctness mode (--check: a few thousand checks at concurrency 1,
# 8 and 64, a few hundred idle connections, three starts, each run followed
# by the same load on the built-in floor reference) against the x86_64 musl
# release binary, with and without an agent-send payload, and spread over
# distinct probers (--probers), with three services selected by the payload
# while /metrics is scraped (--services, --metrics); then, where haproxy is
# installed, a short --wait-seen and three runs of hapgent-lb status --json
# against 2,000 servers (--lb-status). It asserts correctness only -- every reply a well-formed
# agent-check line, no connect or read error, no timeout, every check done,
# every figure measured -- never speed: this machine's numbers are for
# BENCHMARKS.md, not for a pass/fail threshold.
#
# Reuses dist/hapgent-<version>-x86_64-unknown-linux-musl when an earlier CI
# step (release.sh) built it; builds the binary otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source .ci/lib.sh
started=$(date +%s)
TARGET=x86_64-unknown-linux-musl
out=$(mktemp -d)
fake_pid=
cleanup() {
    if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; fi
    rm -rf "$out"
}
trap cleanup EXIT


# strip (binutils) measures the stripped size; python3 checks the JSON.
if ! command -v strip >/dev/null || ! command -v python3 >/dev/null; then
    step "installing binutils and python3"
    apt-get update
    apt-get install -y -o DPkg::Lock::Timeout=600 binutils python3
fi

version=$(version)
bin=dist/hapgent-$version-$TARGET
if [ -x "$bin" ]; then
    step "using $bin from an earlier step"
else
    step "building hapgent (release, $TARGET)"
    # As scripts/bench does: a release build's packages, less the benchmark.
    cargo build --release --locked --target "$TARGET" --workspace --exclude hapgent-bench
    bin=${CARGO_TARGET_DIR:-target}/$TARGET/release/hapgent
fi

# The unit tests also run in .ci/run's `cargo test` (a default member);
# here in the debug profile too, so that they share its build.
step "building hapgent-bench and running its unit tests (reply grammar, percentiles, JSON)"
cargo build --release --locked -p hapgent-bench
cargo test --locked -p hapgent-bench
bench=${CARGO_TARGET_DIR:-target}/release/hapgent-bench

# Checks a --json report: every run completed all its checks with no
# error, every idle connection was held and the footprint was measured.
# With a third argument N, every run must have spread its probes over N
# probers and hapgent's table must hold them all (plus 127.0.0.1).
check_report() {
    python3 - "$1" "$2" "${3:-0}" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
want_runs = int(sys.argv[2])
want_probers = int(sys.argv[3])
fail = []
errors = {k: v for k, v in report["errors"].items() if v}
if errors:
    fail.append(f"errors: {errors}, e.g. {report['error_examples']}")
runs = report["runs"]
if len(runs) != want_runs:
    fail.append(f"{len(runs)} runs, expected {want_runs}")
for r in runs:
    c = r["concurrency"]
    if r["checks"] != report["checks_per_run"] or r["errors"] != 0:
        fail.append(f"concurrency {c}: {r['checks']} checks, {r['errors']} errors")
    if r["idle_connections_held"] < 1:
        fail.append(f"concurrency {c}: no idle connection held")
    for k in ("checks_per_s", "latency_p99_us", "agent_cpu_us_per_check",
              "rss_idle_kib", "hwm_after_load_kib", "hwm_idle_conns_kib",
              "fresh_probe_max_ms", "floor_checks_per_s",
              "floor_cpu_us_per_check", "floor_ratio"):
        if r.get(k) is None:
            fail.append(f"concurrency {c}: {k} not measured")
    if want_probers:
        tracked = r.get("probers_tracked")
        if r.get("probers") != want_probers or tracked is None or tracked < want_probers:
            fail.append(f"concurrency {c}: {r.get('probers')} probers, "
                        f"{tracked} in hapgent's table, expected {want_probers}")
if report["binary"]["stripped_bytes"] is None:
    fail.append("stripped binary size not measured")
if report["start_to_first_reply_ms"]["median"] is None:
    fail.append("start to first reply not measured")
if fail:
    print("FAIL:\n  " + "\n  ".join(fail))
    sys.exit(1)
print(f"ok: {report['ok']} well-formed replies (agent and floor), {len(runs)} runs, "
      f"stripped binary {report['binary']['stripped_bytes']} bytes"
      + (f", {want_probers} probers tracked" if want_probers else ""))
PY
}

step "short run: concurrency 1, 8, 64; 3000 checks each; 300 idle connections"
"$bench" --binary "$bin" --check --concurrency 1,8,64 --json > "$out/plain.json"
check_report "$out/plain.json" 3

step "short run with an agent-send payload ('web\\n')"
"$bench" --binary "$bin" --check --concurrency 8 --send 'web\n' --json > "$out/send.json"
check_report "$out/send.json" 1

step "short run over 50 distinct probers (127.0.0.2-127.0.0.51): hapgent's table holds them"
"$bench" --binary "$bin" --check --concurrency 8 --probers 50 --json > "$out/probers.json"
check_report "$out/probers.json" 1 50

# Services and metrics: the payload 's1\n' selects [services.s1] (its own
# state file, UP); a thread scrapes GET /metrics during the load (every
# scrape must get 200, or the run counts an error), and a scrape after it
# must count every probe of the load under service="s1".
step "short run with 3 services, payload 's1\\n', /metrics scraped during the load"
"$bench" --binary "$bin" --check --concurrency 8 --services 3 --send 's1\n' \
    --expect 'up ready 100%' --metrics --scrape-interval-ms 100 --json > "$out/services.json"
check_report "$out/services.json" 1
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
run = r["runs"][0]
assert run["services"] == 3, run
assert run["scrapes"] >= 1 and run["scrape_failures"] == 0, run
assert run["scraped_probes_service"] >= r["checks_per_run"], run
assert run["scraped_probes_total"] >= run["scraped_probes_service"], run
n, s1 = run["scrapes"], run["scraped_probes_service"]
print(f"ok: {n} scrapes, all 200; hapgent counted {s1} probes for s1")' "$out/services.json"

# A payload naming no configured service gets the empty "no news" line,
# which is no agent-check reply: the benchmark must report it and fail.
step "a payload naming no service gets no status (the benchmark fails)"
set +e
"$bench" --binary "$bin" --check --concurrency 1 --checks 50 --idle-connections 1 \
    --starts 1 --no-floor --services 3 --send 'nope\n' --json > "$out/unknown.json"
status=$?
set -e
if [ "$status" != 1 ]; then
    echo "FAIL: hapgent-bench exited $status with an unknown service, expected 1"
    exit 1
fi
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); m = r["errors"]["malformed"]; assert m > 0 and r["ok"] == 0, r["errors"]; print(f"ok: {m} probes of an unknown service got no status")' "$out/unknown.json"

step "text report and Markdown table are produced"
"$bench" --binary "$bin" --check --concurrency 8 --markdown > "$out/text.txt"
grep -q '^| checks/s |' "$out/text.txt"
grep -q 'malformed errors: 0' "$out/text.txt"
grep -q '^| agent CPU per check / floor CPU per check' "$out/text.txt"

# --wait-seen against a real HAProxy (installed by .ci/run): two timed
# commands, checked for completion only.
if command -v haproxy >/dev/null; then
    step "--wait-seen: hapgent ctl drain/ready --wait-seen against HAProxy"
    "$bench" --binary "$bin" --wait-seen 2 --json > "$out/seen.json"
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["commands"] == 2 and len(r["runs"]) == 2, r
assert all(x["ctl_ms"] > 0 and x["haproxy_shows_ms"] > 0 for x in r["runs"]), r
print("ok:", r["commands"], "commands confirmed by HAProxy")' "$out/seen.json"

    # hapgent-lb from release.sh's dist/ when there, else the workspace's
    # release build (above, or built here if only hapgent came from dist/).
    lb_bin=dist/hapgent-lb-$version-$TARGET
    if [ ! -x "$lb_bin" ]; then
        lb_bin=${CARGO_TARGET_DIR:-target}/$TARGET/release/hapgent-lb
        [ -x "$lb_bin" ] || cargo build --release --locked --target "$TARGET" -p hapgent-lb
    fi
    step "--lb-status: hapgent-lb status --json against 2,000 servers in 50 backends"
    "$bench" --lb-status 3 --lb-binary "$lb_bin" --json > "$out/lb-status.json"
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["servers"] == 2000 and r["backends"] == 50 and len(r["runs"]) == 3, r
assert all(x["wall_ms"] > 0 and x["peak_rss_kib"] > 0 for x in r["runs"]), r
assert r["show_stat_bytes"] > 0, r
print("ok: status --json listed all", r["servers"], "servers;", len(r["runs"]), "runs measured")' "$out/lb-status.json"
else
    step "--wait-seen, --lb-status: SKIPPED, haproxy is not installed"
fi

# The check must be able to fail: an agent that answers `up failed`
# (`failed` is no agent-check word) must make hapgent-bench exit 1.
step "a malformed reply fails the benchmark"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
set +e
"$bench" --check --concurrency 1 --checks 200 --idle-connections 10 --starts 1 --json \
    --port "$port" -- python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b"up failed\n")
    except OSError:
        pass
    c.close()
' "$port" > "$out/bad.json"
status=$?
set -e
if [ "$status" != 1 ]; then
    echo "FAIL: hapgent-bench exited $status against a malformed agent, expected 1"
    exit 1
fi
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); m = r["errors"]["malformed"]; assert m > 0, r["errors"]; print(f"ok: {m} malformed replies reported")' "$out/bad.json"

step "passed in $(( $(date +%s) - started )) s"
