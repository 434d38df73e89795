//! Health and capacity: what the host says about itself, beside what the
//! operator says.
//!
//! Health checks (`[checks.NAME]`: http, tcp, exec) and capacity monitors
//! (`[capacity]`: memory, load, cpu, disk, connections) run on threads of
//! their own and publish their latest results in atomics; the reply only
//! reads those. `precedence` is the one place where the operator's state,
//! the flag files, the checks and the monitors combine, and `budget`
//! splits a service's `maxconn_total` across the load balancers probing
//! it. Each submodule says what it owns:
//!
//! - `config`: the TOML tables as typed, validation, defaults;
//! - `check`: a run's outcome, the rise/fall state machine, the published
//!   cell; `runner`: the checks' thread; `http`, `tcp`, `exec`: one run;
//! - `capacity`: the monitors' readings, the weight they imply, drain with
//!   hysteresis, the sampling thread; `connections`: counting established
//!   connections by local port (netlink sock_diag);
//! - `precedence`: reply decision and its explanation; `budget`: maxconn;
//! - `watch`: the running checks and sampler of an agent, and what each
//!   service's reply reads of them.
//!
//! This module does not render replies (`protocol` does) nor read the
//! state file.

pub mod budget;
pub mod capacity;
pub mod check;
pub mod config;
pub mod connections;
pub mod exec;
pub mod http;
pub mod precedence;
pub mod runner;
pub mod tcp;
pub mod watch;
