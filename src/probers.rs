//! Who probes this agent, and which version of the state each was served.
//!
//! A prober is the source address of a probe (one per load balancer, or per
//! HAProxy process with the `source` keyword) and the service it asked
//! about (a number: see `agent`). For each the table keeps
//! the first and last probe time, the number of probes, and the last reply
//! with the state version it carried. That is what `hapgent ctl probers`
//! lists and what `--wait-seen` waits on: a change is seen by a load
//! balancer once it has been served a reply carrying that version or a
//! later one.
//!
//! Updating is O(1) and allocates nothing for a known prober (the reply is
//! the agent's shared cached line). The table is bounded: past `cap` the
//! prober unseen for longest is evicted. Times are passed in, so everything
//! here is pure and tested without sockets or clocks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What is known of one prober.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prober {
    pub first: Instant,
    pub last: Instant,
    pub probes: u64,
    pub reply: Rc<[u8]>,
    /// The state version the last reply carried.
    pub version: u64,
    /// When it was first served `version`.
    pub since: Instant,
}

impl Prober {
    /// Its mean interval between probes, once it has probed twice.
    pub fn interval(&self) -> Option<Duration> {
        let gaps = u32::try_from(self.probes.checked_sub(1)?).ok()?;
        (gaps > 0).then(|| self.last.saturating_duration_since(self.first) / gaps)
    }

    /// How long it may stay silent and still count as probing: three of its
    /// intervals and a second (HAProxy spreads and may time out a check),
    /// at most `window`.
    pub fn patience(&self, window: Duration) -> Duration {
        self.interval()
            .map_or(Duration::ZERO, |i| i * 3 + Duration::from_secs(1))
            .min(window)
    }

    /// Whether it is a load balancer probing now: it has probed more than
    /// once (a one-off probe, say an operator's `nc` or a monitoring
    /// script's single check, is not a load balancer to wait for) and not
    /// been silent for longer than its `patience`.
    pub fn is_probing(&self, window: Duration, now: Instant) -> bool {
        self.probes >= 2 && now.saturating_duration_since(self.last) <= self.patience(window)
    }
}

/// The probers seen, bounded.
/// A prober: source address and service.
pub type Key = (IpAddr, u32);

pub struct Table {
    cap: usize,
    probers: HashMap<Key, Prober>,
}

impl Table {
    pub fn new(cap: usize) -> Table {
        Table {
            cap: cap.max(1),
            probers: HashMap::new(),
        }
    }

    /// Changes the bound; extra probers are evicted at the next insert.
    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap.max(1);
    }

    /// Records that `key` was served `reply`, carrying `version`, at `now`.
    pub fn record(&mut self, key: Key, reply: &Rc<[u8]>, version: u64, now: Instant) {
        if let Some(p) = self.probers.get_mut(&key) {
            p.last = now;
            p.probes += 1;
            if p.version != version {
                p.version = version;
                p.since = now;
            }
            if !Rc::ptr_eq(&p.reply, reply) {
                p.reply = Rc::clone(reply);
            }
            return;
        }
        while self.probers.len() >= self.cap {
            let Some(oldest) = self
                .probers
                .iter()
                .min_by_key(|(_, p)| p.last)
                .map(|(a, _)| *a)
            else {
                break;
            };
            self.probers.remove(&oldest);
        }
        self.probers.insert(
            key,
            Prober {
                first: now,
                last: now,
                probes: 1,
                reply: Rc::clone(reply),
                version,
                since: now,
            },
        );
    }

    /// Forgets the probers of services for which `keep` is false.
    pub fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        self.probers.retain(|(_, service), _| keep(*service));
    }

    /// Every prober, most recently seen first.
    pub fn list(&self) -> Vec<(Key, Prober)> {
        let mut all: Vec<_> = self.probers.iter().map(|(a, p)| (*a, p.clone())).collect();
        all.sort_by(|a, b| b.1.last.cmp(&a.1.last).then(a.0.cmp(&b.0)));
        all
    }

    /// The probers of `service` probing now (see `Prober::is_probing`).
    pub fn recent(&self, service: u32, window: Duration, now: Instant) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .probers
            .iter()
            .filter(|(k, p)| k.1 == service && p.is_probing(window, now))
            .map(|(k, _)| *k)
            .collect();
        keys.sort();
        keys
    }

    pub fn get(&self, key: &Key) -> Option<&Prober> {
        self.probers.get(key)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.probers.len()
    }
}

/// Where one awaited prober stands in a `--wait-seen`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Served `version` or later, this long after the wait began.
    Seen(Duration),
    /// Still probing, not yet served the version.
    Waiting,
    /// No probe for longer than the window: it stopped probing.
    Gone(Duration),
}

/// The progress of each awaited prober towards `version`, for a wait that
/// began at `start`. Pure: the table is all it reads.
pub fn progress(
    table: &Table,
    awaited: &[Key],
    version: u64,
    start: Instant,
    window: Duration,
    now: Instant,
) -> Vec<(Key, Progress)> {
    awaited
        .iter()
        .map(|key| {
            let state = match table.get(key) {
                Some(p) if p.version >= version => {
                    Progress::Seen(p.since.max(start).saturating_duration_since(start))
                }
                Some(p) if !p.is_probing(window, now) => {
                    Progress::Gone(now.saturating_duration_since(p.last))
                }
                Some(_) => Progress::Waiting,
                // Evicted from the table: as good as gone.
                None => Progress::Gone(window),
            };
            (*key, state)
        })
        .collect()
}

/// How a wait stands: `Some(true)` every awaited prober has seen it,
/// `Some(false)` it can no longer succeed (every one that has not seen it
/// stopped probing), `None` keep waiting.
pub fn verdict(progress: &[(Key, Progress)]) -> Option<bool> {
    if progress.iter().all(|(_, p)| matches!(p, Progress::Seen(_))) {
        return Some(true);
    }
    let unseen = progress
        .iter()
        .filter(|(_, p)| !matches!(p, Progress::Seen(_)));
    if unseen.clone().all(|(_, p)| matches!(p, Progress::Gone(_))) {
        return Some(false);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Key {
        (IpAddr::from([127, 0, 0, n]), 0)
    }

    fn reply(text: &str) -> Rc<[u8]> {
        Rc::from(text.as_bytes())
    }

    #[test]
    fn records_counts_and_versions() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let up = reply("up ready 100%\n");
        let down = reply("down 100%\n");
        let mut table = Table::new(10);
        table.record(ip(2), &up, 1, s(0));
        table.record(ip(2), &up, 1, s(200));
        table.record(ip(2), &down, 2, s(400));
        table.record(ip(3), &up, 1, s(100));
        let p = table.get(&ip(2)).unwrap();
        assert_eq!(
            (p.first, p.last, p.probes, p.version, p.since),
            (s(0), s(400), 3, 2, s(400))
        );
        assert!(Rc::ptr_eq(&p.reply, &down));
        // Most recent first.
        let order: Vec<Key> = table.list().into_iter().map(|(a, _)| a).collect();
        assert_eq!(order, [ip(2), ip(3)]);
        assert_eq!(table.recent(0, Duration::from_millis(250), s(400)), [ip(2)]);
        // One probe is not a load balancer yet; a second one makes it one.
        assert_eq!(table.recent(0, Duration::from_secs(1), s(400)), [ip(2)]);
        table.record(ip(3), &up, 1, s(350));
        assert_eq!(
            table.recent(0, Duration::from_secs(1), s(400)),
            [ip(2), ip(3)]
        );
        // Another service's probers are its own.
        table.record((ip(2).0, 7), &up, 1, s(300));
        table.record((ip(2).0, 7), &up, 1, s(400));
        assert_eq!(
            table.recent(7, Duration::from_secs(1), s(400)),
            [(ip(2).0, 7)]
        );
        table.retain(|service| service != 7);
        assert_eq!(table.recent(7, Duration::from_secs(1), s(400)), []);
    }

    #[test]
    fn probing_is_judged_by_each_probers_own_interval() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let r = reply("x\n");
        let window = Duration::from_secs(30);
        let prober = |times: &[u64]| {
            let mut table = Table::new(4);
            for t in times {
                table.record(ip(2), &r, 0, s(*t));
            }
            table.get(&ip(2)).unwrap().clone()
        };
        // (probe times, now, interval, probing)
        for (times, now, interval, probing) in [
            (&[0][..], 10, None, false),
            (&[0, 200, 400][..], 400, Some(200), true),
            // Silent for 3 intervals and a second: still probing.
            (&[0, 200, 400][..], 2000, Some(200), true),
            (&[0, 200, 400][..], 2001, Some(200), false),
            // An operator's two quick probes, long ago: not a load balancer.
            (&[0, 100][..], 20_000, Some(100), false),
            // A slow prober (every 20 s): patience capped by the window.
            (&[0, 20_000][..], 45_000, Some(20_000), true),
            (&[0, 20_000][..], 50_001, Some(20_000), false),
        ] {
            let p = prober(times);
            assert_eq!(
                p.interval(),
                interval.map(Duration::from_millis),
                "{times:?}"
            );
            assert_eq!(p.is_probing(window, s(now)), probing, "{times:?} at {now}");
        }
    }

    #[test]
    fn evicts_the_longest_unseen_past_the_cap() {
        let t0 = Instant::now();
        let r = reply("x\n");
        let mut table = Table::new(3);
        for (n, ms) in [(1, 10), (2, 0), (3, 20)] {
            table.record(ip(n), &r, 0, t0 + Duration::from_millis(ms));
        }
        table.record(ip(4), &r, 0, t0 + Duration::from_millis(30));
        assert_eq!(table.len(), 3);
        assert!(table.get(&ip(2)).is_none(), "the longest unseen goes");
        // A known prober never evicts anyone.
        table.record(ip(1), &r, 0, t0 + Duration::from_millis(40));
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn waits_are_decided_from_the_table() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let window = Duration::from_millis(1000);
        let r = reply("x\n");
        let mut table = Table::new(10);
        for key in [ip(2), ip(3)] {
            table.record(key, &r, 4, s(0));
            table.record(key, &r, 4, s(5));
        }
        let awaited = [ip(2), ip(3)];
        let start = s(10);
        // Nobody has version 5 yet.
        let p = progress(&table, &awaited, 5, start, window, s(20));
        assert_eq!(p, [(ip(2), Progress::Waiting), (ip(3), Progress::Waiting)]);
        assert_eq!(verdict(&p), None);
        // One sees it 200 ms after the start.
        table.record(ip(2), &r, 5, s(210));
        let p = progress(&table, &awaited, 5, start, window, s(300));
        assert_eq!(p[0], (ip(2), Progress::Seen(Duration::from_millis(200))));
        assert_eq!(verdict(&p), None);
        // The other stops probing: past its patience (here the window) the
        // wait fails.
        let p = progress(&table, &awaited, 5, start, window, s(1500));
        assert_eq!(p[1], (ip(3), Progress::Gone(Duration::from_millis(1495))));
        assert_eq!(verdict(&p), Some(false));
        // Or it sees a later version: done.
        table.record(ip(3), &r, 6, s(400));
        let p = progress(&table, &awaited, 5, start, window, s(410));
        assert_eq!(verdict(&p), Some(true));
        // A version served before the wait began counts as seen at once.
        let p = progress(&table, &[ip(2)], 4, s(1000), window, s(1000));
        assert_eq!(p[0].1, Progress::Seen(Duration::ZERO));
        // Nothing awaited: trivially done (the caller refuses that case).
        assert_eq!(verdict(&[]), Some(true));
    }
}
