# Builder of the CI stub's rustPlatform.buildRustPackage (see pkgs.nix):
# nixpkgs' build, check and install phases, done with the host's cargo.
# The variables it reads are the derivation's attributes.
# shellcheck shell=sh disable=SC2154
set -eu

if [ -z "$hostPath" ] || [ -z "$cargoHome" ]; then
    echo "ci-stub: build with --impure and CARGO_HOME set, so the host's cargo is found" >&2
    exit 1
fi
export PATH="$hostPath" CARGO_HOME="$cargoHome" HOME="$NIX_BUILD_TOP"
[ -z "$rustupHome" ] || export RUSTUP_HOME="$rustupHome"
export CARGO_TARGET_DIR="$NIX_BUILD_TOP/target"
# The stub checks the flake's wiring, not the optimiser: without whole-program
# LTO and with parallel codegen the release build and the release test build
# take a fraction of the time on CI's two cores.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16

# nixpkgs' substituteInPlace, the forms package.nix uses.
substituteInPlace() {
    python3 - "$@" <<'PY'
import sys
path, args = sys.argv[1], sys.argv[2:]
text = open(path).read()
while args:
    flag, old, new, args = args[0], args[1], args[2], args[3:]
    if flag not in ("--replace-fail", "--replace-warn", "--replace-quiet"):
        sys.exit(f"substituteInPlace: unsupported {flag}")
    if old not in text:
        if flag == "--replace-fail":
            sys.exit(f"substituteInPlace: {old!r} not found in {path}")
    text = text.replace(old, new)
open(path, "w").write(text)
PY
}

# nixpkgs' installShellFiles (installManPage, installShellCompletion --cmd),
# the forms package.nix uses; pages are left uncompressed.
installManPage() {
    for page in "$@"; do
        install -Dm0644 "$page" "$out/share/man/man${page##*.}/${page##*/}"
    done
}
installShellCompletion() {
    cmd=
    while [ $# -gt 0 ]; do
        case $1 in
            --cmd) cmd=$2 ;;
            --bash) install -Dm0644 "$2" "$out/share/bash-completion/completions/$cmd.bash" ;;
            --zsh) install -Dm0644 "$2" "$out/share/zsh/site-functions/_$cmd" ;;
            --fish) install -Dm0644 "$2" "$out/share/fish/vendor_completions.d/$cmd.fish" ;;
            *) echo "installShellCompletion: unsupported $1" >&2; return 1 ;;
        esac
        shift 2
    done
}

cp -r "$src" source
chmod -R u+w source
cd source

set -- --release --offline --locked
if [ -n "$target" ]; then set -- "$@" --target "$target"; fi

# shellcheck disable=SC2086 # flags are words, as in nixpkgs
echo "ci-stub: cargo build $* $cargoBuildFlags"
# shellcheck disable=SC2086
cargo build "$@" $cargoBuildFlags
if [ -n "$doCheck" ]; then
    # shellcheck disable=SC2086 # flags are words, as in nixpkgs
    echo "ci-stub: cargo test $* $cargoTestFlags -- $checkFlags"
    # shellcheck disable=SC2086
    cargo test "$@" $cargoTestFlags -- $checkFlags
fi

mkdir -p "$out/bin"
cp "$CARGO_TARGET_DIR/${target:+$target/}release/$pname" "$out/bin/"
eval "$postInstall"
