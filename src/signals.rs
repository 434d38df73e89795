//! The state signals (SIGUSR1, SIGUSR2, SIGHUP), recorded so that none is
//! lost and the last one delivered always wins.
//!
//! async-signal wakes the executor through a pipe whose capacity is a few
//! hundred signals; past that its handler's write fails and a signal is
//! silently gone, possibly the newest. So hapgent records every delivery
//! itself, in a handler registered before async-signal's: a sequence
//! number and a ring of the last `RING` signal kinds, both atomics. The
//! async-signal stream is then only a doorbell: whenever it rings, the
//! executor reads every delivery it has not handled yet, in delivery order.
//! If more than `RING` arrived in between, the oldest were overwritten:
//! that is counted and logged, and the newest are still applied.
//!
//! Handlers run only on the main thread (every other thread blocks
//! signals, see `sys`), and so does the reader: a handler never runs
//! concurrently with a read, only between two of its steps, which the
//! sequence number makes harmless.
//!
//! This module records and reads; what a signal does is `agent`'s business.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// Deliveries kept; older ones are overwritten by newer ones.
const RING: usize = 256;

/// A state signal, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// SIGUSR1: status UP.
    Up,
    /// SIGUSR2: status DOWN.
    Down,
    /// SIGHUP: reload.
    Reload,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Up => 1,
            Kind::Down => 2,
            Kind::Reload => 3,
        }
    }

    fn from_code(code: u8) -> Option<Kind> {
        match code {
            1 => Some(Kind::Up),
            2 => Some(Kind::Down),
            3 => Some(Kind::Reload),
            _ => None,
        }
    }

    /// The signal's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Up => "SIGUSR1",
            Kind::Down => "SIGUSR2",
            Kind::Reload => "SIGHUP",
        }
    }
}

/// Deliveries so far; the next one gets this number.
static DELIVERED: AtomicU64 = AtomicU64::new(0);
/// The kind of delivery `n` is at `n % RING`.
static KINDS: [AtomicU8; RING] = [const { AtomicU8::new(0) }; RING];

/// The handler's work: one increment and one store.
fn record(kind: Kind) {
    let n = DELIVERED.fetch_add(1, Ordering::SeqCst);
    KINDS[(n % RING as u64) as usize].store(kind.code(), Ordering::SeqCst);
}

fn on_usr1() {
    record(Kind::Up);
}
fn on_usr2() {
    record(Kind::Down);
}
fn on_hup() {
    record(Kind::Reload);
}

/// Starts recording SIGUSR1, SIGUSR2 and SIGHUP. From here on they no
/// longer terminate the process: call it first thing, so that a signal
/// sent while the configuration loads is held until the agent serves.
///
/// Each handler holds the other two pending while it runs, so deliveries
/// are recorded one at a time, in the order the kernel delivers them: of
/// signals pending at the same moment, lowest number first (SIGHUP 1,
/// SIGUSR1 10, SIGUSR2 12).
pub fn install() -> std::io::Result<()> {
    const STATE: [i32; 3] = [libc::SIGUSR1, libc::SIGUSR2, libc::SIGHUP];
    crate::sys::on_signal(libc::SIGUSR1, on_usr1, &STATE)?;
    crate::sys::on_signal(libc::SIGUSR2, on_usr2, &STATE)?;
    crate::sys::on_signal(libc::SIGHUP, on_hup, &STATE)
}

/// Reads deliveries in order, remembering how far it got.
#[derive(Default)]
pub struct Reader {
    next: u64,
}

/// What a read found: the kinds in delivery order, and how many older
/// deliveries were overwritten before they could be read.
#[derive(Debug, PartialEq, Eq)]
pub struct Batch {
    pub kinds: Vec<Kind>,
    pub lost: u64,
}

impl Reader {
    /// Every delivery not read yet.
    pub fn read(&mut self) -> Batch {
        let end = DELIVERED.load(Ordering::SeqCst);
        let batch = take(self.next, end, |n| {
            Kind::from_code(KINDS[(n % RING as u64) as usize].load(Ordering::SeqCst))
        });
        self.next = end;
        batch
    }
}

/// Deliveries `from..end`, reading slot `n` with `slot`; those that the
/// ring no longer holds are counted as lost. Pure, for the tests.
fn take(from: u64, end: u64, slot: impl Fn(u64) -> Option<Kind>) -> Batch {
    let oldest_kept = end.saturating_sub(RING as u64);
    let start = from.max(oldest_kept);
    Batch {
        kinds: (start..end).filter_map(slot).collect(),
        lost: start - from.min(start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(n: u64) -> Option<Kind> {
        Kind::from_code((n % 3 + 1) as u8)
    }

    #[test]
    fn reads_in_order_and_counts_what_was_overwritten() {
        // (from, end, first kind read, count read, lost)
        let r = RING as u64;
        for (from, end, count, lost) in [
            (0, 0, 0, 0),
            (0, 3, 3, 0),
            (5, 5, 0, 0),
            (0, r, r, 0),
            (0, r + 1, r, 1),
            (10, 10 + r + 40, r, 40),
            (1000, 1001, 1, 0),
        ] {
            let batch = take(from, end, kind_of);
            assert_eq!(batch.kinds.len() as u64, count, "{from}..{end}");
            assert_eq!(batch.lost, lost, "{from}..{end}");
            // The last one read is always the last one delivered.
            if end > from {
                assert_eq!(batch.kinds.last().copied(), kind_of(end - 1));
            }
        }
    }

    #[test]
    fn codes_round_trip() {
        for kind in [Kind::Up, Kind::Down, Kind::Reload] {
            assert_eq!(Kind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(Kind::from_code(0), None);
    }
}
