//! Prometheus metrics: `GET /metrics` on `metrics_listen` (`http`), and
//! the same text through `hapgent ctl metrics` for hosts without a
//! scraper.
//!
//! The text is made on demand from what the agent already keeps (the
//! services, the prober table, a few counters); nothing is added to the
//! path that answers a probe. `gather` copies it into a `View` (the prober
//! table, which may be large, a chunk at a time); `render` writes the text
//! from the table of metric definitions `METRICS`, pure, on a thread of its
//! own; a test holds the README's metrics table to `METRICS`.

mod gather;
mod http;
mod render;

pub use http::{MAX_HEAD, Route, response, route};
pub(crate) use http::{bind, serve};
pub use render::{
    METRICS, Metric, ProberView, Series, ServiceView, Type, View, markdown_rows, render,
};

use crate::agent::Agent;

/// The metrics text now (empty only if rendering failed, a bug): gathered
/// here, rendered on a thread of its own, as the prober table may be large
/// (see `probers::off_probe_thread`).
pub async fn text(agent: &Agent) -> String {
    let view = gather::gather(agent).await;
    crate::probers::off_probe_thread(move || render(&view))
        .await
        .unwrap_or_default()
}
