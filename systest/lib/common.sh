# Assertions and waiting, shared by every test.
#
# A test is a bash function test_NAME in tests/*.sh. It states claims with
# `expect` (fails the test at once, saying which claim) and waits for events
# with `wait_until` (bounded polling, never a fixed sleep as the assertion).

log() { printf '    %s\n' "$*" >&2; }
die() {
    printf '    FAIL: %s\n' "$*" >&2
    exit 1
}

# expect DESCRIPTION COMMAND...: COMMAND must succeed.
expect() {
    local what=$1
    shift
    if "$@"; then
        printf '    ok: %s\n' "$what" >&2
    else
        die "$what"
    fi
}

# expect_not DESCRIPTION COMMAND...: COMMAND must fail.
expect_not() {
    local what=$1
    shift
    if "$@"; then die "$what"; else printf '    ok: %s\n' "$what" >&2; fi
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND (every 0.2 s)
# until it succeeds; fails the test after SECONDS.
wait_until() {
    local limit=$1 what=$2 start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ $((SECONDS - start)) -ge "$limit" ]; then
            die "$what (not within ${limit}s)"
        fi
        sleep 0.2
    done
    printf '    ok: %s (%ss)\n' "$what" "$((SECONDS - start))" >&2
}

# figure NAME VALUE: a measured figure, printed and kept in the run's
# results file (target/systest/results.txt).
figure() {
    printf '    figure: %s = %s\n' "$1" "$2" >&2
    printf '%s %s %s = %s\n' "$(date -u +%FT%TZ)" "$SYSTEST_TEST" "$1" "$2" >>"$SYSTEST_CACHE/results.txt"
}

# eq A B: string equality, printing both sides when they differ.
eq() {
    [ "$1" = "$2" ] && return 0
    printf '      got:      %s\n      expected: %s\n' "$1" "$2" >&2
    return 1
}

# matches TEXT REGEX
matches() {
    [[ $1 =~ $2 ]] && return 0
    printf '      got:      %s\n      expected: /%s/\n' "$1" "$2" >&2
    return 1
}

# quiet COMMAND...: COMMAND without its output (for expected failures).
quiet() { "$@" >/dev/null 2>&1; }
