#!/usr/bin/env bash
# Static checks of the Ansible roles and playbooks (ansible/): ansible-lint
# (production profile), ansible-playbook --syntax-check, and the role's
# configuration template rendered on this machine and read back as TOML,
# with the pinned ansible-core and ansible-lint
# (ansible/requirements-ci.txt) in a throwaway virtualenv.
#
# What the roles and the rolling-deploy playbook do is checked where it
# runs for real, on booted Debian hosts over SSH, by the system tests
# (systest/tests/20-ansible.sh, 30-rolling.sh, 40-lb.sh; .ci/systest.sh):
# bad arguments and untrusted artifacts refused, both install methods,
# idempotent re-runs, handlers, an invalid configuration refused, and
# rolling deploys.
#
# Runs from any directory; leaves nothing behind.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source .ci/lib.sh
started=$SECONDS

work=$(mktemp -d /tmp/hapgent-ansible-ci.XXXXXX)
trap 'rm -rf "$work"' EXIT

step "Installing ansible-core and ansible-lint into a virtualenv"
# Everything Ansible and pip write goes under $work, not into ~.
export XDG_CACHE_HOME=$work/xdg-cache
export ANSIBLE_HOME=$work/ansible-home
export ANSIBLE_LOCAL_TEMP=$work/ansible-tmp
export ANSIBLE_ROLES_PATH=$PWD/ansible/roles
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_RETRY_FILES_ENABLED=0
export PY_COLORS=0 NO_COLOR=1
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check \
    -r ansible/requirements-ci.txt
export PATH=$work/venv/bin:$PATH
ansible --version | sed -n 1p
ansible-lint --version | sed -n 1p

step "ansible-lint --profile production"
expect "ansible-lint passes with the production profile" \
    bash -c 'cd ansible && ansible-lint --profile production --offline'

step "ansible-playbook --syntax-check"
for playbook in playbooks/rolling-deploy.yml examples/site.yml examples/site-lb.yml; do
    expect "$playbook parses" \
        quiet bash -c 'cd ansible && ansible-playbook -i localhost, --syntax-check "$1"' check "$playbook"
done

step "hapgent.toml.j2 renders the health tables as TOML"
# The template on this machine (no host, no hapgent binary): checks,
# capacity, maxconn_total and a service's checks come out as the TOML
# tables hapgent reads (exec's argv an array, strings quoted), and the
# defaults still render the file they always did.
cat >"$work/render.yml" <<'YAML'
- name: Render the role's configuration template.
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files: ["{{ role_path }}/defaults/main.yml"]
  tasks:
    - name: Render hapgent.toml.j2.
      ansible.builtin.template:
        src: "{{ role_path }}/templates/hapgent.toml.j2"
        dest: "{{ out }}"
        mode: "0644"
YAML
health='{"hapgent_maxconn_total": 200,
  "hapgent_checks": {"app": {"http": "http://127.0.0.1:8080/health", "fall": 2},
                     "db": {"exec": ["/usr/local/bin/check-db", "--quick", "a \"b\" $c"]}},
  "hapgent_capacity": {"drain_above": 90, "memory": {"full": 90}, "load": {}},
  "hapgent_services": {"api": {"state_file": "/var/lib/hapgent/api.json", "maxconn_total": 300,
                               "checks": {"health": {"tcp": "127.0.0.1:8081"}}}}}'
render() {
    ansible-playbook -i localhost, -e ansible_python_interpreter="$work/venv/bin/python" \
        -e role_path="$PWD/ansible/roles/hapgent" -e out="$1" "${@:2}" "$work/render.yml" >"$work/render.log" 2>&1 ||
        { cat "$work/render.log" >&2; return 1; }
}
toml_json() { python3 -c 'import json, sys, tomllib; print(json.dumps(tomllib.load(open(sys.argv[1], "rb")), sort_keys=True))' "$1"; }
expect "the template renders with checks, capacity and maxconn_total" render "$work/health.toml" -e "$health"
expect "... as these TOML tables" eq "$(toml_json "$work/health.toml")" \
    "$(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); out = {"ip": "0.0.0.0", "port": 9777, "state_file": "/var/lib/hapgent/state.json", "maxconn_total": 200, "checks": d["hapgent_checks"], "capacity": d["hapgent_capacity"], "services": d["hapgent_services"]}; print(json.dumps(out, sort_keys=True))' "$health")"
expect "the defaults render only ip, port and state_file" render "$work/default.toml"
expect "... and nothing else" eq "$(toml_json "$work/default.toml")" \
    '{"ip": "0.0.0.0", "port": 9777, "state_file": "/var/lib/hapgent/state.json"}'

step "Done in $((SECONDS - started))s"
