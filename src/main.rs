//! The `hapgent` binary: everything is in the library (lib.rs); this only
//! turns the outcome of `run` into an exit code.

use hapgent_common::{error, log};
use std::process::ExitCode;

fn main() -> ExitCode {
    log::init("hapgent");
    let code = match hapgent::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            e.exit_code()
        }
    };
    // Lines still queued for stderr (see `log`) are written before exit.
    log::flush(std::time::Duration::from_secs(1));
    code
}
