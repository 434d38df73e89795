//! The load generator: each thread drives its share of the concurrent
//! probes through one epoll instance, non-blocking, as HAProxy's own event
//! loop does. (A blocking thread per prober would make the agent pay, in
//! its write(), for waking a sleeping reader thread on every check: a cost
//! of the load generator, not of the agent.)

use crate::probe::{ProbeError, well_formed};
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

struct Slot {
    fd: i32,
    started: Instant,
    sent: usize,
    len: usize,
    buf: [u8; 512],
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

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

/// Runs `slots` probes at a time until the plan's checks or time run out.
pub fn drive(plan: &Plan, slots: usize) -> Tally {
    let mut tally = Tally::default();
    // SAFETY: plain syscalls on descriptors this function owns; buffers
    // passed are live and sized as declared.
    unsafe {
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        assert!(ep >= 0, "epoll_create1: {}", errno());
        let sin = sockaddr(plan.addr);
        let mut slot: Vec<Slot> = (0..slots)
            .map(|_| Slot {
                fd: -1,
                started: Instant::now(),
                sent: 0,
                len: 0,
                buf: [0; 512],
            })
            .collect();
        let mut active = 0usize;

        // Starts a probe in slot i, or leaves it empty when the plan is done.
        let start = |s: &mut Slot, i: usize, tally: &mut Tally, active: &mut usize| loop {
            let left = plan.remaining.fetch_sub(1, Ordering::Relaxed);
            if left <= 0 {
                return;
            }
            let now = Instant::now();
            if now > plan.deadline {
                return;
            }
            s.started = now;
            s.sent = 0;
            s.len = 0;
            let fd = libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            );
            if fd < 0 {
                tally.record(Err(ProbeError::Connect(errno())), None, 0);
                continue;
            }
            // close() sends a reset, as HAProxy does once it has the line.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
            // From one of the distinct probers: bind the source address only
            // (IP_BIND_ADDRESS_NO_PORT: the port is chosen at connect, as
            // HAProxy does for a `source` address without a port).
            if plan.probers > 0 {
                let one: libc::c_int = 1;
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    &one as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
                let src = sockaddr(SocketAddr::from((
                    source_addr(left as u64, plan.probers),
                    0,
                )));
                if libc::bind(
                    fd,
                    &src as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                ) != 0
                {
                    tally.record(Err(ProbeError::Connect(errno())), None, 0);
                    libc::close(fd);
                    continue;
                }
            }
            let r = libc::connect(
                fd,
                &sin as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            if r != 0 && *libc::__errno_location() != libc::EINPROGRESS {
                tally.record(Err(ProbeError::Connect(errno())), None, 0);
                libc::close(fd);
                continue;
            }
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN
                    | if plan.send.is_some() {
                        libc::EPOLLOUT
                    } else {
                        0
                    }) as u32,
                u64: i as u64,
            };
            libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev);
            s.fd = fd;
            *active += 1;
            return;
        };
        let finish = |s: &mut Slot,
                      r: Result<Vec<u8>, ProbeError>,
                      tally: &mut Tally,
                      active: &mut usize| {
            tally.record(r, plan.expect, s.started.elapsed().as_nanos() as u64);
            libc::close(s.fd);
            s.fd = -1;
            *active -= 1;
        };

        for (i, s) in slot.iter_mut().enumerate() {
            start(s, i, &mut tally, &mut active);
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut last_scan = Instant::now();
        while active > 0 {
            let n = libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 10);
            if n < 0 {
                assert_eq!(
                    *libc::__errno_location(),
                    libc::EINTR,
                    "epoll_wait: {}",
                    errno()
                );
                continue;
            }
            for ev in &events[..n as usize] {
                let i = ev.u64 as usize;
                let flags = ev.events;
                let s = &mut slot[i];
                if s.fd < 0 {
                    continue;
                }
                // The agent-send payload, once connected.
                if let Some(payload) = plan.send.filter(|p| s.sent < p.len())
                    && flags & libc::EPOLLOUT as u32 != 0
                {
                    let w = libc::send(
                        s.fd,
                        payload[s.sent..].as_ptr() as *const libc::c_void,
                        payload.len() - s.sent,
                        libc::MSG_NOSIGNAL,
                    );
                    if w > 0 {
                        s.sent += w as usize;
                        if s.sent == payload.len() {
                            let mut ev = libc::epoll_event {
                                events: libc::EPOLLIN as u32,
                                u64: i as u64,
                            };
                            libc::epoll_ctl(ep, libc::EPOLL_CTL_MOD, s.fd, &mut ev);
                        }
                    } else if w < 0 && *libc::__errno_location() != libc::EAGAIN {
                        let e = errno();
                        let r = Err(if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                            ProbeError::Connect(e)
                        } else {
                            ProbeError::Io(e)
                        });
                        finish(s, r, &mut tally, &mut active);
                        start(s, i, &mut tally, &mut active);
                        continue;
                    }
                }
                if flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                    continue;
                }
                // Read what is there; done at the first line terminator.
                let result = loop {
                    if let Some(end) = s.buf[..s.len]
                        .iter()
                        .position(|&b| b == b'\n' || b == b'\r')
                    {
                        let line = s.buf[..end].to_vec();
                        break Some(match well_formed(&line) {
                            Ok(()) => Ok(line),
                            Err(why) => Err(ProbeError::Malformed(line, why)),
                        });
                    }
                    if s.len == s.buf.len() {
                        break Some(Err(ProbeError::Malformed(
                            s.buf.to_vec(),
                            "no line end in 512 bytes".into(),
                        )));
                    }
                    let r = libc::read(
                        s.fd,
                        s.buf[s.len..].as_mut_ptr() as *mut libc::c_void,
                        s.buf.len() - s.len,
                    );
                    if r > 0 {
                        s.len += r as usize;
                    } else if r == 0 {
                        break Some(Err(ProbeError::Incomplete(s.buf[..s.len].to_vec())));
                    } else {
                        match *libc::__errno_location() {
                            libc::EAGAIN => break None,
                            libc::EINTR => {}
                            libc::ECONNREFUSED => break Some(Err(ProbeError::Connect(errno()))),
                            _ => break Some(Err(ProbeError::Io(errno()))),
                        }
                    }
                };
                if let Some(r) = result {
                    finish(s, r, &mut tally, &mut active);
                    start(s, i, &mut tally, &mut active);
                }
            }
            // Probes past their timeout count as timed out.
            let now = Instant::now();
            if now - last_scan >= Duration::from_millis(10) {
                last_scan = now;
                for (i, s) in slot.iter_mut().enumerate() {
                    if s.fd >= 0 && now - s.started > plan.timeout {
                        finish(s, Err(ProbeError::Timeout), &mut tally, &mut active);
                        start(s, i, &mut tally, &mut active);
                    }
                }
            }
        }
        libc::close(ep);
    }
    tally
}
