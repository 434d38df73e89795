#!/usr/bin/env bash
# Makes a Debian 13 (trixie) root with its HAProxy (3.0) under target/, so
# hapgent-lb's system tests also run against a newer HAProxy than Debian
# 12's 2.6. Prints the path of a wrapper that runs that HAProxy:
#
#   LB_TEST_HAPROXY=$(lb/tests/newer-haproxy.sh) cargo test -p hapgent-lb --test integration
#
# The root shares /tmp with the host (bind mount) and has /proc, so socket
# and configuration paths are the same inside and out. Needs root,
# debootstrap and access to deb.debian.org (the first time only).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD/target/trixie/root
if [ ! -x "$root/usr/sbin/haproxy" ]; then
    command -v debootstrap >/dev/null ||
        apt-get install -y -qq -o DPkg::Lock::Timeout=600 debootstrap >/dev/null
    debootstrap --variant=minbase --include=haproxy trixie "$root" \
        http://deb.debian.org/debian >&2
fi
mountpoint -q "$root/tmp" || mount --bind /tmp "$root/tmp"
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
wrapper=$PWD/target/trixie/haproxy
printf '#!/bin/sh\nexec chroot %s /usr/sbin/haproxy "$@"\n' "$root" >"$wrapper"
chmod 755 "$wrapper"
"$wrapper" -v | head -n 1 >&2
echo "$wrapper"
