//! What each control request does, and its typed answer (`wire`): status,
//! probers and metrics read the agent; `set` validates the new state for
//! every service named, then changes them all and waits (a little) for the
//! state files; `wait-seen` is `wait_seen`'s.

use super::access;
use super::wait_seen::wait_seen;
use super::wire::{
    self, CapacityAnswer, CheckAnswer, Code, HealthAnswer, MetricsAnswer, MonitorAnswer, NoFields,
    Prober, ProbersAnswer, Request, ServiceAnswer, SetAnswer, StatusAnswer,
};
use crate::agent::Agent;
use crate::health::watch;
use crate::metrics;
use crate::probers;
use crate::service::{Cause, Origin, Service};
use crate::sys::Peer;
use crate::unknown::Unknown;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// How long a change's answer waits for the state file to be written.
const SAVE_WAIT: Duration = Duration::from_secs(3);

/// Carries out one request and renders the answer.
pub async fn handle(agent: &Agent, request: Request, peer: &Peer) -> String {
    match request {
        Request::Status => {
            let default = agent.service("").map(|s| service_answer(agent, &s));
            let services = services_answer(agent, &agent.services());
            with_probers(agent, move |probers| StatusAnswer {
                default,
                services,
                probers,
            })
            .await
        }
        Request::Probers => with_probers(agent, |probers| probers).await,
        Request::Metrics => wire::ok(MetricsAnswer {
            metrics: metrics::text(agent).await,
        }),
        Request::Set { service, state } => set(agent, service.as_deref(), &state, peer)
            .await
            .unwrap_or_else(|failure| failure),
        Request::WaitSeen {
            service,
            version,
            timeout_ms,
        } => match targets(agent, service.as_deref()) {
            Ok(mut t) => {
                let target = t.remove(0);
                wait_seen(agent, &target, version, Duration::from_millis(timeout_ms)).await
            }
            Err(answer) => answer,
        },
    }
}

/// Changes the services `service` names (all or none: the new state is
/// validated for every one first), and answers once the state files hold
/// it, or after `SAVE_WAIT` (then `"saved": false` says so).
async fn set(
    agent: &Agent,
    service: Option<&str>,
    state: &Map<String, Value>,
    peer: &Peer,
) -> Result<String, String> {
    let targets = targets(agent, service)?;
    let who = access::describe(peer);
    let mut merged = Vec::with_capacity(targets.len());
    for target in &targets {
        match crate::state::merge(&target.state(), state) {
            Ok(new) => merged.push(new),
            Err(problem) => {
                let message = format!("the new state {problem}");
                return Err(wire::failure(Code::InvalidState, &message, NoFields {}));
            }
        }
    }
    for (target, new) in targets.iter().zip(merged) {
        target.set(
            new,
            &format!("ctl by {who} pid {}", peer.pid),
            Cause::Ctl,
            Origin::Change,
        );
    }
    for target in &targets {
        target.wait_saved(SAVE_WAIT).await;
    }
    Ok(wire::ok(SetAnswer {
        first: service_answer(agent, &targets[0]),
        services: services_answer(agent, &targets),
    }))
}

/// The services a request names: one, or every one for `"*"`; an unknown
/// name is an error answer.
pub fn targets(agent: &Agent, service: Option<&str>) -> Result<Vec<Rc<Service>>, String> {
    if service == Some(wire::ALL) {
        return Ok(agent.services());
    }
    let name = service.unwrap_or("");
    agent.service(name).map(|s| vec![s]).ok_or_else(|| {
        let known: Vec<String> = agent
            .services()
            .iter()
            .filter(|s| !s.name.is_empty())
            .map(|s| s.name.to_string())
            .collect();
        let message = format!(
            "there is no service {name:?} (configured: {})",
            if known.is_empty() {
                "none besides the default".to_string()
            } else {
                known.join(", ")
            }
        );
        wire::failure(Code::BadRequest, &message, NoFields {})
    })
}

/// One service: name, state served, version, whether saved, reply, and
/// with checks, monitors or a budget, why.
fn service_answer(agent: &Agent, service: &Service) -> ServiceAnswer {
    let reply = agent.current_reply(service);
    ServiceAnswer {
        service: service.name.to_string(),
        version: service.version(),
        saved: service.is_saved(),
        state: service.state(),
        reply: String::from_utf8_lossy(&reply).trim_end().into(),
        health: health_answer(agent, service),
    }
}

/// Why `service`'s reply is what it is; `None` without checks, monitors
/// or a budget.
fn health_answer(agent: &Agent, service: &Service) -> Option<HealthAnswer> {
    let decision = agent.decision(service)?;
    let watched = service.health()?;
    let checks = watched
        .checks
        .iter()
        .map(|c| {
            let s = c.cell.status();
            CheckAnswer {
                name: c.name.clone(),
                status: watch::verdict_word(s.verdict).into(),
                last: s.last.map(|o| o.describe()),
                duration_ms: s.duration.as_secs_f64() * 1000.0,
                fails: s.fails,
                runs: s.runs_total,
                failures: s.failures_total,
            }
        })
        .collect();
    let percent = |ppm: u32| f64::from(ppm) / 10_000.0;
    let capacity = watched.capacity.as_ref().map(|sampler| {
        let view = sampler.view();
        CapacityAnswer {
            load_percent: view.load_ppm.map(percent),
            draining: view.draining,
            monitors: view
                .readings
                .iter()
                .map(|r| MonitorAnswer {
                    name: r.name.into(),
                    value: r.value,
                    full: r.full,
                    significance: r.significance,
                    load_percent: percent(r.load_ppm),
                    failing: r.failing,
                })
                .collect(),
        }
    });
    Some(HealthAnswer {
        reasons: decision.reasons,
        checks,
        capacity,
        maxconn_total: watched.maxconn_total,
        load_balancers: watched.maxconn_total.map(|_| agent.lbs(service)),
    })
}

fn services_answer(agent: &Agent, services: &[Rc<Service>]) -> Vec<ServiceAnswer> {
    services.iter().map(|s| service_answer(agent, s)).collect()
}

/// The answer `make` builds around the prober table: the table is copied
/// a chunk at a time and rendered on a thread of its own, so that no probe
/// waits for a listing.
async fn with_probers<T: serde::Serialize>(
    agent: &Agent,
    make: impl FnOnce(ProbersAnswer) -> T + Send + 'static,
) -> String {
    let window = agent.seen_window();
    let snapshot = probers::snapshot(|| agent.probers(), window).await;
    let names = snapshot.names(|id| agent.service_name(id));
    let rendered = probers::off_probe_thread(move || {
        wire::ok(make(ProbersAnswer {
            probers: probers_answer(snapshot.sorted(), &names),
            seen_window_ms: window.as_millis() as u64,
        }))
    })
    .await;
    rendered.unwrap_or_else(|| {
        wire::failure(
            Code::Internal,
            "rendering the prober table failed (see hapgent's log)",
            NoFields {},
        )
    })
}

/// The probers, sorted, as the control protocol lists them.
fn probers_answer(snapshot: probers::Snapshot, names: &HashMap<u32, String>) -> Vec<Prober> {
    let ms = |d: Duration| d.as_millis() as u64;
    snapshot
        .rows
        .iter()
        .map(|p| Prober {
            address: p.address.to_string(),
            service: names.get(&p.service).cloned().unwrap_or_default(),
            first_probe_ms_ago: ms(p.first_ago),
            last_probe_ms_ago: ms(p.last_ago),
            probes: p.probes,
            probing: p.probing,
            version: p.version,
            reply: snapshot.replies.get(p.reply).cloned().unwrap_or_default(),
            unknown_service: Unknown::is(p.service),
        })
        .collect()
}
