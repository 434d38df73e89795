# The hapgent-lb package: the load-balancer side (lb/), and its unit from
# systemd/hapgent-lb.service with the binary pointed into the store.
{
  lib,
  stdenv,
  rustPlatform,
  installShellFiles,
  haproxy,
  withSystemdUnit ? !stdenv.hostPlatform.isStatic,
}:

let
  cargoToml = (builtins.fromTOML (builtins.readFile ../lb/Cargo.toml)).package;
in
rustPlatform.buildRustPackage {
  pname = cargoToml.name;
  inherit (cargoToml) version;

  # The whole workspace is needed for cargo to read it; only hapgent-lb is
  # built. docs/alerts.md: a unit test holds its runbooks to the metrics.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
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
      ../docs/alerts.md
      ../systemd/hapgent-lb.service
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;
  nativeBuildInputs = [ installShellFiles ];
  cargoBuildFlags = [
    "-p"
    "hapgent-lb"
  ];
  # Unit tests and the system tests, which start HAProxy in master-worker
  # mode on loopback (allowed in the build sandbox).
  cargoTestFlags = [
    "-p"
    "hapgent-lb"
  ];
  nativeCheckInputs = [ haproxy ];
  doCheck = true;

  # The man pages and completions docgen made from the settings tables
  # (committed in man/ and completions/; a docgen test keeps them current).
  postInstall =
    ''
      installManPage man/hapgent-lb.1 man/hapgent-lb.toml.5
      installShellCompletion --cmd hapgent-lb \
        --bash completions/hapgent-lb.bash \
        --zsh completions/_hapgent-lb \
        --fish completions/hapgent-lb.fish
    ''
    + lib.optionalString withSystemdUnit ''
    install -Dm0644 systemd/hapgent-lb.service $out/lib/systemd/system/hapgent-lb.service
    substituteInPlace $out/lib/systemd/system/hapgent-lb.service \
      --replace-fail /usr/bin/hapgent-lb $out/bin/hapgent-lb
  '';

  meta = {
    inherit (cargoToml) description;
    license = [
      lib.licenses.mit
      lib.licenses.asl20
    ];
    mainProgram = "hapgent-lb";
    platforms = lib.platforms.linux;
  };
}
