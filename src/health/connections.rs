//! Counting established TCP connections by local port.
//!
//! The `connections` monitor asks the kernel through NETLINK_SOCK_DIAG
//! with a filter program (the same bytecode `ss` compiles for
//! `sport = :80 or sport = :443`), so the kernel walks its socket table
//! and sends back only the established sockets on those ports; the agent
//! counts the messages without reading them. On a host with 100,000
//! connections that is an order of magnitude cheaper than formatting and
//! parsing /proc/net/tcp (BENCHMARKS.md has the figures). When netlink is
//! refused (systemd's `RestrictAddressFamilies=` without AF_NETLINK), the
//! count falls back to parsing /proc/net/tcp and /proc/net/tcp6.
//!
//! Both families are counted: an IPv4 client of a dual-stack listener is
//! an AF_INET6 socket. The `unsafe` libc calls of a netlink socket are
//! fenced in [`netlink`] (the health modules' only other one is
//! `capacity`'s statvfs).

use std::io;
use std::path::Path;

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

/// The netlink request: header, inet_diag_req_v2 for established TCP
/// sockets of `family`, and the filter as an INET_DIAG_REQ_BYTECODE
/// attribute.
pub fn request(family: u8, filter: &[u8], seq: u32) -> Vec<u8> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_DUMP: u16 = 0x300;
    const INET_DIAG_REQ_BYTECODE: u16 = 1;
    let len = 16 + 56 + 4 + filter.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // inet_diag_req_v2: family, protocol, ext, pad, states, then a zero
    // inet_diag_sockid (48 bytes; ignored by a dump).
    m.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
    m.extend_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
    m.extend_from_slice(&[0u8; 48]);
    m.extend_from_slice(&((4 + filter.len()) as u16).to_ne_bytes());
    m.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    m.extend_from_slice(filter);
    m
}

/// The same request in the older form (`TCPDIAG_GETSOCK`, struct
/// inet_diag_req): the kernel answers it for both address families in
/// one walk of its socket table, where the newer form walks it once per
/// family.
pub fn request_both_families(filter: &[u8], seq: u32) -> Vec<u8> {
    const TCPDIAG_GETSOCK: u16 = 18;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_DUMP: u16 = 0x300;
    const INET_DIAG_REQ_BYTECODE: u16 = 1;
    let len = 16 + 60 + 4 + filter.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // inet_diag_req: family, src_len, dst_len, ext, a zero sockid (48
    // bytes), states, dbs.
    m.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
    m.extend_from_slice(&[0u8; 48]);
    m.extend_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&((4 + filter.len()) as u16).to_ne_bytes());
    m.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    m.extend_from_slice(filter);
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

/// A counter of established connections on some local ports, keeping its
/// netlink socket and buffer between samples.
pub struct Counter {
    ports: Vec<u16>,
    filter: Vec<u8>,
    socket: Option<netlink::Socket>,
    buf: Vec<u8>,
    seq: u32,
    /// Ask in the older form, one walk for both families.
    pub compat: bool,
}

/// How a count was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Netlink,
    ProcNetTcp,
}

impl Counter {
    /// A counter for `ports` (non-empty).
    pub fn new(ports: &[u16]) -> Counter {
        Counter {
            ports: ports.to_vec(),
            filter: port_filter(ports),
            socket: None,
            buf: Vec::new(),
            seq: 0,
            compat: true,
        }
    }

    /// Counts through netlink, opening the socket on first use.
    pub fn netlink(&mut self) -> io::Result<u64> {
        if self.socket.is_none() {
            self.socket = Some(netlink::Socket::open()?);
            // The kernel fills at most 32 KiB per message batch.
            self.buf = vec![0u8; 64 << 10];
        }
        let result = if self.compat {
            self.seq = self.seq.wrapping_add(1);
            let request = request_both_families(&self.filter, self.seq);
            self.dump(&request)
        } else {
            self.seq = self.seq.wrapping_add(1);
            let v4 = request(libc::AF_INET as u8, &self.filter, self.seq);
            self.dump(&v4).and_then(|n| {
                self.seq = self.seq.wrapping_add(1);
                let v6 = request(libc::AF_INET6 as u8, &self.filter, self.seq);
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

    /// Netlink, else /proc/net (logged by the caller via the method).
    pub fn count(&mut self, proc_net: &Path) -> io::Result<(u64, Method)> {
        match self.netlink() {
            Ok(n) => Ok((n, Method::Netlink)),
            Err(_) => Ok((self.proc_net(proc_net)?, Method::ProcNetTcp)),
        }
    }
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
        let r = request(libc::AF_INET as u8, &port_filter(&[80]), 9);
        assert_eq!(r.len(), 16 + 56 + 4 + 16);
        assert_eq!(
            u32::from_ne_bytes(r[0..4].try_into().unwrap()) as usize,
            r.len()
        );
    }

    /// Times both methods on `ports`, checks they agree, prints the
    /// figures and returns the count.
    fn measure(ports: &[u16], label: &str) -> u64 {
        let mut per_family = Counter::new(ports);
        per_family.compat = false;
        let (t, cpu) = (std::time::Instant::now(), thread_cpu());
        let n = per_family.netlink().unwrap();
        eprintln!(
            "{label}: per family: {n} in {:?} wall, {:?} CPU",
            t.elapsed(),
            thread_cpu() - cpu
        );
        let mut counter = Counter::new(ports);
        let t = std::time::Instant::now();
        let by_netlink = counter.netlink().unwrap();
        let first = t.elapsed();
        const SAMPLES: u32 = 5;
        let (t, cpu) = (std::time::Instant::now(), thread_cpu());
        for _ in 0..SAMPLES {
            assert_eq!(counter.netlink().unwrap(), by_netlink);
        }
        let netlink_each = (t.elapsed() / SAMPLES, (thread_cpu() - cpu) / SAMPLES);
        let (t, cpu) = (std::time::Instant::now(), thread_cpu());
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

    /// Real sockets: both methods agree with what was opened, over IPv4
    /// and IPv6, and count only established sockets on the named ports.
    /// `HAPGENT_BENCH_CONNECTIONS=N` opens N connections instead of 200,
    /// and `HAPGENT_BENCH_PORT=P` also times a count of port P, whose
    /// connections other processes hold (how BENCHMARKS.md was measured:
    /// one process cannot hold 200,000 descriptors here).
    #[test]
    fn counts_real_connections() {
        let n: usize = std::env::var("HAPGENT_BENCH_CONNECTIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        if let Some(p) = std::env::var("HAPGENT_BENCH_PORT")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            measure(&[p], &format!("port {p}"));
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
        let mut both = Counter::new(&[port, other.local_addr().unwrap().port()]);
        assert_eq!(both.netlink().unwrap(), want + 1);
    }

    fn thread_cpu() -> std::time::Duration {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}
