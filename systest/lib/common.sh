# Assertions and waiting, shared by every test.
#
# A test is a bash function test_NAME in tests/*.sh. It states claims with
# `expect` (fails the test at once, saying which claim) and waits for events
# with `wait_until` (bounded polling, never a fixed sleep as the assertion).

# The dialect itself (log, die, expect, expect_not, wait_until, eq,
# matches, quiet) and `version` are .ci/lib.sh's, shared with .ci/.
# shellcheck source=../../.ci/lib.sh
source "$REPO/.ci/lib.sh"

# figure NAME VALUE: a measured figure, printed and kept in the run's
# results file (target/systest/results.txt).
figure() {
    printf '    figure: %s = %s\n' "$1" "$2" >&2
    printf '%s %s %s = %s\n' "$(date -u +%FT%TZ)" "$SYSTEST_TEST" "$1" "$2" >>"$SYSTEST_CACHE/results.txt"
}
