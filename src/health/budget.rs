//! The connection budget: a service's `maxconn_total` split across the
//! load balancers probing it.
//!
//! HAProxy applies an agent's `maxconn:N` per load balancer, so a service
//! that can take N connections in all tells each of L balancers
//! `ceil(N / L)` (rounded up: the sum may pass N by at most L - 1, while
//! rounding down could starve a balancer of its last connection). L is the
//! number of source addresses probing the service within the seen window
//! (`probers::Table`); 0 or 1 gives N. Several HAProxy processes sharing
//! one source address count once: give each its own `source` address.
//! When a balancer joins or leaves, the others keep the old share until
//! their next probe carries the new one, one probe interval at most (and
//! a silent balancer counts until its patience runs out).
//!
//! A fixed `maxconn` in the state wins over `maxconn_total`: the operator
//! said so last. Pure; the caller logs [`Maxconn::StateWins`] once.

/// The maxconn a reply carries, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Maxconn {
    /// Neither the state nor `maxconn_total` says anything.
    None,
    /// The state's, and no `maxconn_total`.
    State(u16),
    /// The state's, over a configured `maxconn_total`.
    StateWins { state: u16, total: u32 },
    /// `total` split across `lbs` load balancers (0 counts as 1).
    Split { total: u32, lbs: usize, each: u16 },
}

/// The maxconn for a reply: `total` is the service's `maxconn_total`,
/// `state` the state's `maxconn`, `lbs` the load balancers probing now.
pub fn maxconn(total: Option<u32>, state: Option<u16>, lbs: usize) -> Maxconn {
    match (total, state) {
        (None, None) => Maxconn::None,
        (None, Some(s)) => Maxconn::State(s),
        (Some(total), Some(state)) => Maxconn::StateWins { state, total },
        (Some(total), None) => {
            let share = u64::from(total).div_ceil(lbs.max(1) as u64);
            Maxconn::Split {
                total,
                lbs,
                // total ≤ 65535 (validated), so a share always fits.
                each: u16::try_from(share).unwrap_or(u16::MAX),
            }
        }
    }
}

impl Maxconn {
    /// What the reply says.
    pub fn value(self) -> Option<u16> {
        match self {
            Maxconn::None => None,
            Maxconn::State(s) | Maxconn::StateWins { state: s, .. } => Some(s),
            Maxconn::Split { each, .. } => Some(each),
        }
    }

    /// For `ctl status`; `None` when there is nothing to explain.
    pub fn describe(self) -> Option<String> {
        match self {
            Maxconn::None | Maxconn::State(_) => None,
            Maxconn::StateWins { state, total } => Some(format!(
                "maxconn {state} from the state (maxconn_total {total} is ignored while the state sets one)"
            )),
            Maxconn::Split { total, lbs, each } if lbs > 1 => Some(format!(
                "maxconn {each}: maxconn_total {total} split across {lbs} load balancers"
            )),
            Maxconn::Split { total, .. } => Some(format!(
                "maxconn {total}: maxconn_total {total}, at most one load balancer probing"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_table() {
        // (maxconn_total, state maxconn, load balancers, reply's maxconn)
        type Case = (Option<u32>, Option<u16>, usize, Option<u16>);
        let cases: &[Case] = &[
            (None, None, 3, None),
            (None, Some(300), 3, Some(300)),
            (Some(100), None, 0, Some(100)),
            (Some(100), None, 1, Some(100)),
            (Some(100), None, 2, Some(50)),
            (Some(100), None, 3, Some(34)),
            (Some(100), None, 7, Some(15)),
            (Some(1), None, 4, Some(1)),
            (Some(65535), None, 2, Some(32768)),
            (Some(65535), None, 1, Some(65535)),
            (Some(100), None, 1000, Some(1)),
            // The state's maxconn wins, 0 (unlimited) included.
            (Some(100), Some(300), 2, Some(300)),
            (Some(100), Some(0), 2, Some(0)),
        ];
        for (total, state, lbs, want) in cases {
            assert_eq!(
                maxconn(*total, *state, *lbs).value(),
                *want,
                "{total:?} {state:?} {lbs}"
            );
        }
    }

    #[test]
    fn explanations() {
        assert_eq!(maxconn(None, Some(5), 2).describe(), None);
        assert_eq!(
            maxconn(Some(100), None, 2).describe().unwrap(),
            "maxconn 50: maxconn_total 100 split across 2 load balancers"
        );
        assert_eq!(
            maxconn(Some(100), None, 0).describe().unwrap(),
            "maxconn 100: maxconn_total 100, at most one load balancer probing"
        );
        assert_eq!(
            maxconn(Some(100), Some(300), 2).describe().unwrap(),
            "maxconn 300 from the state (maxconn_total 100 is ignored while the state sets one)"
        );
    }
}
