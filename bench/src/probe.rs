//! One agent check as HAProxy makes it, with a blocking socket: connect,
//! send the agent-send payload if any, read one line, close with a reset;
//! and the grammar every reply must follow. The load generator (`load`)
//! makes the same check non-blocking, many at a time; both report a
//! failure as a `ProbeError`, counted by its `ErrorKind`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::Duration;

/// The ways a probe can fail, as the report counts them (its `errors`,
/// in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No connection: refused, or no socket or source address to make one.
    Connect,
    /// The connection broke while sending the payload or reading the reply;
    /// also a metrics scrape that failed, and an agent or floor that died.
    Io,
    /// No reply within --timeout-ms (and, with --check, a check never made).
    Timeout,
    /// Closed before a line ended: HAProxy ignores such a reply.
    Incomplete,
    /// A line that is no agent-check reply, or not the --expect'ed one.
    Malformed,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Connect,
        ErrorKind::Io,
        ErrorKind::Timeout,
        ErrorKind::Incomplete,
        ErrorKind::Malformed,
    ];

    /// The name in the report: the JSON key, and `NAME errors: N` in text.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Io => "io",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Incomplete => "incomplete",
            ErrorKind::Malformed => "malformed",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why one probe failed, with what the agent sent when it sent something.
#[derive(Debug)]
pub enum ProbeError {
    Connect(std::io::Error),
    Io(std::io::Error),
    Timeout,
    /// Closed before a line terminator: HAProxy ignores such a reply.
    Incomplete(Vec<u8>),
    Malformed(Vec<u8>, String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Connect(e) => write!(f, "connect: {e}"),
            ProbeError::Io(e) => write!(f, "read/write: {e}"),
            ProbeError::Timeout => write!(f, "timed out"),
            ProbeError::Incomplete(b) => {
                write!(
                    f,
                    "closed before a line ended: {:?}",
                    String::from_utf8_lossy(b)
                )
            }
            ProbeError::Malformed(b, why) => {
                write!(f, "malformed reply {:?}: {why}", String::from_utf8_lossy(b))
            }
        }
    }
}

impl ProbeError {
    /// The kind it is counted as.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProbeError::Connect(_) => ErrorKind::Connect,
            ProbeError::Io(_) => ErrorKind::Io,
            ProbeError::Timeout => ErrorKind::Timeout,
            ProbeError::Incomplete(_) => ErrorKind::Incomplete,
            ProbeError::Malformed(..) => ErrorKind::Malformed,
        }
    }
}

/// Sets socket option `name` at `level` of `fd` to `value`.
pub fn setsockopt<T>(fd: i32, level: i32, name: i32, value: &T) -> std::io::Result<()> {
    // SAFETY: value points to a live T of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A connected TCP socket with a connect/read/write timeout, and SO_LINGER 0
/// so that close() sends a reset, as HAProxy does after reading the line
/// (no TIME_WAIT left behind on either side).
pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ProbeError> {
    let SocketAddr::V4(v4) = addr else {
        return Err(ProbeError::Connect(std::io::Error::other("IPv4 only")));
    };
    // SAFETY: plain socket(2); the fd is owned by the TcpStream below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(ProbeError::Connect(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh socket nobody else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    // `as _`: musl's libc deprecates naming time_t and suseconds_t.
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as _,
        tv_usec: timeout.subsec_micros() as _,
    };
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let opts = setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv)
        .and_then(|()| setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv))
        .and_then(|()| setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, &linger));
    opts.map_err(ProbeError::Connect)?;
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sin is a valid sockaddr_in; a blocking connect honours SO_SNDTIMEO.
    let r = unsafe {
        libc::connect(
            fd,
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(if is_timeout(&e) {
            ProbeError::Timeout
        } else {
            ProbeError::Connect(e)
        });
    }
    Ok(stream)
}

/// Whether an I/O error is a socket timeout (SO_RCVTIMEO, SO_SNDTIMEO).
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ) || e.raw_os_error() == Some(libc::EINPROGRESS)
}

/// One agent check: connect, send the payload if any, read up to the first
/// line terminator, close with a reset. Returns the line (terminator
/// excluded) if it is well-formed.
pub fn probe(
    addr: SocketAddr,
    send: Option<&[u8]>,
    timeout: Duration,
) -> Result<Vec<u8>, ProbeError> {
    let mut stream = connect(addr, timeout)?;
    if let Some(payload) = send {
        stream.write_all(payload).map_err(|e| {
            if is_timeout(&e) {
                ProbeError::Timeout
            } else {
                ProbeError::Io(e)
            }
        })?;
    }
    let mut buf = [0u8; 512];
    let mut len = 0;
    loop {
        if let Some(end) = buf[..len].iter().position(|&b| b == b'\n' || b == b'\r') {
            let line = buf[..end].to_vec();
            return match well_formed(&line) {
                Ok(()) => Ok(line),
                Err(why) => Err(ProbeError::Malformed(line, why)),
            };
        }
        if len == buf.len() {
            return Err(ProbeError::Malformed(
                buf.to_vec(),
                "no line end in 512 bytes".into(),
            ));
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Err(ProbeError::Incomplete(buf[..len].to_vec())),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(ProbeError::Timeout),
            Err(e) => return Err(ProbeError::Io(e)),
        }
    }
}

/// An agent-check reply line as HAProxy parses it (README, "Replies"): printable
/// ASCII under 128 bytes; words separated by spaces, tabs or commas, each a
/// known word, `N%`, `maxconn:N` or `weight:N`, or `#` starting a
/// description that runs to the end of the line; at least one word.
pub fn well_formed(line: &[u8]) -> Result<(), String> {
    if line.len() >= 128 {
        return Err(format!("{} bytes, more than 127", line.len()));
    }
    if let Some(b) = line
        .iter()
        .find(|&&b| !(b == b'\t' || (0x20..0x7f).contains(&b)))
    {
        return Err(format!("byte 0x{b:02x} is not printable ASCII"));
    }
    let text = std::str::from_utf8(line).expect("ASCII");
    let mut words = 0;
    let mut rest = text;
    while let Some(start) = rest.find(|c| !matches!(c, ' ' | '\t' | ',')) {
        rest = &rest[start..];
        if rest.starts_with('#') {
            break;
        }
        let end = rest.find([' ', '\t', ',']).unwrap_or(rest.len());
        let word = rest[..end].to_ascii_lowercase();
        rest = &rest[end..];
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let ok = matches!(
            word.as_str(),
            "up" | "down" | "fail" | "stopped" | "ready" | "drain" | "maint"
        ) || word.strip_suffix('%').is_some_and(digits)
            || word.strip_prefix("maxconn:").is_some_and(digits)
            || word.strip_prefix("weight:").is_some_and(digits);
        if !ok {
            return Err(format!("unknown word {word:?}"));
        }
        words += 1;
    }
    if words == 0 {
        return Err("no word before the description or end".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::well_formed;

    #[test]
    fn replies() {
        for ok in [
            "up ready 100%",
            "UP 77% maxconn:300",
            "75% ready",
            "down # deploying v2",
            "maint,weight:10",
            "fail\t#",
        ] {
            assert_eq!(well_formed(ok.as_bytes()), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "failed",
            "up 1x%",
            "# only a description",
            "up\u{7f}",
            "down#x",
        ] {
            assert!(well_formed(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
