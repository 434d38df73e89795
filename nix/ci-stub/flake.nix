# NOT nixpkgs. A minimal stand-in that .ci/nix.sh passes as the `nixpkgs`
# input (`--override-input nixpkgs path:.../nix/ci-stub`) on machines that
# cannot download nixpkgs. It provides just what hapgent's flake uses, with
# the same names and calling conventions, so the real flake.nix and nix/*.nix
# are evaluated as they are:
#   - lib.nix: the few lib functions used, and a small module system that
#     evaluates the NixOS module (options, types, mkIf/mkDefault, unknown
#     options, assertions) the way NixOS would, on a skeleton of the NixOS
#     options the module and the VM test touch;
#   - pkgs.nix: derivations that are evaluated, never built, except
#     rustPlatform.buildRustPackage, which builds the package offline with the
#     host's cargo (sandbox off) so that `nix run` works.
# What it cannot check (nixpkgs' real APIs, building with nixpkgs' toolchain,
# the VM test itself) is checked only by the GitHub `nix` job.
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
