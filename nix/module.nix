# NixOS module for hapgent.
#
# The unit is not written here: it is systemd/hapgent.service, the one
# source shared with the .deb and the Ansible role, shipped in the package
# (see package.nix) and enabled through `systemd.packages`. So the hardening
# (unprivileged user hapgent, ProtectSystem=strict, SystemCallFilter,
# RestrictAddressFamilies, ...), ExecReload (HUP), Restart and Type all come
# from that file, and this module only adds what NixOS needs on top: the
# user, the configuration file, the initial state file and the firewall.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.hapgent;
  settingsFormat = pkgs.formats.toml { };
  configFile = settingsFormat.generate "hapgent.toml" cfg.settings;
  stateDir = builtins.dirOf cfg.stateFile;
  initialState = builtins.toJSON { status = cfg.initialStatus; };
in
{
  options.services.hapgent = {
    enable = lib.mkEnableOption "hapgent, which answers HAProxy agent checks with this server's state";

    package = lib.mkOption {
      type = lib.types.package;
      defaultText = lib.literalExpression "hapgent.packages.\${pkgs.stdenv.hostPlatform.system}.default";
      description = ''
        The hapgent package. It must ship lib/systemd/system/hapgent.service,
        as the flake's `default` package does (the static ones do not).
      '';
    };

    settings = lib.mkOption {
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        options = {
          port = lib.mkOption {
            type = lib.types.port;
            default = 9777;
            description = "TCP port HAProxy's `agent-port` points at.";
          };
          state_file = lib.mkOption {
            type = lib.types.str;
            readOnly = true;
            default = cfg.stateFile;
            defaultText = lib.literalExpression "config.services.hapgent.stateFile";
            description = "Set through {option}`services.hapgent.stateFile`.";
          };
        };
      };
      default = { };
      example = {
        ip = [
          "10.0.0.5"
          "::1"
        ];
        log_requests = true;
        maxconn_total = 200;
        checks.app = {
          http = "http://127.0.0.1:8080/health";
          fall = 2;
        };
        checks.db = {
          exec = [
            "/run/current-system/sw/bin/pg_isready"
            "--quiet"
          ];
          on_fail = "drain";
        };
        capacity = {
          drain_above = 90;
          memory.full = 90;
          load = { };
        };
        services.api = {
          state_file = "/var/lib/hapgent/api.json";
          maxconn_total = 300;
          checks.health.tcp = "127.0.0.1:8081";
        };
      };
      description = ''
        hapgent's configuration, written to /etc/hapgent/hapgent.toml (so
        `hapgent check-config` on the host shows what the service uses).
        Keys are those of the configuration file (ip, port, max_connections,
        write_timeout, log_requests, maxconn_total, ...), and its tables as
        attribute sets: `checks.NAME` (health checks: http, tcp or exec, the
        last a list run without a shell as the user hapgent inside the
        unit's sandbox, so give it a store path), `capacity` (memory, load,
        cpu, disk and connections monitors) and `services.NAME` (with their
        own `checks` and `maxconn_total`); see docs/health.md. Unknown keys
        make the agent exit with a configuration error (78) instead of
        starting.
      '';
    };

    stateFile = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/hapgent/state.json";
      description = ''
        The JSON state file the agent reports and saves on SIGUSR1/SIGUSR2.
        The agent replaces it atomically, so it needs its directory
        writable: /var/lib/hapgent is (StateDirectory); another directory
        is made writable for the unit, but must exist and be owned by the
        user hapgent.
      '';
    };

    initialStatus = lib.mkOption {
      type = lib.types.enum [
        "UP"
        "DOWN"
        "READY"
        "DRAIN"
        "FAIL"
        "MAINT"
        "STOPPED"
      ];
      default = "UP";
      description = ''
        Status written to the state file when it does not exist yet. An
        existing file is never overwritten, not by a rebuild, a restart or a
        reboot. UP keeps what HAProxy did before the agent ran; choose DRAIN
        to have a new server join without traffic.
      '';
    };

    controlUsers = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "alice" ];
      description = ''
        Users who may run `hapgent ctl` without sudo: they join the group
        hapgent, which owns the control socket /run/hapgent/control.sock.
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open {option}`services.hapgent.settings.port` in the firewall for HAProxy's probes.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.hasPrefix "/" cfg.stateFile;
        message = "services.hapgent.stateFile must be an absolute path, not `${cfg.stateFile}'.";
      }
    ];

    users.users = lib.mkMerge [
      {
        hapgent = {
          isSystemUser = true;
          group = "hapgent";
          home = "/var/lib/hapgent";
          description = "hapgent HAProxy agent";
        };
      }
      (lib.genAttrs cfg.controlUsers (_: {
        extraGroups = [ "hapgent" ];
      }))
    ];
    users.groups.hapgent = { };

    # On PATH for `hapgent check-config`, which reads the same file.
    environment.systemPackages = [ cfg.package ];
    environment.etc."hapgent/hapgent.toml".source = configFile;

    systemd.packages = [ cfg.package ];
    systemd.services.hapgent = {
      wantedBy = [ "multi-user.target" ];
      restartTriggers = [ configFile ];
      # Runs as hapgent inside the unit's sandbox, before every start, and
      # only ever creates the file: what the agent saved is kept.
      preStart =
        let
          file = lib.escapeShellArg cfg.stateFile;
          tmp = lib.escapeShellArg "${cfg.stateFile}.tmp";
        in
        ''
          if [ ! -e ${file} ] && [ ! -L ${file} ]; then
            printf '%s\n' ${lib.escapeShellArg initialState} > ${tmp}
            mv ${tmp} ${file}
          fi
        '';
      serviceConfig.ReadWritePaths = lib.mkIf (stateDir != "/var/lib/hapgent") [ stateDir ];
    };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ cfg.settings.port ];
  };
}
