/work/main/bench/target/release/deps/hapgent_bench-117bd94a10a81f8c.d: src/main.rs src/load.rs src/proc.rs src/report.rs src/wait_seen.rs

/work/main/bench/target/release/deps/hapgent_bench-117bd94a10a81f8c: src/main.rs src/load.rs src/proc.rs src/report.rs src/wait_seen.rs

src/main.rs:
src/load.rs:
src/proc.rs:
src/report.rs:
src/wait_seen.rs:
