/work/main/bench/target/release/deps/hapgent_bench-36ac63daec600cbb.d: src/main.rs src/load.rs src/proc.rs src/report.rs src/wait_seen.rs

/work/main/bench/target/release/deps/hapgent_bench-36ac63daec600cbb: src/main.rs src/load.rs src/proc.rs src/report.rs src/wait_seen.rs

src/main.rs:
src/load.rs:
src/proc.rs:
src/report.rs:
src/wait_seen.rs:
