//! The control protocol, both ends: the control socket, where `hapgent
//! ctl` (or any tool speaking the protocol in `wire`, documented in
//! docs/control.md) asks the running agent for its state and changes it,
//! and `hapgent ctl` itself (`client`), whose commands are `VERBS`.
//!
//! A Unix stream socket, created atomically (bound under a temporary name,
//! given mode 0660 and the control group, then renamed into place), served
//! on the agent's executor. Who may use it is decided by the kernel's
//! record of the peer (SO_PEERCRED, SO_PEERGROUPS): root, hapgent's own
//! user, or members of `control_group`; anyone else gets a
//! "permission-denied" answer and a log line. One request per connection,
//! one answer; refusals are logged at most once a minute (with a count),
//! so a stranger cannot flood the log. A request must arrive whole within
//! `READ_DEADLINE` and be at most `wire::MAX_REQUEST` bytes; at most
//! `MAX_CONNECTIONS` allowed peers are served at once (a
//! `hapgent_common::slots` budget, taken once the peer passed, so strangers
//! cannot use up the operators' places). Nothing here ever runs on the
//! path that answers a probe: each connection is its own task.
//!
//! The socket file is `hapgent_common::unix_socket`'s, as hapgent-lb's:
//! created atomically, refused while another hapgent answers on it, a
//! stale socket replaced, never what is not a socket (a regular file, a
//! directory or a link at its path is an error at start or reload), and at
//! stop removed only while it is still this socket (same device and inode).
//! A reload at the same path re-creates our own socket in place. A path
//! equal to a state or flag file is refused by `config`. This module words
//! the errors with hapgent's settings.
//!
//! The parts: `wire` (the request and answer types, pure), `access` (who
//! may connect), `socket` (the file: created, replaced, removed; whether it
//! is opened at all, see `open`), `connection` (the accept loop and one
//! connection's framing), `handlers` and `wait_seen` (what each request
//! does and answers), `client` (`hapgent ctl`), `verbs` (its commands).
//! How a change is served and saved is `service`'s business
//! (`Service::set`).

mod access;
pub(crate) mod client;
mod connection;
mod handlers;
mod socket;
pub mod verbs;
mod wait_seen;
pub mod wire;

pub(crate) use connection::serve;
pub(crate) use socket::{Socket, open, remove};
pub use verbs::{Does, OPTIONS, VERBS, Verb};

use std::time::Duration;

/// A duration as `12.3 s`.
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
