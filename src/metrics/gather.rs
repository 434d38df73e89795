//! The metrics' `View`, copied from the agent: its services, the server's
//! counters, and the prober table (copied a chunk at a time, see
//! `probers::snapshot`, so that no probe waits for it).

use super::render::{ProberView, ServiceView, View};
use crate::agent::Agent;
use crate::probers;
use crate::protocol;
use crate::services;
use std::time::SystemTime;

/// What the metrics show now.
pub async fn gather(agent: &Agent) -> View {
    let services = agent
        .services()
        .iter()
        .map(|s| {
            let state = s.state();
            let overlay = agent.overlay(s);
            ServiceView {
                label: services::label(&s.name).to_string(),
                status: state.status,
                admin: protocol::admin_of(&state, overlay.admin),
                weight: protocol::weight(&state, overlay),
                maxconn: state.maxconn,
                version: s.version(),
                saved: s.is_saved(),
                probes: s.counters.probes.get(),
                changes: s.counters.changes.each_ref().map(|c| c.get()),
                failed_saves: s.counters.failed_saves.get(),
            }
        })
        .collect();
    let server = agent.server_counters().unwrap_or_default();
    let evicted = agent.probers().evicted();
    let snapshot = probers::snapshot(|| agent.probers(), agent.seen_window()).await;
    let names = snapshot.names(|id| agent.service_name(id));
    let snapshot = snapshot.sorted();
    let probers = snapshot
        .rows
        .iter()
        .map(|p| ProberView {
            address: p.address.to_string(),
            service: services::label(names.get(&p.service).map_or("", String::as_str)).to_string(),
            last_ago: p.last_ago,
            version: p.version,
            probes: p.probes,
        })
        .collect();
    View {
        version: env!("CARGO_PKG_VERSION"),
        uptime: agent.uptime(),
        services,
        refused_allow: server.refused_allow,
        refused_cap: server.refused_cap,
        unknown_service: agent.counters.unknown_service.get(),
        evicted,
        probers,
        now: SystemTime::now(),
    }
}
