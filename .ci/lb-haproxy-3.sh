#!/usr/bin/env bash
# hapgent-lb's system tests, and hapgent's HAProxy tests, against a newer
# HAProxy than Debian 12's 2.6:
# Debian 13's HAProxy 3.0 in a debootstrap root under target/ (see
# lb/tests/newer-haproxy.sh). Run by .ci/run as root after the main tests,
# which already ran them against 2.6.
set -euo pipefail
cd "$(dirname "$0")/.."
lb/tests/newer-haproxy.sh cargo test --locked -p hapgent-lb --test integration
# The agent's tests against a real HAProxy, on 3.0 too.
HAPGENT_REQUIRE_HAPROXY=1 lb/tests/newer-haproxy.sh \
    cargo test --locked -p hapgent --test integration haproxy
