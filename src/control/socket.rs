//! The control socket's file: created atomically by
//! `hapgent_common::unix_socket`'s rules (bound under a temporary name,
//! given mode 0660 and the control group, then renamed into place), with
//! errors worded in hapgent's settings, and removed at stop only while it
//! is still this socket.

use super::access::Access;
use crate::config::{self, Config};
use crate::exit::Error;
use crate::sys;
use crate::{info, warn};
use hapgent_common::unix_socket::{self, BindError, Removal, SocketFile};
use std::io::ErrorKind;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// The socket's mode: its group (`control_group`) may connect.
const MODE: u32 = 0o660;

/// The control socket this agent created: its path, and the file there
/// (device and inode), to tell it from one put there since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub path: PathBuf,
    file: SocketFile,
}

/// The control socket, bound, with who may use it; `None` when disabled.
/// At the default path, a missing directory (hapgent started outside its
/// unit, which creates /run/hapgent) only disables it, with a warning, so an
/// upgrade never stops an agent from serving; a configured path must work.
/// `own` is the socket this agent already has (at a reload), which may be
/// replaced.
pub fn open(
    config: &Config,
    own: Option<&Socket>,
) -> Result<Option<(Socket, UnixListener, Access)>, Error> {
    let path = &config.control_socket;
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let default = path.as_path() == Path::new(config::DEFAULT_CONTROL_SOCKET);
    if default && path.parent().is_some_and(|d| !d.is_dir()) {
        warn!(
            "control socket disabled: {} does not exist (the unit's RuntimeDirectory=hapgent creates it; set control_socket to use another place, or to \"\" to silence this)",
            path.parent()
                .map_or(String::new(), |d| d.display().to_string())
        );
        return Ok(None);
    }
    let access = Access::resolve(config.control_group.as_deref())?;
    let (listener, file) = bind(path, &access, own.map(|s| &s.file))?;
    let socket = Socket {
        path: path.clone(),
        file,
    };
    Ok(Some((socket, listener, access)))
}

/// Creates the control socket at `path` (mode 0660, the control group) by
/// `unix_socket`'s rules; `own`, the socket this agent serves, may be
/// replaced at its own path. Returns the listener and the socket file.
pub fn bind(
    path: &Path,
    access: &Access,
    own: Option<&SocketFile>,
) -> Result<(UnixListener, SocketFile), Error> {
    let own_gid = access.gid == sys::own_ids().1;
    let group = (!own_gid).then_some(access.gid);
    unix_socket::bind_with_own(path, MODE, group, own).map_err(|e| {
        let what = explain(&e, path, access, own_gid);
        Error::Runtime(format!("control socket {}: {what}", path.display()))
    })
}

/// A bind error in hapgent's words: what went wrong, and which setting or
/// step fixes it.
fn explain(e: &BindError, path: &Path, access: &Access, own_gid: bool) -> String {
    match e {
        BindError::Directory(dir, None) => format!("{} is not a directory", dir.display()),
        BindError::Directory(dir, Some(e)) => format!(
            "directory {} is unusable ({e}); create it (the unit's RuntimeDirectory=hapgent does) or set control_socket, empty to disable",
            dir.display()
        ),
        BindError::NoFileName => "names no file; set control_socket to a socket's path".into(),
        BindError::NotASocket(kind) => format!(
            "a {kind} is there, not a socket; hapgent replaces only a stale socket: move it away, or set control_socket to a free path"
        ),
        BindError::Answering => {
            "another hapgent is answering on it; stop it, or give this one another control_socket"
                .into()
        }
        BindError::Io(step, e) => {
            let hint = if e.kind() == ErrorKind::PermissionDenied {
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                format!(
                    " (hapgent's user needs write access to {}{})",
                    dir.display(),
                    if own_gid {
                        String::new()
                    } else {
                        format!(" and membership of group {}", access.group)
                    }
                )
            } else {
                String::new()
            };
            format!("cannot create it ({step}): {e}{hint}")
        }
    }
}

/// Removes the socket file (at stop, or when a reload moved it), if it is
/// still ours: what another process put at the path since is left alone.
pub fn remove(socket: &Socket) {
    let path = &socket.path;
    match socket.file.remove() {
        Ok(Removal::Removed | Removal::Gone) => {}
        Ok(Removal::NotOurs) => info!(
            "the control socket {} is no longer the one hapgent created; leaving what is there",
            path.display()
        ),
        Err(e) => info!("cannot remove the control socket {}: {e}", path.display()),
    }
}
