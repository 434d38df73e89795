//! `serve`: the HTTP API on a Unix socket and/or a loopback TCP address,
//! from start to stop.
//!
//! One thread, one `LocalExecutor`: no locks (the one-change-at-a-time
//! rule is `change`'s lock file, shared with other processes). Each
//! connection is one task with a cap on how many run at once per listener;
//! its errors are logged inside it and never stop the server.
//!
//! Who may call: on the Unix socket, the kernel checks the socket file's
//! mode (0660, group `socket_group`), and the peer's credentials are
//! checked again (root, our own user, or a member of the group); on TCP, a
//! bearer token from `token_file`, compared in constant time, for every
//! request but `GET /metrics` (read-only, see `metrics`).
//!
//! Nobody can lock the API out without being allowed in: each listener
//! has its own budget of `max_connections`, a Unix peer takes a slot only
//! once its credentials passed, and a TCP client must send its headers
//! (with the token) within `tcp_auth_timeout`, so unauthenticated TCP
//! clients hold TCP slots briefly and Unix slots never. Refused tokens are
//! logged, at most one line per `REFUSAL_LOG_EVERY`.
//!
//! The socket file is `hapgent_common::unix_socket`'s: a second instance
//! refuses to start while this one answers, and at stop the file is
//! removed only if it is still ours. On SIGTERM or SIGINT the listeners
//! close, the requests in progress get `stop_grace` to finish (a config
//! change finishes or rolls back, with its audit line), and what a change
//! cut off by the end of the grace period left is undone by `shutdown`.

use crate::config::{self, Config};
use crate::error::Error;
use crate::http::{self, Response};
use crate::routes::{self, Route};
use crate::shutdown;
use crate::{change, metrics, runtime, status, sys};
use async_signal::{Signal, Signals};
use hapgent_common::files;
use hapgent_common::slots::Budget;
use hapgent_common::unix_socket::{self, Removal, SocketFile};
use sha2::{Digest, Sha256};
use smol::future::FutureExt;
use smol::io::AsyncWriteExt;
use smol::net::TcpListener;
use smol::net::unix::UnixListener;
use smol::stream::StreamExt;
use smol::{Async, LocalExecutor, Task};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Largest `token_file` read (a few thousand tokens).
const TOKEN_FILE_CAP: u64 = 1 << 20;

/// At most one "refused: bearer token" line per this long; the next line
/// says how many were not logged in between.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// A named bearer token, kept only as its SHA-256.
pub struct Token {
    pub name: String,
    digest: [u8; 32],
}

/// Reads `NAME:TOKEN` or `TOKEN` lines (blank and `#` lines skipped).
/// Spaces around the `:` are not part of the name or token: the presented
/// token is trimmed too, so `ci: s3cret` must mean `s3cret` to be usable.
pub fn parse_tokens(text: &str) -> Vec<Token> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, l)| {
            let split = l
                .split_once(':')
                .map(|(n, s)| (n.trim_end(), s.trim_start()));
            let (name, secret) = match split {
                Some((n, s)) if !n.is_empty() && !s.is_empty() => (n.to_string(), s),
                _ => (format!("token#{}", i + 1), l),
            };
            Token {
                name,
                digest: Sha256::digest(secret.as_bytes()).into(),
            }
        })
        .collect()
}

/// The credentials of an `Authorization: Bearer TOKEN` value, trimmed.
/// The scheme is case-insensitive and separated by spaces (RFC 7235):
/// `bearer x` and `BEARER  x` are `x`.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// The name of the token in an `Authorization: Bearer …` value. Compares
/// SHA-256 digests with every token, always all 32 bytes of each: the
/// time taken does not depend on how much of a token was right.
pub fn check_token(tokens: &[Token], authorization: Option<&str>) -> Option<String> {
    let presented = bearer(authorization?)?;
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found = None;
    for t in tokens {
        let diff = t
            .digest
            .iter()
            .zip(&digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 && found.is_none() {
            found = Some(t.name.clone());
        }
    }
    found
}

/// Why a TCP request was refused with 401, for the log (never the token).
pub fn refusal(authorization: Option<&str>) -> &'static str {
    match authorization {
        None => "no Authorization header",
        Some(a) if bearer(a).is_none() => "Authorization is not a Bearer token",
        Some(_) => "unknown bearer token",
    }
}

/// Whether a Unix-socket peer may use the API: root, our user, or a member
/// of `group` (primary group, or supplementary as the kernel recorded them
/// with SO_PEERGROUPS).
pub fn peer_allowed(peer: &sys::Peer, own_uid: u32, group: u32, supplementary: &[u32]) -> bool {
    peer.uid == 0 || peer.uid == own_uid || peer.gid == group || supplementary.contains(&group)
}

/// Rate-limits a repeated log line: one per `every`, and the next one
/// admitted says how many were held back.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            held: 0,
        }
    }

    /// Whether to log at `now`: Some(lines held back since the last one).
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

/// Who is asking: known at accept on the Unix socket, from the token on TCP.
enum Caller {
    Peer(String),
    Tcp(SocketAddr),
}

/// Shared by all connections.
struct App {
    config: Config,
    tokens: Vec<Token>,
    group: u32,
    own_uid: u32,
    unix_budget: Budget,
    tcp_budget: Budget,
    refusals: RefCell<Throttle>,
    /// Set once a stop began: changes not yet started are refused.
    stopping: Cell<bool>,
    /// The change being applied, if any; left set when a stop cuts it off.
    change: RefCell<Option<shutdown::Change>>,
}

/// Reads and parses `token_file` (a regular file, size-capped).
fn load_tokens(path: &Path) -> Result<Vec<Token>, Error> {
    let bytes = files::read_regular(path, TOKEN_FILE_CAP)
        .map_err(|e| Error::Config(format!("token_file {} {e}", path.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Config(format!("token_file {} is not valid UTF-8", path.display())))?;
    let tokens = parse_tokens(&text);
    if tokens.is_empty() {
        return Err(Error::Config(format!(
            "token_file {} holds no token",
            path.display()
        )));
    }
    Ok(tokens)
}

/// Binds the configured listeners and serves until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), Error> {
    let (own_uid, own_gid) = sys::ids();
    let group = if config.socket_group.is_empty() {
        own_gid
    } else {
        sys::group_id(&config.socket_group).ok_or_else(|| {
            Error::Config(format!(
                "socket_group: no group named {:?}",
                config.socket_group
            ))
        })?
    };
    let tokens = match &config.token_file {
        None => Vec::new(),
        Some(p) => load_tokens(p)?,
    };
    // Registered before any socket exists: a stop from now on is handled.
    let mut signals = Signals::new([Signal::Term, Signal::Int])
        .map_err(|e| Error::Runtime(format!("cannot handle SIGTERM/SIGINT: {e}")))?;
    let tcp = if config.listen_tcp.is_empty() {
        None
    } else {
        let addr = config::tcp_address(&config.listen_tcp).map_err(Error::Config)?;
        let l = std::net::TcpListener::bind(addr)
            .map_err(|e| Error::Runtime(format!("cannot listen on {addr}: {e}")))?;
        Some(TcpListener::try_from(l).map_err(|e| Error::Runtime(format!("{addr}: {e}")))?)
    };
    // Bound last: once the Unix socket accepts, every listener does (tests
    // and supervisors wait for it).
    let (unix, socket_file) = if config.listen_unix.as_os_str().is_empty() {
        (None, None)
    } else {
        let (l, file) = bind_unix(&config.listen_unix, group)?;
        (Some(l), Some(file))
    };
    if unix.is_none() && tcp.is_none() {
        return Err(Error::Config(
            "listen_unix and listen_tcp are both empty: nothing to serve on".into(),
        ));
    }
    let max = config.max_connections;
    metrics::started();
    let app = Rc::new(App {
        config,
        tokens,
        group,
        own_uid,
        unix_budget: Budget::new(max),
        tcp_budget: Budget::new(max),
        refusals: RefCell::new(Throttle::new(REFUSAL_LOG_EVERY)),
        stopping: Cell::new(false),
        change: RefCell::new(None),
    });
    let grace = Duration::from_millis(app.config.stop_grace);
    // Tasks hold the executor to spawn per-connection tasks: an `Rc`, so
    // every task is 'static.
    let ex = Rc::new(LocalExecutor::new());
    let finished = smol::block_on(ex.run(async {
        // Every connection task holds a sender: when the last one ends,
        // `all_done` reports it.
        let (alive, all_done) = smol::channel::bounded::<()>(1);
        let mut accepting: Vec<Task<()>> = Vec::new();
        if let Some(l) = unix {
            hapgent_common::info!(
                "listening on {} (Unix socket, group {})",
                app.config.listen_unix.display(),
                app.group
            );
            accepting.push(ex.spawn(accept_unix(ex.clone(), app.clone(), l, alive.clone())));
        }
        if let Some(l) = tcp {
            accepting.push(ex.spawn(accept_tcp(ex.clone(), app.clone(), l, alive.clone())));
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
        app.stopping.set(true);
        for task in accepting {
            task.cancel().await;
        }
        let open = app.unix_budget.open() + app.tcp_budget.open();
        hapgent_common::info!(
            "stopping on {name}: no new connections; {open} in progress{}, waiting up to {} ms (stop_grace)",
            if app.change.borrow().is_some() {
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
    }));
    // Cancels the requests still running, if the grace period passed.
    drop(ex);
    let cut_off = app.change.borrow_mut().take();
    if let Some(change) = cut_off {
        smol::block_on(shutdown::recover(
            &app.config,
            &change,
            app.config.stop_grace,
        ));
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

async fn accept_unix(
    ex: Rc<LocalExecutor<'static>>,
    app: Rc<App>,
    l: UnixListener,
    alive: smol::channel::Sender<()>,
) {
    loop {
        match l.accept().await {
            Ok((stream, _)) => {
                let (app, alive) = (app.clone(), alive.clone());
                ex.spawn(async move {
                    serve_unix(&app, stream).await;
                    drop(alive);
                })
                .detach();
            }
            Err(e) => {
                hapgent_common::warn!("accept on {}: {e}", app.config.listen_unix.display());
                runtime::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn accept_tcp(
    ex: Rc<LocalExecutor<'static>>,
    app: Rc<App>,
    l: TcpListener,
    alive: smol::channel::Sender<()>,
) {
    let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    hapgent_common::info!("listening on {addr} (TCP, bearer token)");
    loop {
        match l.accept().await {
            Ok((stream, peer)) => {
                let (app, alive) = (app.clone(), alive.clone());
                ex.spawn(async move {
                    serve_tcp(&app, stream, peer).await;
                    drop(alive);
                })
                .detach();
            }
            Err(e) => {
                hapgent_common::warn!("accept on {addr}: {e}");
                runtime::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Writes a short refusal (it fits the socket buffer) and closes.
async fn refuse<S>(stream: &mut S, r: Response)
where
    S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
{
    let _ = stream.write_all(&r.serialize()).await;
    linger(stream).await;
}

fn busy_response() -> Response {
    Response::error(503, "too many connections; retry", None)
}

async fn serve_unix(app: &App, mut stream: smol::net::unix::UnixStream) {
    // Credentials first: a peer that may not use the API never holds a slot.
    let who = match sys::peer(&stream) {
        Ok(p) if peer_allowed(&p, app.own_uid, app.group, &p.groups) => {
            format!("uid {}", p.uid)
        }
        Ok(p) => {
            hapgent_common::warn!(
                "refused uid {} (pid {}): not in group {}",
                p.uid,
                p.pid,
                app.group
            );
            let r = Response::error(403, "not allowed: join the socket's group", None);
            let _ = stream.write_all(&r.serialize()).await;
            return;
        }
        Err(e) => {
            hapgent_common::warn!("cannot read peer credentials: {e}");
            return;
        }
    };
    let Some(_slot) = app.unix_budget.take() else {
        return refuse(&mut stream, busy_response()).await;
    };
    let header_timeout = Duration::from_millis(app.config.header_timeout);
    serve(app, &mut stream, Caller::Peer(who), header_timeout).await;
}

async fn serve_tcp(app: &App, mut stream: smol::net::TcpStream, peer: SocketAddr) {
    let Some(_slot) = app.tcp_budget.take() else {
        return refuse(&mut stream, busy_response()).await;
    };
    // The token is in the headers: until they are in, the client is
    // anonymous and gets only the short deadline.
    let c = &app.config;
    let header_timeout = Duration::from_millis(c.header_timeout.min(c.tcp_auth_timeout));
    serve(app, &mut stream, Caller::Tcp(peer), header_timeout).await;
}

/// One request on one connection.
async fn serve<S>(app: &App, stream: &mut S, caller: Caller, header_timeout: Duration)
where
    S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
{
    let response = match http::read_head(stream, header_timeout).await {
        Err(e) => e.response(),
        Ok(head) => Some(respond(app, stream, &head, caller).await),
    };
    if let Some(r) = response {
        let _ = stream.write_all(&r.serialize()).await;
        let _ = stream.flush().await;
    }
    linger(stream).await;
}

/// Half-closes, then reads and drops what the client still sends (a body
/// refused with 413, say) for a moment: closing with unread data would
/// reset a TCP connection and could destroy the response before the client
/// read it. Bounded in time and bytes.
async fn linger<S>(stream: &mut S)
where
    S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
{
    use smol::io::AsyncReadExt;
    let _ = stream.close().await;
    let drain = async {
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0usize;
        while total < 4 << 20 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    drain.or(runtime::sleep(Duration::from_secs(1))).await;
}

/// Who the caller is, or the 401 for a TCP request without a valid token
/// (logged, rate-limited).
fn authorize(app: &App, head: &http::Head, caller: Caller) -> Result<String, Response> {
    let peer = match caller {
        Caller::Peer(who) => return Ok(who),
        Caller::Tcp(peer) => peer,
    };
    let authorization = head.header("authorization");
    if let Some(name) = check_token(&app.tokens, authorization) {
        return Ok(format!("token {name}"));
    }
    if let Some(held) = app.refusals.borrow_mut().admit(Instant::now()) {
        hapgent_common::warn!(
            "refused {} {} from {peer} (401): {}{}",
            head.method,
            head.path,
            refusal(authorization),
            if held > 0 {
                format!(
                    "; {held} more refused since the last such line (at most one per {} s)",
                    REFUSAL_LOG_EVERY.as_secs()
                )
            } else {
                String::new()
            }
        );
    }
    Err(Response::error(
        401,
        "a valid bearer token is required (Authorization: Bearer TOKEN)",
        None,
    )
    .with("WWW-Authenticate", "Bearer".into()))
}

async fn respond<S>(app: &App, stream: &mut S, head: &http::Head, caller: Caller) -> Response
where
    S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
{
    let c = &app.config;
    let route = routes::route(&head.method, &head.path);
    // Read-only counters that name no server, file or token: Prometheus
    // scrapes them without a token, which here would be a write token.
    if route == Route::Metrics {
        return metrics::response();
    }
    let who = match authorize(app, head, caller) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let length = match http::body_length(head, c.max_body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    if route == Route::PutConfig && length == 0 {
        return Response::error(400, "the body must be a complete haproxy.cfg", None);
    }
    let body =
        match http::read_body(stream, head, length, Duration::from_millis(c.body_timeout)).await {
            Ok(b) => b,
            Err(e) => {
                return e
                    .response()
                    .unwrap_or_else(|| Response::error(400, "no body", None));
            }
        };
    match route {
        Route::Backends => match runtime::backends(&c.haproxy_socket).await {
            Ok(b) => status_json(status::json(&b)),
            Err(e) => Response::error(502, &e, None),
        },
        Route::Backend(name) => {
            if let Err(e) = crate::names::check("backend", &name) {
                return Response::error(400, &e, None);
            }
            match runtime::backend(&c.haproxy_socket, &name).await {
                Ok(Some(b)) => status_json(status::backend_json(&b)),
                Ok(None) => Response::error(404, &format!("HAProxy has no backend {name:?}"), None),
                Err(e) => Response::error(502, &e, None),
            }
        }
        Route::GetConfig => match change::read_config(&c.haproxy_config) {
            Ok(bytes) => Response {
                status: 200,
                headers: vec![
                    ("Content-Type", "text/plain; charset=utf-8".into()),
                    ("ETag", routes::etag(&bytes)),
                ],
                body: bytes,
            },
            Err(e) => Response::error(500, &format!("cannot read {e}"), None),
        },
        Route::PutConfig => put_config(app, head, &who, &body).await,
        Route::LiveConfig => change::live(c).await,
        // Answered before the token check; here for completeness.
        Route::Metrics => metrics::response(),
        Route::MethodNotAllowed(allow) => Response::error(
            405,
            &format!("{} is not allowed here; use {allow}", head.method),
            None,
        )
        .with("Allow", allow.into()),
        Route::NotFound => Response::error(
            404,
            &format!(
                "no such resource {}; see /v1/backends and /v1/config",
                head.path
            ),
            None,
        ),
    }
}

/// A 200 whose body is JSON rendered by `status` (what `status --json`
/// prints, line end included).
fn status_json(rendered: Result<String, serde_json::Error>) -> Response {
    match rendered {
        Ok(text) => {
            let mut body = text.into_bytes();
            body.push(b'\n');
            Response {
                status: 200,
                headers: vec![("Content-Type", "application/json".into())],
                body,
            }
        }
        Err(e) => Response::error(
            500,
            &format!("cannot render the backends as JSON: {e}"),
            None,
        ),
    }
}

/// Applies a change unless a stop began; records it while it runs, so
/// that a stop cutting it off knows what to undo.
async fn put_config(app: &App, head: &http::Head, who: &str, body: &[u8]) -> Response {
    if app.stopping.get() {
        metrics::answered(503);
        return Response::error(
            503,
            "hapgent-lb is stopping; nothing was changed, retry when it is back",
            None,
        );
    }
    let if_match = head.header("if-match");
    // Only the first of concurrent PUTs in this process can hold the lock
    // (`change::put` answers the others 409): record that one.
    let mine = app.change.borrow().is_none();
    if mine {
        *app.change.borrow_mut() = Some(shutdown::Change {
            who: who.to_string(),
            if_match: if_match.map(String::from),
            new_sha: routes::sha256(body),
        });
    }
    let response = change::put(&app.config, who, if_match, body).await;
    metrics::answered(response.status);
    // Not in a drop guard on purpose: a change cut off by the stop leaves
    // its record for `shutdown::recover`.
    if mine {
        app.change.borrow_mut().take();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lines_with_spaces_around_the_colon() {
        // Found by fuzzing (lb_tokens): `ops: with-space` stored the token
        // " with-space", which a trimmed bearer token never matches.
        // (file, presented, name)
        let cases = [
            ("ops: with-space", "Bearer with-space", Some("ops")),
            ("ops :with-space", "Bearer with-space", Some("ops")),
            ("ops \t:\t with-space", "Bearer with-space", Some("ops")),
            ("ops: with space", "Bearer with space", Some("ops")),
            ("ops: with-space", "Bearer  with-space", Some("ops")),
            ("ops:", "Bearer ops:", Some("token#1")),
        ];
        for (file, presented, want) in cases {
            let t = parse_tokens(file);
            assert_eq!(
                check_token(&t, Some(presented)).as_deref(),
                want,
                "{file:?}"
            );
        }
    }

    #[test]
    fn tokens() {
        let t = parse_tokens("# deploy bots\nci:s3cret\n\nplain-token\n:odd\n");
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["ci", "token#2", "token#3"]);
        for (header, want) in [
            (Some("Bearer s3cret"), Some("ci")),
            (Some("Bearer plain-token"), Some("token#2")),
            (Some("Bearer :odd"), Some("token#3")),
            (Some("Bearer s3cre"), None),
            (Some("Bearer ci:s3cret"), None),
            (Some("Basic s3cret"), None),
            (Some("Bearer "), None),
            (Some("bearer s3cret"), Some("ci")),
            (Some("BEARER  s3cret"), Some("ci")),
            (Some("BeArEr plain-token "), Some("token#2")),
            (Some("Bearers3cret"), None),
            (Some("Bearer\ts3cret"), None),
            (Some("Bear s3cret"), None),
            (None, None),
        ] {
            assert_eq!(check_token(&t, header).as_deref(), want, "{header:?}");
        }
    }

    #[test]
    fn refusals_are_named_and_their_log_lines_throttled() {
        for (authorization, want) in [
            (None, "no Authorization header"),
            (Some("Basic eA=="), "Authorization is not a Bearer token"),
            (Some("Bearer"), "Authorization is not a Bearer token"),
            (Some("bearer nope"), "unknown bearer token"),
        ] {
            assert_eq!(refusal(authorization), want, "{authorization:?}");
        }
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut t = Throttle::new(Duration::from_secs(10));
        // (when, logged with how many held back)
        for (now, want) in [
            (s(0), Some(0)),
            (s(1), None),
            (s(9), None),
            (s(10), Some(2)),
            (s(11), None),
            (s(30), Some(1)),
            (s(41), Some(0)),
        ] {
            assert_eq!(t.admit(now), want, "{:?}", now - t0);
        }
    }

    #[test]
    fn peers() {
        let p = |uid, gid| sys::Peer {
            pid: 1,
            uid,
            gid,
            groups: Vec::new(),
        };
        for (peer, supplementary, want) in [
            (p(0, 0), &[][..], true),
            (p(1000, 1000), &[][..], true),
            (p(2000, 50), &[][..], true),
            (p(2000, 2000), &[50][..], true),
            (p(2000, 2000), &[7][..], false),
        ] {
            assert_eq!(
                peer_allowed(&peer, 1000, 50, supplementary),
                want,
                "{peer:?}"
            );
        }
    }
}
