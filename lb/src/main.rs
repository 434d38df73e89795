//! The `hapgent-lb` binary: everything is in the library (lib.rs); this only
//! turns the outcome of `run` into an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    hapgent_common::log::init("hapgent-lb");
    match hapgent_lb::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            hapgent_common::error!("{e}");
            e.exit_code()
        }
    }
}
