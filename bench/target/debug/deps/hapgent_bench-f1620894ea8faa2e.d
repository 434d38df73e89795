/work/main/bench/target/debug/deps/hapgent_bench-f1620894ea8faa2e.d: src/main.rs src/load.rs src/proc.rs src/report.rs src/wait_seen.rs Cargo.toml

/work/main/bench/target/debug/deps/libhapgent_bench-f1620894ea8faa2e.rmeta: src/main.rs src/load.rs src/proc.rs src/report.rs src/wait_seen.rs Cargo.toml

src/main.rs:
src/load.rs:
src/proc.rs:
src/report.rs:
src/wait_seen.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
