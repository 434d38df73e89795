/work/main/bench/target/debug/deps/hapgent_bench-695cec98e8422feb.d: src/main.rs src/load.rs src/proc.rs src/report.rs src/wait_seen.rs Cargo.toml

/work/main/bench/target/debug/deps/libhapgent_bench-695cec98e8422feb.rmeta: src/main.rs src/load.rs src/proc.rs src/report.rs src/wait_seen.rs Cargo.toml

src/main.rs:
src/load.rs:
src/proc.rs:
src/report.rs:
src/wait_seen.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
