# System tests: hapgent-lb on a booted HAProxy host, installed by its .deb
# (the README's steps) or by the Ansible role hapgent_lb, its API used over
# the Unix socket by a member of group haproxy, a good and an invalid
# configuration PUT checked against the running HAProxy.

# haproxy_up HOST: Debian's HAProxy on HOST with its packaged haproxy.cfg
# (the harness's root keeps it masked until a test needs it), its master
# socket usable by group haproxy as the README says.
haproxy_up() {
    hx "$1" rm -f /etc/systemd/system/haproxy.service
    hsh "$1" 'echo "EXTRAOPTS=\"-S /run/haproxy-master.sock,mode,660,group,haproxy\"" >> /etc/default/haproxy'
    hx "$1" systemctl daemon-reload
    hx "$1" systemctl restart haproxy.service
    wait_until 20 "$1: HAProxy answers on its stats socket" haproxy_cli "$1" "show info"
}

# haproxy_cli HOST COMMAND: HAProxy's runtime API on HOST, as root.
haproxy_cli() {
    hx "$1" sh -c 'echo "$1" | socat -t 2 stdio unix-connect:/run/haproxy/admin.sock' cli "$2"
}

# haproxy_pid HOST: the PID of HAProxy's worker (show info), for "a reload
# happened".
haproxy_pid() { haproxy_cli "$1" "show info" | sed -n 's/^Pid: //p'; }

# haproxy_serves HOST BACKEND: HAProxy's show stat has BACKEND.
haproxy_serves() { haproxy_cli "$1" "show stat" | grep -q "^$2,BACKEND,"; }

# lb_api HOST USER CURL_ARGS...: a request to hapgent-lb's API socket as
# USER; prints "HTTP_CODE BODY" (the body on one line).
lb_api() {
    local host=$1 user=$2 code
    shift 2
    code=$(hx "$host" runuser -u "$user" -- curl -sS --max-time 30 --unix-socket /run/hapgent-lb/api.sock \
        -o /tmp/lb-api.body -w '%{http_code}' "$@") || true
    printf '%s %s\n' "$code" "$(hx "$host" cat /tmp/lb-api.body 2>/dev/null | tr '\n' ' ')"
}

# lb_unit_up HOST: hapgent-lb.service is active and its API socket exists.
lb_unit_up() {
    [ "$(hx "$1" systemctl is-active hapgent-lb.service)" = active ] &&
        hx "$1" test -S /run/hapgent-lb/api.sock
}

# lb_api_flow HOST: the API's promises as seen by carol (group haproxy) and
# dave (not in it): read, a good PUT applied and served by HAProxy, an
# invalid PUT refused with nothing changed.
lb_api_flow() {
    local h=$1 reply etag pid cfg
    hx "$h" useradd --create-home --groups haproxy carol
    hx "$h" useradd --create-home dave
    expect "$h: the API socket is 660 hapgent-lb:haproxy in /run/hapgent-lb (750)" \
        eq "$(hx "$h" stat -c '%a %U:%G' /run/hapgent-lb/api.sock /run/hapgent-lb | tr '\n' ' ')" \
        "660 hapgent-lb:haproxy 750 hapgent-lb:haproxy "
    reply=$(lb_api "$h" carol http://lb/v1/backends)
    expect "$h: carol (group haproxy) gets 200 and the backends from GET /v1/backends" \
        matches "$reply" '^200 \{ *"backends": *\['
    expect_not "$h: dave (not in the group) cannot reach the API socket" \
        quiet hx "$h" runuser -u dave -- curl -sS --max-time 10 --unix-socket /run/hapgent-lb/api.sock http://lb/v1/backends

    etag=$(hx "$h" runuser -u carol -- curl -sS --max-time 30 --unix-socket /run/hapgent-lb/api.sock \
        -D - -o /dev/null http://lb/v1/config | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p' | tr -d '\r')
    expect "$h: GET /v1/config gives an ETag" matches "$etag" '^"[0-9a-f]{64}"$'

    # A good change: the packaged haproxy.cfg plus a backend.
    pid=$(haproxy_pid "$h")
    hsh "$h" 'cp /etc/haproxy/haproxy.cfg /tmp/good.cfg
              printf "\nbackend systest_new\n    server s1 127.0.0.1:9 disabled\n" >> /tmp/good.cfg
              chmod 644 /tmp/good.cfg'
    reply=$(lb_api "$h" carol -X PUT --data-binary @/tmp/good.cfg -H "If-Match: $etag" http://lb/v1/config)
    expect "$h: a valid PUT /v1/config answers 200" matches "$reply" '^200 '
    expect "$h: haproxy.cfg is the new file" hx "$h" cmp /tmp/good.cfg /etc/haproxy/haproxy.cfg
    expect "$h: HAProxy was reloaded: a new worker (was $pid)" test "$(haproxy_pid "$h")" != "$pid"
    expect "$h: HAProxy's show stat has backend systest_new" haproxy_serves "$h" systest_new
    expect "$h: the audit line names carol's uid" \
        grep -Eq "audit: config change by uid $(hx "$h" id -u carol): .*: applied \(200\)" \
        <<<"$(hx "$h" journalctl -q -u hapgent-lb.service -o cat --no-pager)"

    # An invalid change: refused by haproxy -c, nothing changes.
    etag=$(hx "$h" runuser -u carol -- curl -sS --max-time 30 --unix-socket /run/hapgent-lb/api.sock \
        -D - -o /dev/null http://lb/v1/config | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p' | tr -d '\r')
    pid=$(haproxy_pid "$h")
    cfg=$(hx "$h" sha256sum /etc/haproxy/haproxy.cfg)
    hsh "$h" 'cp /tmp/good.cfg /tmp/bad.cfg && printf "\nbackend systest_bad\n    no-such-directive 1\n" >> /tmp/bad.cfg
              chmod 644 /tmp/bad.cfg'
    reply=$(lb_api "$h" carol -X PUT --data-binary @/tmp/bad.cfg -H "If-Match: $etag" http://lb/v1/config)
    expect "$h: an invalid PUT answers 422 with HAProxy's complaint" matches "$reply" '^422 .*no-such-directive'
    expect "$h: haproxy.cfg is unchanged" eq "$(hx "$h" sha256sum /etc/haproxy/haproxy.cfg)" "$cfg"
    expect "$h: HAProxy was not reloaded (same worker $pid)" eq "$(haproxy_pid "$h")" "$pid"
    expect "$h: and still serves systest_new" haproxy_serves "$h" systest_new

    # A new bind on a port below 1024 that another process holds: refused
    # by the pre-flight (the unit's CAP_NET_BIND_SERVICE lets hapgent-lb
    # test-bind it), so HAProxy never pauses its listeners retrying it.
    hx "$h" systemd-run --quiet --unit=systest-hold-81 python3 -c \
        'import socket, time; s = socket.socket(); s.bind(("127.0.0.1", 81)); s.listen(); time.sleep(3600)'
    wait_until 20 "$h: port 81 is held" \
        hx "$h" python3 -c 'import socket; socket.create_connection(("127.0.0.1", 81), 2)'
    hsh "$h" 'cp /tmp/good.cfg /tmp/taken.cfg
              printf "\nfrontend systest_taken\n    bind 127.0.0.1:81\n    default_backend systest_new\n" >> /tmp/taken.cfg
              chmod 644 /tmp/taken.cfg'
    reply=$(lb_api "$h" carol -X PUT --data-binary @/tmp/taken.cfg -H "If-Match: $etag" http://lb/v1/config)
    expect "$h: a bind on a held port below 1024 answers 422 before any reload" \
        matches "$reply" '^422 .*127\.0\.0\.1:81 is already in use'
    expect "$h: HAProxy was not reloaded (same worker $pid)" eq "$(haproxy_pid "$h")" "$pid"
    hx "$h" systemctl stop systest-hold-81
    expect "$h: hapgent-lb never restarted" eq "$(hx "$h" systemctl show -P NRestarts hapgent-lb.service)" 0
}

# The .deb, after the README's steps: the unit starts and stays up as
# hapgent-lb, serves the API to group haproxy (GET, good PUT applied by
# HAProxy, invalid PUT refused), scores at most 2.5 in systemd-analyze
# security; purge removes it.
test_lb_deb() {
    host_boot lb1
    haproxy_up lb1
    expect "apt installs $(basename "$(dist_lb_deb)")" deb_install lb1 "$(dist_lb_deb)"
    hx lb1 systemctl restart haproxy.service hapgent-lb.service
    wait_until 20 "hapgent-lb.service is active with its API socket" lb_unit_up lb1
    expect "hapgent-lb.service is enabled" eq "$(hx lb1 systemctl is-enabled hapgent-lb.service)" enabled
    expect "it runs as hapgent-lb in group haproxy" \
        eq "$(hx lb1 stat -c '%U %G' "/proc/$(hx lb1 systemctl show -P MainPID hapgent-lb.service)")" \
        "hapgent-lb haproxy"
    expect "/etc/haproxy is group-writable (setgid) for haproxy" \
        eq "$(hx lb1 stat -c '%A %G' /etc/haproxy)" "drwxrwsr-x haproxy"
    lb_api_flow lb1

    local out score
    out=$(hx lb1 systemd-analyze security --no-pager hapgent-lb.service)
    score=$(sed -n 's/.*Overall exposure level for hapgent-lb.service: \([0-9.]*\).*/\1/p' <<<"$out")
    expect "systemd-analyze printed an exposure level" matches "$score" '^[0-9]+\.[0-9]+$'
    figure lb_exposure "$score"
    expect "exposure $score <= 2.5" awk -v s="$score" 'BEGIN { exit !(s <= 2.5) }'
    expect "systemd-analyze verify passes the unit with no complaint" \
        eq "$(hx lb1 systemd-analyze verify --man=no hapgent-lb.service 2>&1)" ""

    hx lb1 env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q hapgent-lb </dev/null >/dev/null
    expect "purge stopped the service" quiet hx lb1 test ! -S /run/hapgent-lb/api.sock
    expect "purge removed the binary and /etc/hapgent-lb" \
        hx lb1 sh -c '[ ! -e /usr/bin/hapgent-lb ] && [ ! -e /etc/hapgent-lb ]'
    expect_not "the package is gone" quiet hx lb1 dpkg-query -W hapgent-lb
    expect "the enablement symlink is gone" \
        hx lb1 test ! -e /etc/systemd/system/multi-user.target.wants/hapgent-lb.service
    expect "HAProxy keeps running, serving the last applied configuration" haproxy_serves lb1 systest_new
    expect "the system user is kept (see lb/debian/postrm)" quiet hx lb1 getent passwd hapgent-lb
}

# lb_role HOST NAME [args...]: examples/site-lb.yml (the role hapgent_lb)
# on HOST over SSH, with the signed mirror of dist/.
lb_role() {
    local h=$1 name=$2
    shift 2
    playbook "$name" -i "$SYSTEST_RUN/inventory-lb.ini" examples/site-lb.yml \
        -e "hapgent_lb_release_url=$SYSTEST_RUN/mirror" \
        -e "hapgent_lb_allowed_signers_file=$SYSTEST_RUN/allowed_signers" \
        -e "hapgent_lb_local_cache_path=$SYSTEST_RUN/cache" "$@"
}

# The role hapgent_lb over SSH, binary method: the repository's unit and a
# drop-in start, serve the API to group haproxy (GET, good PUT, invalid
# PUT); a second run changes nothing; switching to the deb method replaces
# the binary install with the package, which purge then removes.
test_lb_ansible_role() {
    local pid
    ansible_setup
    host_boot lb1
    haproxy_up lb1
    mirror_signed "$SYSTEST_RUN/mirror" "$SYSTEST_RUN/allowed_signers" "$(version)"
    inventory "$SYSTEST_RUN/inventory-lb.ini" haproxy lb1
    lb_role lb1 first -e hapgent_lb_install_method=binary || { show first 60; die "the role (binary method) failed"; }
    wait_until 20 "hapgent-lb.service is active with its API socket" lb_unit_up lb1
    expect "hapgent-lb.service is enabled" eq "$(hx lb1 systemctl is-enabled hapgent-lb.service)" enabled
    expect "the installed unit is systemd/hapgent-lb.service" \
        eq "$(hx lb1 cat /etc/systemd/system/hapgent-lb.service | sha256sum)" \
        "$(sha256sum <"$REPO/systemd/hapgent-lb.service")"
    pid=$(hx lb1 systemctl show -P MainPID hapgent-lb.service)
    expect "it runs dist/'s binary from /usr/local/bin" \
        eq "$(hx lb1 readlink "/proc/$pid/exe") $(hx lb1 sha256sum "/proc/$pid/exe" | cut -d' ' -f1)" \
        "/usr/local/bin/hapgent-lb $(sha256sum <"$(dist_lb_binary)" | cut -d' ' -f1)"
    lb_api_flow lb1
    expect "a second run succeeds" lb_role lb1 second -e hapgent_lb_install_method=binary
    expect "and reports changed=0" eq "$(recap_total second changed)" 0
    expect "hapgent-lb was not restarted" eq "$(hx lb1 systemctl show -P MainPID hapgent-lb.service)" "$pid"

    expect "a run with the deb method succeeds" lb_role lb1 deb
    wait_until 20 "hapgent-lb.service is active again with its API socket" lb_unit_up lb1
    expect "it runs /usr/bin/hapgent-lb from the package" \
        eq "$(hx lb1 readlink "/proc/$(hx lb1 systemctl show -P MainPID hapgent-lb.service)/exe")" /usr/bin/hapgent-lb
    expect "the binary method's unit, binary and drop-in are gone" \
        hx lb1 sh -c '[ ! -e /etc/systemd/system/hapgent-lb.service ] && [ ! -e /usr/local/bin/hapgent-lb ] &&
            [ ! -e /etc/systemd/system/hapgent-lb.service.d/ansible.conf ]'
    expect "carol still gets GET /v1/backends" matches "$(lb_api lb1 carol http://lb/v1/backends)" '^200 '
    hx lb1 env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q hapgent-lb </dev/null >/dev/null
    expect "purge stopped the service and removed binary and configuration" \
        hx lb1 sh -c '[ ! -S /run/hapgent-lb/api.sock ] && [ ! -e /usr/bin/hapgent-lb ] && [ ! -e /etc/hapgent-lb ]'
    expect "HAProxy keeps serving the last applied configuration" haproxy_serves lb1 systest_new
}
