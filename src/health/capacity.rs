//! Capacity: how much room the host has left, as one weight.
//!
//! Each monitor reads one quantity (memory in use, load per core, CPU
//! busy, disk used, established connections) and compares it with its
//! `full` level: its load is value / full, capped at 1. The composite load
//! is the significance-weighted mean of those loads, smoothed like today's
//! CPU weight (`cpu::smooth`); the weight a reply carries is the base
//! weight scaled by what is left (`cpu::scale`, so never below
//! `min_weight`). With `drain_above`, a composite load at or above it
//! drains, and the drain ends only once the load is below `drain_above -
//! drain_hysteresis`, so a host hovering at the threshold does not flap.
//!
//! The arithmetic is pure (parts per million, as `cpu`), tested as tables.
//! [`Sampler`] reads the files on a thread of its own every `interval` and
//! publishes the result in atomics: a reply never reads a file. Paths come
//! from settings ([`Paths`]) so tests feed fake /proc files. This module
//! does not decide the reply (`precedence` does).

use super::config::{Capacity, Monitor, Watch};
use super::connections::{Counter, Method, Pace};
use crate::cpu::{self, PPM};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// A monitor's load: value / full in parts per million, at most all.
pub fn load_ppm(value: f64, full: f64) -> u32 {
    if value.is_nan() || full.is_nan() || value <= 0.0 || full <= 0.0 {
        return 0;
    }
    ((value / full).min(1.0) * PPM as f64).round() as u32
}

/// The significance-weighted mean of `(load ppm, significance)`; `None`
/// when there is nothing to weigh.
pub fn composite(loads: &[(u32, u32)]) -> Option<u32> {
    let total: u64 = loads.iter().map(|&(_, s)| u64::from(s)).sum();
    if total == 0 {
        return None;
    }
    let sum: u64 = loads
        .iter()
        .map(|&(l, s)| u64::from(l.min(PPM as u32)) * u64::from(s))
        .sum();
    Some((sum / total) as u32)
}

/// The weight for `base` under composite load `load_ppm`, floored at
/// `min_weight` (`cpu::scale` with what is left as the idle share).
pub fn weight(base: u32, load_ppm: u32, min_weight: u32) -> u32 {
    cpu::scale(base, (PPM as u32).saturating_sub(load_ppm), min_weight)
}

/// Whether to drain, given whether it drains now: from `above` percent
/// on, until the load is below `below` percent.
pub fn drain(draining: bool, load_ppm: u32, (above, below): (u8, u8)) -> bool {
    let pct = |p: u8| u32::from(p) * (PPM as u32 / 100);
    if draining {
        load_ppm >= pct(below)
    } else {
        load_ppm >= pct(above)
    }
}

/// `MemTotal` and `MemAvailable` of a meminfo text, in kB: the percent of
/// memory in use.
pub fn parse_meminfo(text: &str) -> Result<f64, String> {
    let field = |name: &str| -> Result<u64, String> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .ok_or_else(|| format!("has no {name} line (MemAvailable needs Linux 3.14)"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .map_err(|_| format!("has a bad {name} value"))
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable")?;
    if total == 0 {
        return Err("says MemTotal is 0".into());
    }
    Ok(100.0 * total.saturating_sub(available) as f64 / total as f64)
}

/// The 1-minute load average of a loadavg text.
pub fn parse_loadavg(text: &str) -> Result<f64, String> {
    text.split_whitespace()
        .next()
        .and_then(|f| f.parse::<f64>().ok())
        .filter(|l| l.is_finite() && *l >= 0.0)
        .ok_or_else(|| "does not start with a load average".into())
}

/// The number of CPUs a /proc/stat text lists (`cpuN` lines), at least 1.
pub fn count_cpus(text: &str) -> u32 {
    let n = text
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    (n as u32).max(1)
}

/// The percent of a filesystem used, as `df` counts it: used blocks over
/// the blocks an unprivileged user could have (reserved ones left out).
pub fn used_percent(blocks: u64, free: u64, available: u64) -> f64 {
    let used = blocks.saturating_sub(free);
    let usable = used + available;
    if usable == 0 {
        return 0.0;
    }
    100.0 * used as f64 / usable as f64
}

/// statvfs(3) of `path`: (blocks, free, available), the one call std
/// lacks. The counts are 32-bit on some targets, hence the conversions.
fn statvfs(path: &Path) -> std::io::Result<(u64, u64, u64)> {
    let st = rustix::fs::statvfs(path)?;
    Ok((st.f_blocks, st.f_bfree, st.f_bavail))
}

/// Where the monitors read (settings: `proc_stat` and the like).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub proc_stat: PathBuf,
    pub proc_meminfo: PathBuf,
    pub proc_loadavg: PathBuf,
    /// The directory holding `tcp` and `tcp6`, for counting connections
    /// when netlink is refused.
    pub proc_net: PathBuf,
}

impl Default for Paths {
    fn default() -> Paths {
        Paths {
            proc_stat: "/proc/stat".into(),
            proc_meminfo: "/proc/meminfo".into(),
            proc_loadavg: "/proc/loadavg".into(),
            proc_net: "/proc/net".into(),
        }
    }
}

/// Largest /proc file read for a monitor.
const MAX_FILE_BYTES: u64 = 1 << 20;

fn read_text(path: &Path) -> Result<String, String> {
    let bytes = crate::files::read_regular(path, MAX_FILE_BYTES)
        .map_err(|e| format!("{} {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// What a monitor keeps between samples.
enum Memory {
    None,
    Cpu(Option<cpu::Times>),
    Connections(Counter, Option<Method>),
}

/// Reads one monitor's value. `Ok(None)`: no value yet (the CPU monitor's
/// first sample only sets its baseline).
fn read(monitor: &Monitor, memory: &mut Memory, paths: &Paths) -> Result<Option<f64>, String> {
    match (&monitor.watch, memory) {
        (Watch::Memory, _) => {
            let text = read_text(&paths.proc_meminfo)?;
            parse_meminfo(&text)
                .map(Some)
                .map_err(|e| format!("{} {e}", paths.proc_meminfo.display()))
        }
        (Watch::Load, _) => {
            let load = parse_loadavg(&read_text(&paths.proc_loadavg)?)
                .map_err(|e| format!("{} {e}", paths.proc_loadavg.display()))?;
            let cpus = count_cpus(&read_text(&paths.proc_stat)?);
            Ok(Some(load / f64::from(cpus)))
        }
        (Watch::Cpu, Memory::Cpu(last)) => {
            let now = cpu::read(&paths.proc_stat)
                .map_err(|e| format!("{} {e}", paths.proc_stat.display()))?;
            let idle = last.and_then(|before| cpu::idle_ppm(before, now));
            *last = Some(now);
            Ok(idle.map(|i| 100.0 * f64::from(PPM as u32 - i.min(PPM as u32)) / PPM as f64))
        }
        (Watch::Disk(path), _) => {
            let (blocks, free, available) =
                statvfs(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Some(used_percent(blocks, free, available)))
        }
        (Watch::Connections(_), Memory::Connections(counter, method)) => {
            let (n, how) = counter
                .count(&paths.proc_net)
                .map_err(|e| format!("counting connections: {e}"))?;
            if *method != Some(how) {
                if how == Method::ProcNetTcp {
                    crate::warn!(
                        "counting connections by parsing {}/tcp: netlink (AF_NETLINK) is refused; allow it for a cheaper count",
                        paths.proc_net.display()
                    );
                }
                *method = Some(how);
            }
            Ok(Some(n as f64))
        }
        (_, _) => Ok(None),
    }
}

/// One monitor's published reading.
#[derive(Debug, Default)]
pub struct MonitorCell {
    /// f64 bits of the value; NaN before the first reading.
    value: AtomicU64,
    load: AtomicU32,
    failing: AtomicBool,
}

/// A monitor's latest reading, for `ctl status`, metrics and the
/// explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub name: &'static str,
    /// `None` before its first reading.
    pub value: Option<f64>,
    pub full: f64,
    pub significance: u32,
    /// value / full in parts per million, at most all.
    pub load_ppm: u32,
    /// Its last read failed (the value is the last good one).
    pub failing: bool,
}

impl Reading {
    /// "memory 77 % used (full at 95 %)".
    pub fn describe(&self) -> String {
        let v = self.value.unwrap_or(0.0);
        match self.name {
            "memory" => format!("memory {v:.0} % used (full at {:.0} %)", self.full),
            "load" => format!("load {v:.2} per core (full at {:.2})", self.full),
            "cpu" => format!("cpu {v:.0} % busy (full at {:.0} %)", self.full),
            "disk" => format!("disk {v:.0} % used (full at {:.0} %)", self.full),
            _ => format!("{} {v:.0} (full at {:.0})", self.name, self.full),
        }
    }
}

/// What the capacity monitors say now, as the reply needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    /// The smoothed composite load; `None` before any monitor has read.
    pub load_ppm: Option<u32>,
    pub draining: bool,
    pub min_weight: u32,
    /// `(drain at, end below)` percent, if configured.
    pub drain: Option<(u8, u8)>,
    pub readings: Vec<Reading>,
}

impl View {
    /// The reading that adds most to the composite load.
    pub fn heaviest(&self) -> Option<&Reading> {
        self.readings
            .iter()
            .filter(|r| r.value.is_some())
            .max_by_key(|r| u64::from(r.load_ppm) * u64::from(r.significance))
    }
}

const NO_LOAD: u32 = u32::MAX;

/// What the sampling thread publishes.
struct Shared {
    config: Capacity,
    load: AtomicU32,
    draining: AtomicBool,
    monitors: Vec<MonitorCell>,
}

/// Called when the weight (to the percent) or the drain changes, on the
/// sampling thread: keep it short.
pub type OnChange = Arc<dyn Fn() + Send + Sync>;

/// The share of one core the `connections` count may take: counting costs
/// the kernel about 0.15 µs per socket in the table and 0.6 µs per counted
/// one (81 ms of CPU at 100,000 established), so a large host counts less
/// often than every sample instead of spending 8 % of a core; 1,000
/// connections are still counted at every sample of a 1 s interval.
const CONNECTIONS_SHARE: f64 = 0.0025;

/// The monitors' published state; dropping the last handle ends the
/// thread at its next tick.
#[derive(Clone)]
pub struct Sampler {
    shared: Arc<Shared>,
}

impl Sampler {
    /// Takes a first reading on the calling thread (so the first replies
    /// already follow memory, load, disk and connections; the CPU needs two
    /// readings), then starts the thread `hapgent-capacity`. Call it inside
    /// `sys::with_signals_blocked`.
    pub fn start(config: Capacity, paths: Paths, on_change: OnChange) -> std::io::Result<Sampler> {
        let monitors = config
            .monitors
            .iter()
            .map(|_| MonitorCell::default())
            .collect();
        let shared = Arc::new(Shared {
            config,
            load: AtomicU32::new(NO_LOAD),
            draining: AtomicBool::new(false),
            monitors,
        });
        for cell in &shared.monitors {
            cell.value.store(f64::NAN.to_bits(), Ordering::Relaxed);
        }
        let mut memories: Vec<Memory> = shared
            .config
            .monitors
            .iter()
            .map(|m| match &m.watch {
                Watch::Cpu => Memory::Cpu(None),
                Watch::Connections(ports) => Memory::Connections(
                    Counter::new(ports).paced(Pace::new(CONNECTIONS_SHARE)),
                    None,
                ),
                _ => Memory::None,
            })
            .collect();
        sample(&shared, &mut memories, &paths);
        let weak = Arc::downgrade(&shared);
        let interval = shared.config.interval;
        std::thread::Builder::new()
            .name("hapgent-capacity".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                loop {
                    std::thread::sleep(interval);
                    let Some(shared) = weak.upgrade() else { return };
                    let before = (
                        shared.load.load(Ordering::Relaxed) / 10_000,
                        shared.draining.load(Ordering::Relaxed),
                    );
                    sample(&shared, &mut memories, &paths);
                    let after = (
                        shared.load.load(Ordering::Relaxed) / 10_000,
                        shared.draining.load(Ordering::Relaxed),
                    );
                    if before != after {
                        on_change();
                    }
                }
            })?;
        Ok(Sampler { shared })
    }

    /// The smoothed composite load and the drain: what a reply needs, two
    /// atomic loads.
    pub fn load(&self) -> (Option<u32>, bool) {
        let l = self.shared.load.load(Ordering::Relaxed);
        (
            (l != NO_LOAD).then_some(l),
            self.shared.draining.load(Ordering::Relaxed),
        )
    }

    /// Everything, for the explanation, `ctl status` and metrics.
    pub fn view(&self) -> View {
        let (load_ppm, draining) = self.load();
        let readings = self
            .shared
            .config
            .monitors
            .iter()
            .zip(&self.shared.monitors)
            .map(|(m, cell)| {
                let v = f64::from_bits(cell.value.load(Ordering::Relaxed));
                Reading {
                    name: m.watch.name(),
                    value: (!v.is_nan()).then_some(v),
                    full: m.full,
                    significance: m.significance,
                    load_ppm: cell.load.load(Ordering::Relaxed),
                    failing: cell.failing.load(Ordering::Relaxed),
                }
            })
            .collect();
        View {
            load_ppm,
            draining,
            min_weight: self.shared.config.min_weight,
            drain: self.shared.config.drain,
            readings,
        }
    }
}

/// Reads every monitor once and publishes the result.
fn sample(shared: &Shared, memories: &mut [Memory], paths: &Paths) {
    let mut loads = Vec::with_capacity(memories.len());
    for ((monitor, cell), memory) in shared
        .config
        .monitors
        .iter()
        .zip(&shared.monitors)
        .zip(memories)
    {
        match read(monitor, memory, paths) {
            Ok(value) => {
                if cell.failing.swap(false, Ordering::Relaxed) {
                    crate::info!("capacity monitor {} reads again", monitor.watch.name());
                }
                if let Some(v) = value {
                    cell.value.store(v.to_bits(), Ordering::Relaxed);
                    cell.load
                        .store(load_ppm(v, monitor.full), Ordering::Relaxed);
                }
            }
            Err(e) => {
                if !cell.failing.swap(true, Ordering::Relaxed) {
                    crate::error!(
                        "capacity monitor {}: {e}; keeping its last reading until it recovers",
                        monitor.watch.name()
                    );
                }
            }
        }
        // The last good reading counts; a monitor never read does not.
        if !f64::from_bits(cell.value.load(Ordering::Relaxed)).is_nan() {
            loads.push((cell.load.load(Ordering::Relaxed), monitor.significance));
        }
    }
    let Some(now) = composite(&loads) else {
        return;
    };
    let previous = Some(shared.load.load(Ordering::Relaxed)).filter(|&l| l != NO_LOAD);
    let smoothed = cpu::smooth(previous, now, shared.config.smoothing);
    shared.load.store(smoothed, Ordering::Relaxed);
    if let Some(levels) = shared.config.drain {
        let was = shared.draining.load(Ordering::Relaxed);
        let is = drain(was, smoothed, levels);
        if is != was {
            shared.draining.store(is, Ordering::Relaxed);
            crate::warn!(
                "capacity: load {} % {} drain",
                smoothed / 10_000,
                if is {
                    format!("reached {} %: replies", levels.0)
                } else {
                    format!("fell below {} %: replies no longer", levels.1)
                }
            );
        }
    }
}

/// The interval, for the owner's bookkeeping.
impl Sampler {
    pub fn interval(&self) -> Duration {
        self.shared.config.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::config::{self, CapacitySpec};

    #[test]
    fn monitor_loads() {
        // (value, full, load ppm)
        for (value, full, want) in [
            (50.0, 100.0, 500_000),
            (95.0, 95.0, 1_000_000),
            (120.0, 95.0, 1_000_000),
            (0.0, 95.0, 0),
            (-3.0, 95.0, 0),
            (f64::NAN, 95.0, 0),
            (1.5, 2.0, 750_000),
            (2500.0, 10_000.0, 250_000),
            (1.0, 3.0, 333_333),
        ] {
            assert_eq!(load_ppm(value, full), want, "{value}/{full}");
        }
    }

    #[test]
    fn weight_composition() {
        // (loads as (ppm, significance), base, min weight, composite, weight)
        type Case<'a> = (&'a [(u32, u32)], u32, u32, Option<u32>, u32);
        let cases: &[Case] = &[
            (&[], 100, 1, None, 100),
            (&[(500_000, 1)], 100, 1, Some(500_000), 50),
            // Equal significance: the mean.
            (&[(800_000, 1), (200_000, 1)], 100, 1, Some(500_000), 50),
            // Memory three times as significant as load.
            (&[(800_000, 3), (0, 1)], 100, 1, Some(600_000), 40),
            // A base weight from the state scales too.
            (&[(500_000, 1)], 50, 1, Some(500_000), 25),
            // Full: floored at min_weight, never 0 from load alone.
            (&[(1_000_000, 1)], 100, 1, Some(1_000_000), 1),
            (
                &[(1_000_000, 1), (1_000_000, 5)],
                100,
                10,
                Some(1_000_000),
                10,
            ),
            // An operator's weight of 0 stays 0; a base below the floor stays.
            (&[(0, 1)], 0, 10, Some(0), 0),
            (&[(900_000, 1)], 5, 10, Some(900_000), 5),
            // Idle: the whole base.
            (&[(0, 1), (0, 2)], 100, 1, Some(0), 100),
            (&[(380_000, 1)], 100, 1, Some(380_000), 62),
        ];
        for (loads, base, min, want_load, want_weight) in cases {
            let c = composite(loads);
            assert_eq!(c, *want_load, "{loads:?}");
            assert_eq!(
                weight(*base, c.unwrap_or(0), *min),
                *want_weight,
                "{loads:?} base {base}"
            );
        }
    }

    #[test]
    fn drain_hysteresis() {
        // Feed composite loads in percent; list the drain after each.
        let run = |levels: (u8, u8), loads: &[u32]| -> Vec<bool> {
            let mut d = false;
            loads
                .iter()
                .map(|&l| {
                    d = drain(d, l * 10_000, levels);
                    d
                })
                .collect()
        };
        type Case<'a> = ((u8, u8), &'a [u32], &'a [bool]);
        let cases: &[Case] = &[
            // Drains at 90, stays while above 80, ends below 80.
            (
                (90, 80),
                &[50, 89, 90, 85, 80, 79, 85, 89, 95],
                &[false, false, true, true, true, false, false, false, true],
            ),
            // No hysteresis: ends as soon as it is below the threshold.
            ((90, 90), &[95, 90, 89, 90], &[true, true, false, true]),
            ((100, 90), &[99, 100, 95, 89], &[false, true, true, false]),
        ];
        for (levels, loads, want) in cases {
            assert_eq!(run(*levels, loads), *want, "{levels:?} {loads:?}");
        }
    }

    #[test]
    fn proc_texts() {
        let meminfo = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    4000000 kB\nBuffers: 1 kB\n";
        assert_eq!(parse_meminfo(meminfo), Ok(75.0));
        assert!(
            parse_meminfo("MemTotal: 100 kB\n")
                .unwrap_err()
                .contains("MemAvailable")
        );
        assert!(
            parse_meminfo("MemTotal: x kB\nMemAvailable: 1 kB\n")
                .unwrap_err()
                .contains("bad MemTotal")
        );
        assert!(parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB\n").is_err());
        // More available than total (a fake file): nothing in use.
        assert_eq!(
            parse_meminfo("MemTotal: 10 kB\nMemAvailable: 20 kB\n"),
            Ok(0.0)
        );
        assert_eq!(parse_loadavg("1.50 0.80 0.40 2/345 6789\n"), Ok(1.5));
        assert!(parse_loadavg("").is_err());
        assert!(parse_loadavg("nan 1 1").is_err());
        assert_eq!(
            count_cpus("cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu1 1 2 3 4\nintr 5\n"),
            2
        );
        assert_eq!(count_cpus("cpu  1 2 3 4\n"), 1);
        assert_eq!(used_percent(1000, 500, 500).round(), 50.0);
        assert_eq!((used_percent(1000, 400, 300) * 100.0).round(), 6667.0);
        assert_eq!(used_percent(0, 0, 0), 0.0);
        let real = statvfs(Path::new("/")).unwrap();
        assert!(real.0 > 0 && real.1 >= real.2, "{real:?}");
    }

    /// Fake /proc files drive the published weight: memory at 76 % of a
    /// full 95 % and load 1.0 of a full 2.0 per core, memory three times
    /// as significant: (800k·3 + 500k) / 4 = 725k; the CPU needs two
    /// readings, so its first sample does not count.
    #[test]
    fn sampler_reads_fake_proc_files() {
        let dir = std::env::temp_dir().join(format!("hapgent-capacity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let paths = Paths {
            proc_stat: dir.join("stat"),
            proc_meminfo: dir.join("meminfo"),
            proc_loadavg: dir.join("loadavg"),
            proc_net: dir.join("net"),
        };
        std::fs::write(
            &paths.proc_stat,
            "cpu  100 0 100 800 0 0 0 0\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n",
        )
        .unwrap();
        std::fs::write(
            &paths.proc_meminfo,
            "MemTotal: 1000 kB\nMemAvailable: 240 kB\n",
        )
        .unwrap();
        std::fs::write(&paths.proc_loadavg, "2.00 1.00 1.00 1/1 1\n").unwrap();
        let spec: CapacitySpec = toml::from_str(
            "interval = 100000\ndrain_above = 70\n[memory]\nsignificance = 3\n[load]\n[cpu]\n",
        )
        .unwrap();
        let sampler =
            Sampler::start(config::capacity(&spec).unwrap(), paths, Arc::new(|| {})).unwrap();
        let view = sampler.view();
        assert_eq!(view.load_ppm, Some(725_000));
        assert!(view.draining);
        assert_eq!(sampler.load(), (Some(725_000), true));
        assert_eq!(view.readings[0].value, Some(76.0));
        assert_eq!(view.readings[1].value, Some(1.0));
        assert_eq!(view.readings[2].value, None);
        assert_eq!(
            view.heaviest().unwrap().describe(),
            "memory 76 % used (full at 95 %)"
        );
        assert_eq!(weight(100, view.load_ppm.unwrap(), 1), 27);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
