//! hapgent: answers HAProxy agent checks with this server's state.
//!
//! Each module says at its top what it owns. The crate is a library so that
//! the fuzz targets (`fuzz/`) reach its parsers; `main.rs` only calls
//! [`run`] and turns its outcome into an exit code.

// `unsafe` only where no safe API exists, allowed by name in that module.
#![deny(unsafe_code)]

mod agent;
pub mod cidr;
mod cli;
pub mod config;
pub mod control;
mod cpu;
mod daemon;
mod disk;
pub mod exit;
mod flags;
pub mod health;
mod line;
mod listen;
pub mod metrics;
mod oneshot;
mod probers;
pub mod protocol;
mod reload;
mod served;
mod server;
mod service;
mod services;
pub mod settings;
mod signals;
pub mod state;
mod sys;
mod systemd;
mod unknown;
pub use cli::usage_text;

// The logger, its macros and safe file reads come from the library shared
// with hapgent-lb; re-exported so that `crate::info!` and the like work.
pub(crate) use hapgent_common::{error, files, info, log, warn};

/// The control protocol's types, as `hapgent::wire` (the fuzz targets').
pub use control::wire;

use cli::Command;
use exit::Error;
use hapgent_common::{out, outln};
use std::path::PathBuf;

/// Runs the command line's command; `main` turns the outcome into an exit
/// code.
pub fn run() -> Result<(), Error> {
    let cli = cli::parse(std::env::args_os().skip(1))?;
    match cli.command {
        Command::Help => {
            out!("{}", cli::usage_text());
            return Ok(());
        }
        Command::Version => {
            outln!("hapgent {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Command::Run => {
            // Before anything else: SIGUSR1's default action is to
            // terminate, and a deploy script may send it while the
            // configuration loads. From here on it is recorded and handled
            // once the agent serves.
            signals::install()
                .map_err(|e| Error::Runtime(format!("cannot set up signal handling: {e}")))?;
        }
        Command::CheckConfig | Command::Reply { .. } | Command::Ctl(_) => {}
    }
    let inputs = config::Inputs {
        config_flag: cli.config,
        default_file: PathBuf::from(config::DEFAULT_CONFIG),
        env: environment()?,
        flags: cli.flags,
    };
    let loaded = config::load(&inputs)?;
    match cli.command {
        Command::CheckConfig => {
            out!("{}", loaded.describe());
            Ok(())
        }
        Command::Reply { json } => oneshot::run(loaded.config, json),
        // The sources of every value are only for check-config: free them
        // before serving (with many services they are most of the memory).
        Command::Run => daemon::run(loaded.into_config(), inputs),
        Command::Ctl(ctl) => control::client::run(&loaded.config, ctl),
        Command::Help | Command::Version => Ok(()),
    }
}

/// The process environment as text; a `HAPGENT_` variable that is not UTF-8
/// is a configuration error rather than silently ignored.
fn environment() -> Result<Vec<(String, String)>, Error> {
    hapgent_common::config::environment(config::ENV_PREFIX).map_err(Error::Config)
}
