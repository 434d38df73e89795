# pkgs for the CI stub (see flake.nix). Every package is a placeholder
# derivation whose build fails, except:
#   - rustPlatform.buildRustPackage, which builds with the host's cargo,
#     offline, against the crates `cargo fetch` left in CARGO_HOME (needs
#     --impure, to read the host's PATH, CARGO_HOME and RUSTUP_HOME, and
#     --option sandbox false);
#   - coreutils, links to the host's;
#   - formats.toml's generate, which writes the TOML file;
#   - testers.runNixOSTest evaluates the nodes with lib.evalModules on
#     ./nixos.nix and fails evaluation on an unknown option, a type error or
#     a failed assertion; its result is not buildable.
{
  lib,
  system,
  # Where the built programs run: crossSystem (with isStatic) models
  # pkgsStatic and pkgsCross.
  hostSystem ? system,
  isStatic ? false,
}:

let
  inherit (builtins)
    attrNames
    attrValues
    concatMap
    concatStringsSep
    filter
    functionArgs
    getEnv
    intersectAttrs
    isAttrs
    isBool
    isFunction
    isInt
    isList
    isPath
    isString
    mapAttrs
    toJSON
    ;

  hostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

  isDerivation = v: isAttrs v && (v.type or null) == "derivation";

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
    )
    // {
      meta.mainProgram = name;
    };

  rustTargets = {
    x86_64-linux = "x86_64-unknown-linux-musl";
    aarch64-linux = "aarch64-unknown-linux-musl";
  };

  tomlValue =
    v:
    if isString v then
      toJSON v
    else if isBool v then
      (if v then "true" else "false")
    else if isInt v then
      toString v
    else if isList v then
      "[${concatStringsSep ", " (map tomlValue v)}]"
    else
      throw "ci-stub formats.toml: only strings, booleans, integers and lists are supported";

  pkgs = {
    inherit lib system;

    stdenv.hostPlatform = {
      system = hostSystem;
      inherit isStatic;
      isMusl = isStatic;
    };

    callPackage =
      fn: overrides:
      let
        f = if isPath fn then import fn else fn;
      in
      f (intersectAttrs (functionArgs f) pkgs // overrides);

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
        cargoLock,
        doCheck ? true,
        checkFlags ? [ ],
        cargoTestFlags ? [ ],
        cargoBuildFlags ? [ ],
        postInstall ? "",
        meta ? { },
        ...
      }:
      assert builtins.pathExists cargoLock.lockFile;
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
        hostPath = getEnv "PATH";
        cargoHome = getEnv "CARGO_HOME";
        rustupHome = getEnv "RUSTUP_HOME";
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
      PATH = hostPath;
    };

    mkShell =
      {
        packages ? [ ],
        ...
      }@args:
      assert builtins.all isDerivation packages;
      placeholder "nix-shell" (removeAttrs args [ "packages" ] // { inherit packages; });

    cargo = placeholder "cargo" { };
    rustc = placeholder "rustc" { };
    clippy = placeholder "clippy" { };
    rustfmt = placeholder "rustfmt" { };
    haproxy = placeholder "haproxy" { };
    socat = placeholder "socat" { };
    nixfmt-tree = placeholder "treefmt" { };

    formats.toml =
      { }:
      {
        type = lib.types.attrsOf (
          lib.types.anything
          // {
            name = "TOML value";
          }
        );
        generate =
          name: value:
          derivation {
            inherit name system;
            builder = "/bin/sh";
            args = [
              "-c"
              "printf '%s' \"$text\" > $out"
            ];
            text = concatStringsSep "" (map (k: "${k} = ${tomlValue value.${k}}\n") (attrNames value));
          };
      };

    testers.runNixOSTest =
      test:
      let
        nodes = mapAttrs (
          name: node:
          (lib.evalModules {
            modules = [
              ./nixos.nix
              node
            ];
            specialArgs = {
              inherit pkgs name;
              modulesPath = "/ci-stub/nixos/modules";
            };
          }).config
        ) test.nodes;
        failed = concatMap (c: map (a: a.message) (filter (a: !a.assertion) c.assertions)) (attrValues nodes);
      in
      assert isString test.testScript && !(isFunction test.testScript);
      if failed != [ ] then
        throw "Failed assertions:\n- ${concatStringsSep "\n- " failed}"
      else
        placeholder "vm-test-run-${test.name}" {
          # Forces every node's whole configuration at evaluation.
          nodes = toJSON nodes;
        }
        // {
          inherit nodes;
          inherit (test) testScript;
        };
  };
in
pkgs
