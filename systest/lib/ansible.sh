# Ansible on this machine (the controller), driving test hosts over SSH.
#
# ansible-core is installed into a virtualenv under the cache, keyed by its
# version, so it is installed once per machine. The version is the pin in
# ansible/requirements-ci.txt, shared with .ci/ansible.sh (which lints).

SYSTEST_ANSIBLE_CORE=$(sed -n 's/^ansible-core==//p' "$REPO/ansible/requirements-ci.txt")

# ansible_setup: the venv (cached) and the environment every run uses; all
# of Ansible's own files go under the test's run directory.
ansible_setup() {
    local venv=$SYSTEST_CACHE/venv-ansible-core-$SYSTEST_ANSIBLE_CORE
    # .complete marks a finished install: an interrupted one is redone.
    if [ ! -f "$venv/.complete" ]; then
        log "installing ansible-core $SYSTEST_ANSIBLE_CORE into $(basename "$venv")"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check \
            "ansible-core==$SYSTEST_ANSIBLE_CORE" >&2
        touch "$venv/.complete"
    fi
    export PATH=$venv/bin:$PATH
    export XDG_CACHE_HOME=$SYSTEST_RUN/xdg-cache
    export ANSIBLE_HOME=$SYSTEST_RUN/ansible-home
    export ANSIBLE_LOCAL_TEMP=$SYSTEST_RUN/ansible-tmp
    export ANSIBLE_ROLES_PATH=$REPO/ansible/roles
    export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_RETRY_FILES_ENABLED=0
    export ANSIBLE_PIPELINING=1 ANSIBLE_HOST_KEY_CHECKING=0
    # Connection sharing, with its sockets in a short directory (a Unix
    # socket path has at most 107 bytes); hosts_teardown closes the masters.
    SYSTEST_SSH_CM=$(mktemp -d /tmp/hst-cm.XXXXXX)
    echo "$SYSTEST_SSH_CM" >"$SYSTEST_RUN/ssh/cm-dir"
    export ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=120s -o ControlPath=$SYSTEST_SSH_CM/%C -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR"
    export ANSIBLE_PRIVATE_KEY_FILE=$SYSTEST_RUN/ssh/id_ed25519
    # Task results per line, and nothing hidden: the logs are the evidence.
    export ANSIBLE_CALLBACK_RESULT_FORMAT=yaml
}

# inventory FILE GROUP HOST... [-- VAR=VALUE...]: an inventory of test hosts
# in GROUP, reached as root over SSH at their 198.18 addresses.
inventory() {
    local file=$1 group=$2 h
    shift 2
    {
        echo "[$group]"
        while [ $# -gt 0 ] && [ "$1" != -- ]; do
            echo "$1 ansible_host=${HOST_IP[$1]}"
            shift
        done
        [ "${1:-}" != -- ] || shift
        echo "[$group:vars]"
        echo "ansible_user=root"
        echo "ansible_python_interpreter=/usr/bin/python3"
        for h in "$@"; do echo "$h"; done
    } >"$file"
}

# playbook NAME [ansible-playbook args...]: runs ansible-playbook from
# ansible/, output in $SYSTEST_RUN/NAME.log; returns its exit code.
playbook() {
    local name=$1 rc=0
    shift
    (cd "$REPO/ansible" && ansible-playbook "$@") >"$SYSTEST_RUN/$name.log" 2>&1 || rc=$?
    return "$rc"
}

# recap_total NAME FIELD: the sum of FIELD (changed, failed...) over every
# host in the run's PLAY RECAP.
recap_total() {
    sed -n '/^PLAY RECAP/,$p' "$SYSTEST_RUN/$1.log" |
        sed -n "s/.* $2=\([0-9]*\).*/\1/p" | awk '{ s += $1 } END { print s + 0 }'
}

# show NAME [LINES]: the end of a run's log, for a failing test.
show() { tail -n "${2:-40}" "$SYSTEST_RUN/$1.log" | sed 's/^/      | /' >&2; }
