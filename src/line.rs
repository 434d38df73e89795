//! A bounded line of connections waiting on their client (for an
//! `agent-send` payload, for an HTTP request head). Joining never fails:
//! when the line is full, the place held longest is cut, so clients that
//! connect and never send can only push each other out, never keep a newer
//! connection waiting outside. A client that sends what it has at once (as
//! HAProxy and Prometheus do) leaves the line long before it reaches the
//! front.
//!
//! This module only keeps the order and the count; what a cut place means
//! (answer now, close) is its holder's business.

use smol::channel::{self, Receiver, Sender};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

/// Places in line, oldest first.
pub struct Line {
    cap: Cell<usize>,
    /// One sender per place, oldest first: dropping it cuts that place.
    /// A place that left stays here (closed) until it reaches the front or
    /// the queue is compacted, so leaving costs nothing.
    places: RefCell<VecDeque<Sender<()>>>,
    /// Places held and not cut.
    held: Cell<usize>,
}

/// A place in a `Line`, held until dropped.
pub struct Place {
    line: Rc<Line>,
    cut: Receiver<()>,
}

impl Line {
    /// A line of at most `cap` places (at least one).
    pub fn new(cap: usize) -> Rc<Line> {
        Rc::new(Line {
            cap: Cell::new(cap.max(1)),
            places: RefCell::new(VecDeque::new()),
            held: Cell::new(0),
        })
    }

    /// Changes the bound; places beyond it are cut at the next `join`.
    pub fn set_cap(&self, cap: usize) {
        self.cap.set(cap.max(1));
    }

    /// Places held and not cut.
    pub fn held(&self) -> usize {
        self.held.get()
    }

    /// Takes the last place, first cutting the oldest places while the line
    /// is full; returns the place and how many places were cut for it.
    pub fn join(self: &Rc<Self>) -> (Place, usize) {
        let mut places = self.places.borrow_mut();
        let mut cut = 0;
        while self.held.get() >= self.cap.get() {
            let Some(first) = places.pop_front() else {
                break;
            };
            // Dropping the sender closes the channel: that place's `cut`
            // completes. A closed one had left already.
            if !first.is_closed() {
                self.held.set(self.held.get() - 1);
                cut += 1;
            }
        }
        while places.front().is_some_and(Sender::is_closed) {
            places.pop_front();
        }
        // Many places left behind one that still waits: drop them all, so
        // the queue stays within a small multiple of the cap.
        if places.len() > 2 * self.cap.get() + 64 {
            places.retain(|s| !s.is_closed());
        }
        let (tx, rx) = channel::bounded(1);
        places.push_back(tx);
        self.held.set(self.held.get() + 1);
        let place = Place {
            line: Rc::clone(self),
            cut: rx,
        };
        (place, cut)
    }
}

impl Place {
    /// Completes once this place is cut (never, if it is not).
    pub async fn cut(&self) {
        let _ = self.cut.recv().await;
    }

    /// Whether this place was cut.
    pub fn is_cut(&self) -> bool {
        self.cut.is_closed()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        // A cut place was uncounted when it was cut.
        if !self.is_cut() {
            self.line.held.set(self.line.held.get() - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_place_is_cut_when_full() {
        let line = Line::new(2);
        let (a, cut) = line.join();
        assert_eq!(cut, 0);
        let (b, _) = line.join();
        let (c, cut) = line.join();
        assert_eq!(cut, 1);
        assert!(a.is_cut() && !b.is_cut() && !c.is_cut());
        assert_eq!(line.held(), 2);
        // The cut place's wait completes at once.
        smol::block_on(a.cut());
        drop(a);
        assert_eq!(line.held(), 2);
        // A place that left makes room: nobody is cut.
        drop(b);
        let (d, cut) = line.join();
        assert_eq!((cut, line.held()), (0, 2));
        // A smaller cap cuts the excess, oldest first, at the next join.
        line.set_cap(1);
        let (e, cut) = line.join();
        assert_eq!(cut, 2);
        assert!(c.is_cut() && d.is_cut() && !e.is_cut());
        assert_eq!(line.held(), 1);
        drop(e);
        assert_eq!(line.held(), 0);
    }

    #[test]
    fn places_that_left_do_not_pile_up() {
        let line = Line::new(4);
        let (long, _) = line.join();
        for _ in 0..10_000 {
            let (p, cut) = line.join();
            assert_eq!(cut, 0);
            drop(p);
        }
        assert!(line.places.borrow().len() <= 2 * 4 + 64 + 1);
        assert!(!long.is_cut());
        assert_eq!(line.held(), 1);
    }
}
