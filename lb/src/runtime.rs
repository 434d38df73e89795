//! A client for HAProxy's CLI sockets: the runtime API (`stats socket …
//! level admin`) and the master CLI (`haproxy -W -S PATH`).
//!
//! One command per connection: connect, send the line, half-close, read
//! until HAProxy closes. Commands are built here only from fixed words and
//! names already checked by `names`; this module takes no free text from
//! callers. Every call has a deadline, so a wedged HAProxy cannot hang a
//! request or `wait`.

use crate::procs::{self, Procs};
use crate::stat::{self, Backend};
use smol::Async;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Longest time one CLI exchange may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// Largest answer read; `show stat` for thousands of servers fits.
const MAX_ANSWER: u64 = 64 << 20;

/// Sends one command and returns HAProxy's whole answer.
pub async fn query(socket: &Path, command: &str) -> Result<String, String> {
    debug_assert!(!command.contains(['\n', ';']));
    let exchange = async {
        let mut stream = Async::<UnixStream>::connect(socket)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        (&mut stream)
            .take(MAX_ANSWER)
            .read_to_end(&mut answer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    let timeout = async {
        smol::Timer::after(DEADLINE).await;
        Err(format!("no complete answer within {}s", DEADLINE.as_secs()))
    };
    exchange.or(timeout).await.map_err(|e: String| {
        format!(
            "HAProxy socket {} ({command:?}): {e} (is HAProxy running with this socket at level admin?)",
            socket.display()
        )
    })
}

/// Every backend and server, from `show stat` and `show servers state`.
pub async fn backends(socket: &Path) -> Result<Vec<Backend>, String> {
    let stat = query(socket, "show stat").await?;
    let state = query(socket, "show servers state").await?;
    stat::parse(&stat, &state).map_err(|e| format!("HAProxy socket {}: {e}", socket.display()))
}

/// The PID of the process answering on the runtime API socket.
pub async fn pid(socket: &Path) -> Result<u32, String> {
    let info = query(socket, "show info").await?;
    stat::info_pid(&info).ok_or_else(|| {
        format!(
            "HAProxy socket {}: `show info` has no Pid line",
            socket.display()
        )
    })
}

/// The master, its reload counters and workers, from the master CLI.
pub async fn procs(master: &Path) -> Result<Procs, String> {
    let text = query(master, "show proc").await?;
    procs::parse(&text).map_err(|e| format!("master socket {}: {e}", master.display()))
}

/// Sleeps for `d` (a named helper keeps polling loops readable).
pub async fn sleep(d: Duration) {
    smol::Timer::after(d).await;
}
