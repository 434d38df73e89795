/work/main/bench/target/release/hapgent-bench: /work/main/bench/src/load.rs /work/main/bench/src/main.rs /work/main/bench/src/proc.rs /work/main/bench/src/report.rs /work/main/bench/src/wait_seen.rs
