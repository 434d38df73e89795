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
//! The table is bounded per service: each service remembers at most `cap`
//! probers, so the load balancers of one service never push out those of
//! another; probes naming services that are not configured share one small
//! budget of their own (`unknown::MAX_PROBERS`), so a prober sending random
//! names cannot push out real load balancers. Past a bound, the prober of
//! that group unseen for longest is evicted. Every operation a probe
//! triggers is O(1) and allocates nothing for a known prober (the reply is
//! the agent's shared cached line): each group has its own index and a list
//! in recency order threaded through one slab, so the longest unseen is
//! its tail, and growing an index rehashes one group's worth at most.
//!
//! Listings (`ctl probers`, `ctl status`, `/metrics`) never hold the probe
//! thread for long: `snapshot` copies the table a chunk at a time, letting
//! probes in between, and sorting and rendering happen on a thread of their
//! own (`off_probe_thread`). Times are passed in, so everything else here
//! is pure and tested without sockets or clocks.

use crate::unknown;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::ops::Deref;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Slots copied per turn of the executor by `snapshot`: small enough that a
/// probe waiting behind a chunk waits well under a millisecond.
const CHUNK: usize = 1024;

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

/// A prober: source address and service.
pub type Key = (IpAddr, u32);

/// No slot: the end of a list.
const NIL: u32 = u32::MAX;

/// The group every unknown service name shares.
const UNKNOWN_GROUP: u32 = u32::MAX;

/// The group whose bound `service`'s probers count against.
fn group(service: u32) -> u32 {
    if unknown::Unknown::is(service) {
        UNKNOWN_GROUP
    } else {
        service
    }
}

/// A prober in the slab, linked into its group's recency list.
struct Slot {
    key: Key,
    prober: Prober,
    /// The neighbour seen more recently, and the one seen less recently.
    newer: u32,
    older: u32,
}

fn at(slots: &[Option<Slot>], i: u32) -> &Slot {
    slots[i as usize]
        .as_ref()
        .expect("the indexes and the lists point at occupied slots only")
}

fn at_mut(slots: &mut [Option<Slot>], i: u32) -> &mut Slot {
    slots[i as usize]
        .as_mut()
        .expect("the indexes and the lists point at occupied slots only")
}

/// One group's probers: where each is, and the ends of their list in
/// recency order. Each group has its index of its own, so that growing one
/// rehashes at most a group's worth (`max_probers`), however many services
/// there are.
struct Group {
    index: HashMap<Key, u32>,
    newest: u32,
    oldest: u32,
}

impl Default for Group {
    fn default() -> Group {
        Group {
            index: HashMap::new(),
            newest: NIL,
            oldest: NIL,
        }
    }
}

impl Group {
    /// Takes slot `i` out of the list.
    fn unlink(&mut self, slots: &mut [Option<Slot>], i: u32) {
        let (newer, older) = {
            let s = at(slots, i);
            (s.newer, s.older)
        };
        match newer {
            NIL => self.newest = older,
            n => at_mut(slots, n).older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => at_mut(slots, o).newer = newer,
        }
    }

    /// Puts slot `i` at the front of the list: seen most recently.
    fn push_newest(&mut self, slots: &mut [Option<Slot>], i: u32) {
        let previous = self.newest;
        {
            let s = at_mut(slots, i);
            s.newer = NIL;
            s.older = previous;
        }
        match previous {
            NIL => self.oldest = i,
            p => at_mut(slots, p).newer = i,
        }
        self.newest = i;
    }
}

/// The probers seen, bounded per service.
pub struct Table {
    /// Probers remembered per service.
    cap: usize,
    /// Where the probers live; `None` for a free slot (listed in `free`).
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    groups: HashMap<u32, Group>,
    /// Probers forgotten to stay within a bound, since the start.
    evicted: u64,
}

impl Table {
    pub fn new(cap: usize) -> Table {
        Table {
            cap: cap.max(1),
            slots: Vec::new(),
            free: Vec::new(),
            groups: HashMap::new(),
            evicted: 0,
        }
    }

    /// Changes the bound per service; a group over it loses its extra
    /// probers at its next new one.
    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap.max(1);
    }

    /// The bound of `group`.
    fn cap_of(&self, group: u32) -> usize {
        if group == UNKNOWN_GROUP {
            self.cap.min(unknown::MAX_PROBERS)
        } else {
            self.cap
        }
    }

    fn at(&self, i: u32) -> &Slot {
        at(&self.slots, i)
    }

    /// Forgets the prober in slot `i`.
    fn remove(&mut self, i: u32) {
        let key = self.at(i).key;
        let g = group(key.1);
        if let Some(grp) = self.groups.get_mut(&g) {
            grp.unlink(&mut self.slots, i);
            grp.index.remove(&key);
            if grp.index.is_empty() {
                self.groups.remove(&g);
            }
        }
        self.slots[i as usize] = None;
        self.free.push(i);
    }

    /// Records that `key` was served `reply`, carrying `version`, at `now`.
    pub fn record(&mut self, key: Key, reply: &Rc<[u8]>, version: u64, now: Instant) {
        let g = group(key.1);
        if let Some(grp) = self.groups.get_mut(&g)
            && let Some(&i) = grp.index.get(&key)
        {
            let slot = at_mut(&mut self.slots, i);
            let p = &mut slot.prober;
            p.last = now;
            p.probes += 1;
            if p.version != version {
                p.version = version;
                p.since = now;
            }
            if !Rc::ptr_eq(&p.reply, reply) {
                p.reply = Rc::clone(reply);
            }
            if slot.newer != NIL {
                grp.unlink(&mut self.slots, i);
                grp.push_newest(&mut self.slots, i);
            }
            return;
        }
        let cap = self.cap_of(g);
        while let Some(oldest) = self
            .groups
            .get(&g)
            .filter(|grp| grp.index.len() >= cap)
            .map(|grp| grp.oldest)
        {
            self.remove(oldest);
            self.evicted += 1;
        }
        let slot = Slot {
            key,
            prober: Prober {
                first: now,
                last: now,
                probes: 1,
                reply: Rc::clone(reply),
                version,
                since: now,
            },
            newer: NIL,
            older: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        let grp = self.groups.entry(g).or_default();
        grp.index.insert(key, i);
        grp.push_newest(&mut self.slots, i);
    }

    /// Forgets the probers of services for which `keep` is false.
    pub fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        let doomed: Vec<u32> = self
            .groups
            .values()
            .flat_map(|grp| grp.index.iter())
            .filter(|((_, service), _)| !keep(*service))
            .map(|(_, i)| *i)
            .collect();
        for i in doomed {
            self.remove(i);
        }
    }

    /// The probers of `service`'s group, most recently seen first.
    fn newest_first(&self, service: u32) -> impl Iterator<Item = &Slot> {
        let mut i = self.groups.get(&group(service)).map_or(NIL, |g| g.newest);
        std::iter::from_fn(move || {
            let slot = (i != NIL).then(|| self.at(i))?;
            i = slot.older;
            Some(slot)
        })
        .filter(move |s| s.key.1 == service)
    }

    /// The probers of `service` probing now (see `Prober::is_probing`).
    /// Only the part of its list seen within `window` is read: the list is
    /// in the order of the records, and nobody silent for longer counts.
    pub fn recent(&self, service: u32, window: Duration, now: Instant) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .newest_first(service)
            .take_while(|s| now.saturating_duration_since(s.prober.last) <= window + ORDER_SLACK)
            .filter(|s| s.prober.is_probing(window, now))
            .map(|s| s.key)
            .collect();
        keys.sort();
        keys
    }

    /// How many load balancers probe `service` now: `recent`'s count,
    /// without a list, for the connection budget (`health::budget`), read
    /// on every probe of a service with `maxconn_total`.
    pub fn probing(&self, service: u32, window: Duration, now: Instant) -> usize {
        self.newest_first(service)
            .take_while(|s| now.saturating_duration_since(s.prober.last) <= window + ORDER_SLACK)
            .filter(|s| s.prober.is_probing(window, now))
            .count()
    }

    /// Why nobody of `service` counts as probing: the (at most `n`) most
    /// recently seen of its probers and their probe count, interval and
    /// silence. For the message of a wait that cannot begin.
    pub fn idle(&self, service: u32, n: usize, now: Instant) -> Vec<Idle> {
        self.newest_first(service)
            .take(n)
            .map(|s| Idle {
                address: s.key.0,
                probes: s.prober.probes,
                interval: s.prober.interval(),
                silent: now.saturating_duration_since(s.prober.last),
            })
            .collect()
    }

    pub fn get(&self, key: &Key) -> Option<&Prober> {
        let i = self.groups.get(&group(key.1))?.index.get(key)?;
        Some(&self.at(*i).prober)
    }

    /// Probers forgotten to stay within a bound, since the start: if it
    /// keeps rising, `max_probers` is too low for the load balancers.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Probers remembered, in all.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Copies the probers in slots `from..from + CHUNK` into `into`; where
    /// to go on from, or `None` once every slot was read.
    fn copy_chunk(
        &self,
        from: usize,
        window: Duration,
        now: Instant,
        into: &mut Copier,
    ) -> Option<usize> {
        let end = (from + CHUNK).min(self.slots.len());
        for slot in self.slots[from.min(end)..end].iter().flatten() {
            into.push(slot, window, now);
        }
        (end < self.slots.len()).then_some(end)
    }
}

/// How far out of time order the records may come (a reply recorded once
/// written, another as it is sent): `recent` reads this much further.
const ORDER_SLACK: Duration = Duration::from_secs(10);

/// A prober that does not count as probing, and the figures that say why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idle {
    pub address: IpAddr,
    pub probes: u64,
    pub interval: Option<Duration>,
    pub silent: Duration,
}

/// One prober as listings show it: plain data, so that a listing can be
/// sorted and rendered away from the probe thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub address: IpAddr,
    pub service: u32,
    pub first_ago: Duration,
    pub last_ago: Duration,
    pub probes: u64,
    pub version: u64,
    /// Its last reply: an index into `Snapshot::replies`.
    pub reply: usize,
    pub probing: bool,
}

/// The prober table, copied for a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub rows: Vec<Row>,
    /// The distinct replies of the rows, as text without the newline.
    pub replies: Vec<String>,
    /// The distinct services of the rows.
    pub services: Vec<u32>,
}

impl Snapshot {
    /// The name of each service the rows hold, by `name`.
    pub fn names(&self, name: impl Fn(u32) -> String) -> HashMap<u32, String> {
        self.services.iter().map(|id| (*id, name(*id))).collect()
    }

    /// The rows most recently seen first, each prober once (a copy taken
    /// in chunks may meet a prober twice if it was evicted and came back
    /// meanwhile: the later sighting is kept).
    pub fn sorted(mut self) -> Snapshot {
        self.rows.sort_by(|a, b| {
            a.last_ago
                .cmp(&b.last_ago)
                .then((a.address, a.service).cmp(&(b.address, b.service)))
        });
        let mut seen = HashSet::with_capacity(self.rows.len());
        self.rows.retain(|r| seen.insert((r.address, r.service)));
        self
    }
}

/// Builds a `Snapshot`, sharing the text of replies the rows have in common.
#[derive(Default)]
struct Copier {
    snapshot: Snapshot,
    /// The replies met so far, in the order of `snapshot.replies`.
    met: Vec<Rc<[u8]>>,
    services: HashSet<u32>,
}

/// Replies looked up among those met before; past this many, a reply not
/// among the latest is simply added again (the cost stays bounded).
const REPLIES_SHARED: usize = 64;

impl Copier {
    fn push(&mut self, slot: &Slot, window: Duration, now: Instant) {
        let p = &slot.prober;
        let found = self
            .met
            .iter()
            .rev()
            .take(REPLIES_SHARED)
            .position(|r| Rc::ptr_eq(r, &p.reply))
            .map(|back| self.met.len() - 1 - back);
        let reply = found.unwrap_or_else(|| {
            self.met.push(Rc::clone(&p.reply));
            let text = String::from_utf8_lossy(&p.reply).trim_end().to_string();
            self.snapshot.replies.push(text);
            self.met.len() - 1
        });
        if self.services.insert(slot.key.1) {
            self.snapshot.services.push(slot.key.1);
        }
        self.snapshot.rows.push(Row {
            address: slot.key.0,
            service: slot.key.1,
            first_ago: now.saturating_duration_since(p.first),
            last_ago: now.saturating_duration_since(p.last),
            probes: p.probes,
            version: p.version,
            reply,
            probing: p.is_probing(window, now),
        });
    }
}

/// Copies the table a chunk at a time, letting the executor answer probes
/// between chunks; `table` borrows it afresh for each chunk. What changes
/// during the copy shows as of when its chunk was read.
pub async fn snapshot<R: Deref<Target = Table>>(
    table: impl Fn() -> R,
    window: Duration,
) -> Snapshot {
    let mut copier = Copier::default();
    let mut at = 0;
    loop {
        // A statement of its own: the borrow ends before the yield.
        let next = table().copy_chunk(at, window, Instant::now(), &mut copier);
        let Some(next) = next else {
            return copier.snapshot;
        };
        at = next;
        smol::future::yield_now().await;
    }
}

/// Runs `work` (sorting and rendering a listing) on a thread of its own,
/// so that no probe waits for it; signals stay with the main thread.
/// Where no thread can be started, it runs here. `None` only if the work
/// itself failed (a bug).
pub async fn off_probe_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    use std::sync::{Arc, Mutex};
    let job = Arc::new(Mutex::new(Some(work)));
    let theirs = Arc::clone(&job);
    let (tx, rx) = smol::channel::bounded(1);
    let spawned = crate::sys::with_signals_blocked(|| {
        std::thread::Builder::new()
            .name("hapgent-listing".into())
            .spawn(move || {
                let work = theirs.lock().ok().and_then(|mut w| w.take());
                if let Some(work) = work {
                    let _ = tx.send_blocking(work());
                }
            })
    });
    if let Ok(Ok(_)) = spawned
        && let Ok(done) = rx.recv().await
    {
        return Some(done);
    }
    let work = job.lock().ok().and_then(|mut w| w.take())?;
    Some(work())
}

/// Where one awaited prober stands in a `--wait-seen`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Served `version` or later, this long after the wait began.
    Seen(Duration),
    /// Still probing, not yet served the version.
    Waiting,
    /// Silent for this long, longer than its patience: it stopped probing.
    Gone(Duration),
    /// No longer in the table: more probers than `max_probers` probe its
    /// service, and it was the one unseen for longest.
    Evicted,
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
                // Evicted and back (every awaited prober had probed twice):
                // it probes afresh.
                Some(p) if p.probes < 2 && now.saturating_duration_since(p.last) <= window => {
                    Progress::Waiting
                }
                Some(p) if !p.is_probing(window, now) => {
                    Progress::Gone(now.saturating_duration_since(p.last))
                }
                Some(_) => Progress::Waiting,
                None => Progress::Evicted,
            };
            (*key, state)
        })
        .collect()
}

/// How a wait for a version stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Every awaited prober has seen it.
    Seen,
    /// It can no longer succeed: every one that has not seen it stopped
    /// probing or was evicted.
    Failed,
    /// Keep waiting.
    Pending,
}

/// How a wait stands, from each awaited prober's progress.
pub fn verdict(progress: &[(Key, Progress)]) -> Wait {
    if progress.iter().all(|(_, p)| matches!(p, Progress::Seen(_))) {
        return Wait::Seen;
    }
    let unseen = progress
        .iter()
        .filter(|(_, p)| !matches!(p, Progress::Seen(_)));
    if unseen
        .clone()
        .all(|(_, p)| matches!(p, Progress::Gone(_) | Progress::Evicted))
    {
        return Wait::Failed;
    }
    Wait::Pending
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

    /// Every prober, most recently seen first.
    fn order(table: &Table) -> Vec<Key> {
        let snapshot = smol::block_on(snapshot(|| table, Duration::ZERO));
        snapshot
            .sorted()
            .rows
            .iter()
            .map(|r| (r.address, r.service))
            .collect()
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
        assert_eq!(table.len(), 2);
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
    fn evicts_the_longest_unseen_of_the_same_service() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let r = reply("x\n");
        let at = |n: u8, service: u32| (IpAddr::from([127, 0, 0, n]), service);
        let mut table = Table::new(3);
        for (n, ms) in [(1, 0), (2, 10), (3, 20)] {
            table.record(at(n, 0), &r, 0, s(ms));
        }
        // 1 probes again: 2 is now the longest unseen.
        table.record(at(1, 0), &r, 0, s(30));
        // Another service's probers do not count against service 0.
        for n in 1..=3 {
            table.record(at(n, 5), &r, 0, s(40));
        }
        assert_eq!(table.len(), 6);
        table.record(at(4, 0), &r, 0, s(50));
        assert_eq!(table.len(), 6);
        assert!(table.get(&at(2, 0)).is_none(), "the longest unseen goes");
        assert_eq!(table.evicted(), 1);
        assert_eq!(
            order(&table).iter().filter(|k| k.1 == 0).count(),
            3,
            "service 0 keeps 3"
        );
        // A known prober never evicts anyone.
        table.record(at(1, 0), &r, 0, s(60));
        assert_eq!(table.len(), 6);
        // Eviction follows recency, one new prober after another: each new
        // one pushes out the oldest of the group, never a fresh one.
        for n in 10..200u8 {
            table.record(at(n, 0), &r, 0, s(100 + u64::from(n)));
            let kept: Vec<u8> = table
                .newest_first(0)
                .map(|s| match s.key.0 {
                    IpAddr::V4(a) => a.octets()[3],
                    IpAddr::V6(_) => 0,
                })
                .collect();
            assert_eq!(kept[0], n);
            assert_eq!(kept.len(), 3);
        }
        // A smaller bound takes effect at the group's next new prober.
        table.set_cap(1);
        table.record(at(9, 0), &r, 0, s(1000));
        assert_eq!(order(&table).iter().filter(|k| k.1 == 0).count(), 1);
        assert_eq!(table.len(), 4);
    }

    #[test]
    fn unknown_names_share_a_small_budget_of_their_own() {
        let t0 = Instant::now();
        let r = reply("\n");
        let mut table = Table::new(1000);
        let lb = |n: u8| (IpAddr::from([127, 0, 0, n]), 0);
        table.record(lb(2), &r, 0, t0);
        table.record(lb(3), &r, 0, t0);
        // One source naming many services that are not configured.
        let odd = IpAddr::from([127, 0, 9, 9]);
        for i in 0..300u32 {
            let id = unknown::Unknown::id_for_tests(i);
            table.record((odd, id), &r, 0, t0 + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(table.len(), 2 + unknown::MAX_PROBERS);
        assert!(table.get(&lb(2)).is_some() && table.get(&lb(3)).is_some());
        // Its bound is also never above max_probers.
        let mut small = Table::new(4);
        for i in 0..10u32 {
            small.record((odd, unknown::Unknown::id_for_tests(i)), &r, 0, t0);
        }
        assert_eq!(small.len(), 4);
    }

    #[test]
    fn slots_are_reused_and_lists_stay_consistent() {
        let t0 = Instant::now();
        let r = reply("x\n");
        let mut table = Table::new(2);
        for round in 0..50u64 {
            for n in 0..5u8 {
                let key = (IpAddr::from([127, 0, 1, n]), u32::from(n % 2));
                table.record(
                    key,
                    &r,
                    round,
                    t0 + Duration::from_millis(round * 10 + u64::from(n)),
                );
            }
        }
        assert_eq!(table.len(), 4);
        assert!(table.slots.len() <= 5, "freed slots are reused");
        for service in 0..2 {
            let list = &table.groups[&service];
            let walked: Vec<Key> = table.newest_first(service).map(|s| s.key).collect();
            assert_eq!(walked.len(), list.index.len());
            let mut back = Vec::new();
            let mut at = list.oldest;
            while at != NIL {
                back.push(table.at(at).key);
                at = table.at(at).newer;
            }
            back.reverse();
            assert_eq!(walked, back);
        }
        table.retain(|_| false);
        assert_eq!((table.len(), table.groups.len()), (0, 0));
    }

    #[test]
    fn listings_let_probes_through_between_chunks() {
        use std::cell::{Cell, RefCell};
        let t0 = Instant::now();
        let r = reply("up 100%\n");
        let table = RefCell::new(Table::new(10 * CHUNK));
        for i in 0..(3 * CHUNK) as u32 {
            let key = (IpAddr::from((0x7f00_0000 + i).to_be_bytes()), 0);
            table.borrow_mut().record(key, &r, 1, t0);
        }
        // A probe arrives while the listing is being copied: it is
        // recorded before the copy ends, and the copy still lists
        // everyone once.
        let probed = Cell::new(false);
        let ex = smol::LocalExecutor::new();
        let listing = ex.spawn(snapshot(|| table.borrow(), Duration::from_secs(30)));
        let probe = ex.spawn(async {
            table
                .borrow_mut()
                .record((IpAddr::from([10, 0, 0, 1]), 0), &r, 1, Instant::now());
            probed.set(true);
        });
        let (snapshot, ()) = smol::block_on(ex.run(async {
            let snapshot = listing.await;
            (snapshot, probe.await)
        }));
        assert!(probed.get());
        let sorted = snapshot.sorted();
        assert!(sorted.rows.len() >= 3 * CHUNK, "{}", sorted.rows.len());
        assert_eq!(sorted.replies, ["up 100%"], "the reply text is shared");
        // The probe came in before the copy reached its slot.
        assert!(
            sorted
                .rows
                .iter()
                .any(|r| r.address == IpAddr::from([10, 0, 0, 1]))
        );
    }

    #[test]
    fn snapshots_sort_and_keep_each_prober_once() {
        let row = |n: u8, last: u64| Row {
            address: IpAddr::from([127, 0, 0, n]),
            service: 0,
            first_ago: Duration::from_millis(last),
            last_ago: Duration::from_millis(last),
            probes: 1,
            version: 0,
            reply: 0,
            probing: false,
        };
        let snapshot = Snapshot {
            rows: vec![row(3, 30), row(2, 10), row(3, 5), row(4, 10)],
            replies: vec![String::new()],
            services: vec![0],
        };
        let rows = snapshot.sorted().rows;
        assert_eq!(rows, [row(3, 5), row(2, 10), row(4, 10)]);
    }

    #[test]
    fn idle_probers_say_why() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let r = reply("x\n");
        let mut table = Table::new(10);
        table.record(ip(2), &r, 0, s(0));
        table.record(ip(3), &r, 0, s(0));
        table.record(ip(3), &r, 0, s(200));
        let idle = table.idle(0, 5, s(5000));
        assert_eq!(
            idle,
            [
                Idle {
                    address: ip(3).0,
                    probes: 2,
                    interval: Some(Duration::from_millis(200)),
                    silent: Duration::from_millis(4800)
                },
                Idle {
                    address: ip(2).0,
                    probes: 1,
                    interval: None,
                    silent: Duration::from_millis(5000)
                },
            ]
        );
        assert_eq!(table.idle(0, 1, s(5000)).len(), 1);
        assert_eq!(table.idle(4, 5, s(5000)), []);
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
        assert_eq!(verdict(&p), Wait::Pending);
        // One sees it 200 ms after the start.
        table.record(ip(2), &r, 5, s(210));
        let p = progress(&table, &awaited, 5, start, window, s(300));
        assert_eq!(p[0], (ip(2), Progress::Seen(Duration::from_millis(200))));
        assert_eq!(verdict(&p), Wait::Pending);
        // The other stops probing: past its patience (here the window) the
        // wait fails.
        let p = progress(&table, &awaited, 5, start, window, s(1500));
        assert_eq!(p[1], (ip(3), Progress::Gone(Duration::from_millis(1495))));
        assert_eq!(verdict(&p), Wait::Failed);
        // Or it sees a later version: done.
        table.record(ip(3), &r, 6, s(400));
        let p = progress(&table, &awaited, 5, start, window, s(410));
        assert_eq!(verdict(&p), Wait::Seen);
        // A version served before the wait began counts as seen at once.
        let p = progress(&table, &[ip(2)], 4, s(1000), window, s(1000));
        assert_eq!(p[0].1, Progress::Seen(Duration::ZERO));
        // Nothing awaited: trivially done (the caller refuses that case).
        assert_eq!(verdict(&[]), Wait::Seen);
    }

    #[test]
    fn an_evicted_prober_is_reported_as_evicted() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let window = Duration::from_secs(30);
        let r = reply("x\n");
        let mut table = Table::new(2);
        for key in [ip(2), ip(3), ip(2), ip(3)] {
            table.record(key, &r, 1, s(0));
        }
        let awaited = table.recent(0, window, s(10));
        assert_eq!(awaited, [ip(2), ip(3)]);
        // A third source pushes out the longest unseen.
        table.record(ip(4), &r, 2, s(20));
        table.record(ip(3), &r, 2, s(30));
        let p = progress(&table, &awaited, 2, s(10), window, s(40));
        assert_eq!(p[0], (ip(2), Progress::Evicted));
        assert_eq!(verdict(&p), Wait::Failed);
        // Back in the table with one probe: probing afresh, not gone.
        table.record(ip(2), &r, 1, s(50));
        let p = progress(&table, &awaited, 2, s(10), window, s(60));
        assert_eq!(p[0], (ip(2), Progress::Waiting));
        assert_eq!(verdict(&p), Wait::Pending);
    }
}
