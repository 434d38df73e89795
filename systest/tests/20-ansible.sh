# System tests: the Ansible role over SSH against three booted hosts.

# role_hosts: three booted hosts, Ansible ready, a signed release mirror of
# dist/ ($SYSTEST_RUN/mirror) and a "next" release with a changed binary
# ($SYSTEST_RUN/next, version VERSION.1).
role_hosts() {
    local ver next_bin next_deb
    ver=$(version)
    ansible_setup
    host_boot h1
    host_boot h2
    host_boot h3
    mirror_signed "$SYSTEST_RUN/mirror" "$SYSTEST_RUN/allowed_signers" "$ver"
    next_bin=$SYSTEST_RUN/next-binary
    cp "$(dist_binary)" "$next_bin"
    printf '\0' >>"$next_bin"
    next_deb=$SYSTEST_RUN/next.deb
    deb_with_version "$(dist_deb)" "$ver.1-1" "$next_deb" append
    mirror_signed "$SYSTEST_RUN/next" "$SYSTEST_RUN/allowed_signers" "$ver.1" "$next_bin" "$next_deb"
    inventory "$SYSTEST_RUN/inventory.ini" hapgent h1 h2 h3 -- \
        "hapgent_allowed_signers_file=$SYSTEST_RUN/allowed_signers"
}

# apply NAME METHOD [args...]: examples/site.yml (the role) on h1..h3.
apply() {
    local name=$1 method=$2
    shift 2
    playbook "$name" -i "$SYSTEST_RUN/inventory.ini" examples/site.yml \
        -e "hapgent_install_method=$method" \
        -e "hapgent_release_url=$SYSTEST_RUN/mirror" \
        -e "hapgent_local_cache_path=$SYSTEST_RUN/cache/{{ hapgent_version }}" "$@"
}

# nothing_installed HOST: no trace of hapgent on the host.
nothing_installed() {
    hx "$1" sh -c '! getent passwd hapgent && [ ! -e /etc/hapgent ] && [ ! -e /var/lib/hapgent ] &&
        [ ! -e /usr/local/bin/hapgent ] && [ ! -e /usr/bin/hapgent ] &&
        [ ! -e /etc/systemd/system/hapgent.service ]' >/dev/null
}

# binary_sha HOST METHOD: sha256 of the installed binary.
binary_sha() {
    local path=/usr/local/bin/hapgent
    [ "$2" = deb ] && path=/usr/bin/hapgent
    hx "$1" sha256sum "$path" | cut -d' ' -f1
}

# Bad role arguments fail before any change on any host.
test_ansible_bad_arguments() {
    role_hosts
    expect_not "the role refuses hapgent_install_method=rpm" apply bad-method rpm
    expect "it says why" grep -q 'value of hapgent_install_method must be one of: binary, deb' "$SYSTEST_RUN/bad-method.log"
    expect_not "the role refuses hapgent_port=http" apply bad-port binary -e hapgent_port=http
    expect "it says why" grep -Eq "hapgent_port.*(int|integer)" "$SYSTEST_RUN/bad-port.log"
    expect_not "the role refuses hapgent_status=SLEEPING" apply bad-status binary -e hapgent_status=SLEEPING
    expect "no run reported a change" eq "$(( $(recap_total bad-method changed) + $(recap_total bad-port changed) + $(recap_total bad-status changed) ))" 0
    local h
    for h in h1 h2 h3; do
        expect "$h: nothing installed (no user, files, binary or unit)" nothing_installed "$h"
    done
}

# role_flow METHOD: the role's promises on three hosts with one method.
role_flow() {
    local method=$1 h ver before_sha pid
    declare -A pids=()
    ver=$(version)
    role_hosts
    expect "the first run ($method) succeeds" apply first "$method" || true
    [ -f "$SYSTEST_RUN/first.log" ] && grep -A4 '^PLAY RECAP' "$SYSTEST_RUN/first.log" >&2
    for h in h1 h2 h3; do
        expect "$h: hapgent.service is enabled" eq "$(hx "$h" systemctl is-enabled hapgent.service)" enabled
        expect "$h: hapgent.service is active" is_active "$h"
        expect "$h: runs as hapgent" eq "$(service_user "$h")" hapgent
        expect "$h: answers 'up ready 100%'" reply_is "$h" "up ready 100%"
    done
    expect "the installed binary is dist/'s" eq "$(binary_sha h1 "$method")" "$(sha256sum <"$(dist_binary)" | cut -d' ' -f1)"

    # An operator drains h2 between runs; the role must leave that alone.
    hsh h2 'printf "{\"status\":\"DRAIN\",\"description\":\"operator\"}\n" > /var/lib/hapgent/state.json'
    hx h2 systemctl reload hapgent.service
    wait_until 10 "h2 drained by its operator" reply_is h2 "up drain 100% # operator"
    before_sha=$(hx h2 sha256sum /var/lib/hapgent/state.json)
    for h in h1 h2 h3; do pids[$h]=$(main_pid "$h"); done

    expect "the second run succeeds" apply second "$method"
    expect "the second run reports changed=0 on every host" eq "$(recap_total second changed)" 0
    expect "h2's state file is untouched" eq "$(hx h2 sha256sum /var/lib/hapgent/state.json)" "$before_sha"
    expect "h2 still reports its operator's DRAIN" reply_is h2 "up drain 100% # operator"
    for h in h1 h2 h3; do
        expect "$h: the agent was not restarted by the second run" eq "$(main_pid "$h")" "${pids[$h]}"
    done

    # A new release: the binary changes, so the handler restarts the agent.
    expect "the run with release $ver.1 succeeds" apply next "$method" \
        -e "hapgent_version=$ver.1" -e "hapgent_release_url=$SYSTEST_RUN/next"
    for h in h1 h2 h3; do
        expect "$h: the new binary is installed" \
            eq "$(binary_sha "$h" "$method")" "$(sha256sum <"$SYSTEST_RUN/next-binary" | cut -d' ' -f1)"
        expect "$h: the agent was restarted (new MainPID)" pid_changed "$h" "${pids[$h]}"
        expect "$h: and the restarted process runs the new binary" \
            eq "$(hx "$h" sha256sum "/proc/$(main_pid "$h")/exe" | cut -d' ' -f1)" "$(sha256sum <"$SYSTEST_RUN/next-binary" | cut -d' ' -f1)"
    done
    expect "h2 still reports its operator's DRAIN after the upgrade" reply_is h2 "up drain 100% # operator"
    expect "h2's state file is still untouched" eq "$(hx h2 sha256sum /var/lib/hapgent/state.json)" "$before_sha"
    expect "a run after the upgrade reports changed=0" apply third "$method" \
        -e "hapgent_version=$ver.1" -e "hapgent_release_url=$SYSTEST_RUN/next"
    expect "changed=0" eq "$(recap_total third changed)" 0
}

# The binary install method: enabled, active, idempotent, state kept, a new binary restarts.
test_ansible_binary_method() { role_flow binary; }

# The deb install method: enabled, active, idempotent, state kept, a new package restarts.
test_ansible_deb_method() { role_flow deb; }

# A configuration change pushed by the role is applied by its reload handler:
# log_requests = true makes probes appear in the journal (SIGHUP re-reads
# hapgent.toml).
test_ansible_config_change_applied() {
    role_hosts
    expect "the first run succeeds" apply first binary
    local pid
    pid=$(main_pid h1)
    expect "the run with log_requests = true succeeds" apply config binary \
        -e '{"hapgent_config": {"max_connections": 256, "log_requests": true}}'
    expect "the reload handler ran" grep -q 'RUNNING HANDLER \[hapgent : Reload hapgent\]' "$SYSTEST_RUN/config.log"
    expect "the agent was reloaded, not restarted" eq "$(main_pid h1)" "$pid"
    agent_reply h1 >/dev/null
    wait_until 10 "h1's journal shows the probe from this machine" \
        journal_has h1 "probe from $SYSTEST_GATEWAY:[0-9]+: up ready"
}
