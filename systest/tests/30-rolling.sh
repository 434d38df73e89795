# System tests: a rolling deploy behind HAProxy, with traffic.
#
# Hosts: lb (Debian's HAProxy, the load generator, the watcher of HAProxy's
# stats) and b1..b3 (the app on :8080 as a systemd service, hapgent on :9777
# installed by the role). ansible/playbooks/rolling-deploy.yml restarts the
# app on each backend in turn.

# rolling_setup: boots and configures the four hosts; traffic not started.
rolling_setup() {
    local b ver
    ver=$(version)
    ansible_setup
    host_boot lb
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
        echo "lb ansible_host=${HOST_IP[lb]}"
        echo "[all:vars]"
        echo "ansible_user=root"
        echo "ansible_python_interpreter=/usr/bin/python3"
        echo "[hapgent:vars]"
        echo "hapgent_install_method=deb"
        echo "hapgent_release_url=$SYSTEST_RUN/mirror"
        echo "hapgent_allowed_signers_file=$SYSTEST_RUN/allowed_signers"
        echo "hapgent_local_cache_path=$SYSTEST_RUN/cache"
        echo "hapgent_deploy_agent_inter_ms=500"
        echo "hapgent_deploy_health_url=http://127.0.0.1:8080/"
        echo "hapgent_deploy_health_delay=1"
        echo "hapgent_deploy_lb_host=lb"
        echo "hapgent_deploy_lb_backend=be"
    } >"$SYSTEST_RUN/inventory.ini"
    expect "the role installs hapgent on b1..b3 (deb method)" \
        playbook role -i "$SYSTEST_RUN/inventory.ini" examples/site.yml
    for b in b1 b2 b3; do
        expect "$b: hapgent answers 'up ready 100%'" reply_is "$b" "up ready 100%"
    done

    # HAProxy on lb: Debian's package and unit, this test's configuration.
    {
        cat "$SYSTEST_DIR/files/haproxy.cfg.in"
        for b in b1 b2 b3; do echo "    server $b ${HOST_IP[$b]}:8080"; done
    } >"$SYSTEST_RUN/haproxy.cfg"
    host_put lb "$SYSTEST_RUN/haproxy.cfg" /etc/haproxy/haproxy.cfg
    hx lb rm -f /etc/systemd/system/haproxy.service
    hx lb systemctl daemon-reload
    hx lb systemctl start haproxy.service
    wait_until 20 "HAProxy on lb shows b1, b2 and b3 UP" lb_shows b1 '^UP$' b2 '^UP$' b3 '^UP$'
    host_put lb "$SYSTEST_DIR/files/loadgen.py" /root/loadgen.py
    host_put lb "$SYSTEST_DIR/files/lbwatch.py" /root/lbwatch.py
}

# lb_status SERVER: the server's status in HAProxy's show stat (spaces as _).
lb_status() {
    hx lb sh -c 'echo "show stat" | socat -t 2 stdio unix-connect:/run/haproxy/admin.sock' |
        awk -F, -v s="$1" '$1 == "be" && $2 == s { gsub(/ /, "_", $18); print $18 }'
}

# lb_shows SERVER REGEX...: each server's HAProxy status matches its REGEX.
lb_shows() {
    while [ $# -gt 0 ]; do
        [[ $(lb_status "$1") =~ $2 ]] || return 1
        shift 2
    done
}

# traffic_start PER_CONN: the watcher and the load generator on lb, as
# transient units there (they die with the host at the latest), bounded to
# 15 minutes and 2 million requests.
traffic_start() {
    hx lb rm -f /run/systest-stop
    hx lb systemd-run --quiet --unit=systest-lbwatch --collect \
        python3 /root/lbwatch.py /run/haproxy/admin.sock be /root/lbwatch.log /run/systest-stop 900
    hx lb systemd-run --quiet --unit=systest-loadgen --collect \
        python3 /root/loadgen.py 127.0.0.1 80 4 "$1" /run/systest-stop /root/loadgen.json 900 2000000
    wait_until 20 "the load generator gets answers from b1, b2 and b3" traffic_reaches b1 b2 b3
}

# loadgen FIELD: a figure from the load generator's JSON (python expression
# on `s`).
loadgen() { hx lb python3 -c "import json; s = json.load(open('/root/loadgen.json')); print($1)"; }

# traffic_reaches HOST...: each HOST has answered at least 20 requests more
# than when traffic_mark was last called.
declare -A TRAFFIC_MARK=()
traffic_reaches() {
    local h
    for h in "$@"; do
        [ "$(loadgen "s['by_server'].get('$h', 0)")" -ge $(( ${TRAFFIC_MARK[$h]:-0} + 20 )) ] || return 1
    done
}
traffic_mark() {
    local h
    for h in b1 b2 b3; do TRAFFIC_MARK[$h]=$(loadgen "s['by_server'].get('$h', 0)"); done
}

# traffic_stop: stops both, waits for the final figures, and checks them.
traffic_stop() {
    hx lb touch /run/systest-stop
    wait_until 30 "the load generator has finished" loadgen_finished
    local sent failed
    sent=$(loadgen "s['sent']")
    failed=$(loadgen "s['failed']")
    figure requests_sent "$sent"
    figure requests_failed "$failed"
    figure connections "$(loadgen "s['connections']")"
    figure answers_by_server "$(loadgen "s['by_server']")"
    if [ "$failed" != 0 ]; then
        loadgen "s['failures'][:20]" >&2
    fi
    expect "zero failed requests ($sent sent)" eq "$failed" 0
}
loadgen_finished() { [ "$(loadgen "s['ended'] is not None")" = True ]; }

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

# check_deployed HOST: the LB showed HOST DRAIN (no sessions left) before its
# app stopped, and UP after the app was back; records the drain-to-stop time.
check_deployed() {
    local h=$1 stop start drain scur_at_stop back
    read -r stop start <<<"$(app_times "$h")"
    expect "$h: the app was restarted (journal: stopping at $stop, started at $start)" \
        matches "$stop $start" '^[0-9.]+ [0-9.]+$'
    hx lb cat /root/lbwatch.log >"$SYSTEST_RUN/lbwatch.log"
    drain=$(awk -v h="$h" '$2 == h && $3 ~ /^DRAIN/ { print $1; exit }' "$SYSTEST_RUN/lbwatch.log")
    expect "$h: the LB showed DRAIN (at ${drain:-never})" matches "$drain" '^[0-9.]+$'
    expect "$h: ... before the app stopped" awk -v d="$drain" -v s="$stop" 'BEGIN { exit !(d < s) }'
    scur_at_stop=$(awk -v h="$h" -v s="$stop" '$2 == h && $1 < s { v = $4 } END { print v }' "$SYSTEST_RUN/lbwatch.log")
    expect "$h: with no session left when the app stopped" eq "$scur_at_stop" 0
    back=$(awk -v h="$h" -v s="$start" '$2 == h && $1 > s && $3 == "UP" { print $1; exit }' "$SYSTEST_RUN/lbwatch.log")
    expect "$h: the LB showed it UP (ready) after the app came back (at ${back:-never})" matches "$back" '^[0-9.]+$'
    # Sessions HAProxy still had to the server when it went DRAIN, and when
    # they had all ended: what the playbook's session wait waited for.
    local at_drain idle
    at_drain=$(awk -v h="$h" -v d="$drain" '$2 == h && $1 == d { print $4; exit }' "$SYSTEST_RUN/lbwatch.log")
    idle=$(awk -v h="$h" -v d="$drain" '$2 == h && $1 >= d && $4 == 0 { print $1; exit }' "$SYSTEST_RUN/lbwatch.log")
    figure "${h}_sessions_at_drain" "$at_drain"
    figure "${h}_drain_to_no_session_s" "$(awk -v d="$drain" -v i="$idle" 'BEGIN { printf "%.2f", i - d }')"
    SESSIONS_AT_DRAIN=$((${SESSIONS_AT_DRAIN:-0} + at_drain))
    figure "${h}_drain_to_stop_s" "$(awk -v d="$drain" -v s="$stop" 'BEGIN { printf "%.2f", s - d }')"
    figure "${h}_out_of_rotation_s" "$(awk -v d="$drain" -v b="$back" 'BEGIN { printf "%.2f", b - d }')"
}

# rolling_deploy PER_CONN: the whole deploy under traffic.
rolling_deploy() {
    rolling_setup
    traffic_start "$1"
    local t0=$SECONDS
    rollout deploy || { show deploy 60; die "the rolling deploy failed"; }
    log "ok: the rolling deploy succeeded"
    figure rollout_seconds "$((SECONDS - t0))"
    wait_until 20 "HAProxy shows b1, b2 and b3 UP again" lb_shows b1 '^UP$' b2 '^UP$' b3 '^UP$'
    traffic_mark
    wait_until 30 "traffic reaches every backend again" traffic_reaches b1 b2 b3
    traffic_stop
    local b
    for b in b1 b2 b3; do check_deployed "$b"; done
    expect "the wait for the LB's sessions ran on lb for each host" \
        eq "$(grep -A1 "TASK \[Wait for the load balancer's sessions" "$SYSTEST_RUN/deploy.log" | grep -c '^ok: \[b[123] -> lb')" 3
}

# A rolling deploy under traffic, a new connection per request: zero failed requests, DRAIN before each stop, UP after.
test_rolling_deploy() { rolling_deploy 1; }

# The same with keep-alive clients (500 requests, several seconds, per connection): the deploy waits for the LB's sessions to end.
test_rolling_deploy_keepalive() {
    rolling_deploy 500
    # Connections outlive the playbook's fixed wait after DRAIN, so the
    # session wait is what kept them from failing.
    expect "HAProxy still had sessions to drained servers ($SESSIONS_AT_DRAIN in all)" test "$SESSIONS_AT_DRAIN" -gt 0
}

# A deploy failing on host 2 stops the rollout: host 2 drained, host 3 untouched, zero failed requests.
test_rolling_deploy_guard() {
    rolling_setup
    local pid3
    pid3=$(hx b3 systemctl show -P MainPID systest-app.service)
    traffic_start 1
    expect_not "the rollout fails" rollout guard -e systest_fail_on=b2
    expect "it stopped at b2, in the deploy" \
        grep -q 'The rollout stopped at b2 in task "Fail like a broken release' "$SYSTEST_RUN/guard.log"
    wait_until 10 "HAProxy shows b1 UP, b2 DRAIN, b3 UP" lb_shows b1 '^UP$' b2 '^DRAIN' b3 '^UP$'
    traffic_mark
    wait_until 30 "traffic reaches b1 and b3" traffic_reaches b1 b3
    expect "b2 gets no traffic while drained" eq "$(loadgen "s['by_server'].get('b2', 0)")" "${TRAFFIC_MARK[b2]}"
    traffic_stop
    check_deployed b1
    expect "b2's hapgent still reports DRAIN" reply_is b2 "up drain 100% # deploying"
    expect "b2's state file says DRAIN" state_has b2 '"status": *"DRAIN"'
    expect "b3's app was not restarted" eq "$(hx b3 systemctl show -P MainPID systest-app.service)" "$pid3"
    expect "b3's hapgent still reports 'up ready 100%'" reply_is b3 "up ready 100%"
    expect_not "b3's hapgent never changed state" journal_has b3 'DRAIN'
    expect_not "the LB never showed b3 other than UP" grep -Eq ' b3 (DRAIN|DOWN|MAINT|NOLB)' "$SYSTEST_RUN/lbwatch.log"
}
