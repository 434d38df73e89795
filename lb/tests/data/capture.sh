#!/usr/bin/env bash
# Captures the runtime API outputs the unit tests parse, from a real HAProxy:
#   lb/tests/data/capture.sh haproxy DIR
# (for another version, e.g. a Debian 13 chroot: "chroot ROOT haproxy").
# Starts HAProxy in master-worker mode on loopback with three servers (one
# drained, one with an agent saying "up 50%", one down), one backend in
# maintenance, and one held-open session; writes show stat, show servers
# state, show info and show proc (before and after a failed reload, and
# after one that loaded while a session kept the old worker) to DIR.
set -euo pipefail
haproxy=$1 out=$2
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cli() { python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode()); s.shutdown(socket.SHUT_WR)
out = b""
while chunk := s.recv(65536): out += chunk
sys.stdout.write(out.decode())
PY
}
python3 -m http.server --bind 127.0.0.1 28081 >/dev/null 2>&1 & pids+=($!)
# web2: a server that holds the connection open, and an agent.
python3 -c 'import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1",28082)); s.listen()
c=[]
while True: c.append(s.accept()[0])' & pids+=($!)
python3 -c 'import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1",28083)); s.listen()
while True:
  c,_=s.accept(); c.sendall(b"up ready 50% #from agent\n"); c.close()' & pids+=($!)
cat >"$work/h.cfg" <<CFG
global
    stats socket $work/admin.sock mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:28080
    default_backend web
backend web
    balance first
    server web2 127.0.0.1:28082 weight 100 agent-check agent-port 28083 agent-inter 200ms
    server web1 127.0.0.1:28081 weight 100 check inter 200ms
    server web3 127.0.0.1:28089 check inter 200ms
backend api
    server api1 127.0.0.1:28084 disabled
CFG
$haproxy -W -S "$work/master.sock" -f "$work/h.cfg" -db >/dev/null 2>&1 & pids+=($!)
sleep 2
cli "$work/admin.sock" "set server web/web1 state drain" >/dev/null
# One session held open to web2 (balance first sends it there).
python3 -c 'import socket,time
s=socket.create_connection(("127.0.0.1",28080)); s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"); time.sleep(30)' & pids+=($!)
sleep 1.5
mkdir -p "$out"
cli "$work/admin.sock" "show stat" >"$out/show-stat.txt"
cli "$work/admin.sock" "show servers state" >"$out/show-servers-state.txt"
cli "$work/admin.sock" "show info" >"$out/show-info.txt"
cli "$work/master.sock" "show proc" >"$out/show-proc.txt"
# A reload that fails: the new configuration binds a port that is taken.
python3 -c 'import socket,time
s=socket.socket(); s.bind(("127.0.0.1",28090)); s.listen(); time.sleep(30)' & pids+=($!)
sleep 0.3
sed -i 's/bind 127.0.0.1:28080/bind 127.0.0.1:28080\n    bind 127.0.0.1:28090/' "$work/h.cfg"
cli "$work/master.sock" "reload" >"$out/reload-failed.txt" || true
sleep 2
cli "$work/master.sock" "show proc" >"$out/show-proc-failed.txt"
# A reload that loads: the session held open keeps the old worker, listed
# under "# old workers" next to the new one.
sed -i '/bind 127.0.0.1:28090/d' "$work/h.cfg"
cli "$work/master.sock" "reload" >/dev/null || true
sleep 2
cli "$work/master.sock" "show proc" >"$out/show-proc-reloaded.txt"
