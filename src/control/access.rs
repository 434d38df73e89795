//! Who may use the control socket: root, hapgent's own user, or members
//! of `control_group`, as the kernel recorded the peer (SO_PEERCRED,
//! SO_PEERGROUPS); and how a peer is named in logs and refusals.

use crate::exit::Error;
use crate::sys::{self, Peer};
use std::fs;

/// Who may use the control socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// hapgent's own user.
    pub uid: u32,
    /// The control group's id, and its name for messages.
    pub gid: u32,
    pub group: String,
}

impl Access {
    /// Resolves `control_group` (unset: hapgent's own group).
    pub fn resolve(group: Option<&str>) -> Result<Access, Error> {
        let (uid, own_gid) = sys::own_ids();
        let Some(name) = group else {
            let group = group_name(own_gid);
            return Ok(Access {
                uid,
                gid: own_gid,
                group,
            });
        };
        match sys::group_id(name) {
            Ok(Some(gid)) => Ok(Access {
                uid,
                gid,
                group: name.to_string(),
            }),
            Ok(None) => Err(Error::Config(format!(
                "control_group: there is no group {name:?} on this host (create it, or leave control_group unset for hapgent's own group)"
            ))),
            Err(e) => Err(Error::Config(format!(
                "control_group: cannot look up group {name:?}: {e}"
            ))),
        }
    }

    /// Whether `peer` may use the socket: the rule both programs share,
    /// tested in `hapgent_common::creds`.
    pub fn allows(&self, peer: &Peer) -> bool {
        hapgent_common::creds::allowed(peer, self.uid, self.gid)
    }
}

fn group_name(gid: u32) -> String {
    // Only for messages: the number is as good when there is no name.
    fs::read_to_string("/etc/group")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id: u32 = f.nth(1)?.parse().ok()?;
                (id == gid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| gid.to_string())
}

/// Names a peer for logs: `uid 1000 (alice)`.
pub fn describe(peer: &Peer) -> String {
    match sys::user_name(peer.uid) {
        Some(name) => format!("uid {} ({name})", peer.uid),
        None => format!("uid {}", peer.uid),
    }
}
