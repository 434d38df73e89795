//! What a small local server does with its connections, the same way in
//! both programs: accepting them without ever giving up, and closing each
//! without destroying its answer.
//!
//! - [`accept_loop`]: accepts forever on any [`Accept`] listener and hands
//!   each connection to the caller. An error never ends the loop (a daemon
//!   must outlive a file-descriptor shortage): it waits with a doubling
//!   [`backoff`] and logs the first failure and then those at powers of
//!   two, so a long outage does not flood the journal. After `burst`
//!   connections in a row it yields, so the tasks it spawned, other
//!   listeners and signals run during a flood.
//! - [`linger`]: after the answer, half-closes and reads and drops what
//!   the client still sends (bounded in bytes and time): closing a socket
//!   with unread input makes the kernel send a reset, which can destroy
//!   the answer before the client reads it.
//!
//! The socket file is `unix_socket`'s, who may connect is `creds`'s and
//! how many are served at once is `slots`'s; what a connection says is the
//! caller's business.

use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::{Async, Timer, future};
use std::future::Future;
use std::io;
use std::time::Duration;

/// A listener [`accept_loop`] can serve.
pub trait Accept {
    /// What one accepted connection is (a stream and its peer's address).
    type Connection;

    /// Waits for the next connection.
    fn accept(&self) -> impl Future<Output = io::Result<Self::Connection>>;

    /// The listener's address, for log lines.
    fn name(&self) -> String;
}

impl Accept for smol::net::TcpListener {
    type Connection = (smol::net::TcpStream, std::net::SocketAddr);

    fn accept(&self) -> impl Future<Output = io::Result<Self::Connection>> {
        smol::net::TcpListener::accept(self)
    }

    fn name(&self) -> String {
        self.local_addr()
            .map_or_else(|_| "a TCP listener".into(), |a| a.to_string())
    }
}

impl Accept for smol::net::unix::UnixListener {
    type Connection = (smol::net::unix::UnixStream, smol::net::unix::SocketAddr);

    fn accept(&self) -> impl Future<Output = io::Result<Self::Connection>> {
        smol::net::unix::UnixListener::accept(self)
    }

    fn name(&self) -> String {
        unix_name(
            self.local_addr()
                .ok()
                .as_ref()
                .and_then(|a| a.as_pathname()),
        )
    }
}

impl Accept for Async<std::net::TcpListener> {
    type Connection = (Async<std::net::TcpStream>, std::net::SocketAddr);

    fn accept(&self) -> impl Future<Output = io::Result<Self::Connection>> {
        Async::<std::net::TcpListener>::accept(self)
    }

    fn name(&self) -> String {
        self.get_ref()
            .local_addr()
            .map_or_else(|_| "a TCP listener".into(), |a| a.to_string())
    }
}

impl Accept for Async<std::os::unix::net::UnixListener> {
    type Connection = (
        Async<std::os::unix::net::UnixStream>,
        std::os::unix::net::SocketAddr,
    );

    fn accept(&self) -> impl Future<Output = io::Result<Self::Connection>> {
        Async::<std::os::unix::net::UnixListener>::accept(self)
    }

    fn name(&self) -> String {
        let addr = self.get_ref().local_addr().ok();
        unix_name(addr.as_ref().and_then(|a| a.as_pathname()))
    }
}

fn unix_name(path: Option<&std::path::Path>) -> String {
    path.map_or_else(|| "a Unix socket".into(), |p| p.display().to_string())
}

/// Accepts connections on `listener` for ever, handing each to `serve`,
/// which must not wait (it answers at once or spawns a task). Yields after
/// `burst` connections in a row. Dropping the future (its task) stops it.
pub async fn accept_loop<L: Accept>(
    listener: &L,
    burst: u32,
    mut serve: impl FnMut(L::Connection),
) {
    let mut failures = Failures::new(listener.name());
    let mut in_a_row: u32 = 0;
    loop {
        match listener.accept().await {
            Ok(connection) => {
                failures.accepted();
                serve(connection);
                in_a_row += 1;
                if in_a_row >= burst {
                    in_a_row = 0;
                    future::yield_now().await;
                }
            }
            Err(e) => {
                in_a_row = 0;
                failures.failed(&e).await;
            }
        }
    }
}

/// Consecutive accept failures on one listener: how long to wait, and
/// what to log.
struct Failures {
    place: String,
    count: u32,
}

impl Failures {
    fn new(place: String) -> Failures {
        Failures { place, count: 0 }
    }

    /// A connection came: the failures, if any, are over.
    fn accepted(&mut self) {
        if self.count > 0 {
            crate::info!(
                "accepting on {} again after {} failed attempts",
                self.place,
                self.count
            );
            self.count = 0;
        }
    }

    /// Counts `e` (unless the client merely left before it was accepted,
    /// or a signal landed), logs it the first time and at powers of two,
    /// and waits before the next attempt.
    async fn failed(&mut self, e: &io::Error) {
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
        ) {
            return;
        }
        self.count = self.count.saturating_add(1);
        let delay = backoff(self.count);
        if self.count.is_power_of_two() {
            crate::error!(
                "accept on {} failed ({} in a row): {e}; retrying in {delay:?}",
                self.place,
                self.count
            );
        }
        Timer::after(delay).await;
    }
}

/// Delay after `failures` consecutive accept errors: 10 ms, doubling, at
/// most 1 s. Pure.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(7);
    Duration::from_millis((10u64 << exp).min(1000))
}

/// Half-closes `stream`, then reads and drops what the client still sends,
/// at most `max_bytes` and for at most `max_time`.
pub async fn linger<S>(stream: &mut S, max_bytes: usize, max_time: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use smol::future::FutureExt;
    let _ = stream.close().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0usize;
        while total < max_bytes {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    drain
        .or(async {
            Timer::after(max_time).await;
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::io::{Read, Write};
    use std::rc::Rc;

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        let ms: Vec<u128> = [1, 2, 3, 4, 7, 8, 9, 100, u32::MAX]
            .into_iter()
            .map(|f| backoff(f).as_millis())
            .collect();
        assert_eq!(ms, [10, 20, 40, 80, 640, 1000, 1000, 1000, 1000]);
    }

    /// Every connection reaches `serve`, also past a burst; the loop ends
    /// when its future is dropped.
    #[test]
    fn accepted_connections_are_handed_over() {
        let listener = smol::block_on(smol::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let clients: Vec<_> = (0..5)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let seen = Rc::new(Cell::new(0));
        let count = Rc::clone(&seen);
        let ex = smol::LocalExecutor::new();
        let task = ex.spawn(async move {
            accept_loop(&listener, 2, |_| count.set(count.get() + 1)).await;
        });
        smol::block_on(ex.run(async {
            while seen.get() < clients.len() {
                future::yield_now().await;
            }
        }));
        drop(task);
        assert_eq!(seen.get(), 5);
    }

    /// The answer survives input the server never read; the drain ends
    /// at the client's end, or at its byte or time bound.
    #[test]
    fn linger_keeps_the_answer() {
        let (mine, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        theirs.write_all(&[b'x'; 50]).unwrap();
        theirs.shutdown(std::net::Shutdown::Write).unwrap();
        let mut mine = Async::new(mine).unwrap();
        let hour = Duration::from_secs(3600);
        smol::block_on(async {
            mine.write_all(b"answer").await.unwrap();
            linger(&mut mine, 100, hour).await;
        });
        drop(mine);
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"answer");

        // A client that keeps sending is read up to the bound; one that
        // sends nothing and keeps its end open, up to the time bound.
        let (mine, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        theirs.write_all(&[b'x'; 10_000]).unwrap();
        let mut mine = Async::new(mine).unwrap();
        smol::block_on(linger(&mut mine, 100, hour));
        let (mine, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut mine = Async::new(mine).unwrap();
        smol::block_on(linger(&mut mine, 100, Duration::from_millis(1)));
    }
}
