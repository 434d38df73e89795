//! The listening sockets: bound from `ip` and `port`, or adopted from
//! systemd socket activation (see `systemd::adopt`).
//!
//! Binding raises the backlog to the system's maximum (see
//! `sys::raise_backlog`) and explains each failure in the operator's terms.
//! This module does not accept connections (see `server`).

use crate::config::Config;
use crate::error::Error;
use crate::{sys, systemd};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};

/// The listeners the configuration asks for.
pub fn listeners(config: &Config) -> Result<Vec<TcpListener>, Error> {
    if config.systemd {
        systemd::adopt()
    } else {
        bind(&config.ip, config.port)
    }
}

/// Binds one listener per address.
pub fn bind(ips: &[IpAddr], port: u16) -> Result<Vec<TcpListener>, Error> {
    let mut bound: Vec<TcpListener> = Vec::new();
    for ip in ips {
        let addr = SocketAddr::new(*ip, port);
        let listener = TcpListener::bind(addr).map_err(|e| {
            let own: Vec<SocketAddr> = bound.iter().filter_map(|l| l.local_addr().ok()).collect();
            Error::Runtime(bind_error(addr, &e, &own))
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
    let dual_stack = own
        .iter()
        .find(|o| overlaps(**o, addr))
        .map(|o| o.ip().to_string());
    let hint = match (e.kind(), dual_stack) {
        (io::ErrorKind::AddrInUse, Some(other)) => format!(
            " (hapgent already listens on {other}, which is dual-stack on Linux and \
             covers {} too: list only one of them)",
            addr.ip()
        ),
        (io::ErrorKind::AddrInUse, None) => {
            " (another process holds this port; is hapgent already running?)".into()
        }
        (io::ErrorKind::PermissionDenied, _) => {
            " (ports below 1024 need CAP_NET_BIND_SERVICE)".into()
        }
        (io::ErrorKind::AddrNotAvailable, _) => {
            " (no interface on this host has that address)".into()
        }
        _ => String::new(),
    };
    format!("cannot listen on {addr}: {e}{hint}")
}

/// Whether a listener on `a` takes the port from one on `b`: the same
/// port, and one of them the IPv6 wildcard (dual-stack) while the other is
/// an IPv4 address or the IPv4 wildcard.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    let v6_any = |s: SocketAddr| s.ip() == IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED);
    a.port() == b.port() && ((v6_any(a) && b.is_ipv4()) || (v6_any(b) && a.is_ipv4()))
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
        let ours = bind_error(any4, &in_use, &[any6]);
        assert!(ours.contains("dual-stack"), "{ours}");
        assert!(!ours.contains("another process"), "{ours}");
        let theirs = bind_error(any4, &in_use, &[other6]);
        assert!(theirs.contains("another process"), "{theirs}");
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(bind_error(any4, &denied, &[]).contains("CAP_NET_BIND_SERVICE"));
    }
}
