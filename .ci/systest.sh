#!/usr/bin/env bash
# System tests on booted Debian hosts (systest/), run by .ci/run as
# root after .ci/release.sh, which leaves the artifacts in dist/. Installs
# what the harness needs, builds dist/ only if it is missing, and runs every
# test in systest/ (see systest/README.md). The Debian root is cached in
# target/systest/ and reused by later runs on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source .ci/lib.sh
export DEBIAN_FRONTEND=noninteractive
export CARGO_TERM_COLOR=never
started=$SECONDS

[ "$(id -u)" = 0 ] || { echo ".ci/systest.sh: run as root (sudo)" >&2; exit 1; }

echo "==> Installing debootstrap, systemd-container, iproute2, python3-venv, openssh-client"
apt-get update -qq
apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends \
    debootstrap debian-archive-keyring systemd-container iproute2 python3-venv \
    openssh-client ca-certificates >/dev/null

version=$(version)
if [ ! -f "dist/hapgent_${version}-1_$(dpkg --print-architecture).deb" ]; then
    echo "==> dist/ has no artifacts for $version: building them with scripts/dist"
    rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
    grep -q 3.8.0 <<<"$(cargo deb --version 2>/dev/null)" || cargo install cargo-deb --locked --version 3.8.0
    scripts/dist
fi

echo "==> systest/run"
systest/run
echo "==> System tests done in $((SECONDS - started))s"
