//! `--metrics`: hapgent's /metrics endpoint scraped during the load, as a
//! Prometheus server would, and the probe counts read from it afterwards.
//! A failed scrape is a failure of the run (counted as an I/O error), not
//! the end of the benchmark.

use crate::cli::Options;
use crate::probe::{ProbeError, connect};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the scraper saw during one load.
#[derive(Default)]
pub struct Scrapes {
    pub done: u64,
    pub failed: u64,
    pub max_ms: f64,
    /// The first few failures, as text, for the report.
    pub examples: Vec<String>,
}

/// Why a scrape did not give hapgent's probe counts.
#[derive(Debug)]
pub enum ScrapeError {
    Connect(ProbeError),
    Write(std::io::Error),
    Read(std::io::Error),
    /// The answer's first line, if any: no `HTTP/1.1 NNN`.
    NotHttp(Option<String>),
    Status(u16),
    /// A 200 without the `hapgent_probes_total` samples.
    NoProbeCount,
}

impl std::fmt::Display for ScrapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScrapeError::Connect(e) => write!(f, "metrics: {e}"),
            ScrapeError::Write(e) => write!(f, "metrics: write: {e}"),
            ScrapeError::Read(e) => write!(f, "metrics: read: {e}"),
            ScrapeError::NotHttp(line) => write!(f, "metrics: not an HTTP response: {line:?}"),
            ScrapeError::Status(code) => write!(f, "status {code}"),
            ScrapeError::NoProbeCount => f.write_str("200 without hapgent_probes_total"),
        }
    }
}

/// `GET /metrics` over a fresh connection: the body of a 200.
fn scrape(addr: SocketAddr, timeout: Duration) -> Result<String, ScrapeError> {
    let mut s = connect(addr, timeout).map_err(ScrapeError::Connect)?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(ScrapeError::Write)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(ScrapeError::Read)?;
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| ScrapeError::NotHttp(text.lines().next().map(str::to_string)))?;
    if status != 200 {
        return Err(ScrapeError::Status(status));
    }
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(body.to_string())
}

/// The sum of the `NAME{...} VALUE` samples whose labels contain `labels`.
fn sample_sum(body: &str, name: &str, labels: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Scrapes every `interval` until `stop` is set (a thread next to the
/// load, as a Prometheus server would); every scrape must get 200.
pub fn scraper(
    addr: SocketAddr,
    interval: Duration,
    timeout: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Scrapes> {
    std::thread::spawn(move || {
        let mut out = Scrapes::default();
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if Instant::now() < next {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            next += interval;
            let t0 = Instant::now();
            let r = scrape(addr, timeout).and_then(|body| {
                body.contains("hapgent_probes_total")
                    .then_some(())
                    .ok_or(ScrapeError::NoProbeCount)
            });
            out.max_ms = out.max_ms.max(t0.elapsed().as_secs_f64() * 1e3);
            out.done += 1;
            if let Err(e) = r {
                out.failed += 1;
                if out.examples.len() < 3 {
                    out.examples.push(e.to_string());
                }
            }
        }
        out
    })
}

/// hapgent's own count of the probes it answered, from one scrape: all of
/// them, and those of the service the --send payload names (NaN without
/// services).
pub fn probe_counts(addr: SocketAddr, o: &Options) -> Result<(f64, f64), ScrapeError> {
    let body = scrape(addr, o.timeout)?;
    let total = sample_sum(&body, "hapgent_probes_total", "");
    let named = payload_service(o).map_or(f64::NAN, |name| {
        sample_sum(
            &body,
            "hapgent_probes_total",
            &format!("service=\"{name}\""),
        )
    });
    Ok((total, named))
}

/// The service the --send payload names, when services are configured.
fn payload_service(o: &Options) -> Option<String> {
    let payload = o.send.as_ref()?;
    let name = String::from_utf8_lossy(payload)
        .trim_end_matches(['\r', '\n'])
        .to_string();
    (o.services > 0 && !name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::sample_sum;

    #[test]
    fn metric_samples() {
        let body = "# TYPE hapgent_probes_total counter\n\
            hapgent_probes_total{service=\"default\"} 3\n\
            hapgent_probes_total{service=\"s1\"} 40\n\
            hapgent_probes_refused_total{reason=\"allow_list\"} 7\n\
            hapgent_prober_probes_total{prober=\"127.0.0.1\",service=\"s1\"} 40\n";
        assert_eq!(sample_sum(body, "hapgent_probes_total", ""), 43.0);
        assert_eq!(
            sample_sum(body, "hapgent_probes_total", "service=\"s1\""),
            40.0
        );
    }
}
