//! The report: per-run metrics, medians per concurrency, as text, JSON and
//! a Markdown table. The JSON is what scripts read (.ci/bench.sh checks
//! it): its keys are kept stable, figures not measured are null, and
//! numbers have at most three decimals (`to_json`).

use crate::cli::Options;
use crate::proc::{Machine, Size};
use crate::stats::median;
use crate::tally::ErrorCounts;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use std::fmt::Write;

/// Named numbers of one run, in report order. NaN means "not measured".
#[derive(Default, Clone)]
pub struct Metrics(pub Vec<(&'static str, f64)>);

/// A JSON object with the names as keys, in report order.
impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl Metrics {
    pub fn push(&mut self, name: &'static str, value: f64) {
        self.0.push((name, value));
    }

    pub fn get(&self, name: &str) -> f64 {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(f64::NAN, |(_, v)| *v)
    }
}

pub struct Report {
    pub command: Vec<String>,
    pub machine: Machine,
    pub size: Size,
    pub checks: u64,
    pub runs_per_concurrency: usize,
    pub concurrency: Vec<usize>,
    pub send: Option<String>,
    pub startup_ms: Vec<f64>,
    pub threads: usize,
    pub loadavg: (f64, f64),
    pub runs: Vec<Metrics>,
    pub notes: Vec<String>,
    pub ok: u64,
    pub errors: ErrorCounts,
    pub error_examples: Vec<String>,
}

/// The JSON report's shape: a view of a `Report`, in key order.
#[derive(Serialize)]
struct Json<'a> {
    agent: JsonAgent<'a>,
    machine: &'a Machine,
    binary: &'a Size,
    start_to_first_reply_ms: JsonStartup<'a>,
    checks_per_run: u64,
    load_threads: usize,
    loadavg_before: f64,
    loadavg_after: f64,
    runs: &'a [Metrics],
    medians: Vec<Metrics>,
    ok: u64,
    errors: ErrorCounts,
    error_examples: &'a [String],
    notes: &'a [String],
}

#[derive(Serialize)]
struct JsonAgent<'a> {
    command: &'a [String],
    send: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonStartup<'a> {
    median: f64,
    runs: &'a [f64],
}

/// (metric, unit label, target) for the Markdown table, in row order.
const ROWS: &[(&str, &str, &str)] = &[
    ("checks_per_s", "checks/s", "≥ 35,000 at concurrency 8"),
    ("latency_p50_us", "latency p50 (µs)", ""),
    ("latency_p90_us", "latency p90 (µs)", ""),
    (
        "latency_p99_us",
        "latency p99 (µs)",
        "≤ 3,000 at concurrency 64",
    ),
    ("latency_p999_us", "latency p99.9 (µs)", ""),
    ("latency_max_us", "latency max (µs)", ""),
    (
        "agent_cpu_us_per_check",
        "agent CPU per check (µs, /proc/PID/stat)",
        "≤ 10",
    ),
    (
        "agent_cpu_us_per_check_schedstat",
        "agent CPU per check (µs, schedstat)",
        "≤ 10",
    ),
    (
        "agent_kernel_cpu_us_per_check",
        "of which in the kernel (µs, stime)",
        "",
    ),
    (
        "loadgen_cpu_us_per_check",
        "load generator CPU per check (µs)",
        "",
    ),
    ("floor_checks_per_s", "floor: checks/s", ""),
    (
        "floor_cpu_us_per_check",
        "floor CPU per check (µs, /proc/PID/stat)",
        "",
    ),
    (
        "floor_cpu_us_per_check_schedstat",
        "floor CPU per check (µs, schedstat)",
        "",
    ),
    (
        "floor_kernel_cpu_us_per_check",
        "floor: of which in the kernel (µs, stime)",
        "",
    ),
    (
        "floor_ratio",
        "agent CPU per check / floor CPU per check (schedstat)",
        "≤ 1.25 with 100 probers; ≤ 1.15 later",
    ),
    (
        "probers",
        "distinct probers (source addresses; 0 = 127.0.0.1)",
        "",
    ),
    (
        "probers_tracked",
        "probers in the agent's table (ctl probers, + 127.0.0.1)",
        "",
    ),
    ("services", "services configured ([services.sN])", ""),
    (
        "scrapes",
        "metrics scrapes during the load (GET /metrics)",
        "",
    ),
    ("scrape_failures", "scrapes without a 200", "0"),
    ("scrape_max_ms", "slowest scrape (ms)", ""),
    (
        "scraped_probes_total",
        "hapgent_probes_total after the load (all services)",
        "",
    ),
    (
        "scraped_probes_service",
        "hapgent_probes_total of the payload's service",
        "",
    ),
    ("rss_idle_kib", "RSS idle (KiB)", "≤ 1,024"),
    ("hwm_idle_kib", "peak RSS (VmHWM) at idle (KiB)", ""),
    ("rss_after_load_kib", "RSS after the load (KiB)", ""),
    (
        "hwm_after_load_kib",
        "peak RSS after the load (KiB)",
        "≤ 1,024 (at concurrency 64)",
    ),
    ("idle_connections_held", "idle connections held", ""),
    (
        "rss_idle_conns_kib",
        "RSS with idle connections held (KiB)",
        "",
    ),
    (
        "hwm_idle_conns_kib",
        "peak RSS with idle connections held (KiB)",
        "≤ 4,096",
    ),
    (
        "fresh_probe_p50_ms",
        "fresh probe while held, median (ms)",
        "",
    ),
    (
        "fresh_probe_max_ms",
        "fresh probe while held, max (ms)",
        "≤ 5",
    ),
];

/// Human formatting: thousands separators for big numbers, 1-3 decimals
/// for small ones.
fn human(v: f64) -> String {
    if v.is_nan() {
        return "n/a".into();
    }
    if v.abs() >= 1000.0 {
        let s = format!("{:.0}", v);
        let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

impl Report {
    pub fn new(o: &Options, machine: Machine, size: Size) -> Report {
        let command = if o.command.is_empty() {
            vec![
                o.binary.display().to_string(),
                "--config".into(),
                "TMP/hapgent.toml".into(),
                "--control-socket".into(),
                if o.probers > 0 {
                    "TMP/control.sock".into()
                } else {
                    "''".into()
                },
                "--ip".into(),
                "127.0.0.1".into(),
                "--port".into(),
                "0".into(),
                "--state-file".into(),
                "TMP/state.json".into(),
            ]
        } else {
            o.command.clone()
        };
        Report {
            command,
            machine,
            size,
            checks: o.checks,
            runs_per_concurrency: o.runs,
            concurrency: o.concurrency.clone(),
            send: o
                .send
                .as_ref()
                .map(|s| String::from_utf8_lossy(s).into_owned()),
            startup_ms: Vec::new(),
            threads: o.threads,
            loadavg: (f64::NAN, f64::NAN),
            runs: Vec::new(),
            notes: Vec::new(),
            ok: 0,
            errors: ErrorCounts::default(),
            error_examples: Vec::new(),
        }
    }

    /// The median of every metric over the runs at each concurrency.
    pub fn medians(&self) -> Vec<Metrics> {
        self.concurrency
            .iter()
            .map(|&c| {
                let runs: Vec<&Metrics> = self
                    .runs
                    .iter()
                    .filter(|m| m.get("concurrency") == c as f64)
                    .collect();
                let mut out = Metrics::default();
                if let Some(first) = runs.first() {
                    for (name, _) in &first.0 {
                        let mut values: Vec<f64> = runs.iter().map(|m| m.get(name)).collect();
                        out.push(name, median(&mut values));
                    }
                }
                out
            })
            .collect()
    }

    fn startup_median(&self) -> f64 {
        median(&mut self.startup_ms.clone())
    }

    fn kib(b: Option<u64>) -> String {
        b.map_or("n/a".into(), |b| {
            format!("{} bytes = {:.1} KiB", b, b as f64 / 1024.0)
        })
    }

    pub fn text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "agent:   {}", self.command.join(" "));
        let _ = writeln!(
            t,
            "machine: {} CPUs, {}, Linux {}",
            self.machine.cpus, self.machine.model, self.machine.kernel
        );
        let _ = writeln!(
            t,
            "binary:  {}: {} (stripped: {})",
            self.size.path,
            Self::kib(self.size.bytes),
            Self::kib(self.size.stripped_bytes)
        );
        let starts: Vec<String> = self.startup_ms.iter().map(|v| format!("{v:.2}")).collect();
        let _ = writeln!(
            t,
            "start to first reply: median {:.2} ms (runs: {} ms)",
            self.startup_median(),
            starts.join(", ")
        );
        if let Some(s) = &self.send {
            let _ = writeln!(t, "agent-send payload: {s:?}");
        }
        let _ = writeln!(
            t,
            "{} checks per run, {} run(s) per concurrency, {} load thread(s); load average {:.2} before, {:.2} after",
            self.checks, self.runs_per_concurrency, self.threads, self.loadavg.0, self.loadavg.1
        );
        for (i, m) in self.runs.iter().enumerate() {
            let _ = writeln!(t, "\nrun {} (concurrency {}):", i + 1, m.get("concurrency"));
            for (k, v) in &m.0 {
                let _ = writeln!(t, "  {k:<34} {}", human(*v));
            }
        }
        if self.runs_per_concurrency > 1 {
            for m in self.medians() {
                let _ = writeln!(t, "\nmedians (concurrency {}):", m.get("concurrency"));
                for (k, v) in &m.0 {
                    let _ = writeln!(t, "  {k:<34} {}", human(*v));
                }
            }
        }
        let _ = writeln!(t, "\nprobes answered well: {}", self.ok);
        for (k, n) in self.errors.iter() {
            let _ = writeln!(t, "  {k} errors: {n}");
        }
        for e in &self.error_examples {
            let _ = writeln!(t, "  e.g. {e}");
        }
        for n in &self.notes {
            let _ = writeln!(t, "note: {n}");
        }
        t
    }

    /// The report as one line of JSON.
    pub fn json(&self) -> String {
        to_json(&Json {
            agent: JsonAgent {
                command: &self.command,
                send: self.send.as_deref(),
            },
            machine: &self.machine,
            binary: &self.size,
            start_to_first_reply_ms: JsonStartup {
                median: self.startup_median(),
                runs: &self.startup_ms,
            },
            checks_per_run: self.checks,
            load_threads: self.threads,
            loadavg_before: self.loadavg.0,
            loadavg_after: self.loadavg.1,
            runs: &self.runs,
            medians: self.medians(),
            ok: self.ok,
            errors: self.errors,
            error_examples: &self.error_examples,
            notes: &self.notes,
        })
    }

    /// The medians as the table in BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let medians = self.medians();
        let mut t = String::new();
        let _ = writeln!(
            t,
            "\nMedians of {} run(s) of {} checks each; machine: {} CPUs, {}, Linux {}; load average {:.2} before, {:.2} after.\n",
            self.runs_per_concurrency,
            self.checks,
            self.machine.cpus,
            self.machine.model,
            self.machine.kernel,
            self.loadavg.0,
            self.loadavg.1
        );
        let mut header = String::from("| metric |");
        let mut rule = String::from("|---|");
        for m in &medians {
            let _ = write!(header, " concurrency {} |", m.get("concurrency"));
            rule.push_str("---:|");
        }
        let _ = writeln!(t, "{header} target |\n{rule}---|");
        for (key, label, target) in ROWS {
            // Rows of what this invocation did not measure (no --probers,
            // --services or --metrics) are left out.
            if medians.iter().all(|m| m.get(key).is_nan()) {
                continue;
            }
            let mut row = format!("| {label} |");
            for m in &medians {
                let _ = write!(row, " {} |", human(m.get(key)));
            }
            let _ = writeln!(t, "{row} {target} |");
        }
        let stripped = self.size.stripped_bytes.map_or("n/a".into(), |b| {
            format!("{} bytes ({:.1} KiB)", human(b as f64), b as f64 / 1024.0)
        });
        let _ = writeln!(t, "\n| once per agent | value | target |\n|---|---:|---|");
        let _ = writeln!(
            t,
            "| stripped binary | {stripped} | ≤ 1,000,000 bytes (x86_64; aarch64 ≤ 900,000) |"
        );
        let _ = writeln!(
            t,
            "| start to first reply, median of {} | {:.2} ms | ≤ 5 ms |",
            self.startup_ms.len(),
            self.startup_median()
        );
        t
    }
}

/// `value` as one line of JSON, numbers as the reports write them: whole
/// numbers without a fraction (`1188`, not `1188.0`), others with three
/// decimals (`282.229`), NaN and infinities as null (serde_json's rule).
pub fn to_json(value: &impl Serialize) -> String {
    let mut out = Vec::new();
    let mut json = serde_json::Serializer::with_formatter(&mut out, Figures);
    value
        .serialize(&mut json)
        .expect("a report is plain data and serializes into memory");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// serde_json's compact formatter with the reports' number format.
struct Figures;

impl serde_json::ser::Formatter for Figures {
    fn write_f64<W: ?Sized + std::io::Write>(&mut self, w: &mut W, v: f64) -> std::io::Result<()> {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            write!(w, "{}", v as i64)
        } else {
            write!(w, "{v:.3}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Metrics, Report};
    use crate::probe::ErrorKind;
    use crate::proc::{Machine, Size};
    use crate::tally::ErrorCounts;

    fn report() -> Report {
        let mut run = Metrics::default();
        run.push("concurrency", 8.0);
        run.push("checks_per_s", 17_740.728_49);
        run.push("latency_p50_us", 282.2);
        run.push("probers_tracked", f64::NAN);
        run.push("floor_ratio", f64::INFINITY);
        let mut errors = ErrorCounts::default();
        errors.add(ErrorKind::Malformed, 2);
        Report {
            command: vec!["hapgent".into(), "--port".into(), "0".into()],
            machine: Machine {
                cpus: 2,
                model: "AMD \"EPYC\"".into(),
                kernel: "6.18".into(),
            },
            size: Size {
                path: "hapgent".into(),
                bytes: Some(1_218_272),
                stripped_bytes: None,
            },
            checks: 3000,
            runs_per_concurrency: 1,
            concurrency: vec![8],
            send: Some("web\n".into()),
            startup_ms: vec![9.273, 1.5, 4.0],
            threads: 2,
            loadavg: (0.57, f64::NAN),
            runs: vec![run],
            notes: vec!["a note".into()],
            ok: 3001,
            errors,
            error_examples: vec!["malformed reply \"up failed\"".into()],
        }
    }

    /// The shape .ci/bench.sh and the measurements read: these keys, in
    /// this order; whole numbers bare, others with three decimals, what
    /// was not measured (NaN, or infinite) null.
    #[test]
    fn json_shape() {
        let want = concat!(
            r#"{"agent":{"command":["hapgent","--port","0"],"send":"web\n"},"#,
            r#""machine":{"cpus":2,"model":"AMD \"EPYC\"","kernel":"6.18"},"#,
            r#""binary":{"path":"hapgent","bytes":1218272,"stripped_bytes":null},"#,
            r#""start_to_first_reply_ms":{"median":4,"runs":[9.273,1.500,4]},"#,
            r#""checks_per_run":3000,"load_threads":2,"loadavg_before":0.570,"loadavg_after":null,"#,
            r#""runs":[{"concurrency":8,"checks_per_s":17740.728,"latency_p50_us":282.200,"probers_tracked":null,"floor_ratio":null}],"#,
            r#""medians":[{"concurrency":8,"checks_per_s":17740.728,"latency_p50_us":282.200,"probers_tracked":null,"floor_ratio":null}],"#,
            r#""ok":3001,"errors":{"connect":0,"io":0,"timeout":0,"incomplete":0,"malformed":2},"#,
            r#""error_examples":["malformed reply \"up failed\""],"notes":["a note"]}"#,
        );
        assert_eq!(report().json(), want);
    }
}
