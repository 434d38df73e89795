//! The `tcp` check: a connection is established, then closed.
//!
//! Connecting is all it does; it sends nothing, so a service that logs
//! idle connections logs one per interval. The timeout is the runner's.

use super::check::Outcome;
use smol::Async;
use std::io;
use std::net::{SocketAddr, TcpStream};

/// An I/O error as an outcome.
pub fn outcome_of(e: &io::Error) -> Outcome {
    match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::ConnectionRefused, _) => Outcome::Refused,
        (_, Some(errno)) => Outcome::Error(errno),
        _ => Outcome::BadReply,
    }
}

/// Connects to `addr` and closes the connection.
pub async fn connect(addr: SocketAddr) -> Outcome {
    match Async::<TcpStream>::connect(addr).await {
        Ok(_) => Outcome::Connected,
        Err(e) => outcome_of(&e),
    }
}
