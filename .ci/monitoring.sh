#!/usr/bin/env bash
# CI: the monitoring kit holds against a real Prometheus.
#
# - `promtool check rules` and `promtool test rules` (every alert fires and
#   resolves) on contrib/prometheus;
# - every alert has a summary and a runbook_url whose section exists in
#   docs/alerts.md, and every section there is an alert;
# - contrib/grafana/hapgent.json has the structure Grafana expects
#   (a datasource variable every panel and target uses, unique ids, a grid
#   position inside 24 columns without overlaps, targets with an expression);
# - live: Debian's Prometheus, started here on loopback with a config and a
#   data directory of its own, scrapes a real hapgent (probed by a real
#   HAProxy, by probers from other source addresses, by a name it does not
#   serve and from outside its allow-list) and a real hapgent-lb (one
#   configuration change pushed through it, scraped over TCP without a
#   token); the rules load and evaluate without error, and every panel's
#   query, evaluated through Prometheus' HTTP API, returns data.
#
# Everything started here is killed by PID at exit. Waits poll for the event
# with a deadline; no fixed sleep is an assertion.
set -euo pipefail

cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
started=$SECONDS
work=$(mktemp -d)
pids=()
policy=/usr/sbin/policy-rc.d
our_policy=

# ask SOCKET COMMAND: an HAProxy CLI socket's answer.
ask() {
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
s.shutdown(socket.SHUT_WR)
out = b""
while chunk := s.recv(65536):
    out += chunk
print(out.decode())' "$1" "$2"
}
cleanup() {
    local pid workers=()
    # HAProxy's master stops its workers; one left over is killed by PID.
    if [ -S "$work/master.sock" ]; then
        mapfile -t workers < <(ask "$work/master.sock" "show proc" 2>/dev/null | awk '$2 == "worker" {print $1}')
    fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for pid in "${workers[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if [ -n "$our_policy" ]; then rm -f "$policy"; fi
    rm -rf "$work"
}
trap cleanup EXIT

step() { echo "== monitoring: $*"; }
die() {
    printf '    FAIL: %s\n' "$*" >&2
    for f in "$work"/*.log; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}
# expect DESCRIPTION COMMAND...: COMMAND must succeed.
expect() {
    local what=$1
    shift
    if "$@"; then printf '    ok: %s\n' "$what" >&2; else die "$what"; fi
}
# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s
# until it succeeds; fails after SECONDS.
wait_until() {
    local limit=$1 what=$2 start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ $((SECONDS - start)) -lt "$limit" ] || die "$what (not within ${limit}s)"
        sleep 0.2
    done
    printf '    ok: %s (%ss)\n' "$what" "$((SECONDS - start))" >&2
}

step "installing Debian's prometheus (promtool) and haproxy, without starting Debian's Prometheus service"
had_prometheus=$(command -v prometheus || true)
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null || ! command -v haproxy >/dev/null; then
    # The package would start its own Prometheus (0.0.0.0:9090); ours
    # runs on free loopback ports with its own data, but nothing should
    # be left running on a CI host.
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        our_policy=1
    fi
    install_packages() {
        apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 prometheus haproxy >/dev/null
    }
    install_packages || { apt-get update -qq && install_packages; }
    if [ -n "$our_policy" ]; then rm -f "$policy"; our_policy=; fi
    # Installed here and started anyway (a policy that allowed it): ours
    # to stop. A Prometheus that was installed before is left alone.
    if [ -z "$had_prometheus" ] && command -v systemctl >/dev/null &&
        systemctl is-active --quiet prometheus 2>/dev/null; then
        systemctl disable --now prometheus
    fi
fi
promtool --version | sed -n 1p
prometheus --version 2>&1 | sed -n 1p

step "promtool check rules and test rules"
expect "the rules are valid" promtool check rules contrib/prometheus/hapgent.rules.yml
(cd contrib/prometheus && promtool test rules hapgent.rules.test.yml) ||
    die "promtool test rules: an alert did not fire or resolve as its test says"
echo "    ok: every alert fires and resolves (promtool test rules)" >&2

step "alerts, runbooks and the dashboard's structure"
python3 - contrib/prometheus/hapgent.rules.yml docs/alerts.md contrib/grafana/hapgent.json <<'PY' || die "structure"
import json, re, sys
rules, docs, dashboard = sys.argv[1:]
fail = []

# The rules file is YAML, but written plainly enough to read its alerts,
# annotations and runbook anchors line by line (no YAML parser needed).
alerts, current = {}, None
for line in open(rules):
    m = re.match(r"\s*- alert: (\S+)", line)
    if m:
        current = alerts.setdefault(m.group(1), {})
    m = re.match(r"\s+(summary|runbook_url): \"?(.*?)\"?$", line)
    if m and current is not None:
        current[m.group(1)] = m.group(2)
alerts_part = open(docs).read().split("\n## Alerts\n", 1)[-1]
sections = re.findall(r"^### (\S+)$", alerts_part, re.M)
for name, a in alerts.items():
    if "summary" not in a:
        fail.append(f"{name}: no summary")
    url = a.get("runbook_url", "")
    if not url.endswith("/docs/alerts.md#" + name.lower()):
        fail.append(f"{name}: runbook_url {url!r} is not docs/alerts.md#{name.lower()}")
    if name not in sections:
        fail.append(f"{name}: no section '### {name}' in {docs}")
for s in sections:
    if s not in alerts:
        fail.append(f"{docs}: section {s} is no alert")
print(f"    ok: {len(alerts)} alerts, each with a summary and a runbook section", file=sys.stderr)

d = json.load(open(dashboard))
for key in ("title", "uid", "schemaVersion", "panels", "templating", "time"):
    if key not in d:
        fail.append(f"dashboard: no {key}")
variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
ds = variables.get("datasource", {})
if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    fail.append("dashboard: no datasource variable of type datasource for prometheus")
want_ds = {"type": "prometheus", "uid": "${datasource}"}
for name, v in variables.items():
    if v.get("type") == "query" and v.get("datasource") != want_ds:
        fail.append(f"variable {name}: datasource is not ${{datasource}}")
ids, boxes = set(), []
for p in d.get("panels", []):
    pid = p.get("id")
    if not isinstance(pid, int) or pid in ids:
        fail.append(f"panel {p.get('title')!r}: id {pid!r} missing or not unique")
    ids.add(pid)
    g = p.get("gridPos", {})
    if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] < 0 or g["x"] + g["w"] > 24:
        fail.append(f"panel {pid}: gridPos {g} not inside 24 columns")
        continue
    for other, o in boxes:
        if g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"] and g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"]:
            fail.append(f"panel {pid} overlaps panel {other}")
    boxes.append((pid, g))
    if p.get("type") == "row":
        continue
    for key in ("type", "title", "targets"):
        if not p.get(key):
            fail.append(f"panel {pid}: no {key}")
    if p.get("datasource") != want_ds:
        fail.append(f"panel {pid}: datasource is not ${{datasource}}")
    refs = [t.get("refId") for t in p.get("targets", [])]
    if len(set(refs)) != len(refs) or None in refs:
        fail.append(f"panel {pid}: refIds {refs} not unique")
    for t in p.get("targets", []):
        if not t.get("expr") or t.get("datasource") != want_ds:
            fail.append(f"panel {pid} target {t.get('refId')}: no expr or another datasource")
print(f"    ok: {len(ids)} panels with unique ids, inside the grid, on the datasource variable", file=sys.stderr)
if fail:
    print("\n".join("    " + f for f in fail), file=sys.stderr)
    sys.exit(1)
PY

step "building hapgent and hapgent-lb"
cargo build --locked -q -p hapgent -p hapgent-lb --bins
bin=${CARGO_TARGET_DIR:-target}/debug

# Free loopback ports: agent, its metrics, HAProxy's frontend, hapgent-lb's
# TCP API, Prometheus.
read -r agent_port metrics_port fe_port lb_port prom_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

step "starting hapgent (services default and api; api's state file says FAIL)"
echo '{"status": "UP"}' >"$work/default.json"
echo '{"status": "FAIL"}' >"$work/api.json"
cat >"$work/hapgent.toml" <<EOF
ip = "127.0.0.1"
port = $agent_port
state_file = "$work/default.json"
control_socket = "$work/control.sock"
metrics_listen = "127.0.0.1:$metrics_port"
allow = ["127.0.0.0/29"]

[services.api]
state_file = "$work/api.json"
EOF
"$bin/hapgent" --config "$work/hapgent.toml" >"$work/hapgent.log" 2>&1 &
pids+=($!)
wait_until 30 "hapgent serves /metrics" curl -fsS "http://127.0.0.1:$metrics_port/metrics"

step "starting HAProxy (its agent-check probes hapgent's api) and hapgent-lb"
cat >"$work/haproxy.cfg" <<EOF
global
    stats socket $work/admin.sock mode 600 level admin
    hard-stop-after 5s
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:$fe_port
    default_backend web
backend web
    server web1 127.0.0.1:$metrics_port check agent-check agent-port $agent_port agent-inter 1s agent-send "api\n"
EOF
haproxy -W -S "$work/master.sock" -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
haproxy_answers() { ask "$work/admin.sock" "show info" | grep -q '^Pid:'; }
wait_until 30 "HAProxy's runtime API answers" haproxy_answers
echo "ci:$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$work/tokens"
token=$(cut -d: -f2 "$work/tokens")
"$bin/hapgent-lb" --config /dev/null serve \
    --haproxy-socket "$work/admin.sock" --master-socket "$work/master.sock" --reload master-socket \
    --haproxy-config "$work/haproxy.cfg" --listen-unix "$work/api.sock" \
    --listen-tcp "127.0.0.1:$lb_port" --token-file "$work/tokens" --poll-interval 50 \
    >"$work/hapgent-lb.log" 2>&1 &
pids+=($!)
wait_until 30 "hapgent-lb serves /metrics over TCP without a token" \
    curl -fsS "http://127.0.0.1:$lb_port/metrics"

step "making events: probes, a refused source, an unknown name, a ctl change, a configuration change"
cat >"$work/probers.py" <<'PY'
# Probes hapgent twice a second until killed: lb .2 asks for api, lb .3
# for the default service, .4 for a name hapgent does not serve, and .9
# is outside the allow-list.
import socket, sys, time
port = int(sys.argv[1])
while True:
    for source, payload in (("127.0.0.2", b"api\n"), ("127.0.0.3", b"\n"),
                            ("127.0.0.4", b"typo\n"), ("127.0.0.9", b"api\n")):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2,
                                          source_address=(source, 0)) as s:
                s.sendall(payload)
                s.recv(64)
        except OSError:
            pass
    time.sleep(0.5)
PY
python3 "$work/probers.py" "$agent_port" &
pids+=($!)
expect "hapgent ctl changes the default service's weight" \
    "$bin/hapgent" --config "$work/hapgent.toml" ctl weight 50 >/dev/null
etag=$(curl -fsS -D - -o /dev/null -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$lb_port/v1/config" | tr -d '\r' | sed -n 's/^[Ee][Tt]ag: //p')
cp "$work/haproxy.cfg" "$work/new.cfg"
echo "# pushed by .ci/monitoring.sh" >>"$work/new.cfg"
expect "a configuration change through hapgent-lb goes live (200)" \
    test "$(curl -sS -o "$work/put.json" -w '%{http_code}' -X PUT --data-binary "@$work/new.cfg" \
        -H "Authorization: Bearer $token" -H "If-Match: $etag" \
        "http://127.0.0.1:$lb_port/v1/config")" = 200

step "starting Prometheus on 127.0.0.1:$prom_port (scrapes every second, the rules loaded)"
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/contrib/prometheus/hapgent.rules.yml
scrape_configs:
  - job_name: hapgent
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
  - job_name: hapgent-lb
    static_configs:
      - targets: ["127.0.0.1:$lb_port"]
EOF
prometheus --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/data" \
    --web.listen-address "127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
wait_until 60 "Prometheus is ready" curl -fsS "http://127.0.0.1:$prom_port/-/ready"

step "every target up, every rule evaluated without error, every panel's query answered"
python3 - "http://127.0.0.1:$prom_port" contrib/grafana/hapgent.json contrib/prometheus/hapgent.rules.yml <<'PY' || die "live"
import json, re, sys, time, urllib.parse, urllib.request
base, dashboard, rules_file = sys.argv[1:]
want_rules = len(re.findall(r"^\s*- (?:alert|record): ", open(rules_file).read(), re.M))
DEADLINE = time.monotonic() + 90

def api(path, **params):
    url = f"{base}/api/v1/{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{path} {params}: {body}")
    return body["data"]

def until(what, check):
    """Polls check() (every 0.2 s) until it returns a true value; fails at the deadline."""
    start = time.monotonic()
    while True:
        last = check()
        if last:
            print(f"    ok: {what} ({time.monotonic() - start:.1f}s)", file=sys.stderr)
            return last
        if time.monotonic() > DEADLINE:
            sys.exit(f"    FAIL: {what}: not within the deadline")
        time.sleep(0.2)

until("both targets are scraped and up", lambda: sorted(
    (t["labels"]["job"], t["health"]) for t in api("targets")["activeTargets"]
) == [("hapgent", "up"), ("hapgent-lb", "up")])

def rules_evaluated():
    rules = [r for g in api("rules")["groups"] for r in g["rules"]]
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    if bad:
        sys.exit(f"    FAIL: rules in error: {bad}")
    return len(rules) == want_rules and all(r["health"] == "ok" for r in rules)
until(f"all {want_rules} rules evaluate without error", rules_evaluated)

instances = until("the instance variable has a value",
                  lambda: api("label/instance/values", **{"match[]": 'hapgent_build_info{job="hapgent"}'}))
values = {"$__rate_interval": "30s", "$instance": instances[0]}

d = json.load(open(dashboard))
queries = [(p["id"], p["title"], t["refId"], t["expr"])
           for p in d["panels"] if p["type"] != "row" for t in p["targets"]]
for pid, title, ref, expr in queries:
    for k, v in values.items():
        expr = expr.replace(k, v)
    until(f"panel {pid} {title!r} {ref}: {expr}",
          lambda: api("query", query=expr)["result"])
print(f"    ok: {len(queries)} queries of {len(d['panels'])} panels answered", file=sys.stderr)

# What the data says, not only that there is some.
def one(expr):
    r = api("query", query=expr)["result"]
    return {tuple(sorted(x["metric"].items())): float(x["value"][1]) for x in r}
until("the api service shows as FAIL", lambda: one(
    'sum by (status) (hapgent_service_status{job="hapgent"})').get((("status", "FAIL"),)) == 1)
until("HAProxy and the three allowed probers are seen", lambda: {
    dict(k)["prober"] for k in one('max by (prober) (hapgent_prober_last_probe_timestamp_seconds)')
} == {"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"})
until("refusals by allow-list and unknown name are counted", lambda: all(
    one(f'hapgent_probes_refused_total{{reason="{reason}"}} > 0')
    for reason in ("allow_list", "unknown_service")))
until("hapgent-lb counted one live reload", lambda: one(
    'hapgent_lb_reloads_total{outcome="live"}') and all(
    v == 1 for v in one('hapgent_lb_reloads_total{outcome="live"}').values()))
PY

echo "== monitoring: passed in $((SECONDS - started))s"
