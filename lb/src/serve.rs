//! `serve`: the HTTP API on a Unix socket and/or a loopback TCP address,
//! from start to stop.
//!
//! One thread, one `LocalExecutor`: no locks (the one-change-at-a-time
//! rule is `change`'s lock file, shared with other processes). Each
//! connection is one task with a cap on how many run at once per listener;
//! its errors are logged inside it and never stop the server. Accepting
//! (with backoff) and lingering before close are
//! `hapgent_common::serving`'s, as in hapgent.
//!
//! Nobody can lock the API out without being allowed in: each listener
//! has its own budget of `max_connections`, a Unix peer takes a slot only
//! once its credentials passed (`access`), and a TCP client must send its
//! headers (with the token) within `tcp_auth_timeout`, so unauthenticated
//! TCP clients hold TCP slots briefly and Unix slots never.
//!
//! The socket file is `hapgent_common::unix_socket`'s: a second instance
//! refuses to start while this one answers, and at stop the file is
//! removed only if it is still ours. On SIGTERM or SIGINT the listeners
//! close, the requests in progress get `stop_grace` to finish (a config
//! change finishes or rolls back, with its audit line), and what a change
//! cut off by the end of the grace period left is undone by `shutdown`.
//!
//! What each route answers is `handlers`'s business; who may ask is
//! `access`'s.

use crate::access::{Access, Caller};
use crate::config::{self, Config};
use crate::exit::Error;
use crate::handlers::{self, Api};
use crate::http::{self, Response};
use crate::{metrics, shutdown};
use async_signal::{Signal, Signals};
use hapgent_common::serving::{self, Accept};
use hapgent_common::slots::Budget;
use hapgent_common::unix_socket::{self, Removal, SocketFile};
use smol::future::FutureExt;
use smol::io::AsyncWriteExt;
use smol::net::TcpListener;
use smol::net::unix::UnixListener;
use smol::stream::StreamExt;
use smol::{Async, LocalExecutor, Task};
use std::future::Future;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

/// Connections accepted in a row before those accepted run.
const BURST: u32 = 16;
/// After an answer, what the client still sends is read and dropped for
/// at most this long and this many bytes (a body refused with 413, say).
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 4 << 20;

/// What every connection shares: the API, the peer rule and the two
/// listeners' connection budgets.
struct Shared {
    api: Api,
    access: Access,
    unix_budget: Budget,
    tcp_budget: Budget,
}

/// Binds the configured listeners and serves until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), Error> {
    let access = Access::resolve(&config)?;
    // Registered before any socket exists: a stop from now on is handled.
    let signals = Signals::new([Signal::Term, Signal::Int])
        .map_err(|e| Error::Runtime(format!("cannot handle SIGTERM/SIGINT: {e}")))?;
    let tcp = bind_tcp(&config)?;
    // Bound last: once the Unix socket accepts, every listener does (tests
    // and supervisors wait for it).
    let (unix, socket_file) = if config.listen_unix.as_os_str().is_empty() {
        (None, None)
    } else {
        let (l, file) = bind_unix(&config.listen_unix, access.group)?;
        (Some(l), Some(file))
    };
    if unix.is_none() && tcp.is_none() {
        return Err(Error::Config(
            "listen_unix and listen_tcp are both empty: nothing to serve on".into(),
        ));
    }
    let max = config.max_connections;
    metrics::started();
    let shared = Rc::new(Shared {
        api: Api::new(config),
        access,
        unix_budget: Budget::new(max),
        tcp_budget: Budget::new(max),
    });
    // Tasks hold the executor to spawn per-connection tasks: an `Rc`, so
    // every task is 'static.
    let ex = Rc::new(LocalExecutor::new());
    let finished = smol::block_on(ex.run(serve_until_stopped(&ex, &shared, unix, tcp, signals)));
    // Cancels the requests still running, if the grace period passed.
    drop(ex);
    let config = &shared.api.config;
    if let Some(change) = shared.api.cut_off() {
        smol::block_on(shutdown::recover(config, &change, config.stop_grace));
    }
    if let Some(file) = socket_file {
        remove_socket(&file);
    }
    hapgent_common::info!(
        "stopped{}",
        if finished {
            ""
        } else {
            " (stop_grace passed; requests still in progress were cut off)"
        }
    );
    Ok(())
}

/// Serves until a stop signal, then stops accepting and waits at most
/// `stop_grace` for the requests in progress: whether they all finished.
async fn serve_until_stopped(
    ex: &Rc<LocalExecutor<'static>>,
    shared: &Rc<Shared>,
    unix: Option<UnixListener>,
    tcp: Option<TcpListener>,
    mut signals: Signals,
) -> bool {
    // Every connection task holds a sender: when the last one ends,
    // `all_done` reports it.
    let (alive, all_done) = smol::channel::bounded::<()>(1);
    let mut accepting: Vec<Task<()>> = Vec::new();
    if let Some(l) = unix {
        hapgent_common::info!(
            "listening on {} (Unix socket, group {})",
            shared.api.config.listen_unix.display(),
            shared.access.group
        );
        let shared = Rc::clone(shared);
        accepting.push(accept(ex, l, alive.clone(), move |(stream, _)| {
            serve_unix(Rc::clone(&shared), stream)
        }));
    }
    if let Some(l) = tcp {
        hapgent_common::info!("listening on {} (TCP, bearer token)", l.name());
        let shared = Rc::clone(shared);
        accepting.push(accept(ex, l, alive.clone(), move |(stream, peer)| {
            serve_tcp(Rc::clone(&shared), stream, peer)
        }));
    }
    drop(alive);
    let name = loop {
        match signals.next().await {
            Some(Ok(Signal::Int)) => break "SIGINT",
            Some(Ok(_)) => break "SIGTERM",
            Some(Err(e)) => hapgent_common::warn!("reading signals: {e}"),
            None => break "the end of the signal stream",
        }
    };
    shared.api.stop();
    for task in accepting {
        task.cancel().await;
    }
    let open = shared.unix_budget.open() + shared.tcp_budget.open();
    let grace = Duration::from_millis(shared.api.config.stop_grace);
    hapgent_common::info!(
        "stopping on {name}: no new connections; {open} in progress{}, waiting up to {} ms (stop_grace)",
        if shared.api.changing() {
            " (one a configuration change)"
        } else {
            ""
        },
        grace.as_millis()
    );
    let done = async {
        let _ = all_done.recv().await;
        true
    };
    done.or(async {
        smol::Timer::after(grace).await;
        false
    })
    .await
}

/// Accepts on `listener` until the returned task is dropped, serving each
/// connection in a task of its own that holds a clone of `alive`.
fn accept<L, F>(
    ex: &Rc<LocalExecutor<'static>>,
    listener: L,
    alive: smol::channel::Sender<()>,
    serve: impl Fn(L::Connection) -> F + 'static,
) -> Task<()>
where
    L: Accept + 'static,
    F: Future<Output = ()> + 'static,
{
    let ex2 = Rc::clone(ex);
    ex.spawn(async move {
        serving::accept_loop(&listener, BURST, |connection| {
            let (served, alive) = (serve(connection), alive.clone());
            ex2.spawn(async move {
                served.await;
                drop(alive);
            })
            .detach();
        })
        .await;
    })
}

/// Binds `listen_tcp`, if set.
fn bind_tcp(config: &Config) -> Result<Option<TcpListener>, Error> {
    if config.listen_tcp.is_empty() {
        return Ok(None);
    }
    let addr = config::tcp_address(&config.listen_tcp).map_err(Error::Config)?;
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| Error::Runtime(format!("cannot listen on {addr}: {e}")))?;
    let l = TcpListener::try_from(l).map_err(|e| Error::Runtime(format!("{addr}: {e}")))?;
    Ok(Some(l))
}

/// Creates the Unix socket: mode 0660, group `group`, refused while
/// another instance answers on it.
fn bind_unix(path: &Path, group: u32) -> Result<(UnixListener, SocketFile), Error> {
    let (l, file) = unix_socket::bind(path, 0o660, Some(group))
        .map_err(|e| Error::Runtime(format!("listen_unix {}: {e}", path.display())))?;
    let fail = |e: std::io::Error| {
        let _ = file.remove();
        Error::Runtime(format!("listen_unix {}: {e}", path.display()))
    };
    let l = Async::new(l).map_err(fail)?;
    Ok((UnixListener::from(l), file))
}

/// Removes the socket file at stop if it is still ours.
fn remove_socket(file: &SocketFile) {
    match file.remove() {
        Ok(Removal::Removed | Removal::Gone) => {}
        Ok(Removal::NotOurs) => hapgent_common::info!(
            "{} is no longer this process's socket; left in place",
            file.path().display()
        ),
        Err(e) => hapgent_common::warn!("cannot remove {}: {e}", file.path().display()),
    }
}

/// Writes a short refusal (it fits the socket buffer) and closes.
async fn refuse<S>(stream: &mut S, r: Response)
where
    S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
{
    let _ = stream.write_all(&r.serialize()).await;
    serving::linger(stream, LINGER_BYTES, LINGER_TIME).await;
}

fn busy_response() -> Response {
    Response::error(503, "too many connections; retry", None)
}

async fn serve_unix(shared: Rc<Shared>, mut stream: smol::net::unix::UnixStream) {
    // Credentials first: a peer that may not use the API never holds a slot.
    let caller = match shared.access.peer(&stream) {
        Ok(caller) => caller,
        Err(refusal) => {
            if let Some(r) = refusal {
                let _ = stream.write_all(&r.serialize()).await;
            }
            return;
        }
    };
    let Some(_slot) = shared.unix_budget.take() else {
        return refuse(&mut stream, busy_response()).await;
    };
    let header_timeout = Duration::from_millis(shared.api.config.header_timeout);
    serve(&shared, &mut stream, caller, header_timeout).await;
}

async fn serve_tcp(
    shared: Rc<Shared>,
    mut stream: smol::net::TcpStream,
    peer: std::net::SocketAddr,
) {
    let Some(_slot) = shared.tcp_budget.take() else {
        return refuse(&mut stream, busy_response()).await;
    };
    // The token is in the headers: until they are in, the client is
    // anonymous and gets only the short deadline.
    let c = &shared.api.config;
    let header_timeout = Duration::from_millis(c.header_timeout.min(c.tcp_auth_timeout));
    serve(&shared, &mut stream, Caller::Tcp(peer), header_timeout).await;
}

/// One request on one connection.
async fn serve<S>(shared: &Shared, stream: &mut S, caller: Caller, header_timeout: Duration)
where
    S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
{
    let response = match http::read_head(stream, header_timeout).await {
        Err(e) => e.response(),
        Ok(head) => Some(match shared.access.authorize(&head, caller) {
            Ok(who) => handlers::respond(&shared.api, stream, &head, &who).await,
            Err(r) => r,
        }),
    };
    if let Some(r) = response {
        let _ = stream.write_all(&r.serialize()).await;
        let _ = stream.flush().await;
    }
    serving::linger(stream, LINGER_BYTES, LINGER_TIME).await;
}
