//! CPU-based weight: the weight follows how idle this host is.
//!
//! A sampling thread reads the aggregate `cpu` line of `/proc/stat` every
//! `timeframe` and keeps the idle share of the time that passed (idle +
//! iowait, as the Go haproxy_agent counts it). A reply only loads the
//! latest sample from an atomic: nothing is read or measured on the thread
//! that answers probes, so a slow or odd counters file (it must be a regular
//! file of bounded size, see `files`) never delays a reply. The first
//! sample is taken before the agent starts answering, so no reply ever
//! carries a made-up 100%.
//!
//! The arithmetic is integer (parts per million) and pure, so tests feed
//! known snapshots and check exact weights. This module does not decide the
//! admin state or the rest of the reply.

use crate::files;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One million: idle shares are kept in parts per million.
pub const PPM: u64 = 1_000_000;

/// The first eight counters of the `cpu` line: user nice system idle iowait
/// irq softirq steal. guest and guest_nice are already counted in user and
/// nice, so they are left out of the total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Times(pub [u64; 8]);

/// Parses the aggregate `cpu` line of `/proc/stat`. Kernels before 2.6.33
/// print fewer columns; missing ones count as zero.
pub fn parse(text: &str) -> Result<Times, String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or("has no aggregate \"cpu\" line")?;
    let mut times = [0u64; 8];
    let mut fields = line.split_whitespace().skip(1);
    for (i, slot) in times.iter_mut().enumerate() {
        match fields.next() {
            Some(f) => {
                *slot = f
                    .parse()
                    .map_err(|_| format!("has a bad counter {f:?} in column {}", i + 1))?
            }
            None if i >= 4 => break,
            None => return Err("has fewer than 4 counters on its \"cpu\" line".into()),
        }
    }
    Ok(Times(times))
}

/// The idle share between two snapshots, in parts per million, or `None`
/// when no time passed (both read within one clock tick).
///
/// Each counter's delta wraps like the kernel's u64 counters; a counter
/// that went backwards (iowait can, on tickless kernels) counts as zero
/// rather than as a huge jump.
pub fn idle_ppm(before: Times, after: Times) -> Option<u32> {
    let mut delta = [0u64; 8];
    for (d, (b, a)) in delta.iter_mut().zip(before.0.iter().zip(after.0.iter())) {
        let diff = a.wrapping_sub(*b);
        *d = if diff > u64::MAX / 2 { 0 } else { diff };
    }
    let total: u128 = delta.iter().map(|&d| u128::from(d)).sum();
    if total == 0 {
        return None;
    }
    let idle = u128::from(delta[3]) + u128::from(delta[4]);
    Some((idle * u128::from(PPM) / total) as u32)
}

/// Exponential smoothing: keep `smoothing` percent of the previous value.
/// 0 turns smoothing off.
pub fn smooth(previous: Option<u32>, sample: u32, smoothing: u8) -> u32 {
    match previous {
        None => sample,
        Some(prev) => {
            let keep = u64::from(smoothing.min(100));
            ((u64::from(prev) * keep + u64::from(sample) * (100 - keep)) / 100) as u32
        }
    }
}

/// The weight to send: the base weight (the state's, or 100) scaled by the
/// idle share, rounded down, but never below `min_weight` (so load alone
/// never drains every server at once) nor above the base. A base of 0 is
/// the operator's choice and stays 0.
pub fn scale(base: u32, idle_ppm: u32, min_weight: u32) -> u32 {
    if base == 0 {
        return 0;
    }
    let scaled = (u64::from(base) * u64::from(idle_ppm) / PPM) as u32;
    scaled.clamp(min_weight.min(base), base)
}

/// Largest counters file read. /proc/stat is a few KiB, tens of KiB on a
/// machine with hundreds of CPUs; a file far beyond that is not it.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// "No sample yet" in the shared idle share.
const NO_SAMPLE: u32 = u32::MAX;

/// Reads and parses a counters file; the error names no path.
pub fn read(path: &Path) -> Result<Times, String> {
    let bytes = files::read_regular(path, MAX_FILE_BYTES).map_err(|e| e.to_string())?;
    parse(&String::from_utf8_lossy(&bytes))
}

/// How the sampler samples; changed live by a configuration reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub path: PathBuf,
    pub timeframe: Duration,
    pub smoothing: u8,
}

/// The latest idle share, shared between the sampling thread, which writes
/// it, and the thread that answers probes, which only loads it: a reply
/// never reads a file or waits for a measurement.
#[derive(Clone)]
pub struct Sampler {
    idle: Arc<AtomicU32>,
    settings: Arc<Mutex<Settings>>,
}

impl Sampler {
    /// Takes the first sample on the calling thread, before hapgent serves
    /// (a baseline, then short windows of at most 200 ms until the counters
    /// move, at most ten), then starts the sampling thread. Fails only if
    /// the counters cannot be read at all. Call with signals blocked.
    pub fn start(settings: Settings) -> Result<Sampler, String> {
        let path = settings.path.display().to_string();
        let mut last = read(&settings.path).map_err(|e| format!("{path} {e}"))?;
        let window = settings.timeframe.min(Duration::from_millis(200));
        crate::info!(
            "sampling CPU load from {path} (first sample over {window:?}, then every {:?})",
            settings.timeframe
        );
        let mut idle = None;
        for _ in 0..10 {
            std::thread::sleep(window);
            let now = read(&settings.path).map_err(|e| format!("{path} {e}"))?;
            idle = idle_ppm(last, now);
            last = now;
            if idle.is_some() {
                break;
            }
        }
        if idle.is_none() {
            crate::warn!(
                "{path} did not change in {:?}; weights are not scaled until it does",
                window * 10
            );
        }
        let sampler = Sampler {
            idle: Arc::new(AtomicU32::new(idle.unwrap_or(NO_SAMPLE))),
            settings: Arc::new(Mutex::new(settings)),
        };
        let thread = sampler.clone();
        std::thread::Builder::new()
            .name("hapgent-cpu".into())
            .stack_size(128 * 1024)
            .spawn(move || thread.run(Some(last), idle))
            .map_err(|e| format!("cannot start the CPU sampling thread: {e}"))?;
        Ok(sampler)
    }

    /// The latest idle share, if any sample succeeded.
    pub fn idle(&self) -> Option<u32> {
        Some(self.idle.load(Ordering::Relaxed)).filter(|&i| i != NO_SAMPLE)
    }

    /// Applies new settings from the next sample on.
    pub fn update(&self, settings: Settings) {
        if let Ok(mut s) = self.settings.lock() {
            *s = settings;
        }
    }

    fn settings(&self) -> Settings {
        match self.settings.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Samples every `timeframe`, forever. Failures are logged when they
    /// start and when they end; the last sample is kept meanwhile.
    fn run(&self, mut last: Option<Times>, mut idle: Option<u32>) {
        let mut failing = false;
        loop {
            let settings = self.settings();
            std::thread::sleep(settings.timeframe);
            let path = settings.path.display();
            match read(&settings.path) {
                Ok(now) => {
                    if std::mem::take(&mut failing) {
                        crate::info!("{path} is readable again");
                    }
                    if let Some(sample) = last.and_then(|b| idle_ppm(b, now)) {
                        let next = smooth(idle, sample, settings.smoothing);
                        idle = Some(next);
                        self.idle.store(next, Ordering::Relaxed);
                    }
                    last = Some(now);
                }
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        crate::error!("{path} {e}; keeping the last CPU sample until it recovers");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\nintr 1\n";

    #[test]
    fn parses_the_aggregate_line() {
        assert_eq!(parse(LINE), Ok(Times([100, 0, 100, 800, 0, 0, 0, 0])));
        // Old kernels: fewer columns.
        assert_eq!(parse("cpu 1 2 3 4\n"), Ok(Times([1, 2, 3, 4, 0, 0, 0, 0])));
        assert_eq!(
            parse("cpu 1 2 3 4 5 6 7 8 9 10 11 12\n"),
            Ok(Times([1, 2, 3, 4, 5, 6, 7, 8]))
        );
        assert!(parse("cpu0 1 2 3 4\n").is_err());
        assert!(parse("cpu 1 2 x 4\n").unwrap_err().contains("column 3"));
        assert!(parse("cpu 1 2\n").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn idle_share_from_deltas() {
        let t = |v: [u64; 8]| Times(v);
        let cases: &[(Times, Times, Option<u32>)] = &[
            // 300 of 400 ticks idle.
            (
                t([100, 0, 100, 800, 0, 0, 0, 0]),
                t([200, 0, 100, 1100, 0, 0, 0, 0]),
                Some(750_000),
            ),
            // iowait counts as idle; irq, softirq and steal as busy.
            (t([0; 8]), t([10, 10, 10, 30, 20, 10, 5, 5]), Some(500_000)),
            // Fully busy and fully idle.
            (t([0; 8]), t([50, 0, 50, 0, 0, 0, 0, 0]), Some(0)),
            (t([0; 8]), t([0, 0, 0, 7, 0, 0, 0, 0]), Some(1_000_000)),
            // No time passed: no sample.
            (
                t([5, 5, 5, 5, 5, 5, 5, 5]),
                t([5, 5, 5, 5, 5, 5, 5, 5]),
                None,
            ),
            // A u64 counter wrapping around still gives the right delta.
            (
                t([u64::MAX - 49, 0, 0, u64::MAX - 9, 0, 0, 0, 0]),
                t([50, 0, 0, 90, 0, 0, 0, 0]),
                Some(500_000),
            ),
            // iowait going backwards counts as zero, not as a huge jump.
            (
                t([0, 0, 0, 0, 100, 0, 0, 0]),
                t([100, 0, 0, 100, 90, 0, 0, 0]),
                Some(500_000),
            ),
            // Thirds round down.
            (t([0; 8]), t([2, 0, 0, 1, 0, 0, 0, 0]), Some(333_333)),
        ];
        for (before, after, want) in cases {
            assert_eq!(idle_ppm(*before, *after), *want, "{before:?} -> {after:?}");
        }
    }

    #[test]
    fn smoothing() {
        assert_eq!(smooth(None, 500_000, 50), 500_000);
        assert_eq!(smooth(Some(1_000_000), 0, 0), 0);
        assert_eq!(smooth(Some(1_000_000), 0, 50), 500_000);
        assert_eq!(smooth(Some(1_000_000), 0, 90), 900_000);
        assert_eq!(smooth(Some(200_000), 600_000, 75), 300_000);
    }

    #[test]
    fn scaling_with_floor() {
        // (base, idle ppm, min weight, weight)
        for (base, idle, min, want) in [
            (100, 750_000, 1, 75),
            (50, 750_000, 1, 37),
            (100, 0, 1, 1),
            (100, 0, 10, 10),
            (100, 1_000_000, 1, 100),
            (255, 500_000, 1, 127),
            (100, 290_000, 1, 29),
            (0, 1_000_000, 1, 0),
            (5, 0, 10, 5),
            (100, 4_000, 0, 0),
        ] {
            assert_eq!(scale(base, idle, min), want, "{base} {idle} {min}");
        }
    }
}
