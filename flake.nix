{
  description = "hapgent: answers HAProxy agent checks with this server's state";

  # No flake.lock is committed: see docs/install.md, "Nix and NixOS". `nix` writes
  # one on first use; pin it with `nix flake lock` in your own checkout, or
  # make your system flake's nixpkgs win with
  # `inputs.hapgent.inputs.nixpkgs.follows = "nixpkgs"`.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (
        pkgs:
        {
          default = pkgs.callPackage ./nix/package.nix { };
          # The load-balancer side (lb/README.md).
          hapgent-lb = pkgs.callPackage ./nix/package-lb.nix { };
          # A static musl binary for this system's architecture, the Nix
          # twin of the release artifacts (scripts/dist).
          static = pkgs.pkgsStatic.callPackage ./nix/package.nix { };
        }
        // lib.optionalAttrs (pkgs.stdenv.hostPlatform.system == "x86_64-linux") {
          # Cross-built on x86_64 for aarch64 hosts that have no Nix.
          static-aarch64 = pkgs.pkgsCross.aarch64-multiplatform-musl.pkgsStatic.callPackage ./nix/package.nix { };
        }
      );

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          meta.description = "Run the hapgent agent (`nix run . -- --help` lists its options)";
        };
      });

      # The module's package defaults to this flake's build for the host.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.hapgent.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.haproxy
          ];
          # haproxy is here, so the HAProxy integration tests must run.
          HAPGENT_REQUIRE_HAPROXY = "1";
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);

      checks = forAllSystems (
        pkgs:
        let
          packages = self.packages.${pkgs.stdenv.hostPlatform.system};
        in
        {
          # Builds the package, running its unit and integration tests. The
          # static variants are left out: pkgsStatic is barely cached, and
          # building its toolchain would dwarf everything else.
          package = packages.default;
          vm = import ./nix/vm-test.nix {
            inherit pkgs;
            module = self.nixosModules.default;
          };
        }
      );
    };
}
