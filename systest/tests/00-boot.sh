# System tests: the harness itself.

# A host boots with systemd as PID 1, on 198.18.0.0/15, reachable from here.
test_boot() {
    host_boot h1
    expect "PID 1 in the host is systemd" eq "$(hx h1 cat /proc/1/comm)" systemd
    expect "the host has its 198.18 address" matches "$(hx h1 ip -4 -o addr show eth0)" "inet ${HOST_IP[h1]}/24"
    expect "this machine reaches the host's sshd" \
        timeout 5 bash -c "exec 3<>/dev/tcp/${HOST_IP[h1]}/22"
}
