#!/usr/bin/env bash
# Runs a command (hapgent-lb's system tests) against a newer HAProxy than
# Debian 12's 2.6: Debian 13's HAProxy 3.0 in a debootstrap root under
# target/trixie, made on first use:
#
#   lb/tests/newer-haproxy.sh cargo test -p hapgent-lb --test integration
#
# The command runs with LB_TEST_HAPROXY set to a wrapper that runs that
# HAProxy in the root, and TMPDIR set to a directory bind-mounted at the
# same path inside the root, so the tests' sockets and configuration files
# have the same paths inside and out. The mounts (that directory and /proc)
# are undone when the command ends, so nothing under target/ stays mounted
# (a later `rm -rf target` must not reach into them).
#
# Needs root, debootstrap and access to deb.debian.org (the first time).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 64; }
root=$PWD/target/trixie/root
if [ ! -x "$root/usr/sbin/haproxy" ]; then
    command -v debootstrap >/dev/null ||
        apt-get install -y -qq -o DPkg::Lock::Timeout=600 debootstrap >/dev/null
    rm -rf "$root"
    debootstrap --variant=minbase --include=haproxy trixie "$root" \
        http://deb.debian.org/debian >&2
fi
shared=$(mktemp -d /tmp/hapgent-lb-newer.XXXXXX)
mounted=()
cleanup() {
    local m
    for m in "${mounted[@]}"; do
        umount "$m" || umount -l "$m" || true
    done
    rmdir "$root$shared" 2>/dev/null || true
    rm -rf "$shared"
}
trap cleanup EXIT
mkdir -p "$root$shared"
mount --bind "$shared" "$root$shared" && mounted+=("$root$shared")
if ! mountpoint -q "$root/proc"; then
    mount -t proc proc "$root/proc" && mounted+=("$root/proc")
fi
wrapper=$PWD/target/trixie/haproxy
printf '#!/bin/sh\nexec chroot %s /usr/sbin/haproxy "$@"\n' "$root" >"$wrapper"
chmod 755 "$wrapper"
"$wrapper" -v | sed -n 1p >&2
LB_TEST_HAPROXY=$wrapper TMPDIR=$shared "$@"
