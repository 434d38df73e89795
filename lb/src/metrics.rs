//! `GET /metrics`: what hapgent-lb did with configuration changes, in the
//! Prometheus text format, on the API's own listeners.
//!
//! Counted where the outcome is decided: each `PUT /v1/config` by the
//! word of its audit line (`answered`, from `serve`), each reload by the
//! outcome read from HAProxy's processes and how long it took to be known
//! (`reloaded`, from `change`). The counters are atomics in one static:
//! recording is one add, never a lock or an allocation, and nothing has to
//! be passed through the change's code. [`render`] is pure over a
//! [`Snapshot`]; [`METRICS`] lists every family it writes, and a test
//! holds docs/alerts.md to it.
//!
//! Not here: HAProxy's own figures (its built-in Prometheus exporter has
//! them), and anything read from HAProxy at scrape time: a scrape costs
//! no I/O, so it is safe to answer without a token (see `serve`).

use crate::http::Response;
use crate::reload::Outcome;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One metric family: name, type, help (the `# HELP` line and the docs),
/// and how its series are written.
pub struct Family {
    pub name: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
    series: fn(&mut String, &str, &Snapshot),
}

/// Every family `render` writes, in its order.
pub const METRICS: &[Family] = &[
    Family {
        name: "hapgent_lb_build_info",
        kind: "gauge",
        help: "hapgent-lb's version; always 1.",
        series: |out, name, s| {
            let _ = writeln!(out, "{name}{{version=\"{}\"}} 1", s.version);
        },
    },
    Family {
        name: "hapgent_lb_start_time_seconds",
        kind: "gauge",
        help: "When hapgent-lb serve started, Unix time.",
        series: |out, name, s| seconds(out, name, s.start_ms),
    },
    Family {
        name: "hapgent_lb_config_changes_total",
        kind: "counter",
        help: "PUT /v1/config answered, by the word of its audit line: applied (200), refused (409, 412, 422, 428, 503: nothing changed), rolled_back (502), unknown (504), failed (500).",
        series: |out, name, s| {
            for (result, n) in RESULTS.iter().zip(s.changes) {
                let _ = writeln!(out, "{name}{{result=\"{result}\"}} {n}");
            }
        },
    },
    Family {
        name: "hapgent_lb_reloads_total",
        kind: "counter",
        help: "Reloads asked of HAProxy by a change, by the outcome read from its processes: live, failed (the previous workers run), down (the new worker took HAProxy down), unknown (undecided at reload_timeout).",
        series: |out, name, s| {
            for (outcome, n) in OUTCOMES.iter().zip(s.reloads) {
                let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {n}");
            }
        },
    },
    Family {
        name: "hapgent_lb_reload_duration_seconds",
        kind: "histogram",
        help: "From asking HAProxy to reload to knowing the outcome.",
        series: histogram,
    },
    Family {
        name: "hapgent_lb_last_reload_timestamp_seconds",
        kind: "gauge",
        help: "When the last reload's outcome was known, Unix time; 0 before the first.",
        series: |out, name, s| seconds(out, name, s.last_ms),
    },
    Family {
        name: "hapgent_lb_last_reload_success_timestamp_seconds",
        kind: "gauge",
        help: "When the last reload that went live was known, Unix time; 0 before the first.",
        series: |out, name, s| seconds(out, name, s.last_live_ms),
    },
];

/// The `result` label of `hapgent_lb_config_changes_total`, in order.
pub const RESULTS: [&str; 5] = ["applied", "refused", "rolled_back", "unknown", "failed"];

/// The `outcome` label of `hapgent_lb_reloads_total`, in order.
pub const OUTCOMES: [&str; 4] = ["live", "failed", "down", "unknown"];

/// Upper bounds of the reload duration buckets, in seconds (`+Inf` is
/// the count): a master-socket reload is known within a second or two,
/// `reload_timeout` is 10 s by default and at most 600 s.
pub const BUCKETS: [f64; 11] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 600.0,
];

/// The audit word of a `PUT /v1/config` answer's status.
pub fn result_of(status: u16) -> &'static str {
    match status {
        200..=299 => "applied",
        502 => "rolled_back",
        504 => "unknown",
        400..=499 | 503 => "refused",
        _ => "failed",
    }
}

/// The `outcome` label of a reload's outcome.
pub fn outcome_of(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Live(_) => "live",
        Outcome::Failed(_) => "failed",
        Outcome::Down(_) => "down",
        Outcome::Unknown(_) => "unknown",
    }
}

/// The counters: relaxed atomics, as no two of them need to agree at a
/// given instant (a scrape may see a change counted and its reload not
/// yet).
pub struct Counters {
    start_ms: AtomicU64,
    changes: [AtomicU64; RESULTS.len()],
    reloads: [AtomicU64; OUTCOMES.len()],
    /// Per bucket, not cumulative (summed when rendered).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_us: AtomicU64,
    last_ms: AtomicU64,
    last_live_ms: AtomicU64,
}

/// The process's counters.
static COUNTERS: Counters = Counters::new();

impl Counters {
    pub const fn new() -> Counters {
        Counters {
            start_ms: AtomicU64::new(0),
            changes: [const { AtomicU64::new(0) }; RESULTS.len()],
            reloads: [const { AtomicU64::new(0) }; OUTCOMES.len()],
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
            duration_us: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            last_live_ms: AtomicU64::new(0),
        }
    }

    fn started(&self, at: SystemTime) {
        self.start_ms.store(millis(at), Ordering::Relaxed);
    }

    fn answered(&self, status: u16) {
        let i = RESULTS.iter().position(|r| *r == result_of(status));
        self.changes[i.unwrap_or(RESULTS.len() - 1)].fetch_add(1, Ordering::Relaxed);
    }

    fn reloaded(&self, outcome: &str, took: Duration, at: SystemTime) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.reloads[i].fetch_add(1, Ordering::Relaxed);
        }
        let secs = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_us.fetch_add(us, Ordering::Relaxed);
        self.last_ms.store(millis(at), Ordering::Relaxed);
        if outcome == "live" {
            self.last_live_ms.store(millis(at), Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> Snapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            start_ms: load(&self.start_ms),
            changes: self.changes.each_ref().map(load),
            reloads: self.reloads.each_ref().map(load),
            buckets: self.buckets.each_ref().map(load),
            duration_us: load(&self.duration_us),
            last_ms: load(&self.last_ms),
            last_live_ms: load(&self.last_live_ms),
        }
    }
}

impl Default for Counters {
    fn default() -> Counters {
        Counters::new()
    }
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Records that `serve` started (the start time).
pub fn started() {
    COUNTERS.started(SystemTime::now());
}

/// Records the answer to a `PUT /v1/config`.
pub fn answered(status: u16) {
    COUNTERS.answered(status);
}

/// Records a reload's outcome and how long it took to be known.
pub fn reloaded(outcome: &Outcome, took: Duration) {
    COUNTERS.reloaded(outcome_of(outcome), took, SystemTime::now());
}

/// The counters at one instant: what `render` reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub version: &'static str,
    pub start_ms: u64,
    pub changes: [u64; RESULTS.len()],
    pub reloads: [u64; OUTCOMES.len()],
    pub buckets: [u64; BUCKETS.len() + 1],
    pub duration_us: u64,
    pub last_ms: u64,
    pub last_live_ms: u64,
}

/// The metrics text of a snapshot, every series present from the start
/// (zeros), so that `rate()` and `increase()` see the first event.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(2048);
    for f in METRICS {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        (f.series)(&mut out, f.name, s);
    }
    out
}

/// A Unix time kept in milliseconds, in seconds.
fn seconds(out: &mut String, name: &str, ms: u64) {
    let _ = writeln!(out, "{name} {}.{:03}", ms / 1000, ms % 1000);
}

/// The reload durations: cumulative buckets, sum and count.
fn histogram(out: &mut String, name: &str, s: &Snapshot) {
    let mut cumulative = 0;
    for (i, n) in s.buckets.iter().enumerate() {
        cumulative += n;
        let le = BUCKETS.get(i).map_or("+Inf".into(), |b| b.to_string());
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let us = s.duration_us;
    let _ = writeln!(out, "{name}_sum {}.{:06}", us / 1_000_000, us % 1_000_000);
    let _ = writeln!(out, "{name}_count {cumulative}");
}

/// The answer to `GET /metrics`.
pub fn response() -> Response {
    Response {
        status: 200,
        headers: vec![(
            "Content-Type",
            "text/plain; version=0.0.4; charset=utf-8".into(),
        )],
        body: render(&COUNTERS.snapshot()).into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_follow_the_audit_words() {
        for (status, want) in [
            (200, "applied"),
            (409, "refused"),
            (412, "refused"),
            (422, "refused"),
            (428, "refused"),
            (503, "refused"),
            (502, "rolled_back"),
            (504, "unknown"),
            (500, "failed"),
        ] {
            assert_eq!(result_of(status), want, "{status}");
        }
        assert_eq!(outcome_of(&Outcome::Live(1)), "live");
        assert_eq!(outcome_of(&Outcome::Down(String::new())), "down");
    }

    #[test]
    fn counters_record_changes_reloads_and_durations() {
        let c = Counters::new();
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        c.started(at);
        for status in [200, 409, 422, 502, 200] {
            c.answered(status);
        }
        c.reloaded("live", Duration::from_millis(300), at);
        c.reloaded(
            "failed",
            Duration::from_millis(1500),
            at + Duration::from_secs(5),
        );
        c.reloaded(
            "unknown",
            Duration::from_secs(900),
            at + Duration::from_secs(9),
        );
        let s = c.snapshot();
        assert_eq!(s.changes, [2, 2, 1, 0, 0]);
        assert_eq!(s.reloads, [1, 1, 0, 1]);
        // 0.3 s in le=0.5, 1.5 s in le=2.5, 900 s past every bound.
        assert_eq!(s.buckets, [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(s.duration_us, 901_800_000);
        assert_eq!(s.start_ms, 1_700_000_000_250);
        assert_eq!(s.last_ms, 1_700_000_009_250);
        assert_eq!(s.last_live_ms, 1_700_000_000_250);
    }

    #[test]
    fn render_writes_every_family_with_every_series() {
        let s = Snapshot {
            version: "1.2.3",
            start_ms: 1_700_000_000_250,
            changes: [2, 2, 1, 0, 0],
            reloads: [1, 1, 0, 0],
            buckets: [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0],
            duration_us: 1_800_000,
            last_ms: 1_700_000_005_250,
            last_live_ms: 1_700_000_000_250,
        };
        let text = render(&s);
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            series,
            [
                "hapgent_lb_build_info{version=\"1.2.3\"} 1",
                "hapgent_lb_start_time_seconds 1700000000.250",
                "hapgent_lb_config_changes_total{result=\"applied\"} 2",
                "hapgent_lb_config_changes_total{result=\"refused\"} 2",
                "hapgent_lb_config_changes_total{result=\"rolled_back\"} 1",
                "hapgent_lb_config_changes_total{result=\"unknown\"} 0",
                "hapgent_lb_config_changes_total{result=\"failed\"} 0",
                "hapgent_lb_reloads_total{outcome=\"live\"} 1",
                "hapgent_lb_reloads_total{outcome=\"failed\"} 1",
                "hapgent_lb_reloads_total{outcome=\"down\"} 0",
                "hapgent_lb_reloads_total{outcome=\"unknown\"} 0",
                "hapgent_lb_reload_duration_seconds_bucket{le=\"0.1\"} 0",
                "hapgent_lb_reload_duration_seconds_bucket{le=\"0.25\"} 0",
                "hapgent_lb_reload_duration_seconds_bucket{le=\"0.5\"} 1",
                "hapgent_lb_reload_duration_seconds_bucket{le=\"1\"} 1",
                "hapgent_lb_reload_duration_seconds_bucket{le=\"2.5\"} 2",
                "hapgent_lb_reload_duration_seconds_bucket{le=\"5\"} 2",
                "hapgent_lb_reload_duration_seconds_bucket{le=\"10\"} 2",
                "hapgent_lb_reload_duration_seconds_bucket{le=\"30\"} 2",
                "hapgent_lb_reload_duration_seconds_bucket{le=\"60\"} 2",
                "hapgent_lb_reload_duration_seconds_bucket{le=\"120\"} 2",
                "hapgent_lb_reload_duration_seconds_bucket{le=\"600\"} 2",
                "hapgent_lb_reload_duration_seconds_bucket{le=\"+Inf\"} 2",
                "hapgent_lb_reload_duration_seconds_sum 1.800000",
                "hapgent_lb_reload_duration_seconds_count 2",
                "hapgent_lb_last_reload_timestamp_seconds 1700000005.250",
                "hapgent_lb_last_reload_success_timestamp_seconds 1700000000.250",
            ]
        );
        // Each family has its HELP and TYPE once, before its series.
        for f in METRICS {
            let help = format!(
                "# HELP {} {}\n# TYPE {} {}\n",
                f.name, f.help, f.name, f.kind
            );
            assert_eq!(text.matches(&help).count(), 1, "{}", f.name);
        }
    }

    #[test]
    fn the_docs_list_every_metric() {
        let docs = include_str!("../../docs/alerts.md");
        for f in METRICS {
            assert!(
                docs.contains(&format!("| `{}", f.name)),
                "docs/alerts.md lists no row for {}",
                f.name
            );
        }
    }
}
