//! One-shot mode (`hapgent reply`): the reply that would be sent now, from
//! the state file, the flag files and (with `cpu_weight`) a CPU sample over
//! `timeframe`, printed once; what the Go haproxy_agent does when given no
//! port.

use crate::config::Config;
use crate::cpu;
use crate::error::Error;
use crate::flags::FlagFiles;
use crate::protocol;
use crate::served;
use crate::state;
use hapgent_common::{out, outln};
use std::time::Duration;

/// Prints the reply, or with `json` the reply and its inputs as one JSON
/// object.
pub fn run(config: Config, json: bool) -> Result<(), Error> {
    let state = state::load(&config.state_file);
    let served = served::at_start(&state);
    if let Err(problem) = &state {
        crate::error!(
            "state file {} {problem}; reporting FAIL",
            config.state_file.display()
        );
    }
    let (drain, maint, admin) =
        FlagFiles::new(config.drain_file.clone(), config.maint_file.clone()).snapshot();
    let idle = if config.cpu_weight {
        let read = || {
            cpu::read(&config.proc_stat)
                .map_err(|e| Error::Runtime(format!("{} {e}", config.proc_stat.display())))
        };
        let before = read()?;
        std::thread::sleep(Duration::from_millis(config.timeframe));
        cpu::idle_ppm(before, read()?)
    } else {
        None
    };
    let overlay = protocol::overlay(&served, admin, idle, config.min_weight);
    let reply = protocol::render_with(&served, overlay);
    if json {
        let value = serde_json::json!({
            "reply": reply.trim_end(),
            "state": state.as_ref().ok(),
            "state_error": state.as_ref().err().map(|p| format!("state file {} {p}", config.state_file.display())),
            "drain_file": drain,
            "maint_file": maint,
            "cpu_idle_percent": idle.map(|i| f64::from(i) / 10_000.0),
            "weight": protocol::weight(&served, overlay),
        });
        outln!("{value}");
    } else {
        out!("{reply}");
    }
    Ok(())
}
