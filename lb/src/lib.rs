//! hapgent-lb: the load-balancer side of hapgent. HAProxy's view of its
//! servers (`status`), waiting for a drain to finish (`wait`), and an HTTP
//! API that replaces HAProxy's configuration safely (`serve`).
//!
//! Each module says at its top what it owns. The crate is a library so that
//! the fuzz targets (`fuzz/`) reach its parsers; `main.rs` only calls
//! [`run`] and turns its outcome into an exit code.

// `unsafe` only where no safe API exists, allowed by name in that module.
#![deny(unsafe_code)]

pub mod access;
pub mod change;
mod cli;
pub mod config;
pub mod exit;
mod handlers;
pub mod http;
mod live;
pub mod metrics;
pub mod names;
pub mod preflight;
pub mod procs;
mod reload;
pub mod routes;
mod runtime;
pub mod serve;
pub mod settings;
pub mod shutdown;
pub mod stat;
mod status;
mod wait;
pub use cli::usage as usage_text;

use cli::Command;
use exit::Error;
use hapgent_common::{out, outln};
use std::time::Duration;

/// Runs the command line's command; `main` turns the outcome into an exit
/// code.
pub fn run() -> Result<(), Error> {
    let cli = cli::parse(std::env::args_os().skip(1))?;
    match cli.command {
        Command::Help => {
            out!("{}", cli::usage());
            return Ok(());
        }
        Command::Version => {
            outln!("hapgent-lb {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Command::CheckConfig | Command::Status { .. } | Command::Wait(_) | Command::Serve => {}
    }
    let inputs = settings::SPEC
        .inputs(cli.config, cli.flags)
        .map_err(Error::Config)?;
    let loaded = config::load(&inputs)?;
    let config = &loaded.config;
    match cli.command {
        Command::CheckConfig => {
            out!("{}", loaded.describe());
            Ok(())
        }
        Command::Status { backend, json } => {
            if let Some(b) = &backend {
                names::check("backend", b).map_err(Error::Usage)?;
            }
            let socket = &config.haproxy_socket;
            let backends = match &backend {
                None => smol::block_on(runtime::backends(socket)).map_err(Error::Unavailable)?,
                Some(b) => match smol::block_on(runtime::backend(socket, b)) {
                    Ok(Some(one)) => vec![one],
                    Ok(None) => {
                        return Err(Error::Runtime(format!("HAProxy has no backend {b:?}")));
                    }
                    Err(e) => return Err(Error::Unavailable(e)),
                },
            };
            if json {
                let text = status::json(&backends).map_err(|e| Error::Runtime(e.to_string()))?;
                outln!("{text}");
            } else {
                out!("{}", status::table(&backends));
            }
            Ok(())
        }
        Command::Wait(want) => {
            let interval = Duration::from_millis(config.poll_interval);
            let line = smol::block_on(wait::run(&config.haproxy_socket, &want, interval))?;
            outln!("{line}");
            Ok(())
        }
        Command::Serve => serve::run(loaded.config),
        Command::Help | Command::Version => Ok(()),
    }
}
