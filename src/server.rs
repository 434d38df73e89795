//! The accept loop: one reply per connection, as soon as it is accepted.
//!
//! HAProxy sends nothing unless `agent-send` is configured, so hapgent never
//! waits to read. A reply is a few dozen bytes and a fresh connection's send
//! buffer is empty, so the write nearly always completes at once: the
//! connection is answered and closed inside the accept loop, without a task,
//! a timer or a registration with the reactor. Only a write that would block
//! gets a task, with a deadline, counted against `max_connections`; past the
//! cap such a connection is closed at once, so a flood of clients that never
//! read costs neither memory nor delay for the next probe.
//!
//! Like mini-redis's `server::run`, `serve` takes listeners that are already
//! bound (by `agent`, by a test on port 0, or inherited from systemd) and a
//! shutdown future. This module does not know what the reply says.

use smol::{Async, LocalExecutor, Task, Timer, future, prelude::*};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

/// How connections are served; may change while serving (a reload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Connections waiting for a slow write at once; more are closed.
    pub max_connections: u32,
    /// How long a client has to take the reply.
    pub write_timeout: Duration,
    /// Log each probe's peer and reply.
    pub log_requests: bool,
}

/// What every accept loop shares: the reply source, options and counters.
pub struct Server<F> {
    reply: F,
    options: Cell<Options>,
    /// Connections being served by a task (slow writers).
    active: Cell<u32>,
    /// Connections closed unanswered because of the cap, for rate-limited logs.
    refused: Cell<u64>,
}

impl<F: Fn(SocketAddr) -> Rc<[u8]> + 'static> Server<F> {
    /// `reply` is called once per connection, with the peer's address, for
    /// the bytes to send.
    pub fn new(reply: F, options: Options) -> Rc<Server<F>> {
        Rc::new(Server {
            reply,
            options: Cell::new(options),
            active: Cell::new(0),
            refused: Cell::new(0),
        })
    }

    /// Serves later connections with `options`.
    pub fn set_options(&self, options: Options) {
        self.options.set(options);
    }

    /// Accepts connections on `listener` until the returned task is
    /// dropped, which closes the listener.
    pub fn listen(
        self: &Rc<Self>,
        ex: &Rc<LocalExecutor<'static>>,
        listener: Async<TcpListener>,
    ) -> Task<()> {
        ex.spawn(accept_loop(listener, Rc::clone(self), Rc::clone(ex)))
    }

    /// Waits, at most the write timeout, for slow replies still in flight.
    pub async fn finish(&self) {
        let give_up = std::time::Instant::now() + self.options.get().write_timeout;
        while self.active.get() > 0 && std::time::Instant::now() < give_up {
            Timer::after(Duration::from_millis(5)).await;
        }
    }

    /// Answers one accepted connection.
    fn answer(
        self: &Rc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        ex: &Rc<LocalExecutor<'static>>,
    ) {
        let reply = (self.reply)(peer);
        if self.options.get().log_requests {
            let text = String::from_utf8_lossy(&reply);
            crate::info!("probe from {peer}: {}", text.trim_end());
        }
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        match (&stream).write(&reply) {
            Ok(n) if n == reply.len() => discard_input(&stream),
            Ok(n) => self.spawn_slow(stream, peer, reply, n, ex),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.spawn_slow(stream, peer, reply, 0, ex)
            }
            // Reset or closed already: the peer gave up; nothing to report.
            Err(_) => {}
        }
    }

    /// Finishes a write that could not complete at once, in a task with a
    /// deadline, unless the cap on such connections is reached.
    fn spawn_slow(
        self: &Rc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        reply: Rc<[u8]>,
        sent: usize,
        ex: &Rc<LocalExecutor<'static>>,
    ) {
        let options = self.options.get();
        if self.active.get() >= options.max_connections {
            let refused = self.refused.get() + 1;
            self.refused.set(refused);
            if refused.is_power_of_two() {
                crate::warn!(
                    "connection limit ({}) reached: closed the connection from {peer} unanswered ({refused} so far)",
                    options.max_connections
                );
            }
            return;
        }
        self.active.set(self.active.get() + 1);
        let server = Rc::clone(self);
        ex.spawn(async move {
            if let Ok(mut stream) = Async::new(stream) {
                let write = async {
                    stream.write_all(&reply[sent..]).await?;
                    discard_input(stream.get_ref());
                    Ok(())
                };
                let deadline = async {
                    Timer::after(options.write_timeout).await;
                    Err(io::Error::from(io::ErrorKind::TimedOut))
                };
                let _: io::Result<()> = write.or(deadline).await;
            }
            server.active.set(server.active.get() - 1);
        })
        .detach();
    }
}

/// Most payload bytes read and dropped per connection: `agent-send` is a
/// line; a client sending more than this is not HAProxy.
const DISCARD_LIMIT: usize = 64 * 1024;

/// Reads and drops whatever the client already sent (an `agent-send`
/// payload), until the socket would block, without waiting. Closing a socket
/// with unread input makes the kernel send a reset, which can destroy the
/// reply before the peer reads it.
fn discard_input(stream: &TcpStream) {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < DISCARD_LIMIT {
        match (&*stream).read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

/// Serves every listener until `shutdown` completes, then stops accepting
/// and waits (at most the write timeout) for slow replies still in flight.
#[cfg(test)]
pub async fn serve<F: Fn(SocketAddr) -> Rc<[u8]> + 'static>(
    ex: &Rc<LocalExecutor<'static>>,
    listeners: Vec<Async<TcpListener>>,
    server: Rc<Server<F>>,
    shutdown: impl Future<Output = ()>,
) {
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|l| server.listen(ex, l))
        .collect();
    shutdown.await;
    // Dropping a task cancels it, which drops and closes its listener.
    drop(loops);
    server.finish().await;
}

/// Accepts connections on one listener forever. Errors never end it: the
/// agent must outlive a file-descriptor shortage.
async fn accept_loop<F: Fn(SocketAddr) -> Rc<[u8]> + 'static>(
    listener: Async<TcpListener>,
    server: Rc<Server<F>>,
    ex: Rc<LocalExecutor<'static>>,
) {
    let local = listener
        .get_ref()
        .local_addr()
        .map_or_else(|_| "a listener".to_string(), |a| a.to_string());
    let mut failures: u32 = 0;
    let mut burst: u32 = 0;
    loop {
        match listener.get_ref().accept() {
            Ok((stream, peer)) => {
                if failures > 0 {
                    crate::info!("accepting on {local} again after {failures} failed attempts");
                    failures = 0;
                }
                server.answer(stream, peer, &ex);
                // Let other listeners, signals and slow writers run during
                // a flood of connections.
                burst += 1;
                if burst == 64 {
                    burst = 0;
                    future::yield_now().await;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                burst = 0;
                if let Err(e) = listener.readable().await {
                    failures += 1;
                    pause(&local, failures, &e).await;
                }
            }
            // The client left before we accepted it, or a signal landed.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                failures += 1;
                pause(&local, failures, &e).await;
            }
        }
    }
}

/// Logs an accept failure (the first and then at powers of two, so a long
/// outage does not flood the journal) and waits before the next attempt.
async fn pause(local: &str, failures: u32, e: &io::Error) {
    let delay = backoff(failures);
    if failures.is_power_of_two() {
        crate::error!("accept on {local} failed ({failures} in a row): {e}; retrying in {delay:?}");
    }
    Timer::after(delay).await;
}

/// Delay after `failures` consecutive accept errors: 10 ms, doubling, at most 1 s.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(7);
    Duration::from_millis((10u64 << exp).min(1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        let ms: Vec<u128> = [1, 2, 3, 4, 7, 8, 9, 100, u32::MAX]
            .into_iter()
            .map(|f| backoff(f).as_millis())
            .collect();
        assert_eq!(ms, [10, 20, 40, 80, 640, 1000, 1000, 1000, 1000]);
    }

    fn options(max: u32, timeout_ms: u64) -> Options {
        Options {
            max_connections: max,
            write_timeout: Duration::from_millis(timeout_ms),
            log_requests: false,
        }
    }

    /// Runs `serve` on a loopback listener in a thread with `reply`, and
    /// returns its address and a sender that stops it.
    fn start(
        reply: Vec<u8>,
        options: Options,
    ) -> (
        SocketAddr,
        smol::channel::Sender<()>,
        std::thread::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let handle = std::thread::spawn(move || {
            let reply: Rc<[u8]> = reply.into();
            let ex = Rc::new(LocalExecutor::new());
            let server = Server::new(move |_| Rc::clone(&reply), options);
            let listeners = vec![Async::new(listener).unwrap()];
            future::block_on(ex.run(serve(&ex, listeners, server, async {
                let _ = stopped.recv().await;
            })));
        });
        (addr, stop, handle)
    }

    fn read_all(addr: SocketAddr) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    #[test]
    fn small_reply_is_sent_and_closed() {
        let (addr, stop, handle) = start(b"up ready 100%\n".to_vec(), options(4, 1000));
        for _ in 0..3 {
            assert_eq!(read_all(addr), b"up ready 100%\n");
        }
        stop.send_blocking(()).unwrap();
        handle.join().unwrap();
    }

    /// A reply far larger than the socket buffers takes the slow path: with
    /// a cap of one, a client that never reads holds the only slot, the next
    /// connection is closed unanswered, and the deadline frees the slot.
    #[test]
    fn slow_writers_are_capped_and_timed_out() {
        let big = vec![b'x'; 32 << 20];
        let (addr, stop, handle) = start(big.clone(), options(1, 300));
        let stuck = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // The slot is taken: this client gets a partial reply, then EOF.
        let second = read_all(addr);
        assert!(
            second.len() < big.len(),
            "the capped connection got the whole reply"
        );
        // After the deadline the stuck one is closed and the slot is free:
        // a reading client gets everything.
        std::thread::sleep(Duration::from_millis(500));
        let third = read_all(addr);
        assert_eq!(third.len(), big.len());
        drop(stuck);
        stop.send_blocking(()).unwrap();
        handle.join().unwrap();
    }
}
