//! Integration tests: the real binary, spawned, probed over loopback.
//!
//! One test binary (as ripgrep does) so the binary is linked once; `util`
//! holds the harness (one builder for every run of hapgent) and `inject`
//! the faults it injects; each other module is named for its subject. `haproxy`
//! drives a real HAProxy, which is the client that matters.

mod inject;
mod util;

mod blocked_outputs;
mod clients;
mod commands;
mod control_edges;
mod ctl;
mod dynamic;
mod edges_signals;
mod golden;
mod haproxy;
mod health;
mod listeners;
mod probe_path;
mod probers;
mod proc_stat;
mod reload;
mod saves;
mod services;
mod signals;
mod state_file;
