# System tests: a rolling deploy behind two HAProxy hosts, with traffic.
#
# Hosts: lb1 and lb2 (each: Debian's HAProxy, hapgent-lb installed by the
# role hapgent_lb, a load generator and a watcher of HAProxy's stats) and
# b1..b3 (the app on :8080 as a systemd service, hapgent on :9777 installed
# by the role). ansible/playbooks/rolling-deploy.yml restarts the app on each
# backend in turn, waiting on both load balancers for the sessions to end.

LBS=(lb1 lb2)

# rolling_setup: boots and configures the five hosts; traffic not started.
rolling_setup() {
    local b lb ver
    ver=$(version)
    ansible_setup
    for lb in "${LBS[@]}"; do host_boot "$lb"; done
    for b in b1 b2 b3; do
        host_boot "$b"
        host_put "$b" "$SYSTEST_DIR/files/app.py" /usr/local/lib/systest-app.py
        host_put "$b" "$SYSTEST_DIR/files/systest-app.service" /etc/systemd/system/systest-app.service
        hx "$b" systemctl daemon-reload
        hx "$b" systemctl enable --now --quiet systest-app.service
    done
    mirror_signed "$SYSTEST_RUN/mirror" "$SYSTEST_RUN/allowed_signers" "$ver"
    {
        echo "[hapgent]"
        for b in b1 b2 b3; do echo "$b ansible_host=${HOST_IP[$b]}"; done
        echo "[haproxy]"
        for lb in "${LBS[@]}"; do echo "$lb ansible_host=${HOST_IP[$lb]}"; done
        echo "[all:vars]"
        echo "ansible_user=root"
        echo "ansible_python_interpreter=/usr/bin/python3"
        echo "[hapgent:vars]"
        echo "hapgent_install_method=deb"
        echo "hapgent_release_url=$SYSTEST_RUN/mirror"
        echo "hapgent_allowed_signers_file=$SYSTEST_RUN/allowed_signers"
        echo "hapgent_local_cache_path=$SYSTEST_RUN/cache"
        echo "hapgent_deploy_health_url=http://127.0.0.1:8080/"
        echo "hapgent_deploy_health_delay=1"
        echo "hapgent_deploy_lb_backend=be"
        echo "[haproxy:vars]"
        echo "hapgent_lb_release_url=$SYSTEST_RUN/mirror"
        echo "hapgent_lb_allowed_signers_file=$SYSTEST_RUN/allowed_signers"
        echo "hapgent_lb_local_cache_path=$SYSTEST_RUN/cache"
    } >"$SYSTEST_RUN/inventory.ini"
    expect "the role installs hapgent on b1..b3 (deb method)" \
        playbook role -i "$SYSTEST_RUN/inventory.ini" examples/site.yml
    for b in b1 b2 b3; do
        expect "$b: hapgent answers 'up ready 100%'" reply_is "$b" "up ready 100%"
    done

    # HAProxy on lb1 and lb2: Debian's package and unit, this test's
    # configuration; then hapgent-lb by its role (deb method).
    {
        cat "$SYSTEST_DIR/files/haproxy.cfg.in"
        for b in b1 b2 b3; do echo "    server $b ${HOST_IP[$b]}:8080"; done
    } >"$SYSTEST_RUN/haproxy.cfg"
    for lb in "${LBS[@]}"; do
        host_put "$lb" "$SYSTEST_RUN/haproxy.cfg" /etc/haproxy/haproxy.cfg
        hx "$lb" rm -f /etc/systemd/system/haproxy.service
        hx "$lb" systemctl daemon-reload
        hx "$lb" systemctl start haproxy.service
    done
    expect "the role hapgent_lb installs hapgent-lb on lb1 and lb2 (deb method)" \
        playbook role-lb -i "$SYSTEST_RUN/inventory.ini" examples/site-lb.yml
    for lb in "${LBS[@]}"; do
        wait_until 20 "$lb: HAProxy shows b1, b2 and b3 UP" lb_shows "$lb" b1 '^UP$' b2 '^UP$' b3 '^UP$'
        expect "$lb: hapgent-lb status sees them too" \
            matches "$(hx "$lb" hapgent-lb status --backend be)" 'be +b3 +UP'
        host_put "$lb" "$SYSTEST_DIR/files/loadgen.py" /root/loadgen.py
        host_put "$lb" "$SYSTEST_DIR/files/lbwatch.py" /root/lbwatch.py
    done
}

# lb_status LB SERVER: the server's status in LB's HAProxy show stat
# (spaces as _).
lb_status() {
    hx "$1" sh -c 'echo "show stat" | socat -t 2 stdio unix-connect:/run/haproxy/admin.sock' |
        awk -F, -v s="$2" '$1 == "be" && $2 == s { gsub(/ /, "_", $18); print $18 }'
}

# lb_shows LB SERVER REGEX...: each server's status on LB matches its REGEX.
lb_shows() {
    local lb=$1
    shift
    while [ $# -gt 0 ]; do
        [[ $(lb_status "$lb" "$1") =~ $2 ]] || return 1
        shift 2
    done
}

# all_lbs_show SERVER REGEX...: lb_shows on every LB.
all_lbs_show() {
    local lb
    for lb in "${LBS[@]}"; do lb_shows "$lb" "$@" || return 1; done
}

# traffic_start PER_CONN [SLOW_WORKERS SLOW_MS]: on each LB, the watcher
# and the load generator (PER_CONN requests per connection, plus
# SLOW_WORKERS clients of 'GET /slow?ms=SLOW_MS'), as transient units there
# (they die with the host at the latest), bounded to 15 minutes and 2
# million requests.
traffic_start() {
    local lb
    for lb in "${LBS[@]}"; do
        hx "$lb" rm -f /run/systest-stop
        hx "$lb" systemd-run --quiet --unit=systest-lbwatch --collect \
            python3 /root/lbwatch.py /run/haproxy/admin.sock be /root/lbwatch.log /run/systest-stop 900
        hx "$lb" systemd-run --quiet --unit=systest-loadgen --collect \
            python3 /root/loadgen.py 127.0.0.1 80 4 "$1" /run/systest-stop /root/loadgen.json 900 2000000 \
            "${2:-0}" "${3:-0}"
    done
    wait_until 20 "the load generators get answers from b1, b2 and b3" traffic_reaches b1 b2 b3
}

# loadgen LB FIELD: a figure from LB's load generator's JSON (python
# expression on `s`).
loadgen() { hx "$1" python3 -c "import json; s = json.load(open('/root/loadgen.json')); print($2)"; }

# traffic_reaches HOST...: through each LB, each HOST has answered at least
# 20 requests more than when traffic_mark was last called.
declare -A TRAFFIC_MARK=()
traffic_reaches() {
    local h lb
    for lb in "${LBS[@]}"; do
        for h in "$@"; do
            [ "$(loadgen "$lb" "s['by_server'].get('$h', 0)")" -ge $(( ${TRAFFIC_MARK[$lb.$h]:-0} + 20 )) ] || return 1
        done
    done
}
traffic_mark() {
    local h lb
    for lb in "${LBS[@]}"; do
        for h in b1 b2 b3; do TRAFFIC_MARK[$lb.$h]=$(loadgen "$lb" "s['by_server'].get('$h', 0)"); done
    done
}

# traffic_stop: stops both on every LB, waits for the final figures, and
# checks them.
traffic_stop() {
    local lb sent failed
    for lb in "${LBS[@]}"; do hx "$lb" touch /run/systest-stop; done
    for lb in "${LBS[@]}"; do
        wait_until 30 "$lb: the load generator has finished" loadgen_finished "$lb"
        sent=$(loadgen "$lb" "s['sent']")
        failed=$(loadgen "$lb" "s['failed']")
        figure "${lb}_requests_sent" "$sent"
        figure "${lb}_requests_failed" "$failed"
        figure "${lb}_slow_requests_ok" "$(loadgen "$lb" "s['slow_ok']")"
        figure "${lb}_connections" "$(loadgen "$lb" "s['connections']")"
        figure "${lb}_answers_by_server" "$(loadgen "$lb" "s['by_server']")"
        hx "$lb" cat /root/lbwatch.log >"$SYSTEST_RUN/lbwatch-$lb.log"
        if [ "$failed" != 0 ]; then
            explain_failures "$lb"
        fi
        expect "$lb: zero failed requests ($sent sent)" eq "$failed" 0
    done
}
# explain_failures LB: each failed request through LB, with what LB's
# watcher saw around it and when each app stopped and started.
explain_failures() {
    local t b
    for b in b1 b2 b3; do log "$b's app stopped/started at: $(app_times "$b")"; done
    for t in $(loadgen "$1" "' '.join(str(f[0]) for f in s['failures'][:5])"); do
        log "failed at $t: $(loadgen "$1" "[f[1] for f in s['failures'] if str(f[0]) == '$t'][0]")"
        awk -v t="$t" '$1 > t - 3 && $1 < t + 3 { print "      | " $0 }' "$SYSTEST_RUN/lbwatch-$1.log" >&2
    done
}
loadgen_finished() { [ "$(loadgen "$1" "s['ended'] is not None")" = True ]; }

# rollout NAME [args...]: the rolling-deploy playbook with this test's deploy tasks.
rollout() {
    local name=$1
    shift
    playbook "$name" -i "$SYSTEST_RUN/inventory.ini" playbooks/rolling-deploy.yml \
        -e "hapgent_deploy_tasks=$SYSTEST_DIR/files/deploy-restart.yml" "$@"
}

# app_times HOST: "STOPPING STARTED" (epoch seconds) of the app's restart,
# from the host's journal (systemd's own messages about the unit).
app_times() {
    hx "$1" journalctl -q -u systest-app.service -o short-unix --no-pager |
        awk '/Stopping systest-app.service/ && !stop { stop = $1 }
             /Started systest-app.service/ && stop { start = $1 }
             END { print stop, start }'
}

# check_deployed HOST: every LB showed HOST DRAIN (no sessions left) before
# its app stopped, and UP after the app was back; records the figures.
check_deployed() {
    local h=$1 stop start lb
    read -r stop start <<<"$(app_times "$h")"
    expect "$h: the app was restarted (journal: stopping at $stop, started at $start)" \
        matches "$stop $start" '^[0-9.]+ [0-9.]+$'
    for lb in "${LBS[@]}"; do check_lb_saw "$lb" "$h" "$stop" "$start"; done
}

# check_lb_saw LB HOST STOP START: LB's watcher log shows HOST DRAIN before
# STOP with no session left at STOP, and UP after START.
check_lb_saw() {
    local lb=$1 h=$2 stop=$3 start=$4 log=$SYSTEST_RUN/lbwatch-$1.log drain scur_at_stop back
    drain=$(awk -v h="$h" '$2 == h && $3 ~ /^DRAIN/ { print $1; exit }' "$log")
    expect "$lb: showed $h DRAIN (at ${drain:-never})" matches "$drain" '^[0-9.]+$'
    expect "$lb: ... before $h's app stopped" awk -v d="$drain" -v s="$stop" 'BEGIN { exit !(d < s) }'
    scur_at_stop=$(awk -v h="$h" -v s="$stop" '$2 == h && $1 < s { v = $4 } END { print v }' "$log")
    expect "$lb: with no session left to $h when its app stopped" eq "$scur_at_stop" 0
    back=$(awk -v h="$h" -v s="$start" '$2 == h && $1 > s && $3 == "UP" { print $1; exit }' "$log")
    expect "$lb: showed $h UP (ready) after the app came back (at ${back:-never})" matches "$back" '^[0-9.]+$'
    # Sessions HAProxy still had to the server when it went DRAIN, and when
    # they had all ended: what the playbook's session wait waited for.
    local at_drain idle
    at_drain=$(awk -v h="$h" -v d="$drain" '$2 == h && $1 == d { print $4; exit }' "$log")
    idle=$(awk -v h="$h" -v d="$drain" '$2 == h && $1 >= d && $4 == 0 { print $1; exit }' "$log")
    figure "${lb}_${h}_sessions_at_drain" "$at_drain"
    figure "${lb}_${h}_drain_to_no_session_s" "$(awk -v d="$drain" -v i="$idle" 'BEGIN { printf "%.2f", i - d }')"
    SESSIONS_AT_DRAIN[$lb]=$((${SESSIONS_AT_DRAIN[$lb]:-0} + at_drain))
    figure "${lb}_${h}_drain_to_stop_s" "$(awk -v d="$drain" -v s="$stop" 'BEGIN { printf "%.2f", s - d }')"
    figure "${lb}_${h}_out_of_rotation_s" "$(awk -v d="$drain" -v b="$back" 'BEGIN { printf "%.2f", b - d }')"
}
declare -A SESSIONS_AT_DRAIN=()

# rolling_deploy PER_CONN [SLOW_WORKERS SLOW_MS]: the whole deploy under
# traffic through both LBs.
rolling_deploy() {
    rolling_setup
    traffic_start "$@"
    local t0=$SECONDS
    rollout deploy || { show deploy 60; die "the rolling deploy failed"; }
    log "ok: the rolling deploy succeeded"
    figure rollout_seconds "$((SECONDS - t0))"
    wait_until 20 "both LBs show b1, b2 and b3 UP again" all_lbs_show b1 '^UP$' b2 '^UP$' b3 '^UP$'
    traffic_mark
    wait_until 30 "traffic reaches every backend again through both LBs" traffic_reaches b1 b2 b3
    traffic_stop
    local b
    for b in b1 b2 b3; do check_deployed "$b"; done
    expect "hapgent-lb wait ran on lb1 and lb2 for each host (6 answers)" \
        eq "$(sed -n "/^TASK \[Collect each load balancer's answer/,/^TASK/p" "$SYSTEST_RUN/deploy.log" |
            grep -Ec '^ok: \[b[123] -> lb[12][](]')" 6
}

# A rolling deploy under traffic through two LBs, a new connection per request: zero failed requests, DRAIN before each stop on both, UP after.
test_rolling_deploy() { rolling_deploy 1; }

# The same with keep-alive clients (500 requests per connection) and long-running requests (1.5 s) on both LBs: the deploy waits on each LB for its sessions to end.
test_rolling_deploy_keepalive() {
    rolling_deploy 500 2 1500
    # Connections outlive the drain on both LBs, so the wait on each LB is
    # what kept them from failing.
    local lb
    for lb in "${LBS[@]}"; do
        expect "$lb: HAProxy still had sessions to drained servers (${SESSIONS_AT_DRAIN[$lb]:-0} in all)" \
            test "${SESSIONS_AT_DRAIN[$lb]:-0}" -gt 0
    done
}

# hold_on LB SERVER: a keep-alive client on LB that keeps one connection to
# SERVER open (a request every 0.2 s) until /run/systest-hold-stop exists
# (at most 2 minutes); returns once it holds it.
hold_on() {
    hx "$1" rm -f /run/systest-hold-stop /root/hold.state
    hx "$1" systemd-run --quiet --unit=systest-hold --collect python3 -c '
import http.client, os, sys, time
end = time.time() + 120
for _ in range(100):
    c = http.client.HTTPConnection("127.0.0.1", 80, timeout=5)
    c.request("GET", "/")
    if c.getresponse().read().strip().decode() == sys.argv[1]:
        break
    c.close()
else:
    sys.exit("no connection reached " + sys.argv[1])
open("/root/hold.state", "w").write(sys.argv[1])
while time.time() < end and not os.path.exists("/run/systest-hold-stop"):
    c.request("GET", "/")
    c.getresponse().read()
    time.sleep(0.2)
' "$2"
    wait_until 20 "$1: a client holds a connection to $2" hx "$1" test -s /root/hold.state
}

# A deploy failing on host 2 stops the rollout: host 2 drained, host 3
# untouched, zero failed requests. Then a connection one LB keeps open to
# b1 stops the next rollout at b1, naming that LB and only it.
test_rolling_deploy_guard() {
    rolling_setup
    local pid1 pid3
    pid3=$(hx b3 systemctl show -P MainPID systest-app.service)
    traffic_start 1
    expect_not "the rollout fails" rollout guard -e systest_fail_on=b2
    expect "it stopped at b2, in the deploy" \
        grep -q 'The rollout stopped at b2 in task "Fail like a broken release' "$SYSTEST_RUN/guard.log"
    wait_until 10 "both LBs show b1 UP, b2 DRAIN, b3 UP" all_lbs_show b1 '^UP$' b2 '^DRAIN' b3 '^UP$'
    traffic_mark
    wait_until 30 "traffic reaches b1 and b3 through both LBs" traffic_reaches b1 b3
    expect "b2 gets no traffic while drained" eq "$(loadgen lb1 "s['by_server'].get('b2', 0)") $(loadgen lb2 "s['by_server'].get('b2', 0)")" "${TRAFFIC_MARK[lb1.b2]} ${TRAFFIC_MARK[lb2.b2]}"
    traffic_stop
    check_deployed b1
    expect "b2's hapgent still reports DRAIN" reply_is b2 "up drain 100% # deploying"
    expect "b2's state file says DRAIN" state_has b2 '"status": *"DRAIN"'
    expect "b3's app was not restarted" eq "$(hx b3 systemctl show -P MainPID systest-app.service)" "$pid3"
    expect "b3's hapgent still reports 'up ready 100%'" reply_is b3 "up ready 100%"
    expect_not "b3's hapgent never changed state" journal_has b3 'DRAIN'
    expect_not "no LB ever showed b3 other than UP" grep -Eq ' b3 (DRAIN|DOWN|MAINT|NOLB)' "$SYSTEST_RUN"/lbwatch-lb*.log

    # lb2 keeps a session to b1 open: the wait there times out, lb1's not.
    hold_on lb2 b1
    pid1=$(hx b1 systemctl show -P MainPID systest-app.service)
    expect_not "the next rollout fails" rollout held -e hapgent_deploy_lb_timeout=3
    expect "it stopped at b1, naming lb2 as the LB whose sessions did not end" \
        grep -Eq 'The rollout stopped at b1 .*Sessions to be/b1 did not end on lb2 \(' "$SYSTEST_RUN/held.log"
    expect "with hapgent-lb's account of what was left" \
        grep -Eq 'lb2: timed out: .*hapgent-lb error: timed out: after 3s: be/b1: .*still 1 session' "$SYSTEST_RUN/held.log"
    expect "lb1's wait succeeded" \
        eq "$(sed -n "/^TASK \[Collect each load balancer's answer/,/^TASK/p" "$SYSTEST_RUN/held.log" | grep -Ec '^ok: \[b1 -> lb1[](]')" 1
    expect "b1's app was not stopped" eq "$(hx b1 systemctl show -P MainPID systest-app.service)" "$pid1"
    expect "b1 stays drained on both LBs" all_lbs_show b1 '^DRAIN'
    hx lb2 touch /run/systest-hold-stop
}
