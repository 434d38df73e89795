//! CPU-based weight: the weight follows how idle this host is.
//!
//! A background sampler reads the aggregate `cpu` line of `/proc/stat`
//! every `timeframe` and keeps the idle share of the time that passed
//! (idle + iowait, as the Go haproxy_agent counts it). A reply only reads
//! the latest sample: nothing is measured inside a request, and the first
//! sample is taken before the agent starts answering, so no reply ever
//! carries a made-up 100%.
//!
//! The arithmetic is integer (parts per million) and pure, so tests feed
//! known snapshots and check exact weights. This module does not decide the
//! admin state or the rest of the reply.

use std::cell::Cell;
use std::fs;
use std::path::PathBuf;
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

/// The sampler's settings and its latest result.
pub struct Sampler {
    path: PathBuf,
    timeframe: Duration,
    smoothing: u8,
    pub min_weight: u32,
    last: Cell<Option<Times>>,
    idle: Cell<Option<u32>>,
    failing: Cell<bool>,
}

impl Sampler {
    pub fn new(path: PathBuf, timeframe: Duration, smoothing: u8, min_weight: u32) -> Sampler {
        Sampler {
            path,
            timeframe,
            smoothing,
            min_weight,
            last: Cell::new(None),
            idle: Cell::new(None),
            failing: Cell::new(false),
        }
    }

    /// The latest idle share, if any sample succeeded.
    pub fn idle(&self) -> Option<u32> {
        self.idle.get()
    }

    fn read(&self) -> Result<Times, String> {
        let text = fs::read_to_string(&self.path).map_err(|e| format!("cannot be read: {e}"))?;
        parse(&text)
    }

    /// Takes one snapshot and updates the idle share from the previous
    /// one. Returns whether a new sample was computed. Failures are logged
    /// when they start and when they end; the last sample is kept.
    pub fn sample(&self) -> bool {
        match self.read() {
            Ok(now) => {
                if self.failing.replace(false) {
                    crate::info!("{} is readable again", self.path.display());
                }
                let before = self.last.replace(Some(now));
                let Some(idle) = before.and_then(|b| idle_ppm(b, now)) else {
                    return false;
                };
                self.idle
                    .set(Some(smooth(self.idle.get(), idle, self.smoothing)));
                true
            }
            Err(e) => {
                if !self.failing.replace(true) {
                    crate::error!(
                        "{} {e}; keeping the last CPU sample until it recovers",
                        self.path.display()
                    );
                }
                false
            }
        }
    }

    /// The first sample, taken before serving: a baseline, then short
    /// windows (at most 200 ms, or the timeframe if shorter) until time has
    /// passed, for at most ten windows. Blocks the calling thread.
    pub fn first_sample(&self) -> Result<(), String> {
        self.last.set(Some(
            self.read()
                .map_err(|e| format!("{} {e}", self.path.display()))?,
        ));
        let window = self.timeframe.min(Duration::from_millis(200));
        crate::info!(
            "sampling CPU load from {} (first sample over {window:?}, then every {:?})",
            self.path.display(),
            self.timeframe
        );
        for _ in 0..10 {
            std::thread::sleep(window);
            if self.sample() {
                return Ok(());
            }
        }
        crate::warn!(
            "{} did not change in {:?}; weights are not scaled until it does",
            self.path.display(),
            window * 10
        );
        Ok(())
    }

    /// Samples every `timeframe`, forever.
    pub async fn run(&self) {
        loop {
            smol::Timer::after(self.timeframe).await;
            self.sample();
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
