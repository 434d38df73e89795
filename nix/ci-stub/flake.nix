# NOT nixpkgs. A minimal stand-in that .ci/nix.sh passes as the `nixpkgs`
# input (`--override-input nixpkgs path:.../nix/ci-stub`) on machines that
# cannot download nixpkgs, so that the real flake.nix, package.nix and
# package-lb.nix are evaluated as they are:
#   - lib.nix: the few lib functions those files call;
#   - pkgs.nix: placeholder derivations (evaluated, never built), except
#     rustPlatform.buildRustPackage, which builds the package offline with
#     the host's cargo (build-rust-package.sh) so that `nix run` works.
# It has no module system and no NixOS: the NixOS module and the VM test
# are evaluated, built and run only by the GitHub `nix` job, on real nixpkgs
# (see docs/install.md, "What CI checks, and what only the GitHub job proves").
{
  description = "CI-only stand-in for nixpkgs (see the comment in flake.nix)";

  outputs =
    { self }:
    {
      lib = import ./lib.nix;
      legacyPackages = self.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (
        system:
        import ./pkgs.nix {
          inherit (self) lib;
          inherit system;
        }
      );
    };
}
