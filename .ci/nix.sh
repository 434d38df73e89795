#!/usr/bin/env bash
# CI for the Nix flake on a machine that cannot download nixpkgs.
#
# Checked here, offline, on the project's own Nix code: every .nix file
# parses; deadnix finds nothing; the real flake.nix evaluates with its
# `nixpkgs` input replaced by nix/ci-stub (a ~250-line stand-in: a few lib
# functions, placeholder packages, and a buildRustPackage that uses the
# host's cargo): `nix flake show`, the output names and the toolchain each
# static variant picks, `nix flake check --no-build` (each output is of the
# right kind; checks.*.vm is only a placeholder here); the package builds
# (cargo build and cargo test --release, with package.nix's flags) and ships
# the unit with store paths; `nix run` prints `hapgent <version>`. Without
# any module system, nix/module.nix is also read directly (mkOption and mkIf
# return their argument): the settings it declares, at their defaults plus
# the VM test machine's, rendered as TOML, are accepted by
# `hapgent check-config`, and its pre-start script creates the state file
# once and never resets it; the VM test script passes pyflakes.
# Checked only by the GitHub `nix` job (real nixpkgs, KVM; `nix flake check
# -L`): nixpkgs' own build of the package (tests included), the NixOS module
# evaluated by NixOS' module system (option types, unknown options,
# assertions, nixpkgs' TOML writer), and the VM test. The static variants
# and hapgent-lb are evaluated here but built by no CI.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
START=$SECONDS

# shellcheck source=lib.sh
source .ci/lib.sh

step "installing nix (Debian's nix-bin) and deadnix"
if ! command -v nix >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 nix-bin
fi
export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
export PATH=$CARGO_HOME/bin:$PATH
cargo install --quiet --locked deadnix --version 1.3.1
nix --version
deadnix --version

# The flake: in CI a fresh clone, so git+file (tracked files only). Outside
# git (a copy of the tree) it is a path: flake.
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    FLAKE="git+file://$ROOT"
    mapfile -t NIX_FILES < <(git -C "$ROOT" ls-files '*.nix')
else
    FLAKE="path:$ROOT"
    mapfile -t NIX_FILES < <(find . -name target -prune -o -name '*.nix' -print | sed 's|^\./||' | sort)
fi
[ "${#NIX_FILES[@]}" -ge 8 ] || die "expected the flake, nix/*.nix and nix/ci-stub/*.nix, found: ${NIX_FILES[*]}"

# No substituters (nothing is reachable), no sandbox and no build users, so
# the stub's buildRustPackage can use the host's cargo; --impure lets it read
# PATH, CARGO_HOME and RUSTUP_HOME.
NIX=(nix --extra-experimental-features 'nix-command flakes'
    --option substituters '' --option sandbox false --option build-users-group '')
STUB=(--override-input nixpkgs "path:$ROOT/nix/ci-stub")

step "parsing every .nix file (${#NIX_FILES[@]})"
for f in "${NIX_FILES[@]}"; do
    nix-instantiate --parse "$f" >/dev/null || die "$f does not parse"
    log "ok: $f"
done

step "deadnix reports nothing (and does report an unused binding)"
deadnix --fail "${NIX_FILES[@]}"
printf 'let unused = 1; in { x }: 2\n' >"$TMP/dead.nix"
if deadnix --fail "$TMP/dead.nix" >/dev/null; then die "deadnix did not report $TMP/dead.nix"; fi

step "nix flake show (nixpkgs = nix/ci-stub)"
"${NIX[@]}" flake show "$FLAKE" "${STUB[@]}"

step "the outputs are the ones documented"
flake_eval() { "${NIX[@]}" eval --raw "${FLAKE}#$1" "${STUB[@]}" --apply "$2" 2>/dev/null; }
expect() { # ATTR APPLY WANT
    local got
    got=$(flake_eval "$1" "$2") || die "cannot evaluate $1"
    [ "$got" = "$3" ] || die "$1: got '$got', wanted '$3'"
    log "ok: $1: $got"
}
names='x: builtins.concatStringsSep " " (builtins.attrNames x)'
expect packages.x86_64-linux "$names" "default hapgent-lb static static-aarch64"
expect packages.aarch64-linux "$names" "default hapgent-lb static"
for s in x86_64-linux aarch64-linux; do
    expect "checks.$s" "$names" "package vm"
    expect "devShells.$s" "$names" "default"
    expect "apps.$s.default" 'a: a.type + " " + builtins.toString (a.meta.description != "")' "app 1"
done
expect nixosModules "$names" "default"
# Which toolchain each static variant gets (the stub records the target).
expect packages.x86_64-linux.static 'p: p.target' "x86_64-unknown-linux-musl"
expect packages.x86_64-linux.static-aarch64 'p: p.target' "aarch64-unknown-linux-musl"
expect packages.aarch64-linux.static 'p: p.target' "aarch64-unknown-linux-musl"
expect packages.x86_64-linux.default 'p: p.target' ""

step "nix flake check --no-build (every output of the right kind; checks.*.vm is a placeholder)"
"${NIX[@]}" flake check --no-build "$FLAKE" "${STUB[@]}"

step "building the package with the stub (host cargo, offline; runs cargo test --release)"
cargo fetch --locked --quiet
"${NIX[@]}" build --impure -L "$FLAKE" "${STUB[@]}" --out-link "$TMP/pkg"
PKG=$(readlink -f "$TMP/pkg")
UNIT=$PKG/lib/systemd/system/hapgent.service
[ -f "$UNIT" ] || die "the package lacks lib/systemd/system/hapgent.service"
grep -qx "ExecStart=$PKG/bin/hapgent run" "$UNIT" || die "ExecStart does not run $PKG/bin/hapgent: $(grep ExecStart "$UNIT")"
# shellcheck disable=SC2016 # a literal $MAINPID
grep -Eqx 'ExecReload=/nix/store/[^ ]+/bin/kill -HUP \$MAINPID' "$UNIT" || die "ExecReload: $(grep ExecReload "$UNIT")"
if grep -v '^#' "$UNIT" | grep -E '(^|[= ])/(usr/)?s?bin/'; then die "the packaged unit still runs a path outside the store"; fi
echo "ok: $UNIT"

# nix/module.nix and nix/vm-test.nix read without a module system: mkOption
# and mkIf return their argument, every option takes its default, and the VM
# test's machine sets services.hapgent. This checks what the module writes,
# not how NixOS merges or type-checks it (the GitHub job does that).
cat >"$TMP/module.nix" <<'NIX'
{ root }:
let
  inherit (builtins) attrNames concatStringsSep mapAttrs replaceStrings toJSON;
  lib = {
    mkOption = o: o;
    mkEnableOption = _: { default = false; };
    mkIf = _: content: content;
    literalExpression = text: text;
    types.submodule = m: m; # other types are never forced
    escapeShellArg = s: "'${replaceStrings [ "'" ] [ "'\\''" ] (toString s)}'";
  };
  vm = import (root + "/nix/vm-test.nix") {
    pkgs.testers.runNixOSTest = test: test;
    module = null;
  };
  machine = (vm.nodes.machine { pkgs = { }; }).services.hapgent;
  module = import (root + "/nix/module.nix") {
    inherit config lib;
    pkgs = { };
  };
  opts = module.options.services.hapgent;
  settings = mapAttrs (_: o: o.default) opts.settings.type.options // machine.settings;
  config.services.hapgent = mapAttrs (_: o: o.default or null) opts // machine // { inherit settings; };
in
{
  # Values are strings, integers, booleans or lists of those, which JSON
  # writes as TOML does.
  toml = concatStringsSep "" (map (k: "${k} = ${toJSON settings.${k}}\n") (attrNames settings));
  inherit (module.config.systemd.services.hapgent) preStart;
  inherit (vm) testScript;
}
NIX
deadnix --fail "$TMP/module.nix"
module_attr() {
    nix --extra-experimental-features nix-command eval --raw --file "$TMP/module.nix" --argstr root "$ROOT" "$1"
}

step "the module's /etc/hapgent/hapgent.toml (its settings, as in the VM test) is accepted by hapgent check-config"
module_attr toml >"$TMP/hapgent.toml"
cat "$TMP/hapgent.toml"
"$PKG/bin/hapgent" check-config --config "$TMP/hapgent.toml" | tee "$TMP/effective"
grep -q '^state_file = "/var/lib/hapgent/state.json" .*# file' "$TMP/effective" || die "state_file not from the module's file"
grep -q '^port = 9777 .*# file' "$TMP/effective" || die "port not from the module's file"
grep -q '^ip = \["127.0.0.1"\] .*# file' "$TMP/effective" || die "ip not from the module's file"
printf 'no_such_setting = 1\n' >>"$TMP/hapgent.toml"
if "$PKG/bin/hapgent" check-config --config "$TMP/hapgent.toml" >/dev/null 2>&1; then
    die "check-config accepted an unknown key"
fi
log "ok: (and an unknown key is refused)"

step "the module's pre-start script creates the state file once and never resets it"
module_attr preStart >"$TMP/prestart.sh"
cat "$TMP/prestart.sh"
bash -n "$TMP/prestart.sh"
grep -q /var/lib/hapgent/state.json "$TMP/prestart.sh" || die "pre-start does not name the state file"
sed -i "s|/var/lib/hapgent/state.json|$TMP/state.json|g" "$TMP/prestart.sh"
bash -e "$TMP/prestart.sh"
[ "$(cat "$TMP/state.json")" = '{"status":"UP"}' ] || die "initial state file: $(cat "$TMP/state.json")"
echo '{"status":"DOWN"}' >"$TMP/state.json"
bash -e "$TMP/prestart.sh"
[ "$(cat "$TMP/state.json")" = '{"status":"DOWN"}' ] || die "pre-start reset the state file"
echo "ok: created as UP, kept as DOWN"

step "the VM test script passes pyflakes (as the NixOS test driver lints it)"
module_attr testScript >"$TMP/test_script.py"
python3 -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install --quiet --disable-pip-version-check pyflakes
PYFLAKES_BUILTINS=machine,subtest,start_all "$TMP/venv/bin/python" -m pyflakes "$TMP/test_script.py"
printf 'undefined_name()\n' >"$TMP/bad.py"
if PYFLAKES_BUILTINS=machine "$TMP/venv/bin/python" -m pyflakes "$TMP/bad.py" >/dev/null; then die "pyflakes cannot fail"; fi
echo "ok"

step "nix run prints hapgent <version from Cargo.toml>"
VERSION=$(version)
OUT=$("${NIX[@]}" run --impure "$FLAKE" "${STUB[@]}" -- --version)
echo "$OUT"
[ "$OUT" = "hapgent $VERSION" ] || die "nix run printed '$OUT', wanted 'hapgent $VERSION'"

step "done in $((SECONDS - START)) s"
