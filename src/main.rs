//! hapgent: answers HAProxy agent checks with this server's state.
//!
//! `main` only turns the outcome of `run` into an exit code; each module
//! says at its top what it owns.

mod agent;
mod cli;
mod config;
mod cpu;
mod disk;
mod error;
mod log;
mod protocol;
mod server;
mod state;
mod sys;
mod systemd;

use cli::Command;
use error::Error;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            e.exit_code()
        }
    }
}

fn run() -> Result<(), Error> {
    let cli = cli::parse(std::env::args_os().skip(1))?;
    match cli.command {
        Command::Help => {
            print!("{}", cli::USAGE);
            return Ok(());
        }
        Command::Version => {
            println!("hapgent {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Command::Run | Command::CheckConfig | Command::Reply { .. } => {}
    }
    let loaded = config::load(config::Inputs {
        config_flag: cli.config.as_deref(),
        default_file: Path::new(config::DEFAULT_CONFIG),
        env: environment()?,
        flags: &cli.flags,
    })?;
    match cli.command {
        Command::CheckConfig => {
            print!("{}", loaded.describe());
            Ok(())
        }
        Command::Reply { json } => agent::once(loaded.config, json),
        _ => agent::run(loaded.config),
    }
}

/// The process environment as text; a `HAPGENT_` variable that is not UTF-8
/// is a configuration error rather than silently ignored.
fn environment() -> Result<Vec<(String, String)>, Error> {
    let mut env = Vec::new();
    for (key, value) in std::env::vars_os() {
        let (Some(k), Some(v)) = (key.to_str(), value.to_str()) else {
            if key.to_string_lossy().starts_with("HAPGENT_") {
                return Err(Error::Config(format!(
                    "environment variable {} is not valid UTF-8",
                    key.to_string_lossy()
                )));
            }
            continue;
        };
        env.push((k.to_string(), v.to_string()));
    }
    Ok(env)
}
