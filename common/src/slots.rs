//! A budget of connections served at once, for a single-threaded server.
//!
//! A connection takes a [`Slot`] before it is served and gives it back
//! when the slot is dropped, however the connection ends (an error, a
//! cancelled task). Beyond the budget, [`Budget::take`] says no and the
//! caller refuses the connection its own way. One budget per listener
//! keeps clients of one listener from using up another's places.
//!
//! `Cell`-based: both programs serve from one thread (`LocalExecutor`).

use std::cell::Cell;

/// At most `max` connections at once.
#[derive(Debug)]
pub struct Budget {
    open: Cell<u32>,
    max: u32,
}

/// One connection's place in a [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Slot<'a>(&'a Cell<u32>);

impl Budget {
    pub fn new(max: u32) -> Budget {
        Budget {
            open: Cell::new(0),
            max,
        }
    }

    /// A place, or `None` when all `max` are taken.
    pub fn take(&self) -> Option<Slot<'_>> {
        if self.open.get() >= self.max {
            return None;
        }
        self.open.set(self.open.get() + 1);
        Some(Slot(&self.open))
    }

    /// Connections holding a place now.
    pub fn open(&self) -> u32 {
        self.open.get()
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_given_back_when_dropped() {
        let b = Budget::new(2);
        let one = b.take().unwrap();
        let two = b.take().unwrap();
        assert!(b.take().is_none());
        assert_eq!(b.open(), 2);
        drop(one);
        let three = b.take().unwrap();
        assert!(b.take().is_none());
        drop((two, three));
        assert_eq!(b.open(), 0);
        assert!(Budget::new(0).take().is_none());
    }
}
