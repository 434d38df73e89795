#!/usr/bin/env bash
# Static checks of the Ansible roles and playbooks (ansible/): ansible-lint
# (production profile) and ansible-playbook --syntax-check, with the pinned
# ansible-core and ansible-lint (ansible/requirements-ci.txt) in a
# throwaway virtualenv.
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

step "Done in $((SECONDS - started))s"
