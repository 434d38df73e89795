# The hapgent package: the agent, and the systemd unit from
# systemd/hapgent.service (the unit's one source, shared with the .deb and
# the Ansible role) with its two absolute paths pointed into the store, so
# the NixOS module can install it through `systemd.packages`.
{
  lib,
  stdenv,
  rustPlatform,
  installShellFiles,
  coreutils,
  # A static binary is for copying to hosts without Nix; a unit naming store
  # paths would be no use there (and would drag in a static coreutils).
  withSystemdUnit ? !stdenv.hostPlatform.isStatic,
}:

let
  cargoToml = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).package;
in
rustPlatform.buildRustPackage {
  pname = cargoToml.name;
  inherit (cargoToml) version;

  # Only what the build reads, so that editing the README, docs, the
  # Ansible role, the workflows or these Nix files does not rebuild it.
  # build.rs and link/ are read, but add nothing without rust-lld.
  # .cargo/config.toml is left out on purpose: its musl linker settings are
  # for scripts/dist, and nixpkgs sets up its own toolchain.
  # The workspace's other members (common/, lb/, bench/, testkit/, docgen/) are included because
  # cargo needs every member to read the workspace; only hapgent is built.
  # README.md, docs/control.md, debian/hapgent.toml: unit tests hold them to
  # the settings table, the metrics table and the control protocol's types.
  # man/ and completions/: docgen's output, installed below.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../build.rs
      ../link
      ../src
      ../tests
      ../common
      ../lb
      ../bench
      ../testkit
      ../docgen
      ../man
      ../completions
      ../README.md
      ../docs/control.md
      ../debian/hapgent.toml
      ../systemd/hapgent.service
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;
  nativeBuildInputs = [ installShellFiles ];
  cargoBuildFlags = [
    "-p"
    "hapgent"
  ];
  cargoTestFlags = [
    "-p"
    "hapgent"
  ];

  # `cargo test`: the unit tests and the integration tests, which use
  # loopback only and so run in the build sandbox. The ones that drive a
  # real HAProxy print a loud SKIPPED line and pass, since haproxy is not a
  # build input and HAPGENT_REQUIRE_HAPROXY is unset; checks.<system>.vm
  # covers HAProxy. Left out here, because the sandbox builds as an
  # unprivileged user without strace, prlimit or ss:
  # the fault-injection tests and the tests that switch to another user
  # (two ctl tests, and the rate limit of control-socket refusals). `cargo test` in .ci/run runs all of them. Cross builds skip the
  # tests (nixpkgs cannot run them).
  doCheck = true;
  checkFlags = [
    "--skip=faults::"
    "--skip=ctl::strangers_are_refused_and_nothing_changes"
    "--skip=ctl::control_socket_problems_stop_the_start_clearly"
    "--skip=control_edges::control_socket_refusals_are_rate_limited"
  ];

  # The man pages and completions docgen made from the settings tables
  # (committed in man/ and completions/; a docgen test keeps them current).
  postInstall =
    ''
      installManPage man/hapgent.1 man/hapgent.toml.5
      installShellCompletion --cmd hapgent \
        --bash completions/hapgent.bash \
        --zsh completions/_hapgent \
        --fish completions/hapgent.fish
    ''
    + lib.optionalString withSystemdUnit ''
    install -Dm0644 systemd/hapgent.service $out/lib/systemd/system/hapgent.service
    substituteInPlace $out/lib/systemd/system/hapgent.service \
      --replace-fail /usr/bin/hapgent $out/bin/hapgent \
      --replace-fail /bin/kill ${coreutils}/bin/kill
  '';

  meta = {
    inherit (cargoToml) description;
    license = [
      lib.licenses.mit
      lib.licenses.asl20
    ];
    mainProgram = "hapgent";
    platforms = lib.platforms.linux;
  };
}
