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
