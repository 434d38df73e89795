# The release artifacts under test: what scripts/dist put in dist/
# (SYSTEST_DIST), and variants made from them for upgrade tests. Nothing
# here compiles Rust.

deb_arch() { dpkg --print-architecture; }
musl_triple() {
    case "$(uname -m)" in
        x86_64) echo x86_64-unknown-linux-musl ;;
        aarch64) echo aarch64-unknown-linux-musl ;;
        *) die "no hapgent release build for $(uname -m)" ;;
    esac
}

# dist_deb / dist_binary (hapgent), dist_lb_deb / dist_lb_binary
# (hapgent-lb): paths of the artifacts for this machine.
dist_deb() {
    local f
    f=$SYSTEST_DIST/hapgent_$(version)-1_$(deb_arch).deb
    [ -f "$f" ] || die "$f is missing: run scripts/dist first"
    echo "$f"
}
dist_binary() {
    local f
    f=$SYSTEST_DIST/hapgent-$(version)-$(musl_triple)
    [ -f "$f" ] || die "$f is missing: run scripts/dist first"
    echo "$f"
}

dist_lb_deb() {
    local f
    f=$SYSTEST_DIST/hapgent-lb_$(version)-1_$(deb_arch).deb
    [ -f "$f" ] || die "$f is missing: run scripts/dist first"
    echo "$f"
}
dist_lb_binary() {
    local f
    f=$SYSTEST_DIST/hapgent-lb-$(version)-$(musl_triple)
    [ -f "$f" ] || die "$f is missing: run scripts/dist first"
    echo "$f"
}

# deb_with_version DEB VERSION OUT [APPEND]: DEB repacked as VERSION
# (Version field and file name), the binary optionally with a byte appended
# so that it differs (a static binary still runs with trailing bytes).
deb_with_version() {
    local deb=$1 ver=$2 out=$3 append=${4:-}
    local dir
    dir=$(mktemp -d "$SYSTEST_RUN/repack.XXXXXX")
    dpkg-deb -R "$deb" "$dir/pkg"
    sed -i "s/^Version: .*/Version: $ver/" "$dir/pkg/DEBIAN/control"
    [ -z "$append" ] || printf '\0' >>"$dir/pkg/usr/bin/hapgent"
    # md5sums must match the content dpkg installs.
    (cd "$dir/pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' |
        xargs -0 md5sum >DEBIAN/md5sums)
    dpkg-deb --root-owner-group -b "$dir/pkg" "$out" >/dev/null
    rm -rf "$dir"
}

# mirror_signed DIR SIGNERS VERSION [BINARY DEB]: a release directory the
# role accepts, for VERSION: the binary and .deb under their release names,
# SHA256SUMS, and SHA256SUMS.sig by a throwaway key that SIGNERS (an
# allowed_signers file, created) trusts. BINARY and DEB default to dist/'s;
# dist/'s hapgent-lb binary and .deb are in it too, as in a release.
mirror_signed() {
    local dir=$1 signers=$2 ver=$3 bin=${4:-$(dist_binary)} deb=${5:-$(dist_deb)}
    mkdir -p "$dir"
    cp "$bin" "$dir/hapgent-$ver-$(musl_triple)"
    cp "$deb" "$dir/hapgent_$ver-1_$(deb_arch).deb"
    cp "$(dist_lb_binary)" "$dir/hapgent-lb-$ver-$(musl_triple)"
    cp "$(dist_lb_deb)" "$dir/hapgent-lb_$ver-1_$(deb_arch).deb"
    (cd "$dir" && sha256sum hapgent[-_]* >SHA256SUMS)
    local key=$SYSTEST_RUN/release-key
    [ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C systest-release -f "$key"
    ssh-keygen -Y sign -q -f "$key" -n file "$dir/SHA256SUMS"
    printf 'release@hapgent namespaces="file" %s\n' "$(cut -d' ' -f1,2 "$key.pub")" >"$signers"
}
