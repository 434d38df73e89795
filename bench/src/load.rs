//! The load generator: each thread drives its share of the concurrent
//! probes through one epoll instance, non-blocking, as HAProxy's own event
//! loop does. (A blocking thread per prober would make the agent pay, in
//! its write(), for waking a sleeping reader thread on every check: a cost
//! of the load generator, not of the agent.)

use crate::probe::{ProbeError, setsockopt, well_formed};
use crate::tally::Tally;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// What the probing threads share.
pub struct Plan<'a> {
    pub addr: SocketAddr,
    pub send: Option<&'a [u8]>,
    pub expect: Option<&'a str>,
    pub timeout: Duration,
    pub deadline: Instant,
    /// Checks still to start; each thread takes them one at a time.
    pub remaining: &'a AtomicI64,
    /// Distinct source addresses to spread the probes over (127.0.0.2
    /// upwards, see `source_addr`), or 0 to let the kernel pick 127.0.0.1.
    pub probers: u32,
}

/// The source address of probe `n` of a load spread over `probers`
/// addresses: 127.0.0.2, 127.0.0.3, ... in turn (all of 127.0.0.0/8 is
/// local on Linux), so that the agent sees `probers` load balancers.
pub fn source_addr(n: u64, probers: u32) -> std::net::Ipv4Addr {
    let base = u32::from(std::net::Ipv4Addr::new(127, 0, 0, 2));
    std::net::Ipv4Addr::from(base + (n % u64::from(probers.max(1))) as u32)
}

/// One probe in flight: its socket (-1 when the slot is empty), when it
/// started, how much of the payload is sent and the reply read so far.
struct Slot {
    fd: i32,
    started: Instant,
    sent: usize,
    len: usize,
    buf: [u8; 512],
}

impl Slot {
    fn empty() -> Slot {
        Slot {
            fd: -1,
            started: Instant::now(),
            sent: 0,
            len: 0,
            buf: [0; 512],
        }
    }

    /// Reads what is there; the outcome at the first line terminator, or
    /// None while the reply is still to come.
    fn read_reply(&mut self) -> Option<Result<Vec<u8>, ProbeError>> {
        loop {
            if let Some(end) = self.buf[..self.len]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
            {
                let line = self.buf[..end].to_vec();
                return Some(match well_formed(&line) {
                    Ok(()) => Ok(line),
                    Err(why) => Err(ProbeError::Malformed(line, why)),
                });
            }
            if self.len == self.buf.len() {
                return Some(Err(ProbeError::Malformed(
                    self.buf.to_vec(),
                    "no line end in 512 bytes".into(),
                )));
            }
            // SAFETY: reads into the unfilled, live part of the buffer.
            let r = unsafe {
                libc::read(
                    self.fd,
                    self.buf[self.len..].as_mut_ptr() as *mut libc::c_void,
                    self.buf.len() - self.len,
                )
            };
            if r > 0 {
                self.len += r as usize;
            } else if r == 0 {
                return Some(Err(ProbeError::Incomplete(self.buf[..self.len].to_vec())));
            } else {
                let e = errno();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return None,
                    Some(libc::EINTR) => {}
                    Some(libc::ECONNREFUSED) => return Some(Err(ProbeError::Connect(e))),
                    _ => return Some(Err(ProbeError::Io(e))),
                }
            }
        }
    }
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

const SOCKADDR_IN_LEN: libc::socklen_t =
    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

fn sockaddr(addr: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only")
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// A non-blocking socket whose connect to `to` has begun, from prober
/// `n`'s source address when the plan spreads the probes.
fn open_probe(plan: &Plan, to: &libc::sockaddr_in, n: u64) -> Result<i32, ProbeError> {
    // SAFETY: a plain syscall; the descriptor is closed by the caller, or
    // here on failure.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(ProbeError::Connect(errno()));
    }
    // close() sends a reset, as HAProxy does once it has the line.
    let reset = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // A failure only makes the probe less like HAProxy's: not checked.
    let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, &reset);
    let from_prober = match plan.probers {
        0 => Ok(()),
        probers => bind_source(fd, source_addr(n, probers)),
    };
    let begun = from_prober.and_then(|()| start_connect(fd, to));
    if begun.is_err() {
        // SAFETY: fd is this function's, and no longer used.
        unsafe { libc::close(fd) };
    }
    begun.map(|()| fd)
}

/// Begins a non-blocking connect of `fd` to `to`.
fn start_connect(fd: i32, to: &libc::sockaddr_in) -> Result<(), ProbeError> {
    // SAFETY: `to` is a live sockaddr_in.
    let r = unsafe { libc::connect(fd, to as *const _ as *const libc::sockaddr, SOCKADDR_IN_LEN) };
    let e = errno();
    if r != 0 && e.raw_os_error() != Some(libc::EINPROGRESS) {
        return Err(ProbeError::Connect(e));
    }
    Ok(())
}

/// Binds the source address only (IP_BIND_ADDRESS_NO_PORT: the port is
/// chosen at connect, as HAProxy does for a `source` address without a
/// port).
fn bind_source(fd: i32, ip: std::net::Ipv4Addr) -> Result<(), ProbeError> {
    let one: libc::c_int = 1;
    let _ = setsockopt(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, &one);
    let src = sockaddr(SocketAddr::from((ip, 0)));
    // SAFETY: `src` is a live sockaddr_in.
    if unsafe {
        libc::bind(
            fd,
            &src as *const _ as *const libc::sockaddr,
            SOCKADDR_IN_LEN,
        )
    } != 0
    {
        return Err(ProbeError::Connect(errno()));
    }
    Ok(())
}

/// Adds (or modifies) `fd` in epoll instance `ep`, as slot `i`.
fn watch(ep: i32, op: i32, fd: i32, i: usize, events: i32) {
    let mut ev = libc::epoll_event {
        events: events as u32,
        u64: i as u64,
    };
    // SAFETY: `ev` is live; ep and fd are open descriptors.
    unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) };
}

/// One thread's share of the load: its epoll instance, its slots and the
/// tally of the probes they finished.
struct Driver<'p, 'a> {
    plan: &'p Plan<'a>,
    ep: i32,
    to: libc::sockaddr_in,
    slots: Vec<Slot>,
    active: usize,
    tally: Tally,
}

impl<'p, 'a> Driver<'p, 'a> {
    fn new(plan: &'p Plan<'a>, slots: usize) -> Self {
        // SAFETY: a plain syscall; the descriptor is closed on drop.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0, "epoll_create1: {}", errno());
        Driver {
            plan,
            ep,
            to: sockaddr(plan.addr),
            slots: (0..slots).map(|_| Slot::empty()).collect(),
            active: 0,
            tally: Tally::default(),
        }
    }

    /// Starts a probe in slot i, or leaves it empty when the plan is done;
    /// a probe that cannot connect is counted and the next one tried.
    fn start(&mut self, i: usize) {
        loop {
            let left = self.plan.remaining.fetch_sub(1, Ordering::Relaxed);
            if left <= 0 {
                return;
            }
            let now = Instant::now();
            if now > self.plan.deadline {
                return;
            }
            let s = &mut self.slots[i];
            s.started = now;
            s.sent = 0;
            s.len = 0;
            match open_probe(self.plan, &self.to, left as u64) {
                Ok(fd) => {
                    let out = if self.plan.send.is_some() {
                        libc::EPOLLOUT
                    } else {
                        0
                    };
                    watch(self.ep, libc::EPOLL_CTL_ADD, fd, i, libc::EPOLLIN | out);
                    self.slots[i].fd = fd;
                    self.active += 1;
                    return;
                }
                Err(e) => self.tally.record(Err(e), None, 0),
            }
        }
    }

    /// Counts slot i's outcome and closes its socket.
    fn finish(&mut self, i: usize, r: Result<Vec<u8>, ProbeError>) {
        let s = &mut self.slots[i];
        self.tally
            .record(r, self.plan.expect, s.started.elapsed().as_nanos() as u64);
        // SAFETY: the slot's own descriptor, not used after.
        unsafe { libc::close(s.fd) };
        s.fd = -1;
        self.active -= 1;
    }

    /// What epoll said of slot i: the payload sent on, the reply read; a
    /// finished probe is counted and the slot's next one started.
    fn on_event(&mut self, i: usize, flags: u32) {
        if self.slots[i].fd < 0 {
            return;
        }
        let outcome = match self.send_payload(i, flags) {
            Some(e) => Some(Err(e)),
            None if flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 => {
                self.slots[i].read_reply()
            }
            None => None,
        };
        if let Some(r) = outcome {
            self.finish(i, r);
            self.start(i);
        }
    }

    /// Sends what is left of the agent-send payload once slot i is
    /// writable (then waits for the reply only); the error if it failed.
    fn send_payload(&mut self, i: usize, flags: u32) -> Option<ProbeError> {
        let s = &mut self.slots[i];
        let payload = self.plan.send.filter(|p| s.sent < p.len())?;
        if flags & libc::EPOLLOUT as u32 == 0 {
            return None;
        }
        // SAFETY: sends from the live, unsent part of the payload.
        let w = unsafe {
            libc::send(
                s.fd,
                payload[s.sent..].as_ptr() as *const libc::c_void,
                payload.len() - s.sent,
                libc::MSG_NOSIGNAL,
            )
        };
        let e = errno();
        if w > 0 {
            s.sent += w as usize;
            if s.sent == payload.len() {
                watch(self.ep, libc::EPOLL_CTL_MOD, s.fd, i, libc::EPOLLIN);
            }
        } else if w < 0 && e.raw_os_error() != Some(libc::EAGAIN) {
            return Some(match e.raw_os_error() {
                Some(libc::ECONNREFUSED) => ProbeError::Connect(e),
                _ => ProbeError::Io(e),
            });
        }
        None
    }

    /// Probes past their timeout count as timed out.
    fn expire(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.fd >= 0 && now - s.started > self.plan.timeout {
                self.finish(i, Err(ProbeError::Timeout));
                self.start(i);
            }
        }
    }

    /// Waits at most 10 ms for events; None when a signal interrupted.
    fn wait(&self, events: &mut [libc::epoll_event]) -> Option<usize> {
        // SAFETY: `events` is live and as long as passed.
        let n = unsafe { libc::epoll_wait(self.ep, events.as_mut_ptr(), events.len() as i32, 10) };
        if n < 0 {
            let e = errno();
            assert_eq!(e.raw_os_error(), Some(libc::EINTR), "epoll_wait: {e}");
            return None;
        }
        Some(n as usize)
    }
}

impl Drop for Driver<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: the driver's own epoll descriptor, not used after.
        unsafe { libc::close(self.ep) };
    }
}

/// Runs `slots` probes at a time until the plan's checks or time run out.
pub fn drive(plan: &Plan, slots: usize) -> Tally {
    let mut driver = Driver::new(plan, slots);
    for i in 0..slots {
        driver.start(i);
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut last_scan = Instant::now();
    while driver.active > 0 {
        let Some(n) = driver.wait(&mut events) else {
            continue;
        };
        for ev in &events[..n] {
            driver.on_event(ev.u64 as usize, ev.events);
        }
        let now = Instant::now();
        if now - last_scan >= Duration::from_millis(10) {
            last_scan = now;
            driver.expire(now);
        }
    }
    std::mem::take(&mut driver.tally)
}
