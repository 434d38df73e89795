//! hapgent-bench: load and footprint benchmark for HAProxy agent-check agents.
//!
//! Starts an agent (hapgent by default, or any command given after `--`),
//! probes it over loopback the way HAProxy does (connect, optionally send the
//! `agent-send` payload, read one line, close with a reset) from N threads,
//! and reports throughput, latency, the agent's CPU time per check, its
//! memory at rest, after load and while 2,000 connections are held idle, how
//! fast a fresh probe is answered meanwhile, the stripped binary size and
//! the time from spawn to the first reply. Every reply must be one
//! well-formed agent-check line; any error or malformed reply makes the
//! exit status 1 (after the report), so `--check` is a correctness test.
//!
//! Load generator (`load`): non-blocking sockets in an epoll loop per
//! thread (one thread per CPU by default), so that it leaves the agent as much of
//! the machine as it can; it shares the machine's cores with the agent.
//! Single probes (start-up, fresh probes) use a blocking socket (`probe`).
//!
//! The modules: `cli` (the options), `agent` (starting and stopping the
//! agent), `floor` (the floor reference), `probe` (one check and the reply
//! grammar), `load`, `tally` (outcomes by error kind), `scrape`
//! (`--metrics`), `proc` (what /proc says), `phases` (the load benchmark,
//! step by step), `haproxy` (a foreground HAProxy), `wait_seen` (the
//! `--wait-seen` mode), `table` (the `--prober-table` mode), `lb_status`
//! (the `--lb-status` mode: hapgent-lb's `status` on a large HAProxy),
//! `stats`, `report`
//! (text, JSON, Markdown) and `error` (what ends a run).

mod agent;
mod cli;
mod error;
mod floor;
mod haproxy;
mod lb_status;
mod load;
mod phases;
mod probe;
mod proc;
mod report;
mod scrape;
mod stats;
mod table;
mod tally;
mod wait_seen;

use error::Error;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some(floor::ARG) => return floor::serve(args.next().as_deref() == Some("--drain")),
        Some(lb_status::CHILD_ARG) => return lb_status::spawn_measured(args),
        _ => {}
    }
    let result = cli::parse_args().and_then(|options| match options {
        None => Ok(true),
        Some(o) if o.wait_seen > 0 => wait_seen::run(&o),
        Some(o) if o.prober_table > 0 => table::run(&o),
        Some(o) if o.lb_status > 0 => lb_status::run(&o),
        Some(o) => phases::run(&o),
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e @ Error::Usage(_)) => {
            eprintln!("hapgent-bench: {e}\n\n{}", cli::USAGE);
            ExitCode::from(e.exit_code())
        }
        Err(e) => {
            eprintln!("hapgent-bench: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
