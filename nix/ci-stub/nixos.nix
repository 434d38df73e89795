# The NixOS options that hapgent's module and VM test set, declared with
# their NixOS types (simplified), so that setting any other, or a value of
# the wrong type, fails as it would on NixOS.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  opt = type: default: mkOption { inherit type default; };
in
{
  options = {
    assertions = opt (types.listOf types.attrs) [ ];
    environment = {
      etc = opt (types.attrsOf (
        types.submodule {
          options = {
            source = opt (types.nullOr (types.either types.package types.str)) null;
            text = opt (types.nullOr types.lines) null;
          };
        }
      )) { };
      systemPackages = opt (types.listOf types.package) [ ];
    };
    networking.firewall.allowedTCPPorts = opt (types.listOf types.port) [ ];
    services.haproxy = {
      enable = opt types.bool false;
      config = opt (types.nullOr types.lines) null;
    };
    systemd = {
      packages = opt (types.listOf types.package) [ ];
      services = opt (types.attrsOf (
        types.submodule {
          options = {
            description = opt types.str "";
            wantedBy = opt (types.listOf types.str) [ ];
            after = opt (types.listOf types.str) [ ];
            restartTriggers = opt (types.listOf types.anything) [ ];
            preStart = opt types.lines "";
            script = opt types.lines "";
            environment = opt (types.attrsOf types.str) { };
            serviceConfig = opt (types.attrsOf types.anything) { };
            unitConfig = opt (types.attrsOf types.anything) { };
          };
        }
      )) { };
    };
    users = {
      users = opt (types.attrsOf (
        types.submodule {
          options = {
            isSystemUser = opt types.bool false;
            group = opt types.str "";
            home = opt types.str "/var/empty";
            description = opt types.str "";
            extraGroups = opt (types.listOf types.str) [ ];
          };
        }
      )) { };
      groups = opt (types.attrsOf (types.submodule { options.gid = opt (types.nullOr types.int) null; })) { };
    };
  };
}
