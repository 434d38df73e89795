//! The listening sockets: bound from `ip` and `port`, or adopted from
//! systemd socket activation (see `systemd::adopt`).
//!
//! Binding raises the backlog to the system's maximum (see
//! `sys::raise_backlog`) and explains each failure in the operator's terms.
//! This module does not accept connections (see `server`).

use crate::config::Config;
use crate::exit::Error;
use crate::{sys, systemd};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};

/// The listeners the configuration asks for.
pub fn listeners(config: &Config) -> Result<Vec<TcpListener>, Error> {
    if config.systemd {
        systemd::adopt()
    } else {
        bind(&config.ip, config.port, &[])
    }
}

/// Binds one listener per address; `held` are the addresses hapgent
/// already listens on and keeps open meanwhile (a reload closes its old
/// listeners only once the new ones are bound), named when they are what
/// takes the port.
pub fn bind(ips: &[IpAddr], port: u16, held: &[SocketAddr]) -> Result<Vec<TcpListener>, Error> {
    let mut bound: Vec<TcpListener> = Vec::new();
    for ip in ips {
        let addr = SocketAddr::new(*ip, port);
        let listener = TcpListener::bind(addr).map_err(|e| {
            let own: Vec<SocketAddr> = bound.iter().filter_map(|l| l.local_addr().ok()).collect();
            Error::Runtime(explain(addr, &e, &own, held))
        })?;
        if let Err(e) = sys::raise_backlog(&listener) {
            crate::warn!("cannot raise the listen backlog on {addr}: {e}; keeping 128");
        }
        bound.push(listener);
    }
    Ok(bound)
}

/// One line that says why an address could not be used and what to check;
/// `own` are the addresses hapgent itself already listens on.
pub fn bind_error(addr: SocketAddr, e: &io::Error, own: &[SocketAddr]) -> String {
    explain(addr, e, own, &[])
}

/// `bind_error`, where `own` are the addresses just bound beside it and
/// `held` those hapgent listens on until the new ones are bound (at a
/// reload).
fn explain(addr: SocketAddr, e: &io::Error, own: &[SocketAddr], held: &[SocketAddr]) -> String {
    let dual_stack = own
        .iter()
        .find(|o| dual(**o, addr))
        .map(|o| o.ip().to_string());
    let replaced = held.iter().find(|h| overlaps(**h, addr));
    let hint = match (e.kind(), dual_stack, replaced) {
        (io::ErrorKind::AddrInUse, Some(other), _) => format!(
            " (hapgent already listens on {other}, which is dual-stack on Linux and \
             covers {} too: list only one of them)",
            addr.ip()
        ),
        (io::ErrorKind::AddrInUse, None, Some(old)) => format!(
            " (hapgent's own listener on {old} holds it: a reload binds the new addresses \
             before it closes the old ones, and {old} covers {addr} or is covered by it; \
             restart hapgent to make this change, or change the port with it)"
        ),
        (io::ErrorKind::AddrInUse, None, None) => {
            " (another process holds this port; is hapgent already running?)".into()
        }
        (io::ErrorKind::PermissionDenied, ..) => {
            " (ports below 1024 need CAP_NET_BIND_SERVICE)".into()
        }
        (io::ErrorKind::AddrNotAvailable, ..) => {
            " (no interface on this host has that address)".into()
        }
        _ => String::new(),
    };
    format!("cannot listen on {addr}: {e}{hint}")
}

/// Whether a listener on `a` takes the port from one on `b`: the same
/// port, and one of them the IPv6 wildcard (dual-stack) while the other is
/// an IPv4 address or the IPv4 wildcard.
fn dual(a: SocketAddr, b: SocketAddr) -> bool {
    let v6_any = |s: SocketAddr| s.ip() == IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED);
    a.port() == b.port() && ((v6_any(a) && b.is_ipv4()) || (v6_any(b) && a.is_ipv4()))
}

/// Whether listeners on `a` and `b` cannot both be open: the same port,
/// and the same address (an IPv4-mapped IPv6 address is the IPv4 one), or
/// a wildcard that covers the other (`0.0.0.0` every IPv4 address, `::`
/// every address on Linux).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    let covers = |w: IpAddr, x: IpAddr| w.is_unspecified() && (w.is_ipv6() || x.is_ipv4());
    let (x, y) = (a.ip().to_canonical(), b.ip().to_canonical());
    a.port() == b.port() && (x == y || covers(x, y) || covers(y, x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_errors_name_the_cause() {
        let in_use = io::Error::from(io::ErrorKind::AddrInUse);
        let any4: SocketAddr = "0.0.0.0:9777".parse().unwrap();
        let any6: SocketAddr = "[::]:9777".parse().unwrap();
        let other6: SocketAddr = "[::]:9778".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:9777".parse().unwrap();
        let ours = explain(any4, &in_use, &[any6], &[]);
        assert!(ours.contains("dual-stack"), "{ours}");
        assert!(!ours.contains("another process"), "{ours}");
        let theirs = explain(any4, &in_use, &[other6], &[]);
        assert!(theirs.contains("another process"), "{theirs}");
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(explain(any4, &denied, &[], &[]).contains("CAP_NET_BIND_SERVICE"));
        // At a reload, hapgent's own listener that is being replaced.
        // (new address, held, names the held one)
        for (addr, held, named) in [
            (any4, any6, true),
            (any6, any4, true),
            (any4, lo, true),
            (lo, any4, true),
            (lo, any6, true),
            (any4, other6, false),
            (lo, "127.0.0.2:9777".parse().unwrap(), false),
            (any6, "[::1]:9777".parse().unwrap(), true),
            ("[::ffff:127.0.0.1]:9777".parse().unwrap(), lo, true),
        ] {
            let text = explain(addr, &in_use, &[], &[held]);
            let own = format!("hapgent's own listener on {held} holds it");
            assert_eq!(text.contains(&own), named, "{text}");
            assert_eq!(text.contains("another process"), !named, "{text}");
        }
    }
}
