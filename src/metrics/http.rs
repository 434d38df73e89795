//! The metrics' HTTP side: `GET /metrics` on `metrics_listen`. HTTP requests are parsed by `httparse`, a small and widely used parser,
//! with a cap on the request head and a deadline; each connection is its
//! own task, at most `MAX_CONNECTIONS` at once, in a `line`: a new
//! connection is never refused, it closes the one open longest, so clients
//! that trickle a request (or never send one) cannot keep a scraper, which
//! sends its request at once, out. Only `GET` (and `HEAD`) of `/metrics` is
//! served.

use crate::agent::Agent;
use crate::exit::Error;
use crate::line::Line;
use crate::listen;
use hapgent_common::serving;
use smol::{Async, LocalExecutor, Task, Timer, prelude::*};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

/// Largest request head read.
pub const MAX_HEAD: usize = 8192;
/// How long a client has to send its request.
const DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once; a newer one closes the one open longest.
const MAX_CONNECTIONS: usize = 16;
/// Connections accepted in a row before those accepted run: at most half
/// of `MAX_CONNECTIONS`, so each runs (and reads a request sent at once)
/// before enough newer ones come to close it.
const BURST: u32 = MAX_CONNECTIONS as u32 / 2;
/// How long the client's leftovers are read and dropped after the answer.
const LINGER_TIME: Duration = Duration::from_secs(1);

/// Binds the metrics listener.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).map_err(|e| {
        Error::Runtime(format!(
            "metrics_listen: {}",
            listen::bind_error(addr, &e, &[])
        ))
    })
}

/// Serves scrapes until the returned task is dropped.
pub fn serve(
    ex: &Rc<LocalExecutor<'static>>,
    listener: TcpListener,
    agent: Rc<Agent>,
) -> Result<Task<()>, Error> {
    let listener = Async::new(listener)
        .map_err(|e| Error::Runtime(format!("cannot watch the metrics socket: {e}")))?;
    let tasks = Rc::clone(ex);
    Ok(ex.spawn(async move {
        let line = Line::new(MAX_CONNECTIONS);
        // Yields after BURST in a row: `accept` does not while connections
        // are queued.
        serving::accept_loop(&listener, BURST, |(stream, _)| {
            let (place, _) = line.join();
            let agent = Rc::clone(&agent);
            tasks
                .spawn(async move {
                    let _ = scrape(stream, &agent)
                        .or(async {
                            place.cut().await;
                            Ok(())
                        })
                        .or(async {
                            Timer::after(DEADLINE * 2).await;
                            Ok(())
                        })
                        .await;
                })
                .detach();
        })
        .await;
    }))
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics { head: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
    TooLarge,
}

/// Decides on a request head; `None` while incomplete. Pure.
pub fn route(head: &[u8]) -> Option<Route> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if head.len() >= MAX_HEAD => return Some(Route::TooLarge),
        Ok(httparse::Status::Partial) => return None,
        Err(httparse::Error::TooManyHeaders) => return Some(Route::TooLarge),
        Err(_) => return Some(Route::BadRequest),
    }
    let path = request.path.unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Some(Route::NotFound);
    }
    Some(match request.method {
        Some("GET") => Route::Metrics { head: false },
        Some("HEAD") => Route::Metrics { head: true },
        _ => Route::MethodNotAllowed,
    })
}

/// Reads one request within the deadline and answers it.
async fn scrape(stream: Async<TcpStream>, agent: &Agent) -> io::Result<()> {
    let mut stream = stream;
    let mut head = Vec::with_capacity(512);
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(Route::BadRequest);
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(route) = route(&head) {
                return Ok(route);
            }
        }
    };
    let deadline = async {
        Timer::after(DEADLINE).await;
        Err(io::Error::from(io::ErrorKind::TimedOut))
    };
    let route = read.or(deadline).await?;
    let (status, body) = match route {
        Route::Metrics { head } => {
            let body = super::text(agent).await;
            let answer = response(
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
                head,
            );
            return write_answer(&mut stream, &answer).await;
        }
        Route::NotFound => ("404 Not Found", "only /metrics is served\n"),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "only GET and HEAD\n"),
        Route::BadRequest => ("400 Bad Request", "not an HTTP request\n"),
        Route::TooLarge => (
            "431 Request Header Fields Too Large",
            "request head too large\n",
        ),
    };
    let answer = response(status, "text/plain; charset=utf-8", body, false);
    write_answer(&mut stream, &answer).await
}

async fn write_answer(stream: &mut Async<TcpStream>, answer: &[u8]) -> io::Result<()> {
    stream.write_all(answer).await?;
    stream.flush().await?;
    // Drop what the client still sends so the close does not reset.
    serving::linger(stream, MAX_HEAD, LINGER_TIME).await;
    Ok(())
}

/// An HTTP/1.1 response that closes the connection.
pub fn response(status: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let cases: &[(&[u8], Option<Route>)] = &[
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Some(Route::Metrics { head: false }),
            ),
            (
                b"GET /metrics?x=1 HTTP/1.0\r\n\r\n",
                Some(Route::Metrics { head: false }),
            ),
            (
                b"HEAD /metrics HTTP/1.1\r\n\r\n",
                Some(Route::Metrics { head: true }),
            ),
            (
                b"POST /metrics HTTP/1.1\r\n\r\n",
                Some(Route::MethodNotAllowed),
            ),
            (b"GET / HTTP/1.1\r\n\r\n", Some(Route::NotFound)),
            (b"GET /metrics/x HTTP/1.1\r\n\r\n", Some(Route::NotFound)),
            (b"GET /metrics HTTP/1.1\r\n", None),
            (b"GET /met", None),
            (b"", None),
            (b"\x16\x03\x01\x00\xa5", Some(Route::BadRequest)),
            (b"hello world\r\n\r\n", Some(Route::BadRequest)),
        ];
        for (head, want) in cases {
            assert_eq!(route(head), *want, "{:?}", String::from_utf8_lossy(head));
        }
        let mut long = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert_eq!(route(&long), Some(Route::TooLarge));
        let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..40 {
            many.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(route(&many), Some(Route::TooLarge));
    }

    #[test]
    fn responses() {
        assert_eq!(
            response("200 OK", "text/plain", "abc", false),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        );
        assert_eq!(
            response("405 Method Not Allowed", "text/plain", "x", true),
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\nAllow: GET, HEAD\r\n\r\n"
        );
    }
}
