//! A budget of connections served at once, for a single-threaded server.
//!
//! A connection takes a [`Slot`] before it is served and gives it back
//! when the slot is dropped, however the connection ends (an error, a
//! cancelled task). Beyond the budget, [`Budget::take`] says no and the
//! caller refuses the connection its own way. One budget per listener
//! keeps clients of one listener from using up another's places.
//!
//! `Cell`-based: both programs serve from one thread (`LocalExecutor`). A
//! slot holds its budget's counter (an `Rc`: taking one allocates nothing),
//! so it can move into a `'static` task. The budget may change while
//! serving (a reload): slots already taken stay until dropped.

use std::cell::Cell;
use std::rc::Rc;

/// At most `max` connections at once.
#[derive(Debug)]
pub struct Budget {
    open: Rc<Cell<u32>>,
    max: Cell<u32>,
}

/// One connection's place in a [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Slot(Rc<Cell<u32>>);

impl Budget {
    pub fn new(max: u32) -> Budget {
        Budget {
            open: Rc::new(Cell::new(0)),
            max: Cell::new(max),
        }
    }

    /// A place, or `None` when all `max` are taken.
    pub fn take(&self) -> Option<Slot> {
        if self.open.get() >= self.max.get() {
            return None;
        }
        self.open.set(self.open.get() + 1);
        Some(Slot(Rc::clone(&self.open)))
    }

    /// Connections holding a place now.
    pub fn open(&self) -> u32 {
        self.open.get()
    }

    /// The budget from now on.
    pub fn max(&self) -> u32 {
        self.max.get()
    }

    /// Changes the budget for places taken from now on.
    pub fn set_max(&self, max: u32) {
        self.max.set(max);
    }
}

impl Drop for Slot {
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
        // A smaller budget refuses new places; taken ones stay.
        let one = b.take().unwrap();
        b.set_max(1);
        assert!(b.take().is_none());
        drop(one);
        assert!(b.take().is_some());
    }
}
