//! What the integration tests (`tests/`, `lb/tests/`) and the benchmark
//! (`bench/`) share: a temporary directory removed on drop, waits that
//! poll for an event with a deadline (never a sleep standing for one),
//! child processes ended by PID, and a real HAProxy started in a directory
//! of its own.
//!
//! It owns the plumbing, not the claims: what an agent, hapgent-lb or a
//! benchmark mode is and how it is driven stays with its own harness.
//! Test-only: a panic here is a failed test with its reason.

mod dir;
pub mod haproxy;
mod process;
mod wait;

pub use dir::TempDir;
pub use haproxy::Haproxy;
pub use process::{Outcome, exits_within, free_port, kill, stop};
pub use wait::{PATIENCE, poll, poll_every, wait_for};
