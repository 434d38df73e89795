//! The only module with `unsafe`: the few operating-system calls that std
//! does not offer. Each function is small, documented, and safe to call.

use std::io;
use std::mem::MaybeUninit;
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
    use std::os::fd::FromRawFd;
    let int_opt = |level: i32, name: i32| -> io::Result<i32> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`, which
        // is a c_int that we own; an invalid fd only makes it fail.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(value)
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let not = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("file descriptor {fd} is not {what}"),
        )
    };
    if int_opt(libc::SOL_SOCKET, libc::SO_TYPE).map_err(|_| not("a socket"))? != libc::SOCK_STREAM {
        return Err(not("a stream (TCP) socket"));
    }
    let domain = int_opt(libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(not("an IPv4 or IPv6 socket"));
    }
    if int_opt(libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? != 1 {
        return Err(not("listening (use Accept=no and ListenStream=)"));
    }
    // SAFETY: fcntl on a descriptor we just checked is an open socket.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is an open listening TCP socket handed to this process
    // (checked above) and, per this function's contract, owned by no one
    // else in it.
    Ok(unsafe { std::net::TcpListener::from_raw_fd(fd) })
}

/// CLOCK_MONOTONIC in microseconds, as systemd's `MONOTONIC_USEC=` wants.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec that we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}
