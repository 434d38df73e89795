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

# size_bound FILE ARCH: FILE, a built hapgent, is under the size bound that
# README.md and docs/releasing.md both state for ARCH ("ARCH under N
# bytes"), and within 5 % of it, so the documented figure follows the binary
# both ways. .ci/release.sh checks the local builds, the workflows `cross`'s.
size_bound() {
    local size readme doc
    size=$(stat -c %s "$1") || return 1
    readme=$(bound_in README.md "$2")
    doc=$(bound_in docs/releasing.md "$2")
    printf '      %s: %s bytes; bound in README.md %s, in docs/releasing.md %s\n' \
        "$1" "$size" "${readme:-none}" "${doc:-none}" >&2
    [ -n "$doc" ] && [ "$readme" = "$doc" ] &&
        [ "$size" -lt "$doc" ] && [ "$size" -ge $((doc * 95 / 100)) ]
}

# bound_in FILE ARCH: the N of the first "ARCH under N bytes" in FILE.
bound_in() { sed -n "s/.*$2 under \([0-9,]*\) bytes.*/\1/p" "$1" | head -n 1 | tr -d ,; }
