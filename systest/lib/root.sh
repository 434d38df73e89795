# The Debian root every test host boots: built once with debootstrap, cached
# under the checkout's ignored build directory, and shared read-only by all
# hosts (each host boots an overlay of it, so a test never changes the cache).
#
# The cache key is a hash of the suite, the mirror's suite and the package
# list below (and this file's recipe version): change any of them and the next
# run builds a new root; an unchanged list reuses the old one, within a run
# and across runs on the same machine.

SYSTEST_SUITE=${SYSTEST_SUITE:-bookworm}
SYSTEST_MIRROR=${SYSTEST_MIRROR:-http://deb.debian.org/debian}
# What the hosts need: systemd as PID 1 (+ dbus for systemctl/logind),
# openssh-server and python3 for Ansible, adduser for the .deb's postinst,
# haproxy for the load-balancer host, curl for health checks, iproute2 and
# procps to look around when a test fails.
SYSTEST_PACKAGES=(
    systemd systemd-sysv dbus libpam-systemd
    openssh-server python3 python3-apt adduser
    haproxy socat curl ca-certificates iproute2 procps less
)
SYSTEST_ROOT_RECIPE=2

# root_dir: prints the cached root's path for the current package list.
root_dir() {
    local key
    key=$(printf '%s\n' "$SYSTEST_ROOT_RECIPE" "$SYSTEST_SUITE" "$SYSTEST_MIRROR" \
        "${SYSTEST_PACKAGES[@]}" | sha256sum | cut -c1-12)
    echo "$SYSTEST_CACHE/root-$SYSTEST_SUITE-$key"
}

# root_build: builds the root unless the cache already has it. Built in a
# temporary directory and renamed into place, so an interrupted build is
# never taken for a finished one.
root_build() {
    local dir tmp
    dir=$(root_dir)
    if [ -f "$dir/.systest-complete" ]; then
        log "Debian root: cached $(basename "$dir")"
        return 0
    fi
    tmp=$dir.partial.$$
    rm -rf "$tmp"
    mkdir -p "$SYSTEST_CACHE"
    log "Debian root: debootstrap $SYSTEST_SUITE into $(basename "$dir") (cold cache)"
    local packages
    packages=$(IFS=,; echo "${SYSTEST_PACKAGES[*]}")
    if ! debootstrap --variant=minbase --include="$packages" \
        "$SYSTEST_SUITE" "$tmp" "$SYSTEST_MIRROR" >"$SYSTEST_CACHE/debootstrap.log" 2>&1; then
        tail -n 30 "$SYSTEST_CACHE/debootstrap.log" >&2
        rm -rf "$tmp"
        die "debootstrap failed (log: $SYSTEST_CACHE/debootstrap.log)"
    fi
    root_configure "$tmp"
    touch "$tmp/.systest-complete"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    # Roots built for an older package list are of no further use.
    local old
    for old in "$SYSTEST_CACHE"/root-"$SYSTEST_SUITE"-*; do
        [ "$old" = "$dir" ] || case $old in *.partial.*) ;; *) rm -rf "$old" ;; esac
    done
}

# root_configure DIR: makes the fresh root boot quickly and quietly inside
# systemd-nspawn: no getty, no time sync or network management (the harness
# configures each host's address from outside), root may log in with a key.
root_configure() {
    local r=$1 unit
    for unit in getty@tty1.service console-getty.service systemd-timesyncd.service \
        systemd-networkd.service systemd-networkd-wait-online.service \
        systemd-resolved.service apt-daily.timer apt-daily-upgrade.timer \
        e2scrub_all.timer e2scrub_reap.service fstrim.timer haproxy.service; do
        ln -sf /dev/null "$r/etc/systemd/system/$unit"
    done
    echo "systest" >"$r/etc/hostname"
    : >"$r/etc/machine-id"
    # Root logs in with the run's key only (see hosts.sh).
    mkdir -p "$r/etc/ssh/sshd_config.d"
    printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n' \
        >"$r/etc/ssh/sshd_config.d/systest.conf"
    # apt must never reach out from a test host.
    : >"$r/etc/apt/sources.list"
    rm -f "$r"/etc/apt/sources.list.d/*
    # No DNS on the test network: an empty resolv.conf makes lookups fail
    # at once instead of timing out against the build machine's resolver.
    rm -f "$r/etc/resolv.conf"
    printf '# test hosts have no DNS\n' >"$r/etc/resolv.conf"
    # Journal in memory is enough and faster.
    mkdir -p "$r/etc/systemd/journald.conf.d"
    printf '[Journal]\nStorage=volatile\n' >"$r/etc/systemd/journald.conf.d/systest.conf"
}
