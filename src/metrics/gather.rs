//! The metrics' `View`, copied from the agent: its services, the server's
//! counters, and the prober table (copied a chunk at a time, see
//! `probers::snapshot`, so that no probe waits for it).

use super::render::{CapacityView, CheckView, ProberView, ServiceView, View};
use crate::agent::Agent;
use crate::health::capacity;
use crate::health::check::Verdict;
use crate::health::watch::Watched;
use crate::probers;
use crate::protocol;
use crate::service::Service;
use crate::services;
use std::time::SystemTime;

/// What the metrics show now.
pub async fn gather(agent: &Agent) -> View {
    let services = agent
        .services()
        .iter()
        .map(|s| service_view(agent, s))
        .collect();
    let server = agent.server_counters().unwrap_or_default();
    let evicted = agent.probers().evicted();
    let probers = prober_views(agent).await;
    View {
        version: env!("CARGO_PKG_VERSION"),
        uptime: agent.uptime(),
        services,
        refused_allow: server.refused_allow,
        refused_cap: server.refused_cap,
        unknown_service: agent.counters.unknown_service.get(),
        evicted,
        capacity: capacity_view(agent),
        probers,
        now: SystemTime::now(),
    }
}

/// One service: its state, the reply it gets now, its checks and counters.
fn service_view(agent: &Agent, s: &Service) -> ServiceView {
    let state = s.state();
    // With checks, monitors or a budget, the reply is decided from the
    // state; without, it is the state under the overlay.
    let (replied, overlay) = match agent.decision(s) {
        Some(d) => (d.state, d.overlay),
        None => (state.clone(), agent.overlay(s)),
    };
    ServiceView {
        label: services::label(&s.name).to_string(),
        status: state.status,
        admin: protocol::admin_of(&replied, overlay.admin),
        weight: protocol::weight(&replied, overlay),
        maxconn: replied.maxconn,
        checks: s.health().map_or_else(Vec::new, |w| check_views(&w)),
        version: s.version(),
        saved: s.is_saved(),
        probes: s.counters.probes.get(),
        changes: s.counters.changes.each_ref().map(|c| c.get()),
        failed_saves: s.counters.failed_saves.get(),
    }
}

/// A service's health checks, each with its latest verdict.
fn check_views(watched: &Watched) -> Vec<CheckView> {
    watched
        .checks
        .iter()
        .map(|c| {
            let st = c.cell.status();
            CheckView {
                name: c.name.clone(),
                up: match st.verdict {
                    Verdict::Unknown => None,
                    v => Some(v == Verdict::Passing),
                },
                duration: st.duration,
                failures: st.failures_total,
            }
        })
        .collect()
}

/// The prober table, most recently seen first, copied a chunk at a time.
async fn prober_views(agent: &Agent) -> Vec<ProberView> {
    let snapshot = probers::snapshot(|| agent.probers(), agent.seen_window()).await;
    let names = snapshot.names(|id| agent.service_name(id));
    let snapshot = snapshot.sorted();
    snapshot
        .rows
        .iter()
        .map(|p| ProberView {
            address: p.address.to_string(),
            service: services::label(names.get(&p.service).map_or("", String::as_str)).to_string(),
            last_ago: p.last_ago,
            version: p.version,
            probes: p.probes,
        })
        .collect()
}

/// The capacity monitors' latest readings, if configured.
fn capacity_view(agent: &Agent) -> Option<CapacityView> {
    let view = agent.health().as_ref().and_then(|r| r.capacity())?;
    let base = 100;
    Some(CapacityView {
        weight: view
            .load_ppm
            .map(|load| capacity::weight(base, load, view.min_weight)),
        monitors: view
            .readings
            .iter()
            .map(|r| {
                let used = f64::from(r.load_ppm) / 10_000.0;
                (r.name.to_string(), r.value, used)
            })
            .collect(),
    })
}
