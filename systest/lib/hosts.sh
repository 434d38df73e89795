# Test hosts: booted Debian machines on one bridge.
#
# Each host is an overlay of the cached root (lib/root.sh), booted with
# `systemd-nspawn --boot` (systemd as PID 1) inside its own network namespace
# joined to the run's bridge by a veth pair. Addresses come from the
# benchmarking range 198.18.0.0/15 only: the bridge (this machine, the
# Ansible controller) is 198.18.N.1, host number i is 198.18.N.(10+i), with N
# chosen per run so that two runs on one machine do not collide.
#
# Everything created is recorded as it is created and removed by
# hosts_teardown (called from a trap): nspawn processes by PID, overlay mounts,
# network namespaces, veths and the bridge.

declare -A HOST_LEADER=() HOST_NSPAWN=() HOST_IP=() HOST_INDEX=()
HOSTS=()
SYSTEST_NET_UP=0

# The short run id names the bridge, veths and netns (interface names are at
# most 15 characters) and picks the /24.
net_init() {
    SYSTEST_ID=${SYSTEST_ID:-$(printf '%04x' $(( ($$ + RANDOM) % 65536 )))}
    SYSTEST_NET=198.18.$(( 16#${SYSTEST_ID:2:2} ))
    SYSTEST_BRIDGE=hst${SYSTEST_ID}br
    SYSTEST_GATEWAY=$SYSTEST_NET.1
}

# net_up: the run's bridge, with this machine's address on it.
net_up() {
    [ "$SYSTEST_NET_UP" = 1 ] && return 0
    ip link add "$SYSTEST_BRIDGE" type bridge
    SYSTEST_NET_UP=1
    ip addr add "$SYSTEST_GATEWAY/24" dev "$SYSTEST_BRIDGE"
    ip link set "$SYSTEST_BRIDGE" up
}

# host_boot NAME: boots a host and waits until systemd says boot finished.
host_boot() {
    local name=$1 index=$(( ${#HOSTS[@]} + 1 ))
    local dir=$SYSTEST_RUN/hosts/$name ns=hst-$SYSTEST_ID-$name veth=hst${SYSTEST_ID}v$index
    local ip=$SYSTEST_NET.$((10 + index))
    net_up
    HOSTS+=("$name")
    HOST_INDEX[$name]=$index
    HOST_IP[$name]=$ip
    mkdir -p "$dir/upper" "$dir/work" "$dir/merged"
    mount -t overlay overlay \
        -o "lowerdir=$(root_dir),upperdir=$dir/upper,workdir=$dir/work" "$dir/merged"
    host_seed "$name" "$dir/merged"

    ip netns add "$ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$SYSTEST_BRIDGE" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$SYSTEST_GATEWAY"

    # setsid: the container must not get the test's terminal signals; its
    # console is /dev/null (the journal inside has everything).
    setsid systemd-nspawn --quiet --boot --register=no --keep-unit \
        --directory="$dir/merged" --machine="$name" --hostname="$name" \
        --network-namespace-path="/run/netns/$ns" \
        --console=passive --resolv-conf=off --timezone=off --link-journal=no \
        </dev/null >"$dir/nspawn.log" 2>&1 &
    HOST_NSPAWN[$name]=$!
    echo "${HOST_NSPAWN[$name]}" >"$dir/nspawn.pid"

    # The container's PID 1 is the nspawn process's descendant whose PID in
    # its own namespace is 1.
    local leader="" pid deadline=$((SECONDS + 30))
    while [ -z "$leader" ]; do
        for pid in $(descendants "${HOST_NSPAWN[$name]}"); do
            if awk '/^NSpid:/ { exit !($NF == 1 && NF > 2) }' "/proc/$pid/status" 2>/dev/null; then
                leader=$pid
                break
            fi
        done
        [ -n "$leader" ] && break
        kill -0 "${HOST_NSPAWN[$name]}" 2>/dev/null || { cat "$dir/nspawn.log" >&2; die "$name: systemd-nspawn exited"; }
        [ "$SECONDS" -lt "$deadline" ] || die "$name: no container PID 1 after 30 s"
        sleep 0.1
    done
    HOST_LEADER[$name]=$leader
    # systemctl talks to PID 1 over /run/systemd/private, which systemd
    # creates early in boot; before that there is nothing to ask.
    while [ ! -S "/proc/$leader/root/run/systemd/private" ]; do
        kill -0 "${HOST_NSPAWN[$name]}" 2>/dev/null || { cat "$dir/nspawn.log" >&2; die "$name: systemd-nspawn exited"; }
        [ "$SECONDS" -lt "$deadline" ] || die "$name: systemd did not start within 30 s"
        sleep 0.1
    done
    # Boot finished: the event systemd itself reports, bounded.
    local state
    state=$(timeout 90 nsenter -t "$leader" -a -- systemctl is-system-running --wait 2>&1) || true
    case $state in
        running) ;;
        degraded)
            log "$name: booted degraded; failed units:"
            hx "$name" systemctl --failed --no-legend >&2 || true ;;
        *) die "$name: boot did not finish (systemctl is-system-running: ${state:-timeout})" ;;
    esac
    log "$name booted at $ip (PID 1 = $leader)"
}

# host_seed NAME ROOT: per-host files written before boot.
host_seed() {
    local name=$1 r=$2
    echo "$name" >"$r/etc/hostname"
    mkdir -p -m 0700 "$r/root/.ssh"
    cp "$SYSTEST_RUN/ssh/id_ed25519.pub" "$r/root/.ssh/authorized_keys"
    chmod 0600 "$r/root/.ssh/authorized_keys"
    {
        echo "127.0.0.1 localhost"
        echo "$SYSTEST_GATEWAY controller"
    } >"$r/etc/hosts"
}

# descendants PID: every process below PID, breadth first.
descendants() {
    local queue=("$1") pid child
    while [ ${#queue[@]} -gt 0 ]; do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
            echo "$child"
            queue+=("$child")
        done
    done
}

# hx NAME COMMAND...: runs COMMAND inside the host (all its namespaces), with
# a clean environment so nothing of the harness's leaks in.
hx() {
    local name=$1
    shift
    nsenter -t "${HOST_LEADER[$name]}" -a -- \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 HOME=/root SYSTEMD_PAGER= "$@"
}

# hsh NAME SCRIPT: runs a shell script inside the host.
hsh() {
    local name=$1
    shift
    hx "$name" sh -ec "$1"
}

# host_put NAME SRC DEST: copies a file from this machine into the host.
host_put() {
    hx "$1" sh -c 'cat >"$1"' put "$3" <"$2"
}

# host_stop NAME: powers the host off (nspawn turns SIGTERM into an orderly
# shutdown), bounded; then SIGKILL.
host_stop() {
    local name=$1 pid=${HOST_NSPAWN[$1]:-}
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 20))
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name: no shutdown after 20 s: SIGKILL to nspawn $pid"
            kill -KILL "$pid" 2>/dev/null || true
            local leader=${HOST_LEADER[$name]:-}
            [ -z "$leader" ] || kill -KILL "$leader" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    fi
    unset "HOST_NSPAWN[$name]"
}

# hosts_teardown: everything the hosts of this test used, in reverse order.
# Safe to call twice and after a partial boot.
hosts_teardown() {
    local name dir sock
    # SSH connection masters Ansible left (lib/ansible.sh): asked to exit.
    if [ -f "$SYSTEST_RUN/ssh/cm-dir" ]; then
        dir=$(cat "$SYSTEST_RUN/ssh/cm-dir")
        for sock in "$dir"/*; do
            [ -S "$sock" ] && ssh -o ControlPath="$sock" -O exit systest >/dev/null 2>&1 || true
        done
        rm -rf "$dir" "$SYSTEST_RUN/ssh/cm-dir"
    fi
    for name in "${HOSTS[@]}"; do host_stop "$name"; done
    for name in "${HOSTS[@]}"; do
        dir=$SYSTEST_RUN/hosts/$name
        if mountpoint -q "$dir/merged" 2>/dev/null; then
            umount "$dir/merged" 2>/dev/null || umount -l "$dir/merged" 2>/dev/null || true
        fi
        ip netns del "hst-$SYSTEST_ID-$name" 2>/dev/null || true
        ip link del "hst${SYSTEST_ID}v${HOST_INDEX[$name]}" 2>/dev/null || true
    done
    if [ "$SYSTEST_NET_UP" = 1 ]; then
        ip link del "$SYSTEST_BRIDGE" 2>/dev/null || true
        SYSTEST_NET_UP=0
    fi
    HOSTS=()
    HOST_LEADER=() HOST_NSPAWN=() HOST_IP=() HOST_INDEX=()
}
