# The shell library of .ci/ and systest/: one way to state a claim, to wait
# for an event and to read the facts every script needs (the version).
# Sourced by .ci/*.sh (from the repository's root) and by systest/lib/.
#
# Claims read `expect "what must hold" COMMAND...`: the script stops at the
# first one that fails, saying which. Waits poll a condition with a
# deadline (`wait_until`), never a fixed sleep standing for an event.

step() { printf '\n==> %s\n' "$*" >&2; }
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
# until it succeeds; fails after SECONDS.
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

# version: the package version, from the workspace's Cargo.toml (as
# scripts/dist reads it): the one the artifacts in dist/ are named after.
version() {
    awk -F'"' '/^version *=/ {print $2; exit}' "${REPO:-.}/Cargo.toml"
}
