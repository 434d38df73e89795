//! `serve`: the HTTP API on a Unix socket and/or a loopback TCP address.
//!
//! One thread, one `LocalExecutor`: no locks (the one-change-at-a-time
//! rule is `change`'s lock file, shared with other processes). Each connection is one task with a cap on how
//! many run at once; its errors are logged inside it and never stop the
//! server.
//!
//! Who may call: on the Unix socket, the kernel checks the socket file's
//! mode (0660, group `socket_group`), and the peer's credentials are
//! checked again (root, our own user, or a member of the group); on TCP, a
//! bearer token from `token_file`, compared in constant time.

use crate::config::{self, Config};
use crate::error::Error;
use crate::http::{self, Response};
use crate::routes::{self, Route};
use crate::{change, runtime, sys};
use sha2::{Digest, Sha256};
use smol::io::AsyncWriteExt;
use smol::net::TcpListener;
use smol::net::unix::UnixListener;
use smol::{Async, LocalExecutor};
use std::cell::Cell;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

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

/// The name of the token in an `Authorization: Bearer …` value. Compares
/// SHA-256 digests with every token, always all 32 bytes of each: the
/// time taken does not depend on how much of a token was right.
pub fn check_token(tokens: &[Token], authorization: Option<&str>) -> Option<String> {
    let presented = authorization?.strip_prefix("Bearer ")?.trim();
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

/// Whether a Unix-socket peer may use the API: root, our user, or a member
/// of `group` (primary group, or supplementary as the kernel recorded them
/// with SO_PEERGROUPS).
pub fn peer_allowed(peer: &sys::Peer, own_uid: u32, group: u32, supplementary: &[u32]) -> bool {
    peer.uid == 0 || peer.uid == own_uid || peer.gid == group || supplementary.contains(&group)
}

/// Shared by all connections.
struct App {
    config: Config,
    tokens: Vec<Token>,
    group: u32,
    own_uid: u32,
    open: Cell<u32>,
}

/// Binds the configured listeners and serves until killed.
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
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Error::Config(format!("token_file {}: {e}", p.display())))?;
            let tokens = parse_tokens(&text);
            if tokens.is_empty() {
                return Err(Error::Config(format!(
                    "token_file {} holds no token",
                    p.display()
                )));
            }
            tokens
        }
    };
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
    let unix = if config.listen_unix.as_os_str().is_empty() {
        None
    } else {
        Some(bind_unix(&config.listen_unix, group)?)
    };
    if unix.is_none() && tcp.is_none() {
        return Err(Error::Config(
            "listen_unix and listen_tcp are both empty: nothing to serve on".into(),
        ));
    }
    let app = Rc::new(App {
        config,
        tokens,
        group,
        own_uid,
        open: Cell::new(0),
    });
    // Tasks hold the executor to spawn per-connection tasks: an `Rc`, so
    // every task is 'static.
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        if let Some(l) = unix {
            hapgent_common::info!(
                "listening on {} (Unix socket, group {})",
                app.config.listen_unix.display(),
                app.group
            );
            let app = app.clone();
            let spawner = ex.clone();
            ex.spawn(async move {
                loop {
                    match l.accept().await {
                        Ok((stream, _)) => {
                            let app = app.clone();
                            spawner
                                .spawn(async move { serve_unix(&app, stream).await })
                                .detach();
                        }
                        Err(e) => {
                            hapgent_common::warn!(
                                "accept on {}: {e}",
                                app.config.listen_unix.display()
                            );
                            runtime::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
            .detach();
        }
        if let Some(l) = tcp {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            hapgent_common::info!("listening on {addr} (TCP, bearer token)");
            let app = app.clone();
            let spawner = ex.clone();
            ex.spawn(async move {
                loop {
                    match l.accept().await {
                        Ok((stream, _)) => {
                            let app = app.clone();
                            spawner
                                .spawn(async move { serve_tcp(&app, stream).await })
                                .detach();
                        }
                        Err(e) => {
                            hapgent_common::warn!("accept on {addr}: {e}");
                            runtime::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
            .detach();
        }
        std::future::pending::<()>().await;
    }));
    Ok(())
}

/// Binds the Unix socket (replacing a stale one), mode 0660, group `group`.
fn bind_unix(path: &Path, group: u32) -> Result<UnixListener, Error> {
    let fail =
        |what: &str, e: std::io::Error| Error::Runtime(format!("{what} {}: {e}", path.display()));
    if std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        std::fs::remove_file(path).map_err(|e| fail("removing the stale socket", e))?;
    }
    let l =
        std::os::unix::net::UnixListener::bind(path).map_err(|e| fail("cannot listen on", e))?;
    std::os::unix::fs::chown(path, None, Some(group)).map_err(|e| fail("chgrp", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| fail("chmod 0660", e))?;
    let l = Async::new(l).map_err(|e| fail("cannot listen on", e))?;
    Ok(UnixListener::from(l))
}

/// Counts a connection; refuses beyond `max_connections`.
struct Slot<'a>(&'a Cell<u32>);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

fn take_slot(app: &App) -> Option<Slot<'_>> {
    if app.open.get() >= app.config.max_connections {
        return None;
    }
    app.open.set(app.open.get() + 1);
    Some(Slot(&app.open))
}

async fn serve_unix(app: &App, mut stream: smol::net::unix::UnixStream) {
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
    serve(app, &mut stream, Some(who)).await;
}

async fn serve_tcp(app: &App, mut stream: smol::net::TcpStream) {
    serve(app, &mut stream, None).await;
}

/// One request on one connection. `who` is known for Unix peers; on TCP it
/// comes from the bearer token.
async fn serve<S>(app: &App, stream: &mut S, who: Option<String>)
where
    S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
{
    let Some(_slot) = take_slot(app) else {
        let r = Response::error(503, "too many connections; retry", None);
        let _ = stream.write_all(&r.serialize()).await;
        return;
    };
    let c = &app.config;
    let response = match http::read_head(stream, Duration::from_millis(c.header_timeout)).await {
        Err(e) => e.response(),
        Ok(head) => Some(respond(app, stream, &head, who).await),
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
    use smol::future::FutureExt;
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

async fn respond<S>(app: &App, stream: &mut S, head: &http::Head, who: Option<String>) -> Response
where
    S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
{
    let c = &app.config;
    let who = match who {
        Some(w) => w,
        None => match check_token(&app.tokens, head.header("authorization")) {
            Some(name) => format!("token {name}"),
            None => {
                return Response::error(
                    401,
                    "a valid bearer token is required (Authorization: Bearer TOKEN)",
                    None,
                )
                .with("WWW-Authenticate", "Bearer".into());
            }
        },
    };
    let length = match http::body_length(head, c.max_body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let route = routes::route(&head.method, &head.path);
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
            Ok(b) => Response::json(200, &serde_json::json!({ "backends": b })),
            Err(e) => Response::error(502, &e, None),
        },
        Route::Backend(name) => {
            if let Err(e) = crate::names::check("backend", &name) {
                return Response::error(400, &e, None);
            }
            match runtime::backends(&c.haproxy_socket).await {
                Ok(b) => match b.into_iter().find(|b| b.name == name) {
                    Some(b) => Response::json(200, &serde_json::json!(b)),
                    None => Response::error(404, &format!("HAProxy has no backend {name:?}"), None),
                },
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
        Route::PutConfig => change::put(c, &who, head.header("if-match"), &body).await,
        Route::LiveConfig => change::live(c).await,
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
            (None, None),
        ] {
            assert_eq!(check_token(&t, header).as_deref(), want, "{header:?}");
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
