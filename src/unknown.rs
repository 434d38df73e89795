//! Names probers asked about that no service has: numbered so the prober
//! table can hold them beside real services (within a budget of their own,
//! `MAX_PROBERS`), bounded so a prober sending random names cannot grow
//! memory or push out real load balancers, and logged once per prober and name
//! so a misconfigured load balancer cannot flood the log.
//!
//! This module decides; the agent answers such probes (with no news), logs
//! and counts them (see `agent`).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// Unknown names remembered (for logs, probers, metrics); more are counted
/// as one.
const MAX_NAMES: usize = 256;

/// (prober, name) pairs logged one by one; past this, only a count is
/// logged, at powers of two.
const MAX_LOGGED: usize = MAX_NAMES * 4;

/// Probers remembered for all unknown names together (at most
/// `max_probers`): enough to find a misconfigured load balancer, too few to
/// matter if a prober sends random names. The prober table keeps them apart
/// from the probers of configured services.
pub const MAX_PROBERS: usize = 64;

/// Service numbers at and above this are unknown names, not services.
const BASE: u32 = 1 << 31;

/// What to log about a probe naming an unknown service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// The first time this prober asked about this name: say so.
    First,
    /// Past the cap on pairs logged: this many probes so far (a power of
    /// two) named unknown services.
    Count(u64),
    /// Nothing: said already.
    Quiet,
}

/// The unknown names seen, and which were logged.
#[derive(Default)]
pub struct Unknown {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    logged: HashSet<(IpAddr, u32)>,
    overflow: u64,
}

impl Unknown {
    /// Whether service number `id` is an unknown name.
    pub fn is(id: u32) -> bool {
        id >= BASE
    }

    /// `prober` asked about `name`: its number (past the cap, one number
    /// for all others) and what to log.
    pub fn note(&mut self, prober: IpAddr, name: &str) -> (u32, Log) {
        let id = self.id(name);
        let log = if self.logged.len() < MAX_LOGGED {
            if self.logged.insert((prober, id)) {
                Log::First
            } else {
                Log::Quiet
            }
        } else {
            self.overflow += 1;
            if self.overflow.is_power_of_two() {
                Log::Count(self.overflow)
            } else {
                Log::Quiet
            }
        };
        (id, log)
    }

    fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        if self.names.len() >= MAX_NAMES {
            return BASE + MAX_NAMES as u32;
        }
        let id = BASE + self.names.len() as u32;
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        id
    }

    /// The number the `i`th unknown name gets (tests of other modules).
    #[cfg(test)]
    pub fn id_for_tests(i: u32) -> u32 {
        BASE + i
    }

    /// The name unknown number `id` stands for.
    pub fn name(&self, id: u32) -> String {
        self.names
            .get((id - BASE) as usize)
            .map_or_else(|| "(other unknown names)".into(), Clone::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbered_and_logged_once_per_prober() {
        use Log::*;
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut unknown = Unknown::default();
        // (prober, name, number, log)
        let cases = [
            (a, "api", BASE, First),
            (a, "api", BASE, Quiet),
            (b, "api", BASE, First),
            (a, "web", BASE + 1, First),
            (b, "api", BASE, Quiet),
            (a, "web", BASE + 1, Quiet),
        ];
        for (prober, name, id, log) in cases {
            assert_eq!(unknown.note(prober, name), (id, log), "{prober} {name}");
            assert!(Unknown::is(id));
            assert_eq!(unknown.name(id), name);
        }
        assert!(!Unknown::is(0));
        assert!(!Unknown::is(BASE - 1));
    }

    #[test]
    fn names_and_logs_are_bounded() {
        let mut unknown = Unknown::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..MAX_NAMES {
            assert_eq!(unknown.note(a, &format!("s{i}")).0, BASE + i as u32);
        }
        // Past the cap: one number for all others.
        let other = BASE + MAX_NAMES as u32;
        assert_eq!(unknown.note(a, "one more"), (other, Log::First));
        assert_eq!(unknown.note(a, "and another"), (other, Log::Quiet));
        assert_eq!(unknown.name(other), "(other unknown names)");
        assert_eq!(unknown.name(BASE + 7), "s7");
        // Past the cap on pairs logged: counts at powers of two.
        let firsts = MAX_LOGGED - (MAX_NAMES + 1);
        let logs: Vec<Log> = (0..firsts as u32 + 8)
            .map(|i| unknown.note(IpAddr::from(i.to_be_bytes()), "s0").1)
            .filter(|l| *l != Log::Quiet)
            .collect();
        assert!(logs[..firsts].iter().all(|l| *l == Log::First));
        assert_eq!(
            logs[firsts..],
            [Log::Count(1), Log::Count(2), Log::Count(4), Log::Count(8)]
        );
    }
}
