//! System tests for hapgent-lb: the real binary against a real HAProxy in
//! master-worker mode, started per test on loopback in its own directory.
//! Each test names one behaviour an operator relies on.

mod api;
mod backends_json;
mod closed_pipe;
mod metrics;
mod reload_edges;
mod serve_edges;
mod status_wait;
mod util;
