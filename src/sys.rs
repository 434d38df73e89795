//! The few operating-system calls that std does not offer. Each function is
//! small, documented, and safe to call. Most are `rustix`'s (already in the
//! binary through async-io, with the same features); what it cannot do
//! safely stays here, the agent's only module allowed `unsafe`: the thread
//! signal mask and a signal handler's mask (rustix has no safe API for
//! them), and taking ownership of a descriptor systemd passed.

#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::ptr;

/// Runs `f` with every signal blocked in the calling thread, then restores
/// the previous mask.
///
/// Threads inherit the mask of the thread that starts them, so a thread
/// started inside `f` (the reactor's helper thread, the disk thread) never
/// has a signal handler run on it. Signals then reach only the main thread,
/// one at a time and in the order the kernel delivers them; with handlers
/// on several threads, two signals sent back to back could be recorded in
/// either order. Signals that arrive while `f` runs stay pending and are
/// delivered when the mask is restored.
pub fn with_signals_blocked<T>(f: impl FnOnce() -> T) -> io::Result<T> {
    // SAFETY: sigfillset and pthread_sigmask only write the sigset_t values
    // we own; both are initialized by sigfillset/pthread_sigmask before use.
    unsafe {
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigfillset(all.as_mut_ptr());
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        let rc = libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let result = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), ptr::null_mut());
        Ok(result)
    }
}

/// Takes ownership of file descriptor `fd`, passed by systemd socket
/// activation, as a TCP listener, after checking that it is one: a stream
/// socket, IPv4 or IPv6, in the listening state. It is also marked
/// close-on-exec, as systemd leaves it inheritable.
///
/// Must be called at most once per descriptor, and only for descriptors
/// this process was given and has not otherwise used: `fd` is closed when
/// the listener is dropped.
pub fn adopt_listener(fd: i32) -> io::Result<std::net::TcpListener> {
    use rustix::net::{AddressFamily, SocketType, sockopt};
    use std::os::fd::{BorrowedFd, FromRawFd};
    // SAFETY: `fd` was handed to this process and, per this function's
    // contract, is owned by no one else in it; an invalid or closed
    // descriptor only makes the calls below fail.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let kind = match (
        sockopt::socket_type(borrowed),
        sockopt::socket_domain(borrowed),
    ) {
        (Ok(ty), Ok(domain)) => Some((ty, domain)),
        _ => None,
    };
    let listening = sockopt::socket_acceptconn(borrowed).unwrap_or(false);
    let kind = kind.map(|(ty, domain): (SocketType, AddressFamily)| {
        (ty.as_raw() as i32, i32::from(domain.as_raw()))
    });
    if let Err(what) = listener_kind(kind, listening) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "file descriptor {fd} is {what}; hapgent needs a listening TCP socket \
                 (ListenStream= with a port or an IP address and port, Accept=no)"
            ),
        ));
    }
    rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::CLOEXEC)?;
    // SAFETY: `fd` is an open listening TCP socket handed to this process
    // (checked above) and, per this function's contract, owned by no one
    // else in it.
    Ok(unsafe { std::net::TcpListener::from_raw_fd(fd) })
}

/// Accepts one connection on `listener`, already non-blocking and
/// close-on-exec: one `accept4` call, where std's `accept` followed by
/// `set_nonblocking` takes two. Every probe pays for it, and the floor the
/// benchmark compares hapgent with (a blocking accept, write, close) makes
/// only three system calls per probe, so one more is a visible share.
///
/// The peer's address is the one std's `accept` would return (an IPv4
/// client of a dual-stack IPv6 listener is an IPv4-mapped IPv6 address).
pub fn accept(listener: &std::net::TcpListener) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    use rustix::net::{SocketFlags, acceptfrom_with};
    let (fd, addr) = acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    // Owned by the stream at once: closed when dropped, also on the error
    // return below.
    let stream = std::net::TcpStream::from(fd);
    let peer = addr
        .and_then(|a| SocketAddr::try_from(a).ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "accept returned an address that is neither IPv4 nor IPv6",
            )
        })?;
    Ok((stream, peer))
}

/// CLOCK_MONOTONIC in microseconds, as systemd's `MONOTONIC_USEC=` wants.
pub fn monotonic_usec() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// Runs `action` inside the signal handler each time `signal` is delivered,
/// from now on: the signal no longer has its default effect (USR1's is to
/// terminate). `action` runs in a signal handler, so it may only do what is
/// async-signal-safe: atomic loads and stores, no allocation, no locks.
///
/// While the handler runs, the signals in `also_block` are held pending
/// (its `sa_mask`), as `signal` itself always is. Without that, a signal
/// that becomes deliverable while a handler is being entered is handled
/// *nested inside* it, so it finishes, and is recorded, first: of two
/// signals pending at once the higher-numbered one would be recorded
/// before the lower-numbered one the kernel delivered first.
pub fn on_signal(signal: i32, action: fn(), also_block: &[i32]) -> io::Result<()> {
    // SAFETY: the contract above is this function's own: callers pass plain
    // functions that only touch atomics (see `signals::record`).
    unsafe { signal_hook_registry::register(signal, action) }?;
    // The registry installs one handler per signal, with an empty mask, the
    // first time the signal is registered, and never again (async-signal's
    // later registrations share it): widen that handler's mask in place.
    // SAFETY: sigaction reads and writes only the `sigaction` values we own;
    // the handler address and flags read back are installed unchanged.
    unsafe {
        let mut action = MaybeUninit::<libc::sigaction>::zeroed();
        if libc::sigaction(signal, ptr::null(), action.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut action = action.assume_init();
        for &other in also_block {
            if libc::sigaddset(&mut action.sa_mask, other) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if libc::sigaction(signal, &action, ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets the listen backlog of a listening socket to the system's maximum
/// (`net.core.somaxconn`; the kernel caps larger values to it). std binds
/// with a backlog of 128, which a burst of thousands of connections from a
/// big fleet of load balancers overflows, each overflow costing the client
/// a SYN retry of a second or more.
pub fn raise_backlog(listener: &std::net::TcpListener) -> io::Result<()> {
    // A listening socket may call listen again to change its backlog.
    Ok(rustix::net::listen(listener, i32::MAX)?)
}

/// Whether a passed descriptor, by its socket type and domain (`None`: not
/// a socket) and listening state, is a listening TCP socket; if not, what
/// it is, in words an operator can match to the .socket unit.
fn listener_kind(kind: Option<(i32, i32)>, listening: bool) -> Result<(), String> {
    let Some((ty, domain)) = kind else {
        return Err("not a socket".into());
    };
    let family = match domain {
        libc::AF_INET => "an IPv4",
        libc::AF_INET6 => "an IPv6",
        libc::AF_UNIX => "a Unix",
        libc::AF_NETLINK => "a netlink",
        _ => "a non-IP",
    };
    let ip = domain == libc::AF_INET || domain == libc::AF_INET6;
    let what = match ty {
        libc::SOCK_STREAM if ip => "stream (TCP)",
        libc::SOCK_STREAM => "stream",
        libc::SOCK_DGRAM if ip => "datagram (UDP)",
        libc::SOCK_DGRAM => "datagram",
        libc::SOCK_SEQPACKET => "sequential-packet",
        _ => "raw or other",
    };
    if ty != libc::SOCK_STREAM || !ip {
        return Err(format!("{family} {what} socket"));
    }
    if !listening {
        return Err(format!("{family} {what} socket that is not listening"));
    }
    Ok(())
}

// Peer credentials and user and group names are shared with hapgent-lb.
pub use hapgent_common::creds::{Peer, group_id, own_ids, peer, user_name};

#[cfg(test)]
mod tests {
    use super::*;

    /// The accepted stream is non-blocking and close-on-exec, and its peer
    /// is the client's address, for IPv4 and (where the host has it) IPv6.
    #[test]
    fn accept_is_nonblocking_and_names_the_peer() {
        use std::io::Read;
        use std::net::{TcpListener, TcpStream};
        for local in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = TcpListener::bind(local) else {
                continue; // no IPv6 on this host
            };
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (stream, peer) = accept(&listener).unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            let err = (&stream).read(&mut [0u8; 8]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
            let flags = rustix::io::fcntl_getfd(&stream).unwrap();
            assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let err = accept(&listener).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn passed_descriptor_kinds() {
        let tcp4 = Some((libc::SOCK_STREAM, libc::AF_INET));
        assert_eq!(listener_kind(tcp4, true), Ok(()));
        assert_eq!(
            listener_kind(Some((libc::SOCK_STREAM, libc::AF_INET6)), true),
            Ok(())
        );
        for (kind, listening, want) in [
            (None, true, "not a socket"),
            (
                tcp4,
                false,
                "an IPv4 stream (TCP) socket that is not listening",
            ),
            (
                Some((libc::SOCK_DGRAM, libc::AF_INET6)),
                true,
                "an IPv6 datagram (UDP) socket",
            ),
            (
                Some((libc::SOCK_STREAM, libc::AF_UNIX)),
                true,
                "a Unix stream socket",
            ),
            (
                Some((libc::SOCK_DGRAM, libc::AF_UNIX)),
                false,
                "a Unix datagram socket",
            ),
        ] {
            assert_eq!(listener_kind(kind, listening), Err(want.to_string()));
        }
    }
}
