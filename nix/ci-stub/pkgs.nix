# pkgs for the CI stub (see flake.nix). Every package is a placeholder
# derivation, evaluated but never built, except:
#   - rustPlatform.buildRustPackage, which builds with the host's cargo,
#     offline, against the crates `cargo fetch` left in CARGO_HOME (needs
#     --impure, to read the host's PATH, CARGO_HOME and RUSTUP_HOME, and
#     --option sandbox false);
#   - coreutils, links to the host's.
# testers.runNixOSTest evaluates nothing of the test: its nodes (and so the
# NixOS module) are left alone, and its result is a placeholder.
{
  lib,
  system,
  # Where the built programs run: pkgsStatic and pkgsCross set these.
  hostSystem ? system,
  isStatic ? false,
}:

let
  placeholder =
    name: env:
    derivation (
      {
        inherit name system;
        builder = "/bin/sh";
        args = [
          "-c"
          "echo 'ci-stub: ${name} is a placeholder, it cannot be built' >&2; exit 1"
        ];
      }
      // env
    );

  rustTargets = {
    x86_64-linux = "x86_64-unknown-linux-musl";
    aarch64-linux = "aarch64-unknown-linux-musl";
  };

  pkgs = {
    inherit lib system;

    stdenv.hostPlatform = {
      system = hostSystem;
      inherit isStatic;
    };

    callPackage =
      fn: overrides:
      let
        f = import fn;
      in
      f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // overrides);

    pkgsStatic = import ./pkgs.nix {
      inherit lib system hostSystem;
      isStatic = true;
    };
    pkgsCross.aarch64-multiplatform-musl = import ./pkgs.nix {
      inherit lib system;
      hostSystem = "aarch64-linux";
    };

    rustPlatform.buildRustPackage =
      {
        pname,
        version,
        src,
        doCheck ? true,
        checkFlags ? [ ],
        cargoTestFlags ? [ ],
        cargoBuildFlags ? [ ],
        postInstall ? "",
        meta ? { },
        ...
      }:
      derivation {
        name = "${pname}-${version}";
        inherit
          system
          pname
          src
          postInstall
          checkFlags
          cargoTestFlags
          cargoBuildFlags
          ;
        builder = "/bin/sh";
        args = [ ./build-rust-package.sh ];
        # The host's toolchain and crate cache (empty unless --impure).
        hostPath = builtins.getEnv "PATH";
        cargoHome = builtins.getEnv "CARGO_HOME";
        rustupHome = builtins.getEnv "RUSTUP_HOME";
        # Records which toolchain the flake picked (.ci/nix.sh reads it).
        target = if isStatic then rustTargets.${hostSystem} else "";
        # Like nixpkgs: tests run unless disabled or cross-compiling.
        doCheck = if doCheck && hostSystem == system then "1" else "";
      }
      // {
        inherit pname version meta;
      };

    coreutils = derivation {
      name = "coreutils-host";
      inherit system;
      builder = "/bin/sh";
      args = [
        "-c"
        "mkdir -p $out/bin && for b in kill cat cp mv install; do ln -s \"$(command -v $b)\" $out/bin/$b; done"
      ];
      PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    };

    mkShell = placeholder "nix-shell";
    cargo = placeholder "cargo" { };
    rustc = placeholder "rustc" { };
    clippy = placeholder "clippy" { };
    rustfmt = placeholder "rustfmt" { };
    haproxy = placeholder "haproxy" { };
    # Its setup hook's functions are defined by build-rust-package.sh.
    installShellFiles = placeholder "installShellFiles" { };
    nixfmt-tree = placeholder "treefmt" { };

    testers.runNixOSTest = test: placeholder "vm-test-run-${test.name}" { };
  };
in
pkgs
