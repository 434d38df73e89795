#!/usr/bin/env bash
# Tests of the Ansible role hapgent and the rolling-deploy playbook (ansible/).
#
#   1. ansible-lint (production profile) and ansible-playbook --syntax-check;
#   2. the role really applied to this machine (connection local) under a
#      throwaway root (hapgent_root_prefix), with the release artifacts served
#      over http from a local mirror of dist/ (or built and signed here when
#      dist/ is not there):
#        - bad arguments, a tampered artifact, a SHA256SUMS not matching its
#          signature, a signature by an untrusted key and a wrong pinned
#          checksum each fail and install nothing (no file, no user);
#        - the first run installs binary, unit, drop-in, user, config and
#          state file; the service tasks are skipped because systemd is not
#          PID 1 here, and the output says so;
#        - the installed unit (+ drop-in) passes systemd-analyze verify;
#        - a second run reports changed=0 and leaves a state file changed
#          in between untouched; a config change notifies only "Reload",
#          a new binary "Restart";
#   3. playbooks/rolling-deploy.yml against two real agents on loopback:
#      a good rollout (DRAIN during the deploy, UP after), a host someone
#      put in MAINT is left alone, and a failing deploy stops the rollout
#      with that host still in DRAIN and the next one untouched.
#
# Runs as root from the repository root; creates a system user for the test
# (hapgent-ci) and deletes it again, and leaves nothing else behind.
#
# What needs systemd as PID 1 — the service tasks and handlers, the deb
# method, the rolling deploy behind a real HAProxy — is tested on booted
# hosts over SSH by the system tests (systest/, test_ansible_* and
# test_rolling_deploy*; .ci/systest.sh).
#
# Release signatures: if dist/SHA256SUMS.sig exists and an allowed_signers
# file trusts it (DIST_ALLOWED_SIGNERS, or target/ci-release-allowed_signers
# left by .ci/release.sh with its throwaway key), dist/ is used as it is.
# Otherwise the binary from dist/ (or a fresh cargo build) is put in a mirror
# signed with a throwaway key here. DIST_DIR names another dist/.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
started=$SECONDS

# shellcheck source=lib.sh
source .ci/lib.sh
ok() { log "ok: $*"; }

[ "$(id -u)" = 0 ] || die "run as root (the role creates a system user)"

work=$(mktemp -d /tmp/hapgent-ansible-ci.XXXXXX)
test_user=hapgent-ci
created_user=0
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$created_user" = 1 ]; then
        userdel "$test_user" 2>/dev/null || true
        groupdel "$test_user" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if getent passwd "$test_user" >/dev/null || getent group "$test_user" >/dev/null; then
    die "user or group $test_user already exists; this test creates and deletes it"
fi
created_user=1

# --- Tools ------------------------------------------------------------------
step "Installing systemd (for systemd-analyze only), openssh-client (ssh-keygen), python3-apt (the apt module)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends \
    systemd openssh-client util-linux python3-apt >/dev/null

step "Installing ansible-core and ansible-lint into a virtualenv"
# Everything Ansible and pip write goes under $work, not into ~.
export XDG_CACHE_HOME=$work/xdg-cache
export ANSIBLE_HOME=$work/ansible-home
export ANSIBLE_LOCAL_TEMP=$work/ansible-tmp
export ANSIBLE_REMOTE_TMP=$work/ansible-tmp
export ANSIBLE_ROLES_PATH=$repo/ansible/roles
export ANSIBLE_NOCOLOR=1
export ANSIBLE_FORCE_COLOR=0
export ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_PIPELINING=1
export PY_COLORS=0
export NO_COLOR=1
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check \
    -r ansible/requirements-ci.txt
export PATH=$work/venv/bin:$PATH
ansible --version | sed -n 1p
ansible-lint --version | sed -n 1p

# --- Static checks ----------------------------------------------------------
step "ansible-lint --profile production"
(cd ansible && ansible-lint --profile production --offline)
ok "ansible-lint production profile passed"

step "ansible-playbook --syntax-check"
for playbook in playbooks/rolling-deploy.yml examples/site.yml examples/site-lb.yml tests/apply.yml; do
    (cd ansible && ansible-playbook -i localhost, --syntax-check "$playbook" >/dev/null)
    ok "$playbook"
done

# --- Release artifacts --------------------------------------------------------
version=$(version)
case "$(uname -m)" in
    x86_64) triple=x86_64-unknown-linux-musl ;;
    aarch64) triple=aarch64-unknown-linux-musl ;;
    *) die "no hapgent release build for $(uname -m)" ;;
esac
artifact=hapgent-$version-$triple
www=$work/www
mirror=$www/mirror
mkdir -p "$www"

step "Preparing the artifact mirror for $artifact"
dist=${DIST_DIR:-dist}
release_signers=${DIST_ALLOWED_SIGNERS:-target/ci-release-allowed_signers}
deb=hapgent_$version-1_$(dpkg --print-architecture).deb
if [ -f "$dist/$artifact" ] && [ -f "$dist/SHA256SUMS.sig" ] && [ -f "$release_signers" ] &&
    ssh-keygen -Y verify -f "$release_signers" -I release@hapgent -n file \
        -s "$dist/SHA256SUMS.sig" < "$dist/SHA256SUMS" >/dev/null 2>&1; then
    cp -a "$dist" "$mirror"
    cp "$release_signers" "$work/allowed_signers"
    ok "using $dist/ as signed by the release step, trusting $release_signers"
else
    mkdir -p "$mirror"
    if [ -f "$dist/$artifact" ]; then
        cp "$dist/$artifact" "$mirror/"
        ok "binary from $dist/ (no allowed_signers for its signature: re-signing)"
    else
        cargo build --release --locked --target "$triple"
        cp "${CARGO_TARGET_DIR:-target}/$triple/release/hapgent" "$mirror/$artifact"
        ok "binary built with cargo (no $dist/)"
    fi
    ssh-keygen -q -t ed25519 -N '' -C hapgent-ci-release -f "$work/release-key"
    [ ! -f "$dist/$deb" ] || cp "$dist/$deb" "$mirror/"
    (cd "$mirror" && sha256sum hapgent[-_]* > SHA256SUMS)
    ssh-keygen -Y sign -q -f "$work/release-key" -n file "$mirror/SHA256SUMS"
    printf 'release@hapgent namespaces="file" %s\n' \
        "$(cut -d' ' -f1,2 "$work/release-key.pub")" > "$work/allowed_signers"
fi
ssh-keygen -Y verify -f "$work/allowed_signers" -I release@hapgent -n file \
    -s "$mirror/SHA256SUMS.sig" < "$mirror/SHA256SUMS" >/dev/null
ok "the mirror's SHA256SUMS.sig verifies against the test allowed_signers"

# Broken copies of the mirror, each one way an attacker or a bad mirror could
# get it wrong.
make_mirror() { rm -rf "$www/$1"; cp -a "$mirror" "$www/$1"; }
make_mirror bad-binary
printf 'tampered' >> "$www/bad-binary/$artifact"
make_mirror bad-sums
printf 'tampered' >> "$www/bad-sums/$artifact"
(cd "$www/bad-sums" && sha256sum "$artifact" > SHA256SUMS)
make_mirror bad-key
ssh-keygen -q -t ed25519 -N '' -C attacker -f "$work/attacker-key"
rm "$www/bad-key/SHA256SUMS.sig"
ssh-keygen -Y sign -q -f "$work/attacker-key" -n file "$www/bad-key/SHA256SUMS"
# A newer "release": the same binary with a byte appended (still runs), so
# the role sees a changed binary.
next=$www/next
mkdir -p "$next"
cp "$mirror/$artifact" "$next/hapgent-$version.1-$triple"
printf '\0' >> "$next/hapgent-$version.1-$triple"
cp "$work/allowed_signers" "$work/next-allowed_signers"
(cd "$next" && sha256sum "hapgent-$version.1-$triple" > SHA256SUMS)
if [ -f "$work/release-key" ]; then
    ssh-keygen -Y sign -q -f "$work/release-key" -n file "$next/SHA256SUMS"
else
    ssh-keygen -q -t ed25519 -N '' -C hapgent-ci-next -f "$work/next-key"
    ssh-keygen -Y sign -q -f "$work/next-key" -n file "$next/SHA256SUMS"
    printf 'release@hapgent namespaces="file" %s\n' \
        "$(cut -d' ' -f1,2 "$work/next-key.pub")" > "$work/next-allowed_signers"
fi

step "Serving the mirror over http on loopback"
python3 -u -m http.server --bind 127.0.0.1 --directory "$www" 0 \
    > "$work/http.log" 2>&1 &
pids+=($!)
port=
for _ in $(seq 50); do
    port=$(sed -n 's/.*port \([0-9][0-9]*\).*/\1/p' "$work/http.log" | sed -n 1p)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || die "http.server did not start: $(cat "$work/http.log")"
base_url=http://127.0.0.1:$port
ok "$base_url"

# --- Applying the role --------------------------------------------------------
root=$work/root
# A skeleton like a real root's: the role creates its own directories only.
mkdir -p "$root/etc" "$root/usr/local" "$root/var/lib"

# apply NAME [extra ansible-playbook args...]: runs tests/apply.yml with the
# test's common variables, output in $work/NAME.log; returns its exit code.
apply() {
    local name=$1
    shift
    local rc=0
    (cd ansible && ansible-playbook tests/apply.yml \
        -e "hapgent_root_prefix=$root" \
        -e "hapgent_release_url=$base_url/mirror" \
        -e "hapgent_allowed_signers_file=$work/allowed_signers" \
        -e "hapgent_local_cache_path=$work/cache" \
        -e "hapgent_user=$test_user" -e "hapgent_group=$test_user" \
        -e '{"hapgent_config": {"max_connections": 512, "log_requests": true}}' \
        "$@") > "$work/$name.log" 2>&1 || rc=$?
    return "$rc"
}
recap() { grep -A1 '^PLAY RECAP' "$work/$1.log" | tail -n1; }
changed_count() { recap "$1" | sed -n 's/.* changed=\([0-9]*\).*/\1/p'; }
show() { sed 's/^/    | /' "$work/$1.log" | tail -n "${2:-40}"; }

# expect_failure NAME MESSAGE ROOT [args...]: the run must fail saying
# MESSAGE and leave ROOT empty and the test user absent.
expect_failure() {
    local name=$1 message=$2 fresh=$3
    shift 3
    rm -rf "$fresh"
    mkdir -p "$fresh"
    if apply "$name" -e "hapgent_root_prefix=$fresh" "$@"; then
        show "$name"
        die "$name: the role succeeded"
    fi
    grep -qF -- "$message" "$work/$name.log" || {
        show "$name"
        die "$name: the failure does not say: $message"
    }
    [ -z "$(ls -A "$fresh")" ] || {
        find "$fresh"
        die "$name: files were installed"
    }
    ! getent passwd "$test_user" >/dev/null || die "$name: the user was created"
    ok "$name: failed with \"$message\"; nothing installed"
}

step "Bad input and bad artifacts fail before anything is installed"
expect_failure bad-argument "value of hapgent_install_method must be one of: binary, deb" \
    "$work/empty" -e hapgent_install_method=rpm
expect_failure bad-binary "does not match its SHA256 in the signed SHA256SUMS" \
    "$work/empty" -e "hapgent_release_url=$base_url/bad-binary" \
    -e "hapgent_local_cache_path=$work/cache-bad-binary"
expect_failure bad-sums "is not signed by release@hapgent" \
    "$work/empty" -e "hapgent_release_url=$www/bad-sums" \
    -e "hapgent_local_cache_path=$work/cache-bad-sums"
expect_failure bad-key "is not signed by release@hapgent" \
    "$work/empty" -e "hapgent_release_url=$www/bad-key" \
    -e "hapgent_local_cache_path=$work/cache-bad-key"
expect_failure bad-pin "but hapgent_checksum pins" \
    "$work/empty" -e "hapgent_checksum=sha256:$(printf '0%.0s' $(seq 64))" \
    -e "hapgent_local_cache_path=$work/cache-bad-pin"
# The tampered file must not stay in the controller's cache either.
[ ! -e "$work/cache-bad-binary/$artifact" ] || die "the tampered artifact was kept in the cache"
ok "the tampered artifact was not kept in the controller cache"

step "First run: installs everything"
[ "$(cat /proc/1/comm)" != systemd ] || die "systemd is PID 1 here: run this test in a container or CI machine"
apply first || { show first 60; die "the first run failed"; }
recap first
[ "$(changed_count first)" -gt 0 ] || die "the first run changed nothing"

cmp "$mirror/$artifact" "$root/usr/local/bin/hapgent" || die "installed binary differs from the artifact"
[ "$(stat -c '%U:%G %a' "$root/usr/local/bin/hapgent")" = "root:root 755" ] || die "binary owner/mode"
ok "binary /usr/local/bin/hapgent (root:root 0755, identical to the artifact)"

cmp systemd/hapgent.service "$root/etc/systemd/system/hapgent.service" || die "installed unit differs from systemd/hapgent.service"
ok "unit /etc/systemd/system/hapgent.service identical to systemd/hapgent.service"
dropin=$root/etc/systemd/system/hapgent.service.d/ansible.conf
grep -qx 'ExecStart=/usr/local/bin/hapgent run' "$dropin" || die "drop-in lacks the ExecStart override: $(cat "$dropin")"
grep -qx "User=$test_user" "$dropin" || die "drop-in lacks User=$test_user"
ok "drop-in overrides ExecStart (and User/Group for the test account)"

entry=$(getent passwd "$test_user") || die "user $test_user was not created"
IFS=: read -r _ _ uid _ _ home shell <<< "$entry"
[ "$shell" = /usr/sbin/nologin ] || die "user shell is $shell"
[ "$uid" -lt 1000 ] || die "user $test_user is not a system user (uid $uid)"
[ "$home" = /var/lib/hapgent ] || die "user home is $home"
getent group "$test_user" >/dev/null || die "group $test_user was not created"
ok "system user $test_user (uid $uid, $shell), group $test_user"

"$root/usr/local/bin/hapgent" check-config --config "$root/etc/hapgent/hapgent.toml" > "$work/check-config.txt"
for line in 'ip = \["0.0.0.0"\] .*# file' 'port = 9777 .*# file' \
    'state_file = "/var/lib/hapgent/state.json" .*# file' \
    'max_connections = 512 .*# file' 'log_requests = true .*# file'; do
    grep -q "^$line" "$work/check-config.txt" || {
        cat "$work/check-config.txt"
        die "hapgent check-config does not show: $line"
    }
done
ok "hapgent.toml has ip, port, state_file and the hapgent_config dict (hapgent check-config)"

state=$root/var/lib/hapgent/state.json
[ "$(tr -d ' \n' < "$state")" = '{"status":"UP"}' ] || die "state file: $(cat "$state")"
[ "$(stat -c %U "$state") $(stat -c %U "$(dirname "$state")")" = "$test_user $test_user" ] ||
    die "state file and directory must belong to $test_user"
ok "state file {\"status\":\"UP\"}, file and directory owned by $test_user"

grep -q 'Skipping the hapgent service tasks: systemd is not PID 1' "$work/first.log" ||
    die "the output does not say why the service tasks were skipped"
grep -A1 'TASK \[hapgent : Run hapgent as a systemd service.\]' "$work/first.log" | grep '^skipping:' >/dev/null ||
    die "the service tasks were not skipped"
ok "service tasks skipped, and said so: PID 1 here is $(cat /proc/1/comm), not systemd"

step "systemd-analyze verify of the installed unit and drop-in"
unit=$root/etc/systemd/system/hapgent.service
# Outside the namespace /usr/local/bin/hapgent does not exist: verify must
# complain about exactly that path, which shows it read the drop-in.
if systemd-analyze verify "$unit" > "$work/verify-missing.log" 2>&1 ||
    ! grep -q 'Command /usr/local/bin/hapgent is not executable' "$work/verify-missing.log"; then
    cat "$work/verify-missing.log"
    die "systemd-analyze verify did not check the drop-in's ExecStart"
fi
# In a private mount namespace the binary is placed at its real path on a
# tmpfs, so the host's /usr/local/bin is never touched.
unshare --mount --propagation private sh -euc '
    mount -t tmpfs tmpfs /usr/local/bin
    cp "$1/usr/local/bin/hapgent" /usr/local/bin/hapgent
    systemd-analyze verify "$2"
' verify "$root" "$unit" > "$work/verify.log" 2>&1 || {
    cat "$work/verify.log"
    die "systemd-analyze verify failed"
}
ok "systemd-analyze verify passes (unit + drop-in)"

step "Second run: changed=0, and a state file changed in between is kept"
printf '{"status":"DRAIN","weight":7}\n' > "$state"
chmod 0600 "$state"
before=$(sha256sum < "$state")
apply second || { show second 60; die "the second run failed"; }
recap second
[ "$(changed_count second)" = 0 ] || {
    grep -B2 '^changed:' "$work/second.log"
    die "the second run changed something"
}
ok "changed=0"
[ "$(sha256sum < "$state")" = "$before" ] && [ "$(stat -c %a "$state")" = 600 ] ||
    die "the state file was changed: $(cat "$state")"
ok "state file kept as it was ({\"status\":\"DRAIN\",\"weight\":7}, mode 0600)"
! grep -q 'RUNNING HANDLER' "$work/second.log" || die "a handler was notified on the second run"
ok "no restart or reload notified"

step "A config change notifies only the reload; a new binary the restart"
apply config-change -e hapgent_port=9778 || { show config-change 60; die "the config-change run failed"; }
[ "$(changed_count config-change)" = 1 ] || die "a port change should change exactly hapgent.toml: $(recap config-change)"
grep -q 'RUNNING HANDLER \[hapgent : Reload hapgent\]' "$work/config-change.log" || die "Reload hapgent was not notified"
! grep -q 'RUNNING HANDLER \[hapgent : Restart hapgent\]' "$work/config-change.log" || die "Restart hapgent was notified for a config change"
grep -q '^port = 9778 ' <("$root/usr/local/bin/hapgent" check-config --config "$root/etc/hapgent/hapgent.toml") ||
    die "port 9778 not in hapgent.toml"
ok "hapgent.toml changed, Reload notified, Restart not"
apply new-binary -e hapgent_port=9778 -e "hapgent_version=$version.1" \
    -e "hapgent_release_url=$base_url/next" \
    -e "hapgent_allowed_signers_file=$work/next-allowed_signers" \
    -e "hapgent_local_cache_path=$work/cache-next" || { show new-binary 60; die "the new-binary run failed"; }
grep -q 'RUNNING HANDLER \[hapgent : Restart hapgent\]' "$work/new-binary.log" || die "Restart hapgent was not notified"
! grep -q 'RUNNING HANDLER \[hapgent : Reload hapgent\]' "$work/new-binary.log" || die "Reload hapgent was notified for a binary change"
cmp "$next/hapgent-$version.1-$triple" "$root/usr/local/bin/hapgent" || die "the new binary was not installed"
[ "$(sha256sum < "$state")" = "$before" ] || die "the upgrade changed the state file"
ok "new binary installed, Restart notified, Reload not, state file kept"

step "An invalid hapgent_config is refused by hapgent check-config and not written"
cp "$root/etc/hapgent/hapgent.toml" "$work/toml-before"
if apply bad-config -e hapgent_port=9778 -e "hapgent_version=$version.1" \
    -e "hapgent_release_url=$base_url/next" \
    -e "hapgent_allowed_signers_file=$work/next-allowed_signers" \
    -e "hapgent_local_cache_path=$work/cache-next" \
    -e '{"hapgent_config": {"max_connections": 0}}'; then
    die "a config with max_connections = 0 was accepted"
fi
grep -q 'failed to validate' "$work/bad-config.log" || { show bad-config; die "no validation failure"; }
cmp "$work/toml-before" "$root/etc/hapgent/hapgent.toml" || die "the invalid config was written"
ok "check-config rejected it; hapgent.toml unchanged"

# --- Rolling deploy ---------------------------------------------------------
step "Rolling deploy against two agents on loopback"
deploy=$work/deploy
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
declare -A agent_pid agent_port
start_agent() {
    local host=$1 status=$2
    mkdir -p "$deploy/$host"
    printf '{"status":"%s"}\n' "$status" > "$deploy/$host/state.json"
    rm -f "$deploy/$host/deployed"
    if [ -n "${agent_pid[$host]:-}" ]; then
        kill -HUP "${agent_pid[$host]}"
        return
    fi
    agent_port[$host]=$(free_port)
    "$root/usr/local/bin/hapgent" run --config "$root/etc/hapgent/hapgent.toml" \
        --ip 127.0.0.1 --port "${agent_port[$host]}" \
        --control-socket "$deploy/$host/control.sock" \
        --state-file "$deploy/$host/state.json" 2> "$deploy/$host/agent.log" &
    agent_pid[$host]=$!
    pids+=($!)
    # A load balancer stand-in, probing every 100 ms, so that
    # `hapgent ctl --wait-seen` has someone to wait for (bounded: 10 min).
    python3 - "${agent_port[$host]}" <<'PY' &
import socket, sys, time
end = time.time() + 600
while time.time() < end:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
            s.makefile().readline()
    except OSError:
        pass
    time.sleep(0.1)
PY
    pids+=($!)
}
probe() {
    python3 - "$1" <<'PY'
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
    print(s.makefile().readline().strip())
PY
}
inventory() {
    {
        echo '[hapgent]'
        for host in a b; do
            echo "$host hapgent_port=${agent_port[$host]} hapgent_state_file=$deploy/$host/state.json" \
                "hapgent_reload_command=\"kill -HUP ${agent_pid[$host]}\" deploy_marker=$deploy/$host/deployed" \
                "hapgent_deploy_ctl='[\"$root/usr/local/bin/hapgent\", \"ctl\", \"--control-socket\", \"$deploy/$host/control.sock\"]'"
        done
        echo '[hapgent:vars]'
        echo 'ansible_connection=local'
        echo "ansible_python_interpreter=$work/venv/bin/python3"
        echo 'ansible_become=false'
        echo 'hapgent_ip=127.0.0.1'
        echo 'hapgent_user=root'
        echo 'hapgent_group=root'
    } > "$deploy/inventory.ini"
}
# wait_reply HOST REGEX: the agent's reply matches within a few seconds.
wait_reply() {
    local reply
    for _ in $(seq 50); do
        reply=$(probe "${agent_port[$1]}" 2>/dev/null || true)
        [[ $reply =~ $2 ]] && return 0
        sleep 0.1
    done
    die "agent $1 replies \"$reply\", expected /$2/"
}
rollout() {
    local name=$1 tasks=$2 rc=0
    (cd ansible && ansible-playbook -i "$deploy/inventory.ini" playbooks/rolling-deploy.yml \
        -e "hapgent_deploy_tasks=$repo/ansible/tests/$tasks") > "$work/$name.log" 2>&1 || rc=$?
    return "$rc"
}

start_agent a UP
start_agent b READY
inventory
wait_reply a '^up ready 100%$'
wait_reply b '^up ready 100%$'
rollout deploy-ok deploy-ok.yml || { show deploy-ok 60; die "the rolling deploy failed"; }
for host in a b; do
    [ -f "$deploy/$host/deployed" ] || die "host $host was not deployed"
    wait_reply "$host" '^up ready 100%$'
    [ "$(tr -d ' \n' < "$deploy/$host/state.json")" = '{"status":"UP"}' ] ||
        die "host $host state after the rollout: $(cat "$deploy/$host/state.json")"
    grep -q 'DRAIN description="deploying" (ctl by uid 0 (root) pid ' "$deploy/$host/agent.log" ||
        die "agent $host never went to DRAIN: $(cat "$deploy/$host/agent.log")"
done
ok "both hosts drained during their deploy (checked by the deploy tasks) and are UP again"

start_agent a UP
start_agent b MAINT
wait_reply b '^maint'
if rollout deploy-maint deploy-ok.yml; then die "the rollout put a host in MAINT back"; fi
grep -q 'reports MAINT, not UP or READY' "$work/deploy-maint.log" || { show deploy-maint; die "no MAINT refusal"; }
[ -f "$deploy/a/deployed" ] && [ ! -f "$deploy/b/deployed" ] || die "wrong hosts deployed"
wait_reply b '^maint'
ok "a host someone put in MAINT is left alone and stops the rollout"

start_agent a UP
start_agent b UP
wait_reply a '^up ready'
wait_reply b '^up ready'
if rollout deploy-fail deploy-fail.yml; then die "a failing deploy did not fail the rollout"; fi
grep -q 'The rollout stopped at a in task "Fail like a broken deploy."' "$work/deploy-fail.log" ||
    { show deploy-fail; die "the rollout did not stop at host a"; }
[ -f "$deploy/a/deployed" ] || die "host a's deploy did not run"
[ ! -f "$deploy/b/deployed" ] || die "host b was deployed after host a failed"
wait_reply a '^up drain( 100%)? # deploying$'
grep -q '"status": *"DRAIN"' "$deploy/a/state.json" || die "host a state: $(cat "$deploy/a/state.json")"
wait_reply b '^up ready 100%$'
ok "the failed host stays in DRAIN, the rollout stopped before host b"

step "Done in $((SECONDS - started))s"
