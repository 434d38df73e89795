# lib for the CI stub (see flake.nix): only the functions that hapgent's
# flake.nix, package.nix and package-lb.nix call, with nixpkgs' names and
# meaning. No module system: the NixOS module is not evaluated offline.
let
  inherit (builtins) listToAttrs stringLength substring;
  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
in
{
  genAttrs =
    names: f:
    listToAttrs (
      map (name: {
        inherit name;
        value = f name;
      }) names
    );
  optionalAttrs = cond: as: if cond then as else { };
  optionalString = cond: s: if cond then s else "";
  getExe = drv: "${drv}/bin/${drv.meta.mainProgram}";
  licenses = {
    mit.spdxId = "MIT";
    asl20.spdxId = "Apache-2.0";
  };
  platforms.linux = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  # A file set is a list of paths here; like nixpkgs, a missing path is an
  # error, and the source holds exactly those files and directories.
  fileset = {
    unions = paths: paths;
    toSource =
      { root, fileset }:
      let
        wanted = map (
          p: if builtins.pathExists p then toString p else throw "lib.fileset: ${toString p} does not exist"
        ) fileset;
      in
      builtins.path {
        name = "source";
        path = root;
        filter =
          path: _type:
          builtins.any (w: path == w || hasPrefix (w + "/") path || hasPrefix (path + "/") w) wanted;
      };
  };
}
