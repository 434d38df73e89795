//! The health checks and capacity monitors of a running agent, and what
//! each service's reply reads of them.
//!
//! [`Running`] owns the checks' thread (`runner`) and the capacity sampler
//! for the whole agent, as a configuration asks for them; [`start`] makes
//! it, handing a reload's unchanged checks their old cells so that their
//! verdicts carry over. Each service gets a [`Watched`]: its checks' cells,
//! the capacity sampler (host-wide: its weight applies to every service)
//! and its `maxconn_total`. The probe thread asks a `Watched` for its
//! [`Key`] (a few atomic loads) and only calls `precedence::decide` when
//! the key changed, so a probe never waits for a check and seldom formats
//! anything.
//!
//! This module decides nothing about the reply (`precedence` and `budget`
//! do) and does not render it (`service` does).

use super::budget;
use super::capacity::{self, Paths, Sampler};
use super::check::{Cell, Verdict};
use super::config::{self, Capacity, Check, OnFail};
use super::precedence::{self, CheckInput, Decision};
use super::runner::{self, Runner};
use crate::config::Config;
use crate::protocol::Overlay;
use crate::state::State;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One check of a service, as its reply reads it.
pub struct WatchedCheck {
    /// The name in its table (`app` of `[checks.app]`).
    pub name: String,
    pub on_fail: OnFail,
    pub cell: Arc<Cell>,
}

/// What one service's reply reads of the checks and monitors.
pub struct Watched {
    pub checks: Vec<WatchedCheck>,
    pub capacity: Option<Sampler>,
    pub maxconn_total: Option<u32>,
    /// One more at every change of any check's verdict.
    changes: Arc<AtomicU64>,
}

impl Watched {
    /// What one service reads, made by hand: one-shot mode, which runs
    /// each check once itself (see `oneshot`).
    pub fn once(
        checks: Vec<WatchedCheck>,
        capacity: Option<Sampler>,
        maxconn_total: Option<u32>,
    ) -> Watched {
        Watched {
            checks,
            capacity,
            maxconn_total,
            changes: Arc::default(),
        }
    }
}

/// What a decision depends on besides the state and the overlay: when it
/// is the same, so is the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    changes: u64,
    load: Option<u32>,
    draining: bool,
}

impl Watched {
    /// Whether the reply depends on the load balancers counted.
    pub fn counts_lbs(&self) -> bool {
        self.maxconn_total.is_some()
    }

    /// The inputs now, in a few atomic loads.
    pub fn key(&self) -> Key {
        let (load, draining) = self.capacity.as_ref().map_or((None, false), Sampler::load);
        Key {
            changes: self.changes.load(Ordering::Acquire),
            load,
            draining,
        }
    }

    /// The reply for the operator's `state` under `overlay` (flag files,
    /// CPU weight) with `lbs` load balancers probing, and why.
    pub fn decide(&self, state: &State, overlay: Overlay, lbs: usize) -> Decision {
        let statuses: Vec<_> = self.checks.iter().map(|c| c.cell.status()).collect();
        let checks: Vec<CheckInput> = self
            .checks
            .iter()
            .zip(statuses)
            .map(|(c, status)| CheckInput {
                name: &c.name,
                on_fail: c.on_fail,
                status,
            })
            .collect();
        let view = self.capacity.as_ref().map(Sampler::view);
        precedence::decide(&precedence::Inputs {
            state,
            flag_admin: overlay.admin,
            cpu_weight: overlay.weight,
            checks: &checks,
            capacity: view.as_ref(),
            maxconn: budget::maxconn(self.maxconn_total, state.maxconn, lbs),
        })
    }
}

/// The checks and monitors a configuration asks for, validated: each
/// check with the service it belongs to (empty: the default service).
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub checks: Vec<(String, Check)>,
    pub capacity: Option<(Capacity, Paths)>,
    /// Each service's `maxconn_total`, by name.
    pub budgets: HashMap<String, u32>,
}

impl Plan {
    /// Whether anything is asked for.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.capacity.is_none() && self.budgets.is_empty()
    }
}

/// The plan for `config` (validated when it was loaded; an error here
/// names the key all the same).
pub fn plan(config: &Config) -> Result<Plan, String> {
    let mut checks = Vec::new();
    for (name, spec) in &config.checks {
        checks.push((String::new(), config::check("checks", name, spec)?));
    }
    let mut budgets = HashMap::new();
    if let Some(n) = config.maxconn_total {
        budgets.insert(String::new(), n);
    }
    for (service, s) in &config.services {
        for (name, spec) in &s.checks {
            let prefix = format!("services.{service}.checks");
            checks.push((service.clone(), config::check(&prefix, name, spec)?));
        }
        if let Some(n) = s.maxconn_total {
            budgets.insert(service.clone(), n);
        }
    }
    let capacity = match &config.capacity {
        Some(spec) => Some((
            config::capacity(spec)?,
            Paths {
                proc_stat: config.proc_stat.clone(),
                proc_meminfo: config.proc_meminfo.clone(),
                proc_loadavg: config.proc_loadavg.clone(),
                proc_net: config.proc_net.clone(),
            },
        )),
        None => None,
    };
    Ok(Plan {
        checks,
        capacity,
        budgets,
    })
}

/// The checks' thread and the capacity sampler, as started for a plan.
pub struct Running {
    plan: Plan,
    /// Each check's cell, in the order of `plan.checks`.
    cells: Vec<Arc<Cell>>,
    sampler: Option<Sampler>,
    changes: Arc<AtomicU64>,
    /// Dropped last: stops the thread.
    _runner: Option<Runner>,
}

/// What a check is called in the log: `app`, or `app (service api)`.
fn label(service: &str, check: &str) -> String {
    if service.is_empty() {
        check.to_string()
    } else {
        format!("{check} (service {service})")
    }
}

/// What a reload carries over from the running checks and monitors to
/// the new ones: everything `start` may reuse, and nothing that is not
/// `Send`, so that the new ones can be started on another thread.
pub struct Lent {
    plan: Plan,
    cells: Vec<Arc<Cell>>,
    sampler: Option<Sampler>,
    changes: Arc<AtomicU64>,
}

/// Starts what `plan` asks for (on a thread with every signal blocked:
/// it starts threads). `previous`, at a reload, lends the cells of the
/// checks it ran with the same definition, and its sampler if the
/// capacity did not change; a new sampler takes its first reading here,
/// which with the `connections` monitor on a busy host takes tens of
/// milliseconds: a reload starts them on the disk thread, not the
/// probes'. `ring` is called on the checks' and the sampler's threads at
/// each change: keep it short.
pub fn start(
    plan: Plan,
    previous: Option<Lent>,
    ring: Arc<dyn Fn() + Send + Sync>,
) -> Result<Running, String> {
    let previous = previous.as_ref();
    let changes = previous.map_or_else(|| Arc::new(AtomicU64::new(0)), |p| p.changes.clone());
    let cells: Vec<Arc<Cell>> = plan
        .checks
        .iter()
        .map(|(service, check)| {
            previous
                .and_then(|p| {
                    let i = p
                        .plan
                        .checks
                        .iter()
                        .position(|(s, c)| s == service && c == check)?;
                    Some(Arc::clone(&p.cells[i]))
                })
                .unwrap_or_default()
        })
        .collect();
    let runner = if plan.checks.is_empty() {
        None
    } else {
        let labelled = plan
            .checks
            .iter()
            .zip(&cells)
            .map(|((service, check), cell)| {
                let check = Check {
                    name: label(service, &check.name),
                    ..check.clone()
                };
                (check, Arc::clone(cell))
            })
            .collect();
        let (changes, ring) = (changes.clone(), ring.clone());
        let on_change: runner::OnChange = Arc::new(move |_: &runner::Change| {
            changes.fetch_add(1, Ordering::Release);
            ring();
        });
        Some(
            Runner::start_with(labelled, on_change)
                .map_err(|e| format!("cannot start the checks' thread: {e}"))?,
        )
    };
    let kept = previous
        .filter(|p| p.plan.capacity == plan.capacity)
        .and_then(|p| p.sampler.clone());
    let sampler = match (&plan.capacity, kept) {
        (None, _) => None,
        (Some(_), Some(kept)) => Some(kept),
        (Some((capacity, paths)), None) => Some(
            Sampler::start(capacity.clone(), paths.clone(), ring)
                .map_err(|e| format!("cannot start the capacity sampler: {e}"))?,
        ),
    };
    Ok(Running {
        plan,
        cells,
        sampler,
        changes,
        _runner: runner,
    })
}

impl Running {
    /// What a reload may reuse (see `start`).
    pub fn lend(&self) -> Lent {
        Lent {
            plan: self.plan.clone(),
            cells: self.cells.clone(),
            sampler: self.sampler.clone(),
            changes: Arc::clone(&self.changes),
        }
    }

    /// What service `name` (empty: the default) reads; `None` when it has
    /// no check, no budget and there is no capacity monitor.
    pub fn watched(&self, name: &str) -> Option<Rc<Watched>> {
        let checks: Vec<WatchedCheck> = self
            .plan
            .checks
            .iter()
            .zip(&self.cells)
            .filter(|((service, _), _)| service == name)
            .map(|((_, check), cell)| WatchedCheck {
                name: check.name.clone(),
                on_fail: check.on_fail,
                cell: Arc::clone(cell),
            })
            .collect();
        let maxconn_total = self.plan.budgets.get(name).copied();
        if checks.is_empty() && maxconn_total.is_none() && self.sampler.is_none() {
            return None;
        }
        Some(Rc::new(Watched {
            checks,
            capacity: self.sampler.clone(),
            maxconn_total,
            changes: Arc::clone(&self.changes),
        }))
    }

    /// The capacity monitors' view, for metrics and `ctl status`.
    pub fn capacity(&self) -> Option<capacity::View> {
        self.sampler.as_ref().map(Sampler::view)
    }

    /// What it was started for.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// For the log: "running 2 health checks (app, db (service api));
    /// capacity monitors memory, load; maxconn_total for default, api".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.plan.checks.is_empty() {
            let names: Vec<String> = self
                .plan
                .checks
                .iter()
                .map(|(s, c)| label(s, &c.name))
                .collect();
            parts.push(format!(
                "{} health check{} ({})",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            ));
        }
        if let Some((capacity, _)) = &self.plan.capacity {
            let names: Vec<&str> = capacity.monitors.iter().map(|m| m.watch.name()).collect();
            parts.push(format!("capacity monitors {}", names.join(", ")));
        }
        if !self.plan.budgets.is_empty() {
            let mut names: Vec<&str> = self
                .plan
                .budgets
                .keys()
                .map(|s| crate::config::service_label(s))
                .collect();
            names.sort_unstable();
            parts.push(format!("maxconn_total for {}", names.join(", ")));
        }
        format!("running {}", parts.join("; "))
    }
}

/// A verdict's word, for `ctl status --json` and the metrics.
pub fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Unknown => "unknown",
        Verdict::Passing => "passing",
        Verdict::Failing => "failing",
    }
}
