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

# untrusted_mirrors: copies of $SYSTEST_RUN/mirror each wrong in one way an
# attacker or a bad mirror could make it: bad-binary (the artifact
# tampered with), bad-sums (tampered, and SHA256SUMS made to match it, so
# no longer matching its signature), bad-key (signed by another key).
untrusted_mirrors() {
    local artifact=hapgent-$(version)-$(musl_triple) m
    for m in bad-binary bad-sums bad-key; do
        rm -rf "${SYSTEST_RUN:?}/$m"
        cp -a "$SYSTEST_RUN/mirror" "$SYSTEST_RUN/$m"
    done
    printf 'tampered' >>"$SYSTEST_RUN/bad-binary/$artifact"
    printf 'tampered' >>"$SYSTEST_RUN/bad-sums/$artifact"
    (cd "$SYSTEST_RUN/bad-sums" && sha256sum hapgent[-_]* >SHA256SUMS)
    ssh-keygen -q -t ed25519 -N '' -C attacker -f "$SYSTEST_RUN/attacker-key"
    rm "$SYSTEST_RUN/bad-key/SHA256SUMS.sig"
    ssh-keygen -Y sign -q -f "$SYSTEST_RUN/attacker-key" -n file "$SYSTEST_RUN/bad-key/SHA256SUMS"
}

# refused NAME MESSAGE [args...]: the role run NAME fails, saying MESSAGE.
refused() {
    local name=$1 message=$2
    shift 2
    ! apply "$name" binary -e "hapgent_local_cache_path=$SYSTEST_RUN/cache-$name" "$@" &&
        grep -qF -- "$message" "$SYSTEST_RUN/$name.log"
}

# An artifact the role cannot trust is refused before any change on any
# host: a tampered binary, a SHA256SUMS not matching its signature, a
# signature by an untrusted key, a checksum other than the pinned one; and
# the tampered file is not kept in the controller's cache.
test_ansible_refuses_untrusted_artifacts() {
    role_hosts
    untrusted_mirrors
    expect "a tampered binary is refused: it does not match the signed SHA256SUMS" \
        refused bad-binary "does not match its SHA256 in the signed SHA256SUMS" \
        -e "hapgent_release_url=$SYSTEST_RUN/bad-binary"
    expect "a SHA256SUMS not matching its signature is refused" \
        refused bad-sums "is not signed by release@hapgent" -e "hapgent_release_url=$SYSTEST_RUN/bad-sums"
    expect "a SHA256SUMS signed by an untrusted key is refused" \
        refused bad-key "is not signed by release@hapgent" -e "hapgent_release_url=$SYSTEST_RUN/bad-key"
    expect "a binary other than the pinned hapgent_checksum is refused" \
        refused bad-pin "but hapgent_checksum pins" -e "hapgent_checksum=sha256:$(printf '0%.0s' $(seq 64))"
    # Downloads into the controller's cache are delegated to localhost
    # ("changed: [h1 -> localhost]"); nothing may change on a host itself.
    expect_not "no task changed anything on a host" grep -Eq '^changed: \[h[0-9]\]' \
        "$SYSTEST_RUN"/bad-{binary,sums,key,pin}.log
    local h
    for h in h1 h2 h3; do
        expect "$h: nothing installed (no user, files, binary or unit)" nothing_installed "$h"
    done
    expect_not "the tampered artifact was not kept in the controller's cache" \
        test -e "$SYSTEST_RUN/cache-bad-binary/hapgent-$(version)-$(musl_triple)"
}

# The binary method installs what it says: dist/'s binary (root:root 0755),
# the repository's unit with a drop-in that runs it, a system user, the
# configuration hapgent check-config reads back, and the state file owned by
# the agent's user; `systemd-analyze verify` accepts unit and drop-in. An
# invalid hapgent_config is refused by `hapgent check-config` and not
# written, and the running agent is left alone.
test_ansible_binary_install_and_invalid_config() {
    local pid before uid home shell
    role_hosts
    expect "the first run (binary) succeeds" apply first binary \
        -e '{"hapgent_config": {"max_connections": 512}}'
    expect "the binary is dist/'s" eq "$(binary_sha h1 binary)" "$(sha256sum <"$(dist_binary)" | cut -d' ' -f1)"
    expect "the binary is root:root 0755" eq "$(hx h1 stat -c '%U:%G %a' /usr/local/bin/hapgent)" "root:root 755"
    expect "the unit is systemd/hapgent.service" \
        eq "$(hx h1 sha256sum /etc/systemd/system/hapgent.service | cut -d' ' -f1)" \
        "$(sha256sum <"$REPO/systemd/hapgent.service" | cut -d' ' -f1)"
    expect "its drop-in runs /usr/local/bin/hapgent" \
        hx h1 grep -qx 'ExecStart=/usr/local/bin/hapgent run' /etc/systemd/system/hapgent.service.d/ansible.conf
    expect "systemd-analyze verify accepts the unit and its drop-in" \
        quiet hx h1 systemd-analyze verify /etc/systemd/system/hapgent.service
    IFS=: read -r _ _ uid _ _ home shell <<<"$(hx h1 getent passwd hapgent)"
    expect "hapgent is a system user (uid $uid < 1000)" test "$uid" -lt 1000
    expect "with home /var/lib/hapgent and no login shell" eq "$home $shell" "/var/lib/hapgent /usr/sbin/nologin"
    expect "the configuration holds the role's settings (check-config)" \
        hsh h1 "hapgent check-config --config /etc/hapgent/hapgent.toml | grep -q '^max_connections = 512 .*# file'"
    expect "the state file and its directory belong to hapgent" \
        eq "$(hx h1 stat -c %U /var/lib/hapgent/state.json /var/lib/hapgent | tr '\n' ' ')" "hapgent hapgent "

    before=$(hx h1 sha256sum /etc/hapgent/hapgent.toml)
    pid=$(main_pid h1)
    expect_not "a run with max_connections = 0 fails" apply bad-config binary \
        -e '{"hapgent_config": {"max_connections": 0}}'
    expect "hapgent check-config refused it" grep -q 'failed to validate' "$SYSTEST_RUN/bad-config.log"
    expect "hapgent.toml is unchanged" eq "$(hx h1 sha256sum /etc/hapgent/hapgent.toml)" "$before"
    expect "the agent was neither restarted nor stopped" eq "$(main_pid h1)" "$pid"
}

# A host someone put in MAINT is left alone by the rolling deploy: the
# rollout stops there, before its deploy, and the host stays in MAINT.
test_rolling_deploy_leaves_maint_alone() {
    local h
    role_hosts
    expect "the role installs hapgent on h1..h3" apply first binary
    # A load balancer stand-in on each host, so that `ctl --wait-seen` has
    # a prober to wait for; it ends with the host.
    for h in h1 h2 h3; do
        hx "$h" systemd-run --quiet --unit=systest-prober python3 -c '
import socket, time
while True:
    try:
        with socket.create_connection(("127.0.0.1", 9777), timeout=2) as s:
            s.makefile().readline()
    except OSError:
        pass
    time.sleep(0.1)
'
    done
    expect "an operator puts h2 in MAINT" quiet hx h2 hapgent ctl maint
    expect "h2 reports MAINT" matches "$(agent_reply h2)" '^maint'
    expect_not "the rollout fails" playbook maint -i "$SYSTEST_RUN/inventory.ini" playbooks/rolling-deploy.yml \
        -e "hapgent_deploy_tasks=$SYSTEST_DIR/files/deploy-mark.yml"
    expect "it says h2 reports MAINT and is left alone" grep -q 'reports MAINT, not UP or READY' "$SYSTEST_RUN/maint.log"
    expect "h1 was deployed" hx h1 test -f /root/deployed
    expect_not "h2 was not" hx h2 test -f /root/deployed
    expect_not "h3 was not" hx h3 test -f /root/deployed
    expect "h1 is back in rotation" reply_is h1 "up ready 100%"
    expect "h2 still reports MAINT" matches "$(agent_reply h2)" '^maint'
}
