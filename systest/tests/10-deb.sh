# System tests: the .deb on a booted Debian host (systemd as PID 1).

# deb_host NAME: a booted host with dist/'s .deb installed and its service up.
deb_host() {
    host_boot "$1"
    expect "apt installs $(basename "$(dist_deb)")" deb_install "$1" "$(dist_deb)"
    wait_until 20 "hapgent answers on ${HOST_IP[$1]}:9777" reply_is "$1" "up ready 100%"
}

# Installing the .deb starts an enabled service, as user hapgent, answering on 9777.
test_deb_install() {
    deb_host h1
    expect "hapgent.service is active" eq "$(hx h1 systemctl is-active hapgent.service)" active
    expect "hapgent.service is enabled" eq "$(hx h1 systemctl is-enabled hapgent.service)" enabled
    expect "the agent runs as user hapgent" eq "$(service_user h1)" hapgent
    expect "the agent listens on port 9777" matches "$(hx h1 ss -Htln 'sport = :9777')" 'LISTEN'
    expect "the state file is {\"status\":\"UP\"}, owned by hapgent" \
        eq "$(hx h1 stat -c %U /var/lib/hapgent/state.json) $(hx h1 cat /var/lib/hapgent/state.json | tr -d ' \n')" \
        'hapgent {"status":"UP"}'
}

# `systemctl reload` after a state-file edit serves the new state, same process.
test_deb_reload_applies_state() {
    deb_host h1
    local pid
    pid=$(main_pid h1)
    hsh h1 'printf "{\"status\":\"DRAIN\",\"weight\":50}\n" > /var/lib/hapgent/state.json'
    hx h1 systemctl reload hapgent.service
    wait_until 10 "the agent replies 'up drain 50%'" reply_is h1 "up drain 50%"
    expect "the reload kept the process (MainPID $pid)" eq "$(main_pid h1)" "$pid"
}

# `systemctl reload` after a config edit applies it: log_requests = true makes
# probes appear in the journal.
test_deb_reload_applies_config() {
    deb_host h1
    hsh h1 'sed -i "s/^#log_requests = false/log_requests = true/" /etc/hapgent/hapgent.toml'
    expect "hapgent.toml now sets log_requests = true" \
        matches "$(hx h1 hapgent check-config)" 'log_requests = true +# file'
    expect_not "no probe is logged before the reload" journal_has h1 'probe from'
    hx h1 systemctl reload hapgent.service
    wait_until 10 "the unit is active again after the reload" is_active h1
    agent_reply h1 >/dev/null
    wait_until 10 "the journal shows the probe from this machine ($SYSTEST_GATEWAY)" \
        journal_has h1 "probe from $SYSTEST_GATEWAY:[0-9]+: up ready 100%"
}

# `hapgent ctl` works without sudo for a member of the control group (the
# package's hapgent group; the unit's RuntimeDirectory holds the socket) and
# is refused with exit 77 for anyone else, changing nothing.
test_deb_ctl_group() {
    deb_host h1
    hx h1 useradd --create-home --groups hapgent alice
    hx h1 useradd --create-home bob
    expect "the control socket is 660 hapgent:hapgent in /run/hapgent (750)" \
        eq "$(hx h1 stat -c '%a %U:%G' /run/hapgent/control.sock /run/hapgent | tr '\n' ' ')" \
        "660 hapgent:hapgent 750 hapgent:hapgent "
    expect "alice (group hapgent) drains the host with hapgent ctl" \
        hx h1 runuser -u alice -- hapgent ctl drain
    wait_until 10 "the agent replies 'up drain 100%'" reply_is h1 "up drain 100%"
    expect "the change is in the state file" state_has h1 '"status": *"DRAIN"'
    # Under the unit's PrivateUsers=yes, users other than root and hapgent
    # are not mapped: the log shows uid 65534 (nobody) and the real pid.
    expect "the journal logs the change with its cause and the client's pid" \
        journal_has h1 'UP -> DRAIN \(ctl by uid [0-9]+ \([a-z]+\) pid [0-9]+\)'
    expect "bob (not in the group) is refused with exit 77" \
        eq "$(hsh h1 'rc=0; runuser -u bob -- hapgent ctl ready >/dev/null 2>&1 || rc=$?; echo $rc')" 77
    expect "bob's attempt changed nothing" reply_is h1 "up drain 100%"
    expect "root may use it too" hx h1 hapgent ctl ready
    wait_until 10 "the agent replies 'up ready 100%'" reply_is h1 "up ready 100%"
}

# SIGUSR2 sets DOWN and the state file keeps it.
test_deb_usr2_persisted() {
    deb_host h1
    hx h1 systemctl kill --signal=SIGUSR2 hapgent.service
    wait_until 10 "the agent replies 'down 100%'" reply_is h1 "down 100%"
    wait_until 10 "the state file says DOWN" state_has h1 '"status": *"DOWN"'
    expect "the state file is still owned by hapgent" \
        eq "$(hx h1 stat -c %U:%G /var/lib/hapgent/state.json)" hapgent:hapgent
}

# A restart keeps the state set by a signal.
test_deb_restart_keeps_state() {
    deb_host h1
    local pid
    pid=$(main_pid h1)
    hx h1 systemctl kill --signal=SIGUSR2 hapgent.service
    wait_until 10 "the state file says DOWN" state_has h1 '"status": *"DOWN"'
    hx h1 systemctl restart hapgent.service
    expect "the restart started a new process" pid_changed h1 "$pid"
    wait_until 10 "the new process replies 'down 100%'" reply_is h1 "down 100%"
}

# Upgrading from the previous package version keeps state and configuration.
test_deb_upgrade_keeps_state_and_config() {
    host_boot h1
    local ver previous pid
    ver=$(version)
    previous=$SYSTEST_RUN/hapgent_$ver-0_$(deb_arch).deb
    deb_with_version "$(dist_deb)" "$ver-0" "$previous"
    expect "apt installs the previous version $ver-0" deb_install h1 "$previous"
    wait_until 20 "the previous version answers" reply_is h1 "up ready 100%"
    hsh h1 'printf "{\"status\":\"DRAIN\",\"weight\":30,\"description\":\"kept\"}\n" > /var/lib/hapgent/state.json
            sed -i "s/^#max_connections = 1024/max_connections = 77/" /etc/hapgent/hapgent.toml'
    hx h1 systemctl restart hapgent.service
    wait_until 10 "the edited state is served" reply_is h1 "up drain 30% # kept"
    pid=$(main_pid h1)
    expect "apt upgrades to $ver-1" deb_install h1 "$(dist_deb)"
    expect "version $ver-1 is installed" \
        eq "$(hx h1 dpkg-query -W -f '${Version}' hapgent)" "$ver-1"
    expect "the upgrade restarted the agent" pid_changed h1 "$pid"
    wait_until 10 "the state survived: 'up drain 30% # kept'" reply_is h1 "up drain 30% # kept"
    expect "the configuration edit survived (max_connections = 77 from the file)" \
        matches "$(hx h1 hapgent check-config)" 'max_connections = 77 +# file'
    expect "no .dpkg-new or .dpkg-dist copy of hapgent.toml" \
        eq "$(hx h1 find /etc/hapgent -name '*.dpkg-*')" ""
    local uid
    uid=$(hx h1 id -u hapgent)
    hx h1 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall \
        "/root/$(basename "$(dist_deb)")" </dev/null >"$SYSTEST_RUN/reinstall.log" 2>&1
    expect "after a reinstall: the state is still served" reply_is h1 "up drain 30% # kept"
    expect "after a reinstall: the configuration edit is still there" \
        matches "$(hx h1 hapgent check-config)" 'max_connections = 77 +# file'
    expect "after a reinstall: user hapgent kept its uid" eq "$(hx h1 id -u hapgent)" "$uid"
}

# The unit's exposure score (systemd-analyze security) is at most 1.5.
test_deb_exposure_score() {
    deb_host h1
    local out score
    out=$(hx h1 systemd-analyze security --no-pager hapgent.service)
    score=$(sed -n 's/.*Overall exposure level for hapgent.service: \([0-9.]*\).*/\1/p' <<<"$out")
    expect "systemd-analyze printed an exposure level" matches "$score" '^[0-9]+\.[0-9]+$'
    figure exposure "$score"
    expect "exposure $score <= 1.5" awk -v s="$score" 'BEGIN { exit !(s <= 1.5) }'
}

# remove keeps configuration and state; purge removes them.
test_deb_remove_and_purge() {
    deb_host h1
    hx h1 systemctl kill --signal=SIGUSR2 hapgent.service
    wait_until 10 "the state file says DOWN" state_has h1 '"status": *"DOWN"'
    hx h1 env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q hapgent </dev/null >/dev/null
    expect_not "the agent is stopped (no reply)" quiet agent_reply h1
    expect "the binary is gone" hx h1 test ! -e /usr/bin/hapgent
    expect "the package is in state config-files" \
        eq "$(hx h1 dpkg-query -W -f '${db:Status-Status}' hapgent)" config-files
    expect "hapgent.toml is kept" hx h1 test -f /etc/hapgent/hapgent.toml
    expect "the state file is kept (DOWN)" state_has h1 '"status": *"DOWN"'
    hx h1 env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q hapgent </dev/null >/dev/null
    expect "purge removed /etc/hapgent" hx h1 test ! -e /etc/hapgent
    expect "purge removed /var/lib/hapgent" hx h1 test ! -e /var/lib/hapgent
    expect_not "the package is gone" quiet hx h1 dpkg-query -W hapgent
    expect "the enablement symlink is gone" hx h1 test ! -e /etc/systemd/system/multi-user.target.wants/hapgent.service
    expect "the system user is kept (see debian/postrm)" quiet hx h1 getent passwd hapgent
}

# The package's files, modes and owners; the hapgent user cannot write its configuration.
test_deb_files_and_modes() {
    deb_host h1
    expect "/usr/bin/hapgent runs and says its version" eq "$(hx h1 hapgent --version)" "hapgent $(version)"
    local uid shell home
    IFS=: read -r _ _ uid _ _ home shell <<<"$(hx h1 getent passwd hapgent)"
    expect "hapgent is a system user (uid $uid < 1000)" test "$uid" -lt 1000
    expect "with no login shell and home /var/lib/hapgent" eq "$shell $home" "/usr/sbin/nologin /var/lib/hapgent"
    expect "its group is hapgent" eq "$(hx h1 id -gn hapgent)" hapgent
    expect "/etc/hapgent is 755 root:root" eq "$(hx h1 stat -c '%a %U:%G' /etc/hapgent)" "755 root:root"
    expect "hapgent.toml is 644 root:root" eq "$(hx h1 stat -c '%a %U:%G' /etc/hapgent/hapgent.toml)" "644 root:root"
    expect "/var/lib/hapgent is 755 hapgent:hapgent" eq "$(hx h1 stat -c '%a %U:%G' /var/lib/hapgent)" "755 hapgent:hapgent"
    expect_not "the hapgent user cannot write its configuration" \
        hx h1 setpriv --reuid=hapgent --regid=hapgent --init-groups test -w /etc/hapgent/hapgent.toml
    expect "the packaged configuration's commented examples are all valid settings" \
        hsh h1 'sed -e "s/^#\([a-z_]* = \)/\1/" -e "s/^#\(\[[a-z_.]*\]\)\$/\1/" /etc/hapgent/hapgent.toml > /tmp/uncommented.toml &&
                hapgent check-config --config /tmp/uncommented.toml >/dev/null'
    expect "hapgent.socket is installed but not enabled (opt-in)" \
        eq "$(hx h1 systemctl is-enabled hapgent.socket || true)" disabled
    expect "systemd-analyze verify passes both units with no complaint (man pages not checked: none installed)" \
        eq "$(hx h1 systemd-analyze verify --man=no hapgent.service hapgent.socket 2>&1)" ""
    expect_not "the state file is not a dpkg-owned file" quiet hx h1 dpkg -S /var/lib/hapgent/state.json
}

# A state file written before the package is installed is kept, and served.
test_deb_preseeded_state_kept() {
    host_boot h1
    hsh h1 'install -d -m 0755 /var/lib/hapgent && printf "{\"status\":\"DRAIN\",\"weight\":50}\n" > /var/lib/hapgent/state.json'
    expect "apt installs the package over the pre-seeded state" deb_install h1 "$(dist_deb)"
    wait_until 20 "the agent serves the pre-seeded state: 'up drain 50%'" reply_is h1 "up drain 50%"
    expect "the state file is unchanged" eq "$(hx h1 cat /var/lib/hapgent/state.json)" '{"status":"DRAIN","weight":50}'
    expect "the postinst gave the directory to hapgent" eq "$(hx h1 stat -c %U:%G /var/lib/hapgent)" hapgent:hapgent
}
