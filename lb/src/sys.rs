//! The few calls std lacks, from the library shared with hapgent: the
//! peer's credentials on a Unix socket and a group's ID by name.

pub use hapgent_common::creds::{Peer, peer};

/// Our effective user and group IDs.
pub fn ids() -> (u32, u32) {
    hapgent_common::creds::own_ids()
}

/// A group's ID by name; `None` if there is no such group (or the lookup
/// failed).
pub fn group_id(name: &str) -> Option<u32> {
    hapgent_common::creds::group_id(name).ok().flatten()
}
