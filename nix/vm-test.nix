# checks.<system>.vm: one NixOS machine running HAProxy and hapgent (through
# the module), where HAProxy's view of the server, read on its stats socket,
# must follow what hapgent is told. Needs KVM; the GitHub `nix` job runs it.
{ pkgs, module }:

pkgs.testers.runNixOSTest {
  name = "hapgent";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ module ];

      services.hapgent = {
        enable = true;
        settings.ip = "127.0.0.1";
      };

      # Agent checks as the integration tests drive HAProxy
      # (tests/integration/haproxy.rs). The NixOS module already opens a
      # `global` section (for its own socket); HAProxy merges repeated ones.
      services.haproxy = {
        enable = true;
        config = ''
          global
              stats socket /run/haproxy/admin.sock mode 600 level admin
              log stderr format short local0 info
          defaults
              mode tcp
              log global
              option log-health-checks
              timeout connect 1s
              timeout client 5s
              timeout server 5s
              timeout check 1s
          backend be
              server s1 127.0.0.1:8080 weight 100 check inter 500ms agent-check agent-addr 127.0.0.1 agent-port 9777 agent-inter 200ms
        '';
      };

      # HAProxy's regular check needs something listening on the server's
      # port; the agent alone cannot bring a server up.
      systemd.services.backend = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig = {
          DynamicUser = true;
          ExecStart = "${pkgs.socat}/bin/socat TCP-LISTEN:8080,bind=127.0.0.1,reuseaddr,fork EXEC:${pkgs.coreutils}/bin/true";
        };
      };

      environment.systemPackages = [ pkgs.socat ];
    };

  testScript = ''
    import time

    STATE = "/var/lib/hapgent/state.json"


    def server():
        """be/s1's row of HAProxy's `show stat`, as a dict."""
        out = machine.succeed("echo 'show stat' | socat stdio UNIX-CONNECT:/run/haproxy/admin.sock")
        lines = out.splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == "be" and row.get("svname") == "s1":
                return row
        raise Exception(f"no be/s1 in show stat:\n{out}")


    def wait_for_server(status, weight=None):
        """Polls until HAProxy shows be/s1 with this status (a prefix: HAProxy
        may add detail) and, unless None, this weight."""
        deadline = time.monotonic() + 30
        while True:
            row = server()
            if row["status"].startswith(status) and weight in (None, row["weight"]):
                return
            if time.monotonic() > deadline:
                raise Exception(
                    f"wanted be/s1 {status} weight {weight}; HAProxy shows "
                    f"{row['status']} weight {row['weight']}, agent said {row.get('last_agt')!r}"
                )
            time.sleep(0.5)


    def signal(sig):
        pid = machine.succeed("systemctl show -P MainPID hapgent.service").strip()
        assert pid != "0", "hapgent is not running"
        machine.succeed(f"kill -{sig} {pid}")


    def probe():
        return machine.succeed("socat -T2 - TCP:127.0.0.1:9777 </dev/null")


    machine.wait_for_unit("hapgent.service")
    machine.wait_for_unit("haproxy.service")
    machine.wait_for_unit("backend.service")
    machine.wait_for_open_port(9777, "127.0.0.1")

    with subtest("the unit from systemd/hapgent.service runs unprivileged and hardened"):
        pid = machine.succeed("systemctl show -P MainPID hapgent.service").strip()
        machine.succeed(f"test \"$(stat -c %U /proc/{pid})\" = hapgent")
        machine.succeed("test \"$(systemctl show -P ProtectSystem hapgent.service)\" = strict")
        machine.succeed("systemctl show -P SystemCallFilter hapgent.service | grep -q .")
        machine.succeed("hapgent check-config | grep -q '^state_file = \"/var/lib/hapgent/state.json\"'")

    with subtest("the state file starts as initialStatus UP, and HAProxy serves the server"):
        machine.succeed(f"grep -qx '{{\"status\":\"UP\"}}' {STATE}")
        reply = probe()
        assert reply == "up ready 100%\n", repr(reply)
        wait_for_server("UP", "100")

    with subtest("SIGUSR2 takes the server down, and the state file says so"):
        signal("USR2")
        wait_for_server("DOWN")
        machine.succeed(f"grep -q DOWN {STATE}")

    with subtest("a restart keeps the saved state: the file is never reset"):
        machine.succeed("systemctl restart hapgent.service")
        machine.wait_for_open_port(9777, "127.0.0.1")
        machine.succeed(f"grep -q DOWN {STATE}")
        reply = probe()
        assert reply.startswith("down"), repr(reply)
        wait_for_server("DOWN")

    with subtest("SIGUSR1 brings it back up"):
        signal("USR1")
        wait_for_server("UP", "100")

    with subtest("reload (SIGHUP) re-reads the file: half weight"):
        machine.succeed(f"echo '{{\"status\":\"UP\",\"weight\":50}}' > {STATE}")
        machine.succeed("systemctl reload hapgent.service")
        wait_for_server("UP", "50")
  '';
}
