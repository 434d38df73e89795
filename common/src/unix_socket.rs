//! Creating a daemon's listening Unix socket file, and removing it at stop.
//!
//! Both programs serve on a socket file at a configured path (hapgent's
//! control socket, hapgent-lb's API socket), and both need the same
//! promises from it:
//!
//! - **Atomic creation**: the socket is bound under a temporary name in the
//!   same directory, given its mode and group, then renamed over the path,
//!   so nobody ever connects to a socket with the wrong permissions.
//! - **One instance**: if a process answers on the path, this one refuses
//!   to start instead of silently taking the path over. A socket file
//!   nobody answers on is stale (its process died) and is replaced.
//! - **Never destroy what is not a socket**: a regular file, directory or
//!   anything else at the path is an error, not something to remove.
//! - **Remove only what is ours**: at stop the file is removed only if it
//!   is still the inode this process created; a newer instance's socket at
//!   the same path stays.
//! - **Re-create our own**: a process that moves or re-creates its socket
//!   while serving (hapgent's reload) passes the socket it has; that one is
//!   replaced without asking whether it answers (it is this process).
//!
//! Each step that looks at the path and changes it (check, replace;
//! compare, remove) runs under an exclusive `flock` of the directory, so
//! two instances starting at once cannot both decide the path is free; and
//! the path is looked at again just before the rename, so that what a
//! program not taking the lock put there meanwhile is not replaced either.
//!
//! The errors carry what went wrong; each program words them with its own
//! setting names (hapgent's `control_socket`, hapgent-lb's `listen_unix`).
//!
//! This module owns the socket file; accepting, authorizing and serving are
//! the callers' business. std and rustix only: no dependency the agent lacks.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the "does another instance answer?" probe waits for a place
/// in the queue of a socket whose backlog is full (a live process that
/// does not accept: stopped, or wedged); then that counts as answering. A
/// stale socket refuses at once, so this bounds only that case. Long, so
/// that a process descheduled for a while on a loaded host is not taken
/// for a wedged one.
const PROBE_DEADLINE: Duration = Duration::from_secs(10);

/// Why the socket could not be created. Each says what to do.
#[derive(Debug)]
pub enum BindError {
    /// The directory is not a directory (`None`), or missing or unusable.
    Directory(PathBuf, Option<io::Error>),
    /// The path names no file (`/`, `..`).
    NoFileName,
    /// Something that is not a socket is at the path.
    NotASocket(&'static str),
    /// Another process answers on the socket (or holds it with a full
    /// backlog).
    Answering,
    /// The system refused a step (bind, chmod, chown, rename, lock).
    Io(&'static str, io::Error),
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::Directory(dir, None) => write!(f, "{} is not a directory", dir.display()),
            BindError::Directory(dir, Some(e)) => {
                write!(f, "directory {} is unusable: {e}; create it", dir.display())
            }
            BindError::NoFileName => f.write_str("the path names no file"),
            BindError::NotASocket(kind) => write!(
                f,
                "a {kind} is in the way, not a socket; it is left alone: move it, or choose another path"
            ),
            BindError::Answering => f.write_str(
                "another instance is answering on this socket; stop it first, or give this one another path",
            ),
            BindError::Io(what, e) => {
                let hint = if e.kind() == ErrorKind::PermissionDenied {
                    " (the service's user needs write access to the directory, and membership of the socket's group)"
                } else {
                    ""
                };
                write!(f, "{what}: {e}{hint}")
            }
        }
    }
}

/// What is at the socket path, as far as the decision goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Nothing,
    /// The socket this process created and still serves (re-created).
    Own,
    /// A socket, with whether a process answered on it.
    Socket {
        answers: bool,
    },
    /// Anything else: its kind, for the message.
    Other(&'static str),
}

/// What to do about what is at the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Create the socket (nothing there, or a stale socket to replace).
    Create,
    /// Refuse: another instance answers.
    RefuseAnswering,
    /// Refuse: not a socket.
    RefuseNotASocket(&'static str),
}

/// Decides from what is at the path. Pure: the table in the tests is the
/// whole rule.
pub fn plan(found: Found) -> Plan {
    match found {
        Found::Nothing | Found::Own | Found::Socket { answers: false } => Plan::Create,
        Found::Socket { answers: true } => Plan::RefuseAnswering,
        Found::Other(kind) => Plan::RefuseNotASocket(kind),
    }
}

/// The socket file this process created: removed at stop only if the path
/// still names this inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `meta` is this socket file (same device and inode).
    fn is(&self, meta: &fs::Metadata) -> bool {
        (meta.dev(), meta.ino()) == (self.dev, self.ino)
    }

    /// Removes the socket file if it is still ours; another file at the
    /// path (a newer instance's socket) is left alone.
    pub fn remove(&self) -> io::Result<Removal> {
        let _lock = lock_dir(&dir_of(&self.path)).ok();
        match fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Removal::Gone),
            Err(e) => Err(e),
            Ok(m) if !self.is(&m) => Ok(Removal::NotOurs),
            Ok(_) => match fs::remove_file(&self.path) {
                Ok(()) => Ok(Removal::Removed),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(Removal::Gone),
                Err(e) => Err(e),
            },
        }
    }
}

/// What [`SocketFile::remove`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Nothing was at the path any more.
    Gone,
    /// Another file is at the path now; left in place.
    NotOurs,
}

/// Creates the listening socket at `path` with `mode` and, if given, group
/// `group` (the caller must be in it, or root), following the rules in the
/// module header.
pub fn bind(
    path: &Path,
    mode: u32,
    group: Option<u32>,
) -> Result<(UnixListener, SocketFile), BindError> {
    bind_with_own(path, mode, group, None)
}

/// [`bind`] for a process that already serves a socket, `own`: if `own` is
/// what is at `path`, it is replaced (its listener keeps its connections;
/// the caller closes it once the new one serves).
pub fn bind_with_own(
    path: &Path,
    mode: u32,
    group: Option<u32>,
    own: Option<&SocketFile>,
) -> Result<(UnixListener, SocketFile), BindError> {
    let dir = dir_of(path);
    match fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(BindError::Directory(dir, None)),
        Err(e) => return Err(BindError::Directory(dir, Some(e))),
    }
    let name = path.file_name().ok_or(BindError::NoFileName)?;
    // Held until the socket is in place: another instance starting now
    // waits, then finds this one answering.
    let _lock = lock_dir(&dir).map_err(|e| BindError::Io("locking the directory", e))?;
    let own = own.filter(|o| o.path == path);
    match plan(look(path, own).map_err(|e| BindError::Io("looking at the path", e))?) {
        Plan::Create => {}
        Plan::RefuseAnswering => return Err(BindError::Answering),
        Plan::RefuseNotASocket(kind) => return Err(BindError::NotASocket(kind)),
    }
    let tmp =
        dir.join(crate::atomic::temp_name(Path::new(name)).map_err(|_| BindError::NoFileName)?);
    let _ = fs::remove_file(&tmp);
    let setup = || -> Result<(UnixListener, SocketFile), BindError> {
        let listener = UnixListener::bind(&tmp).map_err(|e| BindError::Io("bind", e))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
            .map_err(|e| BindError::Io("chmod", e))?;
        if let Some(gid) = group {
            std::os::unix::fs::chown(&tmp, None, Some(gid))
                .map_err(|e| BindError::Io("chgrp", e))?;
        }
        let meta = fs::symlink_metadata(&tmp).map_err(|e| BindError::Io("stat", e))?;
        // What a program not taking the lock put there meanwhile is not
        // replaced either.
        let now = fs::symlink_metadata(path);
        if let Some(kind) = now.as_ref().ok().and_then(|m| other_kind(m.file_type())) {
            return Err(BindError::NotASocket(kind));
        }
        fs::rename(&tmp, path).map_err(|e| BindError::Io("rename into place", e))?;
        let file = SocketFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        };
        Ok((listener, file))
    };
    setup().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// The directory a socket path is in (`.` for a bare name).
fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An exclusive advisory lock on the directory, released when dropped.
fn lock_dir(dir: &Path) -> io::Result<File> {
    let f = File::open(dir)?;
    f.lock()?;
    Ok(f)
}

/// What is at `path` now; a socket other than `own` is probed with a
/// connection.
fn look(path: &Path, own: Option<&SocketFile>) -> io::Result<Found> {
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(e),
        Ok(m) => m,
    };
    if let Some(kind) = other_kind(meta.file_type()) {
        return Ok(Found::Other(kind));
    }
    if own.is_some_and(|o| o.is(&meta)) {
        return Ok(Found::Own);
    }
    Ok(Found::Socket {
        answers: answers(path)?,
    })
}

/// What a file that is not a socket is, for messages; `None` for a socket.
fn other_kind(t: fs::FileType) -> Option<&'static str> {
    let kind = if t.is_socket() {
        return None;
    } else if t.is_file() {
        "regular file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symbolic link"
    } else if t.is_fifo() {
        "FIFO"
    } else {
        "device"
    };
    Some(kind)
}

/// Whether a process listens on the socket at `path`: a connection, made
/// by the calling thread and waiting at most `PROBE_DEADLINE` for a place
/// in a full backlog.
fn answers(path: &Path) -> io::Result<bool> {
    answered(connect_within(path, PROBE_DEADLINE))
}

/// What a connection attempt says about the socket. Pure: the table in
/// the tests is the whole rule.
fn answered(connect: io::Result<()>) -> io::Result<bool> {
    match connect {
        Ok(()) => Ok(true),
        Err(e) => match e.kind() {
            // Nobody listens (stale), or removed since it was looked at.
            ErrorKind::ConnectionRefused | ErrorKind::NotFound => Ok(false),
            // Queued for the whole deadline: a live process holds it.
            ErrorKind::WouldBlock => Ok(true),
            _ => Err(e),
        },
    }
}

/// Connects to the socket at `path`, waiting at most `deadline` while its
/// backlog is full (SO_SNDTIMEO bounds a Unix stream connect; the error is
/// then `WouldBlock`). std's `UnixStream::connect` would wait for ever.
fn connect_within(path: &Path, deadline: Duration) -> io::Result<()> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType, sockopt};
    let addr = SocketAddrUnix::new(path).map_err(|_| {
        io::Error::new(
            ErrorKind::InvalidInput,
            "the path is too long for a Unix socket",
        )
    })?;
    let end = std::time::Instant::now() + deadline;
    loop {
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        // At least a microsecond: zero would mean no deadline.
        let left = end
            .saturating_duration_since(std::time::Instant::now())
            .max(Duration::from_micros(1));
        sockopt::set_socket_timeout(&socket, sockopt::Timeout::Send, Some(left))?;
        let e = match rustix::net::connect(&socket, &addr) {
            Ok(()) => return Ok(()),
            Err(e) => io::Error::from(e),
        };
        if e.kind() != ErrorKind::Interrupted {
            return Err(e);
        }
        // A signal cut the wait short (a deadline makes it EINTR rather
        // than a restart): wait out the rest, on a fresh socket.
        if std::time::Instant::now() >= end {
            return Err(ErrorKind::WouldBlock.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn what_a_connection_attempt_says() {
        let err = |k: ErrorKind| Err(io::Error::from(k));
        for (connect, want) in [
            (Ok(()), Some(true)),
            (err(ErrorKind::ConnectionRefused), Some(false)),
            (err(ErrorKind::NotFound), Some(false)),
            (err(ErrorKind::WouldBlock), Some(true)),
            (err(ErrorKind::PermissionDenied), None),
        ] {
            let what = format!("{connect:?}");
            assert_eq!(answered(connect).ok(), want, "{what}");
        }
    }

    #[test]
    fn a_full_backlog_is_waited_for_then_counts_as_answering() {
        let dir = temp_dir("full");
        let path = dir.join("busy.sock");
        let listener = UnixListener::bind(&path).unwrap();
        // Listening again sets the backlog: with 0, one queued connection
        // fills the queue.
        rustix::net::listen(&listener, 0).unwrap();
        let _queued = UnixStream::connect(&path).unwrap();
        let e = connect_within(&path, Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
        assert!(answered(Err(e)).unwrap());
        drop(listener);
        assert!(!answers(&path).unwrap(), "stale once nobody listens");
        let long = dir.join("x".repeat(200));
        let e = connect_within(&long, Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plans() {
        for (found, want) in [
            (Found::Nothing, Plan::Create),
            (Found::Own, Plan::Create),
            (Found::Socket { answers: false }, Plan::Create),
            (Found::Socket { answers: true }, Plan::RefuseAnswering),
            (
                Found::Other("regular file"),
                Plan::RefuseNotASocket("regular file"),
            ),
        ] {
            assert_eq!(plan(found), want, "{found:?}");
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hapgent-unix-socket-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn one_instance_stale_replaced_others_left_alone() {
        let dir = temp_dir("rules");
        let path = dir.join("api.sock");
        let (first, file) = bind(&path, 0o660, None).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        // A second instance is refused while the first answers.
        assert!(matches!(
            bind(&path, 0o660, None),
            Err(BindError::Answering)
        ));
        // The first's process is gone (listener closed): the file is stale
        // and replaced; the first's stop then leaves the new one alone.
        drop(first);
        let (_second, second_file) = bind(&path, 0o660, None).unwrap();
        assert_eq!(file.remove().unwrap(), Removal::NotOurs);
        assert!(path.exists());
        assert_eq!(second_file.remove().unwrap(), Removal::Removed);
        assert!(!path.exists());
        assert_eq!(second_file.remove().unwrap(), Removal::Gone);
        // Not a socket: refused, left as it was.
        fs::write(&path, "keep me").unwrap();
        let err = bind(&path, 0o660, None).unwrap_err();
        assert!(
            err.to_string().starts_with("a regular file is in the way"),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "keep me");
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert!(matches!(
            bind(&dir.join("missing/api.sock"), 0o660, None),
            Err(BindError::Directory(_, Some(_)))
        ));
        let err = bind(&path.join("api.sock"), 0o660, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} is not a directory", path.display())
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn own_socket_is_recreated_while_serving_and_others_are_not() {
        let dir = temp_dir("own");
        let path = dir.join("control.sock");
        let (old, own) = bind(&path, 0o660, None).unwrap();
        // Our own socket answers (we serve it) yet is replaced: a new
        // inode, and the old listener no longer gets new connections.
        let (new, file) = bind_with_own(&path, 0o600, None, Some(&own)).unwrap();
        assert_ne!(file, own);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _client = UnixStream::connect(&path).unwrap();
        new.set_nonblocking(true).unwrap();
        old.set_nonblocking(true).unwrap();
        assert!(new.accept().is_ok());
        assert!(old.accept().is_err());
        // The old one, no longer at the path, is no licence to replace
        // the new one, which answers; nor is a socket of ours elsewhere.
        assert!(matches!(
            bind_with_own(&path, 0o660, None, Some(&own)),
            Err(BindError::Answering)
        ));
        let (_elsewhere, other) = bind(&dir.join("other.sock"), 0o660, None).unwrap();
        assert!(matches!(
            bind_with_own(&path, 0o660, None, Some(&other)),
            Err(BindError::Answering)
        ));
        assert_eq!(own.remove().unwrap(), Removal::NotOurs);
        assert_eq!(file.remove().unwrap(), Removal::Removed);
        fs::remove_dir_all(&dir).unwrap();
    }
}
