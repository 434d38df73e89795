# Talking to hapgent on a test host, from this machine, over the test network.

# agent_reply HOST [PORT]: the agent's one-line reply, as HAProxy reads it.
agent_reply() {
    local ip=${HOST_IP[$1]} port=${2:-9777}
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && IFS= read -r line <&3 && printf "%s\n" "$line"' "$ip" "$port"
}

# reply_is HOST EXPECTED: for wait_until. EXPECTED is the full reply; while
# it drains, an address already served it gets the repeat without the
# weight (docs/operations.md, "Repeats while drained"), which matches too.
reply_is() {
    local got
    got=$(agent_reply "$1" 2>/dev/null) || return 1
    [ "$got" = "$2" ] && return 0
    [[ " $2 " == *" drain "* ]] && [ "$got" = "$(sed -E 's/ [0-9]+%//' <<<"$2")" ]
}

# main_pid HOST: hapgent.service's MainPID inside the host (0 if stopped).
main_pid() { hx "$1" systemctl show -P MainPID hapgent.service; }

# service_user HOST: the user the service's main process runs as.
service_user() { hx "$1" ps -o user= -p "$(main_pid "$1")" | tr -d ' '; }

# deb_install HOST DEB: copies DEB into the host and installs it with apt,
# as an operator would (`apt install ./file.deb`).
deb_install() {
    local name=$1 deb=$2
    host_put "$name" "$deb" "/root/$(basename "$deb")"
    hx "$name" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        "/root/$(basename "$deb")" </dev/null >"$SYSTEST_RUN/apt-$name.log" 2>&1 ||
        { tail -n 20 "$SYSTEST_RUN/apt-$name.log" >&2; return 1; }
}

# journal_has HOST REGEX: the hapgent unit's journal has a matching line.
journal_has() { grep -Eq "$2" <<<"$(hx "$1" journalctl -q -u hapgent.service -o cat --no-pager)"; }

# state_has HOST REGEX: the state file matches.
state_has() { grep -Eq "$2" <<<"$(hx "$1" cat /var/lib/hapgent/state.json)"; }

# is_active HOST: hapgent.service is active.
is_active() { [ "$(hx "$1" systemctl is-active hapgent.service)" = active ]; }

# pid_changed HOST OLD: the service runs, under another MainPID than OLD.
pid_changed() { local p; p=$(main_pid "$1"); [ "$p" != 0 ] && [ "$p" != "$2" ]; }
