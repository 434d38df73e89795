//! The metrics, one row each (`METRICS`: name, type, help, labels, the
//! README's meaning, and the series it has in a `View`), and the text in
//! the Prometheus exposition format made from a `View`. Pure: a `View` is
//! a copy of what the agent keeps, made by `gather`, so this may run on a
//! thread of its own.

use crate::protocol::Admin;
use crate::service::Cause;
use crate::state::Status;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the metrics show, copied from the agent.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub version: &'static str,
    pub uptime: Duration,
    pub services: Vec<ServiceView>,
    /// Probes closed unanswered because the source is not allowed.
    pub refused_allow: u64,
    /// Connections closed unanswered because `max_connections` were busy.
    pub refused_cap: u64,
    /// Probes naming a service that is not configured.
    pub unknown_service: u64,
    /// Probers forgotten to stay within `max_probers`.
    pub evicted: u64,
    /// The capacity monitors, if configured.
    pub capacity: Option<CapacityView>,
    /// The prober table, most recently seen first.
    pub probers: Vec<ProberView>,
    /// When the view was taken, for the probers' last-probe times.
    pub now: SystemTime,
}

/// One service, as the metrics show it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceView {
    /// Its label: `default` for the default service.
    pub label: String,
    /// The status in its state file.
    pub status: Status,
    /// The administrative state its reply asks for (with the flag files).
    pub admin: Option<Admin>,
    /// The weight its reply carries, in percent.
    pub weight: u32,
    pub maxconn: Option<u16>,
    pub version: u64,
    pub saved: bool,
    pub probes: u64,
    /// Changes by cause, in the order of `Cause::ALL`.
    pub changes: [u64; 3],
    pub failed_saves: u64,
    /// Its health checks, in configuration order.
    pub checks: Vec<CheckView>,
}

/// One health check, as the metrics show it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckView {
    pub name: String,
    /// `None` before its first result.
    pub up: Option<bool>,
    /// How long its last run took.
    pub duration: Duration,
    pub failures: u64,
}

/// The capacity monitors, as the metrics show them.
#[derive(Clone, Debug, PartialEq)]
pub struct CapacityView {
    /// The weight the capacity alone leaves, in percent of the state's.
    pub weight: Option<u32>,
    /// Each monitor: name, value (`None` before its first reading), and the
    /// percent of its capacity used.
    pub monitors: Vec<(String, Option<f64>, f64)>,
}

/// One prober, as the metrics show it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProberView {
    pub address: String,
    /// The label of the service it asks about.
    pub service: String,
    pub last_ago: Duration,
    pub version: u64,
    pub probes: u64,
}

/// A metric's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Gauge,
    Counter,
}

impl Type {
    pub fn name(self) -> &'static str {
        match self {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
        }
    }
}

/// One series: its label values (in the order of `Metric::labels`) and
/// its value as written.
pub type Series = (Vec<String>, String);

/// One metric.
pub struct Metric {
    pub name: &'static str,
    pub kind: Type,
    /// The `# HELP` text.
    pub help: &'static str,
    pub labels: &'static [&'static str],
    /// What the README's metrics table says about it.
    pub doc: &'static str,
    /// Its series in a view.
    pub series: fn(&View) -> Vec<Series>,
    /// Written (`# HELP` and `# TYPE` too) only when it has a series: the
    /// health metrics, which exist only where checks or monitors are
    /// configured.
    pub sparse: bool,
}

/// One series per service, labelled with it.
fn per_service(view: &View, value: impl Fn(&ServiceView) -> String) -> Vec<Series> {
    view.services
        .iter()
        .map(|s| (vec![s.label.clone()], value(s)))
        .collect()
}

/// One series per prober, labelled with it and its service.
fn per_prober(view: &View, value: impl Fn(&ProberView) -> String) -> Vec<Series> {
    view.probers
        .iter()
        .map(|p| (vec![p.address.clone(), p.service.clone()], value(p)))
        .collect()
}

/// One series per health check (and service) with a value.
fn per_check(view: &View, value: impl Fn(&CheckView) -> Option<String>) -> Vec<Series> {
    view.services
        .iter()
        .flat_map(|s| {
            s.checks
                .iter()
                .filter_map(|c| Some((vec![s.label.clone(), c.name.clone()], value(c)?)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One unlabelled series.
fn one(value: impl ToString) -> Vec<Series> {
    vec![(Vec::new(), value.to_string())]
}

/// Every metric, in the order of the text (and of the README's table).
pub const METRICS: &[Metric] = &[
    Metric {
        name: "hapgent_build_info",
        kind: Type::Gauge,
        help: "hapgent's version; always 1.",
        labels: &["version"],
        doc: "always 1; the version",
        sparse: false,
        series: |v| vec![(vec![v.version.to_string()], "1".into())],
    },
    Metric {
        name: "hapgent_uptime_seconds",
        kind: Type::Gauge,
        help: "Seconds since hapgent started.",
        labels: &[],
        doc: "seconds since hapgent started",
        sparse: false,
        series: |v| one(format!("{:.3}", v.uptime.as_secs_f64())),
    },
    Metric {
        name: "hapgent_service_status",
        kind: Type::Gauge,
        help: "The status in the service's state file: 1 for the current one, 0 for the others.",
        labels: &["service", "status"],
        doc: "1 for the status in the service's state file, 0 for the other six",
        sparse: false,
        series: |v| {
            v.services
                .iter()
                .flat_map(|s| {
                    Status::ALL.into_iter().map(|status| {
                        let values = vec![s.label.clone(), status.name().to_string()];
                        (values, u8::from(status == s.status).to_string())
                    })
                })
                .collect()
        },
    },
    Metric {
        name: "hapgent_service_admin_state",
        kind: Type::Gauge,
        help: "The administrative state the reply asks HAProxy for (with the flag files): 1 for the current one; none when the reply leaves it unsaid.",
        labels: &["service", "state"],
        doc: "1 for the admin state the reply carries (ready, drain, maint; with flag files); all 0 when the reply leaves it unsaid",
        sparse: false,
        series: |v| {
            v.services
                .iter()
                .flat_map(|s| {
                    [Admin::Ready, Admin::Drain, Admin::Maint].map(|a| {
                        let values = vec![s.label.clone(), a.word().to_string()];
                        (values, u8::from(s.admin == Some(a)).to_string())
                    })
                })
                .collect()
        },
    },
    Metric {
        name: "hapgent_service_weight_percent",
        kind: Type::Gauge,
        help: "The weight the reply carries, in percent of the weight configured in HAProxy.",
        labels: &["service"],
        doc: "the weight the reply carries (with CPU weight)",
        sparse: false,
        series: |v| per_service(v, |s| s.weight.to_string()),
    },
    Metric {
        name: "hapgent_service_maxconn",
        kind: Type::Gauge,
        help: "The connection limit the reply carries (0: unlimited); absent when none is set.",
        labels: &["service"],
        doc: "the connection limit the reply carries; absent when none",
        sparse: false,
        series: |v| {
            v.services
                .iter()
                .filter_map(|s| Some((vec![s.label.clone()], s.maxconn?.to_string())))
                .collect()
        },
    },
    Metric {
        name: "hapgent_service_state_version",
        kind: Type::Gauge,
        help: "The version of the state served: one more for every change since hapgent started.",
        labels: &["service"],
        doc: "the version of the state served",
        sparse: false,
        series: |v| per_service(v, |s| s.version.to_string()),
    },
    Metric {
        name: "hapgent_service_state_saved",
        kind: Type::Gauge,
        help: "1 if the state file holds the state served, 0 while a save is pending or failing.",
        labels: &["service"],
        doc: "1 when the state file holds what is served",
        sparse: false,
        series: |v| per_service(v, |s| u8::from(s.saved).to_string()),
    },
    Metric {
        name: "hapgent_probes_total",
        kind: Type::Counter,
        help: "Probes answered, by the service they asked about.",
        labels: &["service"],
        doc: "probes answered for the service",
        sparse: false,
        series: |v| per_service(v, |s| s.probes.to_string()),
    },
    Metric {
        name: "hapgent_probes_refused_total",
        kind: Type::Counter,
        help: "Probes not answered with a state: allow_list (source not allowed, closed), connection_limit (closed), unknown_service (answered with no news).",
        labels: &["reason"],
        doc: "`allow_list` and `connection_limit` (closed unanswered), `unknown_service` (answered with no news)",
        sparse: false,
        series: |v| {
            [
                ("allow_list", v.refused_allow),
                ("connection_limit", v.refused_cap),
                ("unknown_service", v.unknown_service),
            ]
            .into_iter()
            .map(|(reason, n)| (vec![reason.to_string()], n.to_string()))
            .collect()
        },
    },
    Metric {
        name: "hapgent_state_changes_total",
        kind: Type::Counter,
        help: "State changes, by cause: signal (SIGUSR1/SIGUSR2), ctl (hapgent ctl), file (read at SIGHUP).",
        labels: &["service", "cause"],
        doc: "changes by `signal`, `ctl` or `file` (SIGHUP read)",
        sparse: false,
        series: |v| {
            v.services
                .iter()
                .flat_map(|s| {
                    Cause::ALL.into_iter().map(|cause| {
                        let values = vec![s.label.clone(), cause.name().to_string()];
                        (values, s.changes[cause as usize].to_string())
                    })
                })
                .collect()
        },
    },
    Metric {
        name: "hapgent_state_save_failures_total",
        kind: Type::Counter,
        help: "Failed attempts to save the state file.",
        labels: &["service"],
        doc: "failed attempts to save the state file",
        sparse: false,
        series: |v| per_service(v, |s| s.failed_saves.to_string()),
    },
    Metric {
        name: "hapgent_probers_evicted_total",
        kind: Type::Counter,
        help: "Probers forgotten to stay within max_probers per service (or the 64 for unknown names); if it keeps rising, raise max_probers.",
        labels: &[],
        doc: "probers forgotten to stay within `max_probers` per service (or 64 for unknown names); if it keeps rising, raise `max_probers`",
        sparse: false,
        series: |v| one(v.evicted),
    },
    Metric {
        name: "hapgent_prober_last_probe_timestamp_seconds",
        kind: Type::Gauge,
        help: "When each load balancer (source address) last probed about each service, Unix time.",
        labels: &["prober", "service"],
        doc: "when each load balancer last probed about each service (Unix time)",
        sparse: false,
        series: |v| per_prober(v, |p| format!("{:.3}", since_epoch(v.now, p.last_ago))),
    },
    Metric {
        name: "hapgent_prober_state_version",
        kind: Type::Gauge,
        help: "The state version the last reply to each load balancer carried (0 for an unknown service).",
        labels: &["prober", "service"],
        doc: "the version its last reply carried",
        sparse: false,
        series: |v| per_prober(v, |p| p.version.to_string()),
    },
    Metric {
        name: "hapgent_prober_probes_total",
        kind: Type::Counter,
        help: "Probes from each load balancer about each service since it was first seen.",
        labels: &["prober", "service"],
        doc: "its probes since it was first seen",
        sparse: false,
        series: |v| per_prober(v, |p| p.probes.to_string()),
    },
    Metric {
        name: "hapgent_check_up",
        kind: Type::Gauge,
        help: "1 while the health check passes, 0 while it fails (rise and fall applied); absent before its first result.",
        labels: &["service", "check"],
        doc: "1 while the check passes, 0 while it fails (after `rise`/`fall`); absent before its first result",
        sparse: true,
        series: |v| per_check(v, |c| c.up.map(|up| u8::from(up).to_string())),
    },
    Metric {
        name: "hapgent_check_duration_seconds",
        kind: Type::Gauge,
        help: "How long the health check's last run took.",
        labels: &["service", "check"],
        doc: "how long the check's last run took",
        sparse: true,
        series: |v| {
            per_check(v, |c| {
                c.up.map(|_| format!("{:.6}", c.duration.as_secs_f64()))
            })
        },
    },
    Metric {
        name: "hapgent_check_failures_total",
        kind: Type::Counter,
        help: "Runs of the health check that failed.",
        labels: &["service", "check"],
        doc: "runs of the check that failed",
        sparse: true,
        series: |v| per_check(v, |c| Some(c.failures.to_string())),
    },
    Metric {
        name: "hapgent_capacity_value",
        kind: Type::Gauge,
        help: "Each capacity monitor's last value: memory and disk in percent used, load per core, cpu in percent busy, connections established.",
        labels: &["monitor"],
        doc: "each capacity monitor's last value (memory, disk: % used; load: per core; cpu: % busy; connections: established)",
        sparse: true,
        series: |v| {
            v.capacity
                .iter()
                .flat_map(|c| &c.monitors)
                .filter_map(|(name, value, _)| Some((vec![name.clone()], (*value)?.to_string())))
                .collect()
        },
    },
    Metric {
        name: "hapgent_capacity_used_percent",
        kind: Type::Gauge,
        help: "How much of each capacity monitor's capacity is used (its value over its full level), in percent.",
        labels: &["monitor"],
        doc: "each monitor's value over its `full` level, in percent",
        sparse: true,
        series: |v| {
            v.capacity
                .iter()
                .flat_map(|c| &c.monitors)
                .filter(|(_, value, _)| value.is_some())
                .map(|(name, _, used)| (vec![name.clone()], format!("{used:.1}")))
                .collect()
        },
    },
    Metric {
        name: "hapgent_capacity_weight_percent",
        kind: Type::Gauge,
        help: "The weight the capacity monitors leave, in percent of the state's weight (floored at min_weight).",
        labels: &[],
        doc: "the weight the capacity monitors leave, in percent of the state's",
        sparse: true,
        series: |v| {
            v.capacity
                .iter()
                .filter_map(|c| Some((Vec::new(), c.weight?.to_string())))
                .collect()
        },
    },
];

/// Unix time `ago` before `now`, in seconds (0 if before the epoch).
fn since_epoch(now: SystemTime, ago: Duration) -> f64 {
    now.checked_sub(ago)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The metrics text for `view`, in the Prometheus exposition format.
pub fn render(view: &View) -> String {
    let mut out = String::with_capacity(4096 + 200 * view.probers.len());
    for m in METRICS {
        let series = (m.series)(view);
        if m.sparse && series.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
        let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind.name());
        for (values, value) in series {
            out.push_str(m.name);
            if !values.is_empty() {
                let pairs: Vec<String> = m
                    .labels
                    .iter()
                    .zip(&values)
                    .map(|(label, v)| format!("{label}=\"{v}\""))
                    .collect();
                let _ = write!(out, "{{{}}}", pairs.join(","));
            }
            let _ = writeln!(out, " {value}");
        }
    }
    out
}

/// The README's row for each metric: `| `name{labels}` | type | doc |`.
pub fn markdown_rows() -> Vec<String> {
    METRICS
        .iter()
        .map(|m| {
            let labels = if m.labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", m.labels.join(","))
            };
            format!("| `{}{labels}` | {} | {} |", m.name, m.kind.name(), m.doc)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        View {
            version: "9.9.9",
            uptime: Duration::from_millis(1500),
            services: vec![ServiceView {
                label: "default".into(),
                status: Status::Drain,
                admin: Some(Admin::Drain),
                weight: 40,
                maxconn: None,
                version: 3,
                saved: false,
                probes: 7,
                changes: [1, 2, 0],
                failed_saves: 1,
                checks: Vec::new(),
            }],
            refused_allow: 4,
            refused_cap: 0,
            unknown_service: 2,
            evicted: 0,
            capacity: None,
            probers: vec![ProberView {
                address: "10.0.0.1".into(),
                service: "default".into(),
                last_ago: Duration::from_secs(10),
                version: 3,
                probes: 5,
            }],
            now: UNIX_EPOCH + Duration::from_secs(1000),
        }
    }

    #[test]
    fn series_are_written_with_their_labels() {
        let text = render(&view());
        for line in [
            "# TYPE hapgent_build_info gauge",
            "hapgent_build_info{version=\"9.9.9\"} 1",
            "hapgent_uptime_seconds 1.500",
            "hapgent_service_status{service=\"default\",status=\"DRAIN\"} 1",
            "hapgent_service_status{service=\"default\",status=\"UP\"} 0",
            "hapgent_service_admin_state{service=\"default\",state=\"drain\"} 1",
            "hapgent_service_state_saved{service=\"default\"} 0",
            "hapgent_probes_refused_total{reason=\"allow_list\"} 4",
            "hapgent_state_changes_total{service=\"default\",cause=\"ctl\"} 2",
            "hapgent_probers_evicted_total 0",
            "hapgent_prober_last_probe_timestamp_seconds{prober=\"10.0.0.1\",service=\"default\"} 990.000",
            "# TYPE hapgent_prober_probes_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        // No maxconn set: no series, but the family is there.
        assert!(!text.contains("hapgent_service_maxconn{"), "{text}");
        assert!(text.contains("# HELP hapgent_service_maxconn "), "{text}");
        // No check, no monitor: not even their families.
        assert!(!text.contains("hapgent_check"), "{text}");
        assert!(!text.contains("hapgent_capacity"), "{text}");
    }

    #[test]
    fn health_series_exist_where_checks_and_monitors_do() {
        let mut v = view();
        v.services[0].checks = vec![
            CheckView {
                name: "app".into(),
                up: Some(false),
                duration: Duration::from_micros(1500),
                failures: 3,
            },
            CheckView {
                name: "db".into(),
                up: None,
                duration: Duration::ZERO,
                failures: 0,
            },
        ];
        v.capacity = Some(CapacityView {
            weight: Some(62),
            monitors: vec![
                ("memory".into(), Some(77.5), 81.6),
                ("load".into(), None, 0.0),
            ],
        });
        let text = render(&v);
        for line in [
            "# TYPE hapgent_check_up gauge",
            "hapgent_check_up{service=\"default\",check=\"app\"} 0",
            "hapgent_check_duration_seconds{service=\"default\",check=\"app\"} 0.001500",
            "hapgent_check_failures_total{service=\"default\",check=\"app\"} 3",
            "hapgent_check_failures_total{service=\"default\",check=\"db\"} 0",
            "hapgent_capacity_value{monitor=\"memory\"} 77.5",
            "hapgent_capacity_used_percent{monitor=\"memory\"} 81.6",
            "hapgent_capacity_weight_percent 62",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        // No result, no reading yet: no series.
        assert!(
            !text.contains("check=\"db\"} 0\nhapgent_check_duration"),
            "{text}"
        );
        assert!(
            !text.contains("hapgent_check_up{service=\"default\",check=\"db\"}"),
            "{text}"
        );
        assert!(!text.contains("monitor=\"load\""), "{text}");
    }

    #[test]
    fn every_metric_has_its_labels_in_every_series() {
        let v = view();
        for m in METRICS {
            for (values, _) in (m.series)(&v) {
                assert_eq!(values.len(), m.labels.len(), "{}", m.name);
            }
            assert!(m.name.starts_with("hapgent_"), "{}", m.name);
            assert_eq!(m.kind == Type::Counter, m.name.ends_with("_total"));
        }
    }

    /// The README's metrics table has the rows made from `METRICS`, one
    /// per metric (in any order: the README may group them).
    #[test]
    fn readme_table_matches() {
        let readme = include_str!("../../README.md");
        let header = "| metric | type | meaning |";
        let mut table: Vec<&str> = readme
            .split_once(&format!("\n{header}\n"))
            .map(|(_, rest)| {
                rest.lines()
                    .skip(1)
                    .take_while(|l| l.starts_with('|'))
                    .collect()
            })
            .expect("README has the metrics table");
        let mut want = markdown_rows();
        table.sort_unstable();
        want.sort_unstable();
        let missing: Vec<&String> = want
            .iter()
            .filter(|w| !table.contains(&w.as_str()))
            .collect();
        let extra: Vec<&&str> = table
            .iter()
            .filter(|t| !want.contains(&t.to_string()))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "README's metrics table differs from METRICS; rows to add:\n{}\nrows to remove:\n{}",
            missing
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            extra.iter().map(|r| **r).collect::<Vec<_>>().join("\n"),
        );
        assert_eq!(
            table.len(),
            want.len(),
            "a row twice in README's metrics table"
        );
    }
}
