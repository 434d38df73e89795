//! One-shot mode (`hapgent reply`): the reply that would be sent now, from
//! the state file, the flag files, (with `cpu_weight`) a CPU sample over
//! `timeframe`, and the default service's checks (each run once), capacity
//! monitors (read once) and `maxconn_total` (for one load balancer),
//! printed once; what the Go haproxy_agent does when given no port.

use crate::config::Config;
use crate::cpu;
use crate::exit::Error;
use crate::flags::FlagFiles;
use crate::health::capacity::Sampler;
use crate::health::check::Cell;
use crate::health::runner;
use crate::health::watch::{self, Watched, WatchedCheck};
use crate::protocol;
use crate::served;
use crate::state;
use hapgent_common::{out, outln};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    let decision = health_once(&config)?.map(|h| h.decide(&served, overlay, 0));
    let (served, overlay) = match &decision {
        Some(d) => (d.state.clone(), d.overlay),
        None => (served, overlay),
    };
    let reply = protocol::render_with(&served, overlay);
    if json {
        let mut value = serde_json::json!({
            "reply": reply.trim_end(),
            "state": state.as_ref().ok(),
            "state_error": state.as_ref().err().map(|p| format!("state file {} {p}", config.state_file.display())),
            "drain_file": drain,
            "maint_file": maint,
            "cpu_idle_percent": idle.map(|i| f64::from(i) / 10_000.0),
            "weight": protocol::weight(&served, overlay),
        });
        if let Some(d) = decision {
            value["reasons"] = serde_json::json!(d.reasons);
        }
        outln!("{value}");
    } else {
        out!("{reply}");
    }
    Ok(())
}

/// The default service's checks, each run once (at most its timeout; the
/// first result decides, as in the agent), a first capacity reading (the
/// `cpu` monitor needs two and is left out) and its `maxconn_total`, for
/// one load balancer; `None` when none is configured.
fn health_once(config: &Config) -> Result<Option<Watched>, Error> {
    let plan = watch::plan(config).map_err(Error::Config)?;
    let budget = plan.budgets.get("").copied();
    let mine: Vec<_> = plan.checks.iter().filter(|(s, _)| s.is_empty()).collect();
    if mine.is_empty() && plan.capacity.is_none() && budget.is_none() {
        return Ok(None);
    }
    let checks = mine
        .into_iter()
        .map(|(_, check)| {
            let started = Instant::now();
            let (outcome, _) = smol::block_on(runner::probe(&check.probe, check.timeout));
            let cell = Arc::new(Cell::default());
            cell.record(outcome, started.elapsed(), check.rise, check.fall);
            WatchedCheck {
                name: check.name.clone(),
                on_fail: check.on_fail,
                cell,
            }
        })
        .collect();
    let capacity = match plan.capacity {
        Some((capacity, paths)) => Some(
            crate::sys::with_signals_blocked(|| Sampler::start(capacity, paths, Arc::new(|| {})))
                .and_then(|r| r)
                .map_err(|e| Error::Runtime(format!("cannot read the capacity monitors: {e}")))?,
        ),
        None => None,
    };
    Ok(Some(Watched::once(checks, capacity, budget)))
}
