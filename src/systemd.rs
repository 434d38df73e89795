//! systemd integration without libsystemd: socket activation and readiness.
//!
//! Socket activation: with the `systemd` setting, hapgent adopts every
//! listening socket systemd passed (`LISTEN_FDS`, for this process per
//! `LISTEN_PID`; `Accept=no`) instead of binding `ip`/`port`. Readiness:
//! with `NOTIFY_SOCKET` set (`Type=notify`), it sends `READY=1` once it
//! answers, `RELOADING=1`/`READY=1` around a SIGHUP reload and
//! `STOPPING=1` on shutdown. Both protocols are a few lines of text over
//! standard sockets, so a library would cost more than it saves.
//!
//! The unsafe part (turning a descriptor number into a listener) lives in
//! `sys::adopt_listener`.

use crate::exit::Error;
use crate::log::Limit;
use crate::sys;
use std::cell::RefCell;
use std::net::TcpListener;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The first descriptor systemd passes.
const LISTEN_FDS_START: i32 = 3;

/// How many descriptors systemd passed to process `pid`, from the values of
/// `LISTEN_PID` and `LISTEN_FDS`. Pure: every refusal is a sentence.
pub fn passed_fds(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    pid: u32,
) -> Result<i32, String> {
    let (Some(listen_pid), Some(listen_fds)) = (listen_pid, listen_fds) else {
        return Err(
            "socket activation is on (systemd = true) but systemd passed no sockets \
                    (LISTEN_FDS/LISTEN_PID are not set): start hapgent through its .socket unit, \
                    or turn the setting off"
                .into(),
        );
    };
    match listen_pid.parse::<u32>() {
        Ok(p) if p == pid => {}
        _ => {
            return Err(format!(
                "the sockets in LISTEN_FDS are for process {listen_pid:?}, not this one ({pid})"
            ));
        }
    }
    match listen_fds.parse::<i32>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!(
            "LISTEN_FDS={listen_fds:?} is not a number of sockets (1 or more)"
        )),
    }
}

/// Adopts the sockets systemd passed, or says exactly why it cannot.
pub fn adopt() -> Result<Vec<TcpListener>, Error> {
    let var = |k| std::env::var(k).ok();
    let count = passed_fds(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        std::process::id(),
    )
    .map_err(Error::Config)?;
    (LISTEN_FDS_START..LISTEN_FDS_START + count)
        .map(|fd| {
            sys::adopt_listener(fd).map_err(|e| Error::Config(format!("socket activation: {e}")))
        })
        .collect()
}

/// At most one failure to notify is logged per this long.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Sends readiness messages to systemd, when it asked for them.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// Failures are logged the first time, then once a minute with a
    /// count: a gone receiver fails every message.
    failures: RefCell<Limit>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`: a path, or `@name` for an abstract socket.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let addr = match path.to_str().and_then(|p| p.strip_prefix('@')) {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    SocketAddr::from_abstract_name(name.as_bytes())
                }
                None => SocketAddr::from_pathname(&path),
            };
            // Non-blocking: a receiver that stops reading must never stall
            // the thread that answers probes (a message is dropped instead).
            let socket = UnixDatagram::unbound().and_then(|s| s.set_nonblocking(true).map(|()| s));
            match (socket, addr) {
                (Ok(s), Ok(a)) => Some((s, a)),
                (Err(e), _) | (_, Err(e)) => {
                    crate::warn!("NOTIFY_SOCKET={path:?} is unusable: {e}; not notifying systemd");
                    None
                }
            }
        });
        Notifier::to(target)
    }

    fn to(target: Option<(UnixDatagram, SocketAddr)>) -> Notifier {
        Notifier {
            target,
            failures: RefCell::new(Limit::new(FAILURE_LOG_EVERY)),
        }
    }

    /// Sends one message such as `READY=1` without ever waiting; failures
    /// (including a full receive queue) are logged (rate-limited), never
    /// fatal (systemd would time the unit out, which says enough).
    pub fn notify(&self, message: &str) {
        if let Some((socket, addr)) = &self.target
            && let Err(e) = socket.send_to_addr(message.as_bytes(), addr)
            && let Some(more) = self.failures.borrow_mut().check(Instant::now())
        {
            let first = message.lines().next().unwrap_or_default();
            crate::warn!("cannot notify systemd ({first:?}): {e}{more}");
        }
    }

    /// `RELOADING=1` with the timestamp systemd requires for it.
    pub fn reloading(&self) {
        self.notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            sys::monotonic_usec()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_fds_cases() {
        assert_eq!(passed_fds(Some("42"), Some("1"), 42), Ok(1));
        assert_eq!(passed_fds(Some("42"), Some("3"), 42), Ok(3));
        for (pid, fds, message) in [
            (None, None, "systemd passed no sockets"),
            (Some("42"), None, "systemd passed no sockets"),
            (
                Some("41"),
                Some("1"),
                "for process \"41\", not this one (42)",
            ),
            (Some("x"), Some("1"), "not this one"),
            (
                Some("42"),
                Some("0"),
                "LISTEN_FDS=\"0\" is not a number of sockets",
            ),
            (Some("42"), Some("-1"), "is not a number of sockets"),
            (Some("42"), Some("two"), "is not a number of sockets"),
        ] {
            let err = passed_fds(pid, fds, 42).unwrap_err();
            assert!(err.contains(message), "{pid:?} {fds:?}: {err}");
        }
    }

    #[test]
    fn notifies_a_datagram_socket() {
        let dir = std::env::temp_dir().join(format!("hapgent-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::to(Some((
            {
                let s = UnixDatagram::unbound().unwrap();
                s.set_nonblocking(true).unwrap();
                s
            },
            SocketAddr::from_pathname(&path).unwrap(),
        )));
        notifier.notify("READY=1");
        notifier.reloading();
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let n = receiver.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");
        assert!(
            text["RELOADING=1\nMONOTONIC_USEC=".len()..]
                .parse::<u64>()
                .unwrap()
                > 0
        );
        // A receiver that never reads: sends fail at once, never block.
        for _ in 0..10_000 {
            notifier.notify("RELOADING=1");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
