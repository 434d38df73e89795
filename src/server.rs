//! The accept loop: one reply per connection, as soon as it is accepted.
//!
//! HAProxy sends nothing unless `agent-send` is configured, so without
//! services hapgent never waits to read. With services, the payload names
//! the service; HAProxy sends it whole right after connecting, so it is
//! nearly always there at accept, and only a late one gets a task that
//! waits for it (at most `payload_timeout`). Those waits stand in a line of
//! their own (`line`, `max_connections` long): a full line cuts the
//! connection waiting longest (see `cut_as`), so clients that never send
//! cannot keep a newer probe out. A source outside the allow-list is
//! closed at accept, unanswered.
//!
//! A reply is a few dozen bytes and a fresh connection's send buffer is
//! empty, so the write nearly always completes at once: the connection is
//! answered and closed inside the accept loop, without a task, a timer or a
//! registration with the reactor. Only a write that would block gets a
//! task, with a deadline, counted against `max_connections`; past the cap
//! such a connection is closed at once, so a flood of clients that never
//! read costs neither memory nor delay for the next probe.
//!
//! A reply is *delivered* once it was written whole to a connection that
//! was not reset by then: only then is the `Replies` told (the prober table
//! records what a load balancer has seen from that). A write that fails,
//! or a slow one cut by its deadline, delivers nothing.
//!
//! Like mini-redis's `server::run`, `serve` takes listeners that are already
//! bound (by `agent`, by a test on port 0, or inherited from systemd) and a
//! shutdown future. This module does not know what the reply says, nor
//! which services exist.

use crate::cidr::{self, Cidr};
use crate::line::Line;
use crate::protocol::{MAX_PAYLOAD, Payload, parse_payload};
use crate::sys;
use hapgent_common::serving::{self, Accept};
use hapgent_common::slots::{Budget, Slot};
use smol::{Async, LocalExecutor, Task, Timer, prelude::*};
use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How connections are served; may change while serving (a reload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Connections waiting for a slow write at once (more are closed), and
    /// separately, connections waiting for a payload at once (past it the
    /// one waiting longest is closed).
    pub max_connections: u32,
    /// How long a client has to take the reply.
    pub write_timeout: Duration,
    /// Log each probe's peer and reply.
    pub log_requests: bool,
}

/// What the server counted, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections closed unanswered because `max_connections` were busy:
    /// slow writes past the cap, and payload waits cut from a full line.
    pub refused_cap: u64,
    /// Connections closed unanswered because the source is not allowed.
    pub refused_allow: u64,
    /// Payload waits cut from a full line (answered or closed).
    pub payload_cut: u64,
    /// Payloads still without a line end at the deadline.
    pub payload_unfinished: u64,
}

/// Who knows the replies: what to send for a probe, and what to do once
/// it was delivered.
pub trait Replies {
    /// What a reply was about, handed back once it is delivered.
    type Receipt: 'static;

    /// The reply to `peer`, asking about the service `payload` names.
    fn reply(&self, peer: SocketAddr, payload: Payload) -> (Rc<[u8]>, Self::Receipt);

    /// The reply of `receipt` was written whole to a connection that was
    /// not reset by then. Never called for a reply that was not.
    fn delivered(&self, receipt: Self::Receipt);
}

/// What every accept loop shares: the reply source, options and counters.
pub struct Server<R> {
    replies: R,
    options: Cell<Options>,
    /// Sources allowed to probe; empty: everyone.
    allow: RefCell<Rc<[Cidr]>>,
    /// With services: how long to wait for an `agent-send` payload.
    payload: Cell<Option<Duration>>,
    /// Connections waiting for their payload.
    waiting: Rc<Line>,
    /// Connections finishing a slow write in a task (`max_connections`).
    slow: Budget,
    counters: Cell<Counters>,
}

/// How a wait for a payload ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// A line end came, or as many bytes as a payload may have.
    Line,
    /// The peer half-closed: what came is all it sends.
    Closed,
    /// The connection was reset (or reading failed): nobody to answer.
    Reset,
    /// `payload_timeout` passed.
    Out,
    /// The line of waits was full, this one had waited longest, and not
    /// long (see `cut_as`).
    Cut,
}

/// How a wait cut from a full line ends, after `waited` of `deadline`: past
/// half its time, as if its deadline had passed (with nothing sent: the
/// default service, for a backend without `agent-send`); before, closed
/// unanswered, since it may be a probe whose payload is still on its way,
/// and another service's state would be a wrong answer where none is
/// harmless. So a flood never makes hapgent give up on a payload sooner
/// than half of `payload_timeout`. Pure.
fn cut_as(waited: Duration, deadline: Duration) -> Wait {
    if waited >= deadline / 2 {
        Wait::Out
    } else {
        Wait::Cut
    }
}

/// The payload a wait decided on; `None` when the connection is closed
/// unanswered. HAProxy sends `agent-send` whole, right after connecting:
/// nothing at all by the deadline means none is configured (the default
/// service), but part of a line is a name cut short, which must not be
/// taken for a shorter name (`web` for `webapp`): it is answered like a
/// payload that is not a name, with no news. Pure.
fn decide(bytes: &[u8], wait: Wait) -> Option<Payload<'_>> {
    match wait {
        Wait::Reset | Wait::Cut => None,
        Wait::Closed => parse_payload(bytes, true),
        Wait::Out if bytes.is_empty() => Some(Payload::None),
        Wait::Line | Wait::Out => Some(parse_payload(bytes, false).unwrap_or(Payload::Invalid)),
    }
}

impl<R: Replies + 'static> Server<R> {
    /// `replies` is asked once per connection, with the peer's address and
    /// what its payload asks about, for the bytes to send.
    pub fn new(replies: R, options: Options) -> Rc<Server<R>> {
        Rc::new(Server {
            replies,
            options: Cell::new(options),
            allow: RefCell::new(Rc::from(Vec::new())),
            payload: Cell::new(None),
            waiting: Line::new(options.max_connections as usize),
            slow: Budget::new(options.max_connections),
            counters: Cell::new(Counters::default()),
        })
    }

    /// Serves later connections with `options`.
    pub fn set_options(&self, options: Options) {
        self.options.set(options);
        self.slow.set_max(options.max_connections);
        self.waiting.set_cap(options.max_connections as usize);
    }

    /// Serves only sources in `allow` from now on (empty: everyone).
    pub fn set_allow(&self, allow: Vec<Cidr>) {
        *self.allow.borrow_mut() = Rc::from(allow);
    }

    /// With `Some(deadline)`, reads each prober's payload (waiting at most
    /// `deadline`) to choose the service; with `None`, replies at once.
    pub fn set_payload(&self, deadline: Option<Duration>) {
        self.payload.set(deadline);
    }

    pub fn counters(&self) -> Counters {
        self.counters.get()
    }

    fn count(&self, f: impl FnOnce(&mut Counters) -> u64) -> u64 {
        let mut c = self.counters.get();
        let n = f(&mut c);
        self.counters.set(c);
        n
    }

    /// Accepts connections on `listener` until the returned task is
    /// dropped, which closes the listener.
    pub fn listen(
        self: &Rc<Self>,
        ex: &Rc<LocalExecutor<'static>>,
        listener: Async<TcpListener>,
    ) -> Task<()> {
        let (server, tasks) = (Rc::clone(self), Rc::clone(ex));
        ex.spawn(async move {
            let listener = ProbeListener(listener);
            // Let other listeners, signals and slow writers run during a
            // flood of connections.
            serving::accept_loop(&listener, 64, |(stream, peer)| {
                server.answer(stream, peer, &tasks)
            })
            .await;
        })
    }

    /// Waits, at most the write timeout, for payload waits and slow
    /// replies still in flight.
    pub async fn finish(&self) {
        let give_up = Instant::now() + self.options.get().write_timeout;
        while (self.slow.open() > 0 || self.waiting.held() > 0) && Instant::now() < give_up {
            Timer::after(Duration::from_millis(5)).await;
        }
    }

    /// Answers one accepted connection: at once, or (with services) once
    /// its payload says which service it asks about. `stream` must be
    /// non-blocking (`sys::accept` makes it so).
    fn answer(
        self: &Rc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        ex: &Rc<LocalExecutor<'static>>,
    ) {
        if !self.allowed(peer) {
            return;
        }
        let Some(deadline) = self.payload.get() else {
            self.send(stream, peer, Payload::None, ex);
            return;
        };
        // HAProxy sends agent-send right after connecting: it is usually
        // here already, and then no task is needed.
        let mut buf = [0u8; MAX_PAYLOAD];
        let (n, ended) = match (&stream).read(&mut buf) {
            Ok(0) => (0, true),
            Ok(n) => (n, false),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => (0, false),
            Err(_) => return,
        };
        match parse_payload(&buf[..n], ended) {
            Some(payload) => self.send(stream, peer, payload, ex),
            None => self.spawn_payload(stream, peer, buf, n, deadline, ex),
        }
    }

    /// Whether `peer` may probe; if not, counts and (rate-limited) logs it.
    fn allowed(&self, peer: SocketAddr) -> bool {
        let allow = self.allow.borrow();
        if allow.is_empty() || cidr::any_contains(&allow, peer.ip()) {
            return true;
        }
        let refused = self.count(|c| {
            c.refused_allow += 1;
            c.refused_allow
        });
        if refused.is_power_of_two() {
            crate::warn!(
                "{} is not in the allow-list: closed its connection unanswered ({refused} so far)",
                peer.ip()
            );
        }
        false
    }

    /// Builds the reply for `payload` and sends it; tells `replies` once it
    /// is delivered.
    fn send(
        self: &Rc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        payload: Payload,
        ex: &Rc<LocalExecutor<'static>>,
    ) {
        let (reply, receipt) = self.replies.reply(peer, payload);
        let written = (&stream).write(&reply);
        if self.options.get().log_requests {
            let text = String::from_utf8_lossy(&reply);
            let text = text.trim_end();
            let outcome = match &written {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                    format!(" (not delivered: {e})")
                }
                _ => String::new(),
            };
            match payload {
                Payload::None => crate::info!("probe from {peer}: {text}{outcome}"),
                Payload::Name(name) => {
                    crate::info!("probe from {peer} for {name}: {text}{outcome}")
                }
                Payload::Invalid => crate::info!(
                    "probe from {peer} with an invalid or incomplete payload: {text}{outcome}"
                ),
            }
        }
        match written {
            Ok(n) if n == reply.len() => {
                self.replies.delivered(receipt);
                discard_input(&stream);
            }
            Ok(n) => self.spawn_slow(stream, peer, reply, n, receipt, ex),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.spawn_slow(stream, peer, reply, 0, receipt, ex)
            }
            // Reset or closed already: the peer gave up; nothing was
            // delivered, which is not an error of ours.
            Err(_) => {}
        }
    }

    /// Takes a slot for a slow write, or counts and logs a refusal.
    fn take_slot(&self, peer: SocketAddr) -> Option<Slot> {
        let slot = self.slow.take();
        if slot.is_none() {
            let refused = self.count(|c| {
                c.refused_cap += 1;
                c.refused_cap
            });
            if refused.is_power_of_two() {
                crate::warn!(
                    "connection limit ({}) reached: closed the connection from {peer} unanswered ({refused} so far)",
                    self.slow.max()
                );
            }
        }
        slot
    }

    /// Waits for the rest of a payload, in a task, at most `deadline`, in
    /// the line of payload waits (see `cut_as`), then answers as `decide`
    /// says.
    fn spawn_payload(
        self: &Rc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        mut buf: [u8; MAX_PAYLOAD],
        mut have: usize,
        deadline: Duration,
        ex: &Rc<LocalExecutor<'static>>,
    ) {
        let (place, cut) = self.waiting.join();
        for _ in 0..cut {
            let n = self.count(|c| {
                c.payload_cut += 1;
                c.payload_cut
            });
            if n.is_power_of_two() {
                crate::warn!(
                    "{} connections are waiting for their agent-send payload (max_connections): the one waiting longest is answered as at payload_timeout, or closed unanswered if it has waited less than half of it ({n} so far)",
                    self.waiting.held()
                );
            }
        }
        let server = Rc::clone(self);
        let tasks = Rc::clone(ex);
        let start = Instant::now();
        ex.spawn(async move {
            let Ok(mut stream) = Async::new_nonblocking(stream) else {
                return;
            };
            let read = async {
                loop {
                    match stream.read(&mut buf[have..]).await {
                        Ok(0) => return Wait::Closed,
                        Err(_) => return Wait::Reset,
                        Ok(n) => have += n,
                    }
                    if parse_payload(&buf[..have], false).is_some() {
                        return Wait::Line;
                    }
                }
            };
            let timer = async {
                Timer::after(deadline).await;
                Wait::Out
            };
            let cut = async {
                place.cut().await;
                cut_as(start.elapsed(), deadline)
            };
            // In this order: what came counts first, then the deadline.
            let wait = read.or(timer).or(cut).await;
            drop(place);
            let Some(payload) = decide(&buf[..have], wait) else {
                if wait == Wait::Cut {
                    server.count(|c| {
                        c.refused_cap += 1;
                        c.refused_cap
                    });
                }
                return;
            };
            if wait == Wait::Out && have > 0 && parse_payload(&buf[..have], false).is_none() {
                server.unfinished(peer, &buf[..have], deadline);
            }
            if let Ok(stream) = stream.into_inner() {
                server.send(stream, peer, payload, &tasks);
            }
        })
        .detach();
    }

    /// Counts and (the first time, then at powers of two) logs a payload
    /// still without its line end at the deadline: most likely an
    /// `agent-send` missing its `\n`, which HAProxy does not add.
    fn unfinished(&self, peer: SocketAddr, bytes: &[u8], deadline: Duration) {
        let n = self.count(|c| {
            c.payload_unfinished += 1;
            c.payload_unfinished
        });
        if n.is_power_of_two() {
            let text = String::from_utf8_lossy(bytes);
            crate::warn!(
                "{peer} sent {text:?} and no line end within payload_timeout ({} ms): answered with no news, since a name cut short may stand for another service; if this is HAProxy, end its agent-send with \\n (agent-send \"{}\\n\") ({n} so far)",
                deadline.as_millis(),
                text.escape_debug()
            );
        }
    }

    /// Finishes a write that could not complete at once, in a task with a
    /// deadline, unless the cap on such connections is reached; tells
    /// `replies` once the last byte is written.
    fn spawn_slow(
        self: &Rc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        reply: Rc<[u8]>,
        sent: usize,
        receipt: R::Receipt,
        ex: &Rc<LocalExecutor<'static>>,
    ) {
        let Some(slot) = self.take_slot(peer) else {
            return;
        };
        let options = self.options.get();
        let server = Rc::clone(self);
        ex.spawn(async move {
            // Given back however the task ends.
            let _slot = slot;
            if let Ok(mut stream) = Async::new_nonblocking(stream) {
                let write = async {
                    stream.write_all(&reply[sent..]).await?;
                    server.replies.delivered(receipt);
                    discard_input(stream.get_ref());
                    Ok(())
                };
                let deadline = async {
                    Timer::after(options.write_timeout).await;
                    Err(io::Error::from(io::ErrorKind::TimedOut))
                };
                let _: io::Result<()> = write.or(deadline).await;
            }
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
pub async fn serve<R: Replies + 'static>(
    ex: &Rc<LocalExecutor<'static>>,
    listeners: Vec<Async<TcpListener>>,
    server: Rc<Server<R>>,
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

/// A probe listener: accepts with `sys::accept`, one system call that
/// returns the stream non-blocking already (`answer` writes without
/// waiting, and tasks watch the stream as it is), and waits for readiness
/// only when no connection is queued.
struct ProbeListener(Async<TcpListener>);

impl Accept for ProbeListener {
    type Connection = (TcpStream, SocketAddr);

    fn accept(&self) -> impl Future<Output = io::Result<Self::Connection>> {
        self.0.read_with(sys::accept)
    }

    fn name(&self) -> String {
        self.0.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn options(max: u32, timeout_ms: u64) -> Options {
        Options {
            max_connections: max,
            write_timeout: Duration::from_millis(timeout_ms),
            log_requests: false,
        }
    }

    /// What the server thread says when asked (see `Running::now`).
    #[derive(Clone, Copy, Debug)]
    struct Seen {
        /// Replies built: connections accepted and answered or refused.
        replies: usize,
        /// Connections holding a slot (slow writes in progress).
        active: u32,
        /// Connections closed because every slot was taken.
        refused_cap: u64,
        /// Replies written whole.
        delivered: usize,
    }

    /// The same reply for everyone; counts replies built and delivered.
    struct Fixed {
        reply: Rc<[u8]>,
        built: Rc<Cell<usize>>,
        delivered: Rc<Cell<usize>>,
    }

    impl Replies for Fixed {
        type Receipt = ();

        fn reply(&self, _: SocketAddr, _: Payload) -> (Rc<[u8]>, ()) {
            self.built.set(self.built.get() + 1);
            (Rc::clone(&self.reply), ())
        }

        fn delivered(&self, _: ()) {
            self.delivered.set(self.delivered.get() + 1);
        }
    }

    /// A server running `serve` on a loopback listener in its own thread.
    struct Running {
        addr: SocketAddr,
        stop: smol::channel::Sender<()>,
        ask: smol::channel::Sender<std::sync::mpsc::Sender<Seen>>,
        handle: std::thread::JoinHandle<()>,
    }

    impl Running {
        /// The server's counts, read on its own thread between two of its
        /// steps: a connection whose reply was built has its slot taken
        /// (or was refused) by the time this answers.
        fn now(&self) -> Seen {
            let (tx, rx) = std::sync::mpsc::channel();
            self.ask.send_blocking(tx).unwrap();
            rx.recv_timeout(Duration::from_secs(60)).unwrap()
        }

        /// Asks until `cond` holds; fails after a minute (a safety net,
        /// never a time to wait for).
        fn wait(&self, what: &str, cond: impl Fn(Seen) -> bool) -> Seen {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let seen = self.now();
                if cond(seen) {
                    return seen;
                }
                assert!(std::time::Instant::now() < deadline, "{what}: {seen:?}");
                std::thread::sleep(Duration::from_millis(5));
            }
        }

        fn stop(self) {
            self.stop.send_blocking(()).unwrap();
            self.handle.join().unwrap();
        }
    }

    /// Runs `serve` on a loopback listener in a thread with `reply`.
    fn start(reply: Vec<u8>, options: Options) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let (ask, asked) = smol::channel::unbounded::<std::sync::mpsc::Sender<Seen>>();
        let handle = std::thread::spawn(move || {
            let replies = Rc::new(Cell::new(0));
            let delivered = Rc::new(Cell::new(0));
            let ex = Rc::new(LocalExecutor::new());
            let fixed = Fixed {
                reply: reply.into(),
                built: Rc::clone(&replies),
                delivered: Rc::clone(&delivered),
            };
            let server = Server::new(fixed, options);
            let observed = Rc::clone(&server);
            ex.spawn(async move {
                while let Ok(tx) = asked.recv().await {
                    let _ = tx.send(Seen {
                        replies: replies.get(),
                        active: observed.slow.open(),
                        refused_cap: observed.counters().refused_cap,
                        delivered: delivered.get(),
                    });
                }
            })
            .detach();
            let listeners = vec![Async::new(listener).unwrap()];
            smol::future::block_on(ex.run(serve(&ex, listeners, server, async {
                let _ = stopped.recv().await;
            })));
        });
        Running {
            addr,
            stop,
            ask,
            handle,
        }
    }

    fn read_all(addr: SocketAddr) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    #[test]
    fn small_reply_is_sent_and_closed() {
        let server = start(b"up ready 100%\n".to_vec(), options(4, 1000));
        for _ in 0..3 {
            assert_eq!(read_all(server.addr), b"up ready 100%\n");
        }
        server.stop();
    }

    /// A reply far larger than the socket buffers takes the slow path.
    /// With a cap of one and a deadline out of reach, a client that never
    /// reads holds the only slot: the next connection is closed with a
    /// partial reply. Once that client goes, a reading client gets it all.
    #[test]
    fn slow_writers_are_capped() {
        let big = vec![b'x'; 32 << 20];
        let server = start(big.clone(), options(1, 3_600_000));
        let stuck = TcpStream::connect(server.addr).unwrap();
        server.wait("the stuck client holds the slot", |s| s.active == 1);
        let second = read_all(server.addr);
        assert!(
            second.len() < big.len(),
            "the capped connection got the whole reply"
        );
        assert_eq!(server.now().refused_cap, 1);
        // Closed with the reply unread: a reset, the write fails, the slot
        // is free, and neither reply was delivered.
        drop(stuck);
        server.wait("the slot freed", |s| s.active == 0);
        assert_eq!(server.now().delivered, 0);
        let third = read_all(server.addr);
        assert_eq!(third.len(), big.len());
        // Delivered once its last byte was written, which is before the
        // client read its end.
        assert_eq!(server.now().delivered, 1);
        assert_eq!(server.now().refused_cap, 1);
        server.stop();
    }

    /// The write deadline frees a slot held by a client that never reads:
    /// the server gives up on it (the slot is free while the client still
    /// has not read a byte), and what reaches that client is cut short.
    #[test]
    fn slow_writers_are_timed_out() {
        let big = vec![b'x'; 32 << 20];
        let server = start(big.clone(), options(1, 100));
        let mut stuck = TcpStream::connect(server.addr).unwrap();
        // Its reply is built (the slot taken, or already freed again)...
        server.wait("the stuck client answered", |s| s.replies == 1);
        // ... and the slot is free: the deadline passed, since the client
        // neither read nor closed.
        server.wait("the deadline frees the slot", |s| s.active == 0);
        stuck
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut got = Vec::new();
        // The rest of what the kernel had queued, then the end (or a
        // reset, if the kernel gave up on the orphaned connection first).
        let _ = stuck.read_to_end(&mut got);
        assert!(got.len() < big.len(), "the stuck client got everything");
        assert_eq!(server.now().delivered, 0, "a cut reply was delivered");
        server.stop();
    }

    #[test]
    fn a_cut_wait_is_answered_only_past_half_its_time() {
        let ms = Duration::from_millis;
        // (waited, deadline, how it ends)
        for (waited, deadline, want) in [
            (0, 100, Wait::Cut),
            (49, 100, Wait::Cut),
            (50, 100, Wait::Out),
            (5000, 100, Wait::Out),
            (0, 1, Wait::Cut),
            (1, 1, Wait::Out),
        ] {
            assert_eq!(
                cut_as(ms(waited), ms(deadline)),
                want,
                "{waited} of {deadline}"
            );
        }
    }

    #[test]
    fn a_payload_wait_decides_on_what_came() {
        use Payload::*;
        // (bytes, how the wait ended, payload; None: nobody to answer)
        let cases: &[(&[u8], Wait, Option<Payload>)] = &[
            (b"api\n", Wait::Line, Some(Name("api"))),
            (&[b'x'; MAX_PAYLOAD], Wait::Line, Some(Invalid)),
            // Half-closed: what came is the whole payload.
            (b"web", Wait::Closed, Some(Name("web"))),
            (b"", Wait::Closed, Some(None)),
            // Time up with nothing: no agent-send, the default service.
            (b"", Wait::Out, Some(None)),
            // Time up in the middle of a line: a name cut short is not
            // a name (webapp is not web).
            (b"web", Wait::Out, Some(Invalid)),
            (b"\r", Wait::Out, Some(Invalid)),
            (b"api\n", Wait::Out, Some(Name("api"))),
            (b"api", Wait::Reset, Option::None),
            // Cut from a full line: maybe a payload on its way.
            (b"", Wait::Cut, Option::None),
            (b"ap", Wait::Cut, Option::None),
            (b"", Wait::Reset, Option::None),
        ];
        for (bytes, wait, want) in cases {
            assert_eq!(
                decide(bytes, *wait),
                *want,
                "{:?} {wait:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
