//! Counting established TCP connections by local port.
//!
//! The `connections` monitor asks the kernel through NETLINK_SOCK_DIAG
//! for established sockets with a filter program (the same bytecode `ss`
//! compiles for `sport = :80 or sport = :443`; a single port also goes in
//! the request's socket id), so the kernel walks its socket table once
//! for both address families and sends back only the sockets on those
//! ports; the agent counts the messages without reading them. When
//! netlink is refused (systemd's `RestrictAddressFamilies=` without
//! AF_NETLINK), the count falls back to parsing /proc/net/tcp and
//! /proc/net/tcp6, four times dearer.
//!
//! What a count costs is the kernel's, and no request makes it small:
//! about 1 ms to walk the empty hash buckets, 0.15 µs per socket of the
//! network namespace's table and 0.6 µs per counted socket, whose message
//! the kernel builds (124 bytes, 260 to a 32 KiB receive) before the
//! agent can count it; the agent's own share is under 1 %. With 100,000
//! connections on the counted port that is about 80 ms of CPU (a 2-core
//! VM, Linux 6.18), so a [`Pace`] keeps counting within a share of one
//! core by returning the last count until the next is due. What this
//! module does not do: decide what the count means (capacity's levels).
//!
//! Both families are counted: an IPv4 client of a dual-stack listener is
//! an AF_INET6 socket. The socket calls go through rustix; no `unsafe`.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// TCP_ESTABLISHED in the kernel's state numbering.
const TCP_ESTABLISHED: u8 = 1;

/// inet_diag_bc_op codes (linux/inet_diag.h).
const BC_JMP: u8 = 1;
const BC_S_GE: u8 = 2;
const BC_S_LE: u8 = 3;

/// The filter program accepting sockets whose local port is one of
/// `ports` (non-empty): per port a `port >= p && port <= p` test that, on
/// failure, jumps 4 bytes past its end, i.e. over the JMP that follows it
/// to the next port's test (past the program's end for the last: reject);
/// on success it falls into that JMP, which jumps to the end: accept. The
/// kernel's audit follows the `yes` jumps, so they are sequential and the
/// last one ends the program exactly.
pub fn port_filter(ports: &[u16]) -> Vec<u8> {
    let mut code = Vec::with_capacity(ports.len() * 20);
    let op = |code: &mut Vec<u8>, kind: u8, yes: u8, no: u16| {
        code.push(kind);
        code.push(yes);
        code.extend_from_slice(&no.to_ne_bytes());
    };
    let total = ports.len() * 20 - 4;
    for (i, &port) in ports.iter().enumerate() {
        op(&mut code, BC_S_GE, 8, 20);
        op(&mut code, 0, 0, port);
        op(&mut code, BC_S_LE, 8, 12);
        op(&mut code, 0, 0, port);
        if i + 1 < ports.len() {
            let at = code.len();
            op(&mut code, BC_JMP, 4, (total - at) as u16);
        }
    }
    code
}

/// Runs a filter program the way the kernel does (`inet_diag_bc_run`),
/// for the tests: whether a socket with local port `port` is accepted.
#[cfg(test)]
fn run_filter(code: &[u8], port: u16) -> bool {
    let mut at: isize = 0;
    let len = code.len() as isize;
    while at < len {
        let i = at as usize;
        let (kind, yes, no) = (
            code[i],
            code[i + 1],
            u16::from_ne_bytes([code[i + 2], code[i + 3]]),
        );
        let arg = || u16::from_ne_bytes([code[i + 6], code[i + 7]]);
        let pass = match kind {
            BC_JMP => false,
            BC_S_GE => port >= arg(),
            BC_S_LE => port <= arg(),
            _ => true,
        };
        at += if pass { yes as isize } else { no as isize };
    }
    at == len
}

/// The netlink header of a dump request of `kind` and `len` bytes.
fn header(m: &mut Vec<u8>, kind: u16, len: usize, seq: u32) {
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_DUMP: u16 = 0x300;
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
}

/// An inet_diag_sockid naming only a local port (0: any). A dump skips a
/// socket on another port before running the filter program on it, which
/// saves the program's run on every socket of the table (a fifth of the
/// kernel's time where the counted port holds few of the host's
/// sockets); the filter stays in the request, so a kernel that ignored
/// the port would still count exactly.
fn sockid(m: &mut Vec<u8>, sport: u16) {
    m.extend_from_slice(&sport.to_be_bytes());
    m.extend_from_slice(&[0u8; 46]);
}

/// The filter program as an INET_DIAG_REQ_BYTECODE attribute.
fn bytecode(m: &mut Vec<u8>, filter: &[u8]) {
    const INET_DIAG_REQ_BYTECODE: u16 = 1;
    m.extend_from_slice(&((4 + filter.len()) as u16).to_ne_bytes());
    m.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    m.extend_from_slice(filter);
}

/// The netlink request: header, inet_diag_req_v2 for established TCP
/// sockets of `family` on local port `sport` (0: any), and the filter.
/// No extensions are asked for (`idiag_ext` 0): each socket's message is
/// the fixed part and the few attributes the kernel always adds.
pub fn request(family: u8, sport: u16, filter: &[u8], seq: u32) -> Vec<u8> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    let len = 16 + 56 + 4 + filter.len();
    let mut m = Vec::with_capacity(len);
    header(&mut m, SOCK_DIAG_BY_FAMILY, len, seq);
    // inet_diag_req_v2: family, protocol, ext, pad, states, sockid.
    m.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
    m.extend_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
    sockid(&mut m, sport);
    bytecode(&mut m, filter);
    m
}

/// The same request in the older form (`TCPDIAG_GETSOCK`, struct
/// inet_diag_req): the kernel answers it for both address families in
/// one walk of its socket table, where the newer form walks it once per
/// family (a quarter of the kernel's time with 100,000 connections).
pub fn request_both_families(sport: u16, filter: &[u8], seq: u32) -> Vec<u8> {
    const TCPDIAG_GETSOCK: u16 = 18;
    let len = 16 + 60 + 4 + filter.len();
    let mut m = Vec::with_capacity(len);
    header(&mut m, TCPDIAG_GETSOCK, len, seq);
    // inet_diag_req: family, src_len, dst_len, ext, sockid, states, dbs.
    m.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
    sockid(&mut m, sport);
    m.extend_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    bytecode(&mut m, filter);
    m
}

/// What one buffer of the dump's answer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Part {
    /// This many sockets; more buffers follow.
    More(u64),
    /// This many sockets, and the dump is complete.
    Done(u64),
}

/// Counts the socket messages in one received buffer of a dump answering
/// request `seq`.
pub fn count_part(buf: &[u8], seq: u32) -> io::Result<Part> {
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    let mut n = 0;
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap_or_default()) as usize;
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let their_seq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap_or_default());
        if len < 16 || at + len > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a truncated netlink message",
            ));
        }
        if their_seq == seq {
            match kind {
                NLMSG_DONE => return Ok(Part::Done(n)),
                NLMSG_ERROR => {
                    let errno = buf
                        .get(at + 16..at + 20)
                        .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap_or_default()));
                    return Err(if errno == 0 {
                        io::Error::new(io::ErrorKind::InvalidData, "a netlink error without a code")
                    } else {
                        io::Error::from_raw_os_error(-errno)
                    });
                }
                _ => n += 1,
            }
        }
        at += (len + 3) & !3;
    }
    Ok(Part::More(n))
}

/// A NETLINK_SOCK_DIAG socket and its calls.
mod netlink {
    use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
    use std::io;
    use std::os::fd::OwnedFd;

    pub struct Socket(OwnedFd);

    impl Socket {
        pub fn open() -> io::Result<Socket> {
            let fd = rustix::net::socket_with(
                AddressFamily::NETLINK,
                SocketType::DGRAM,
                SocketFlags::CLOEXEC,
                Some(rustix::net::netlink::SOCK_DIAG),
            )?;
            Ok(Socket(fd))
        }

        pub fn send(&self, message: &[u8]) -> io::Result<()> {
            rustix::net::send(&self.0, message, SendFlags::empty())?;
            Ok(())
        }

        pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
            loop {
                match rustix::net::recv(&self.0, &mut *buf, RecvFlags::empty()) {
                    Ok((n, _)) => return Ok(n),
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Spaces counts so that counting spends at most a share of one core:
/// after a count that took `cpu` of this thread's time, the next is not
/// due before `cpu / share` has passed since it started. At a quarter of
/// a percent, a host with 1,000 connections (a count of 2 ms) counts at
/// every sample of a 1 s interval, one with 10,000 (8 ms) every 3 s, and
/// one with 100,000 (80 ms) every half minute instead of spending 8 % of
/// a core.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    share: f64,
    next: Option<Instant>,
}

impl Pace {
    /// At most `share` (0 < share ≤ 1) of one core.
    pub fn new(share: f64) -> Pace {
        Pace { share, next: None }
    }

    /// Whether a count is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.next.is_none_or(|next| now >= next)
    }

    /// Books a count that started at `started` and took `cpu`.
    pub fn spent(&mut self, started: Instant, cpu: Duration) {
        self.next = Some(started + cpu.div_f64(self.share));
    }
}

/// A counter of established connections on some local ports, keeping its
/// netlink socket and buffer between samples.
pub struct Counter {
    ports: Vec<u16>,
    /// The one port, else 0 (the filter alone selects).
    sport: u16,
    filter: Vec<u8>,
    socket: Option<netlink::Socket>,
    buf: Vec<u8>,
    seq: u32,
    /// Ask in the older form, one walk for both families; cleared when the
    /// kernel refuses it and answers the newer one.
    compat: bool,
    pace: Option<Pace>,
    /// The last count, returned while the next is not due.
    last: Option<(u64, Method)>,
    /// The last netlink count's receive calls and bytes, for the tests.
    recvs: u64,
    bytes: u64,
}

/// How a count was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Netlink,
    ProcNetTcp,
}

impl Counter {
    /// A counter for `ports` (non-empty) that counts at every call.
    pub fn new(ports: &[u16]) -> Counter {
        Counter {
            ports: ports.to_vec(),
            sport: if let [port] = ports { *port } else { 0 },
            filter: port_filter(ports),
            socket: None,
            buf: Vec::new(),
            seq: 0,
            compat: true,
            pace: None,
            last: None,
            recvs: 0,
            bytes: 0,
        }
    }

    /// The same counter, counting at most as often as `pace` allows
    /// ([`Counter::count`] returns the last count in between).
    pub fn paced(mut self, pace: Pace) -> Counter {
        self.pace = Some(pace);
        self
    }

    /// Counts through netlink, opening the socket on first use.
    pub fn netlink(&mut self) -> io::Result<u64> {
        match self.ask() {
            Err(_) if self.compat => {
                // A kernel without the older form: ask per family, and
                // keep doing so if that is answered.
                self.compat = false;
                let result = self.ask();
                self.compat = result.is_err();
                result
            }
            result => result,
        }
    }

    fn ask(&mut self) -> io::Result<u64> {
        if self.socket.is_none() {
            self.socket = Some(netlink::Socket::open()?);
            // The kernel fills at most 32 KiB per batch (32,207 bytes, 260
            // sockets, a receive with 100,000 connections, whatever the
            // buffer); a larger buffer leaves room should that change.
            self.buf = vec![0u8; 64 << 10];
        }
        (self.recvs, self.bytes) = (0, 0);
        let result = if self.compat {
            self.seq = self.seq.wrapping_add(1);
            let request = request_both_families(self.sport, &self.filter, self.seq);
            self.dump(&request)
        } else {
            self.seq = self.seq.wrapping_add(1);
            let v4 = request(libc::AF_INET as u8, self.sport, &self.filter, self.seq);
            self.dump(&v4).and_then(|n| {
                self.seq = self.seq.wrapping_add(1);
                let v6 = request(libc::AF_INET6 as u8, self.sport, &self.filter, self.seq);
                Ok(n + self.dump(&v6)?)
            })
        };
        if result.is_err() {
            // A dump cut short leaves messages queued: start afresh.
            self.socket = None;
        }
        result
    }

    fn dump(&mut self, request: &[u8]) -> io::Result<u64> {
        let socket = self.socket.as_ref().ok_or(io::ErrorKind::NotConnected)?;
        socket.send(request)?;
        let mut total = 0;
        loop {
            let n = socket.recv(&mut self.buf)?;
            self.recvs += 1;
            self.bytes += n as u64;
            match count_part(&self.buf[..n], self.seq)? {
                Part::More(k) => total += k,
                Part::Done(k) => return Ok(total + k),
            }
        }
    }

    /// Counts by parsing `tcp` and `tcp6` under `proc_net` (a missing
    /// tcp6, on a host without IPv6, counts as none).
    pub fn proc_net(&self, proc_net: &Path) -> io::Result<u64> {
        let v4 = std::fs::read(proc_net.join("tcp"))?;
        let v6 = match std::fs::read(proc_net.join("tcp6")) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(count_proc_net(&v4, &self.ports) + count_proc_net(&v6, &self.ports))
    }

    /// Netlink, else /proc/net (logged by the caller via the method); when
    /// paced and the next count is not due, the last count.
    pub fn count(&mut self, proc_net: &Path) -> io::Result<(u64, Method)> {
        let started = Instant::now();
        if let (Some(pace), Some(last)) = (&self.pace, self.last)
            && !pace.due(started)
        {
            return Ok(last);
        }
        let cpu = thread_cpu();
        let result = match self.netlink() {
            Ok(n) => Ok((n, Method::Netlink)),
            Err(_) => self.proc_net(proc_net).map(|n| (n, Method::ProcNetTcp)),
        };
        if let Some(pace) = &mut self.pace {
            pace.spent(started, thread_cpu().saturating_sub(cpu));
        }
        self.last = result.as_ref().ok().copied();
        result
    }
}

/// This thread's CPU time so far, user and system.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Counts established sockets on `ports` in a /proc/net/tcp(6) text:
/// columns `sl local_address rem_address st ...`, the local port in hex
/// after the colon, state 01 established.
pub fn count_proc_net(text: &[u8], ports: &[u16]) -> u64 {
    let mut n = 0;
    for line in text.split(|&b| b == b'\n').skip(1) {
        let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
        let (Some(local), Some(st)) = (fields.nth(1), fields.nth(1)) else {
            continue;
        };
        if st != b"01" {
            continue;
        }
        let port = local
            .iter()
            .rposition(|&b| b == b':')
            .and_then(|i| std::str::from_utf8(&local[i + 1..]).ok())
            .and_then(|h| u16::from_str_radix(h, 16).ok());
        if port.is_some_and(|p| ports.contains(&p)) {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn filter_program() {
        let cases: &[(&[u16], &[u16], &[u16])] = &[
            // (ports, accepted, refused)
            (&[80], &[80], &[79, 81, 0, 65535]),
            (&[80, 443], &[80, 443], &[81, 442, 444, 8080]),
            (&[1, 65535], &[1, 65535], &[0, 2, 65534]),
            (&[22, 80, 443, 8080], &[22, 80, 443, 8080], &[23, 79, 8081]),
        ];
        for (ports, yes, no) in cases {
            let code = port_filter(ports);
            assert_eq!(code.len(), ports.len() * 20 - 4);
            for p in *yes {
                assert!(run_filter(&code, *p), "{ports:?} should accept {p}");
            }
            for p in *no {
                assert!(!run_filter(&code, *p), "{ports:?} should refuse {p}");
            }
        }
        // 64 ports: every jump still fits its field.
        let many: Vec<u16> = (1000..1064).collect();
        let code = port_filter(&many);
        assert!(many.iter().all(|&p| run_filter(&code, p)));
        assert!(!run_filter(&code, 1064));
    }

    #[test]
    fn proc_net_text() {
        let text = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1\n   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1\n   3: 0100007F:01BB 0100007F:C351 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1\n   4: 0100007F:1F90 0100007F:C352 06 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1\n";
        assert_eq!(count_proc_net(text, &[8080]), 1);
        assert_eq!(count_proc_net(text, &[8080, 443]), 2);
        assert_eq!(count_proc_net(text, &[50000]), 1);
        assert_eq!(count_proc_net(text, &[22]), 0);
        assert_eq!(count_proc_net(b"", &[22]), 0);
    }

    #[test]
    fn netlink_messages() {
        let msg = |kind: u16, seq: u32, payload: &[u8]| {
            let mut m = Vec::new();
            m.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(&2u16.to_ne_bytes());
            m.extend_from_slice(&seq.to_ne_bytes());
            m.extend_from_slice(&0u32.to_ne_bytes());
            m.extend_from_slice(payload);
            m
        };
        let sock = msg(20, 7, &[0; 72]);
        let mut buf = [sock.clone(), sock.clone(), msg(20, 6, &[0; 72])].concat();
        assert_eq!(count_part(&buf, 7).unwrap(), Part::More(2));
        buf.extend(msg(3, 7, &[0; 4]));
        assert_eq!(count_part(&buf, 7).unwrap(), Part::Done(2));
        let err = count_part(&msg(2, 7, &(-libc::EPERM).to_ne_bytes()), 7).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        assert!(count_part(&sock[..40], 7).is_err());
        let r = request(libc::AF_INET as u8, 80, &port_filter(&[80]), 9);
        assert_eq!(r.len(), 16 + 56 + 4 + 16);
        assert_eq!(
            u32::from_ne_bytes(r[0..4].try_into().unwrap()) as usize,
            r.len()
        );
        // The port in the socket id, big-endian, after the 8-byte head.
        assert_eq!(r[24..26], 80u16.to_be_bytes());
        let r = request_both_families(443, &port_filter(&[443]), 9);
        assert_eq!(r.len(), 16 + 60 + 4 + 16);
        assert_eq!(
            u32::from_ne_bytes(r[0..4].try_into().unwrap()) as usize,
            r.len()
        );
        assert_eq!(r[20..22], 443u16.to_be_bytes());
        assert_eq!(r[16 + 60 + 4..], port_filter(&[443]));
    }

    #[test]
    fn pace() {
        let t0 = Instant::now();
        let mut pace = Pace::new(0.01);
        assert!(pace.due(t0));
        // 10 ms of CPU at 1 %: the next count a second after this one began.
        pace.spent(t0, Duration::from_millis(10));
        for (after_ms, due) in [(0, false), (999, false), (1000, true), (5000, true)] {
            assert_eq!(
                pace.due(t0 + Duration::from_millis(after_ms)),
                due,
                "{after_ms} ms"
            );
        }
        pace.spent(t0, Duration::ZERO);
        assert!(pace.due(t0));
    }

    /// Times both methods on `ports`, checks they agree, prints the
    /// figures and returns the count.
    fn measure(ports: &[u16], label: &str) -> u64 {
        let mut per_family = Counter::new(ports);
        per_family.compat = false;
        let (t, cpu) = (Instant::now(), thread_cpu());
        let n = per_family.netlink().unwrap();
        eprintln!(
            "{label}: per family: {n} in {:?} wall, {:?} CPU",
            t.elapsed(),
            thread_cpu() - cpu
        );
        let mut counter = Counter::new(ports);
        let t = Instant::now();
        let by_netlink = counter.netlink().unwrap();
        let first = t.elapsed();
        const SAMPLES: u32 = 5;
        let (t, cpu) = (Instant::now(), thread_cpu());
        for _ in 0..SAMPLES {
            assert_eq!(counter.netlink().unwrap(), by_netlink);
        }
        let netlink_each = (t.elapsed() / SAMPLES, (thread_cpu() - cpu) / SAMPLES);
        let (t, cpu) = (Instant::now(), thread_cpu());
        // /proc/net/tcp is read in pieces while sockets come and go, so
        // it may list one twice or miss one: not compared exactly.
        let by_proc = counter.proc_net(Path::new("/proc/net")).unwrap();
        let proc_each = (t.elapsed(), thread_cpu() - cpu);
        eprintln!(
            "{label}: {by_netlink} established: netlink {:?} wall, {:?} CPU per sample (first {first:?} wall); /proc/net/tcp {by_proc} in {:?} wall, {:?} CPU",
            netlink_each.0, netlink_each.1, proc_each.0, proc_each.1
        );
        by_netlink
    }

    /// This thread's user and system time so far, in clock ticks
    /// (/proc/thread-self/stat fields 14 and 15): only their ratio is
    /// used, to split the exact CPU time.
    fn thread_ticks() -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        (fields[11].parse().unwrap(), fields[12].parse().unwrap())
    }

    fn median(mut v: Vec<Duration>) -> f64 {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    }

    /// Times the ways of asking on `ports`, interleaved sample by sample
    /// so that a noisy neighbour weighs on all alike: the first sample of
    /// a fresh counter, then the medians of `HAPGENT_BENCH_SAMPLES` (15)
    /// steady ones, CPU split into user and system time, and what was
    /// received. Checks that all agree.
    fn bench(ports: &[u16]) {
        let samples: usize = std::env::var("HAPGENT_BENCH_SAMPLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(15);
        type Way = (&'static str, fn(&mut Counter));
        let ways: [Way; 3] = [
            ("both families, port in the id and filter", |_| {}),
            ("both families, filter only", |c| c.sport = 0),
            ("per family, port in the id and filter", |c| {
                c.compat = false
            }),
        ];
        let mut counters: Vec<Counter> = ways
            .iter()
            .map(|(_, set)| {
                let mut c = Counter::new(ports);
                set(&mut c);
                c
            })
            .collect();
        let mut firsts = Vec::new();
        let mut want = None;
        for c in &mut counters {
            let (t, cpu) = (Instant::now(), thread_cpu());
            let n = c.netlink().unwrap();
            firsts.push((t.elapsed(), thread_cpu() - cpu));
            assert_eq!(*want.get_or_insert(n), n);
        }
        let mut walls = vec![Vec::new(); ways.len()];
        let mut cpus = vec![Vec::new(); ways.len()];
        let mut ticks = vec![(0, 0); ways.len()];
        for _ in 0..samples {
            for (k, c) in counters.iter_mut().enumerate() {
                let (t, cpu, before) = (Instant::now(), thread_cpu(), thread_ticks());
                assert_eq!(Some(c.netlink().unwrap()), want);
                walls[k].push(t.elapsed());
                cpus[k].push(thread_cpu() - cpu);
                let after = thread_ticks();
                ticks[k].0 += after.0 - before.0;
                ticks[k].1 += after.1 - before.1;
            }
        }
        let (t, cpu) = (Instant::now(), thread_cpu());
        let by_proc = counters[0].proc_net(Path::new("/proc/net")).unwrap();
        eprintln!(
            "ports {ports:?}, /proc/net/tcp and tcp6: {by_proc} established in {:.1} ms wall {:.1} ms CPU",
            t.elapsed().as_secs_f64() * 1e3,
            (thread_cpu() - cpu).as_secs_f64() * 1e3
        );
        for (k, (label, _)) in ways.iter().enumerate() {
            let mean = cpus[k].iter().sum::<Duration>().as_secs_f64() * 1e3 / samples as f64;
            let (user, sys) = ticks[k];
            let user_share = user as f64 / (user + sys).max(1) as f64;
            let c = &counters[k];
            eprintln!(
                "ports {ports:?}, {label}: {} established; first {:.1} ms wall {:.1} ms CPU; median of {samples} {:.1} ms wall {:.1} ms CPU (mean {mean:.1}: user {:.1}, sys {:.1}); {} recvs, {} bytes",
                want.unwrap_or(0),
                firsts[k].0.as_secs_f64() * 1e3,
                firsts[k].1.as_secs_f64() * 1e3,
                median(walls[k].clone()),
                median(cpus[k].clone()),
                mean * user_share,
                mean * (1.0 - user_share),
                c.recvs,
                c.bytes,
            );
        }
    }

    /// Real sockets: both methods agree with what was opened, over IPv4
    /// and IPv6, and count only established sockets on the named ports.
    /// `HAPGENT_BENCH_CONNECTIONS=N` opens N connections instead of 200,
    /// and `HAPGENT_BENCH_PORT=P[,P...]` also times the ways of counting
    /// those ports, whose connections other processes hold (one process
    /// may not hold 200,000 descriptors).
    #[test]
    fn counts_real_connections() {
        let n: usize = std::env::var("HAPGENT_BENCH_CONNECTIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        if let Ok(list) = std::env::var("HAPGENT_BENCH_PORT") {
            let ports: Vec<u16> = list.split(',').map(|p| p.parse().unwrap()).collect();
            bench(&ports);
        }
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let v6 = TcpListener::bind(("::1", port)).ok();
        // Up to 25,000 per destination address (the ephemeral range has
        // 28,232 ports per 4-tuple), spread over 127.0.0.1, .2, ...
        let mut kept = Vec::with_capacity(2 * n);
        for i in 0..n {
            let dst = std::net::Ipv4Addr::new(127, 0, 0, 1 + (i / 25_000) as u8);
            kept.push(TcpStream::connect((dst, port)).unwrap());
            kept.push(v4.accept().unwrap().0);
        }
        let mut v6_count = 0;
        if let Some(l) = &v6 {
            for _ in 0..3 {
                kept.push(TcpStream::connect(("::1", port)).unwrap());
                kept.push(l.accept().unwrap().0);
                v6_count += 1;
            }
        }
        // Not counted: another port, and a listener.
        kept.push(TcpStream::connect(other.local_addr().unwrap()).unwrap());
        kept.push(other.accept().unwrap().0);
        let want = (n + v6_count) as u64;
        assert_eq!(measure(&[port], "in-process"), want);
        let mut per_family = Counter::new(&[port]);
        per_family.compat = false;
        assert_eq!(per_family.netlink().unwrap(), want);
        // The filter alone, without the port in the socket id.
        let mut by_filter = Counter::new(&[port]);
        by_filter.sport = 0;
        assert_eq!(by_filter.netlink().unwrap(), want);
        let other_port = other.local_addr().unwrap().port();
        let mut both = Counter::new(&[port, other_port]);
        assert_eq!(both.netlink().unwrap(), want + 1);
        assert!(both.recvs >= 1 && both.bytes > 0);

        // A paced counter returns its last count until the next is due:
        // at a billionth of a core, not within this test.
        let proc_net = Path::new("/proc/net");
        let mut paced = Counter::new(&[other_port]).paced(Pace::new(1e-9));
        let mut every = Counter::new(&[other_port]);
        assert_eq!(paced.count(proc_net).unwrap(), (1, Method::Netlink));
        kept.push(TcpStream::connect(other.local_addr().unwrap()).unwrap());
        kept.push(other.accept().unwrap().0);
        assert_eq!(every.count(proc_net).unwrap(), (2, Method::Netlink));
        assert_eq!(paced.count(proc_net).unwrap(), (1, Method::Netlink));
    }
}
