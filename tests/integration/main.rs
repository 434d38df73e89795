//! Integration tests: the real binary, spawned, probed over loopback.
//!
//! One test binary (as ripgrep does) so the binary is linked once; `util`
//! holds the harness, the other modules the tests by theme. `haproxy`
//! drives a real HAProxy, which is the client that matters.

mod util;

mod clients;
mod commands;
mod control_edges;
mod ctl;
mod dynamic;
mod edges_signals;
mod faults;
mod golden;
mod haproxy;
mod probe_path;
mod probers;
mod reload;
mod services;
mod signals;
mod state_file;
