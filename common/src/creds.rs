//! Who is at the other end of a Unix socket, and the names of users and
//! groups: the few calls std lacks that both programs need to authorize a
//! local client (hapgent's control socket, hapgent-lb's API socket).
//!
//! The crate's only module allowed `unsafe`: SO_PEERGROUPS and the user
//! and group databases (getpwuid_r, getgrnam_r) have no safe API in std or
//! rustix. Each call is small and documented.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr;

/// Who is at the other end of a Unix socket, as the kernel saw it when the
/// peer connected: not something the peer can claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (SO_PEERGROUPS).
    pub groups: Vec<u32>,
}

/// The credentials of a connected Unix stream socket's peer.
pub fn peer(socket: &impl AsFd) -> io::Result<Peer> {
    let cred = rustix::net::sockopt::socket_peercred(socket)?;
    let fd = socket.as_fd().as_raw_fd();
    let mut groups = vec![0 as libc::gid_t; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `groups`,
        // which holds that many; on ERANGE it sets `len` to what it needs.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(needed);
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ERANGE) && needed > groups.len() && needed <= 65_536 {
            groups.resize(needed, 0);
            continue;
        }
        // Kernels before 4.13: only the primary group is known.
        groups.clear();
        break;
    }
    Ok(Peer {
        pid: cred.pid.as_raw_nonzero().get(),
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
        groups,
    })
}

/// Whether `peer` may use a daemon's local socket (hapgent's control
/// socket, hapgent-lb's API socket): root, the daemon's own user
/// (`own_uid`), or a member of `group`, as its primary group or one of the
/// supplementary groups the kernel recorded. The socket file's mode lets
/// the group connect; this check holds even if the mode is loosened.
pub fn allowed(peer: &Peer, own_uid: u32, group: u32) -> bool {
    peer.uid == 0 || peer.uid == own_uid || peer.gid == group || peer.groups.contains(&group)
}

/// This process's effective user and group ids.
pub fn own_ids() -> (u32, u32) {
    use rustix::process::{getegid, geteuid};
    (geteuid().as_raw(), getegid().as_raw())
}

/// The id of the group called `name`, from the system's group database;
/// `Ok(None)` if there is no such group.
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "group name contains NUL"))?;
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: `group` and `buf` are ours and outlive the call;
        // getgrnam_r writes only into them and sets `result` to `group` or null.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut group,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!result.is_null()).then_some(group.gr_gid));
    }
}

/// The login name of `uid`, if the user database has one.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: `pw` and `buf` are ours and outlive the call; getpwuid_r
    // writes only into them and sets `result` to `pw` or null. `pw_name`
    // then points into `buf`, NUL-terminated.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pw.pw_name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(pw.pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_who_the_kernel_says() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let me = peer(&a).unwrap();
        let (uid, gid) = own_ids();
        assert_eq!(
            (me.pid, me.uid, me.gid),
            (std::process::id() as i32, uid, gid)
        );
        // This process's supplementary groups, as getgroups(2) lists them.
        let listed = std::fs::read_to_string("/proc/self/status").unwrap();
        let groups: Vec<u32> = listed
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .unwrap()
            .split_whitespace()
            .map(|g| g.parse().unwrap())
            .collect();
        let mut got = me.groups.clone();
        got.sort();
        let mut want = groups;
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn who_may_connect() {
        let p = |uid, gid, groups: &[u32]| Peer {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        };
        // (peer, allowed) for a daemon running as uid 1000, group 50.
        for (peer, want) in [
            (p(0, 0, &[]), true),
            (p(1000, 1000, &[]), true),
            (p(2000, 50, &[]), true),
            (p(2000, 2000, &[7, 50]), true),
            (p(2000, 2000, &[7]), false),
            (p(50, 2000, &[]), false),
        ] {
            assert_eq!(allowed(&peer, 1000, 50), want, "{peer:?}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_id("root").unwrap(), Some(0));
        assert_eq!(group_id("no-such-group-here").unwrap(), None);
        assert!(group_id("a\0b").is_err());
    }
}
