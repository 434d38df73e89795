//! The `http` check: one plain HTTP/1.1 GET, 2xx and 3xx pass.
//!
//! The request asks the server to close (`Connection: close`); the status
//! line and headers are parsed with httparse, at most [`MAX_HEAD`] bytes of
//! them. The body is read and thrown away, at most [`MAX_BODY`] bytes of it
//! (or its Content-Length, if smaller), so the server does not see its
//! response cut by a reset; what is left beyond that is not waited for.
//! Redirects are not followed: a 3xx from a health endpoint already says
//! the application answers. No TLS: the check talks to this host. The
//! timeout is the runner's; a server that sends its status and then hangs
//! times the check out, which fails it.

use super::check::Outcome;
use super::tcp::outcome_of;
use smol::Async;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use std::net::{SocketAddr, TcpStream};

/// Most bytes of status line and headers read.
pub const MAX_HEAD: usize = 16 << 10;
/// Most body bytes read (and discarded).
pub const MAX_BODY: u64 = 64 << 10;
/// Most headers parsed.
const MAX_HEADERS: usize = 64;

/// What [`parse_head`] says of bytes that are not an HTTP response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotHttp;

/// The request line and headers for `GET path` with `Host: host`.
pub fn request(host: &str, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hapgent/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// What the head read so far says: the status and the body length (when
/// given and not chunked) with the number of head bytes; `Ok(None)` while
/// incomplete; Err when it is not an HTTP response.
pub fn parse_head(bytes: &[u8]) -> Result<Option<(u16, Option<u64>, usize)>, NotHttp> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => {
            let code = response.code.ok_or(NotHttp)?;
            let chunked = response
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
            let length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .filter(|_| !chunked);
            Ok(Some((code, length, len)))
        }
        Ok(httparse::Status::Partial) if bytes.len() < MAX_HEAD => Ok(None),
        _ => Err(NotHttp),
    }
}

/// GETs `path` from `addr`.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Outcome {
    let mut stream = match Async::<TcpStream>::connect(addr).await {
        Ok(s) => s,
        Err(e) => return outcome_of(&e),
    };
    if let Err(e) = stream.write_all(request(host, path).as_bytes()).await {
        return outcome_of(&e);
    }
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let (code, length, used) = loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => return Outcome::BadReply,
            Ok(n) => n,
            Err(e) => return outcome_of(&e),
        };
        head.extend_from_slice(&buf[..n]);
        match parse_head(&head) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => continue,
            Err(NotHttp) => return Outcome::BadReply,
        }
    };
    // Discard the body (what came with the head counts), up to the cap.
    let already = (head.len() - used) as u64;
    let want = length
        .unwrap_or(MAX_BODY)
        .min(MAX_BODY)
        .saturating_sub(already);
    let mut body = (&mut stream).take(want);
    let _ = smol::io::copy(&mut body, &mut smol::io::sink()).await;
    Outcome::Http(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        type Head = Option<(u16, Option<u64>, usize)>;
        let cases: &[(&str, Result<Head, NotHttp>)] = &[
            ("HTTP/1.1 200 OK\r\n\r\n", Ok(Some((200, None, 19)))),
            (
                "HTTP/1.1 503 Unavailable\r\nContent-Length: 5\r\n\r\nbusy!",
                Ok(Some((503, Some(5), 47))),
            ),
            (
                "HTTP/1.0 302 Found\r\nLocation: /\r\n\r\n",
                Ok(Some((302, None, 35))),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                Ok(Some((200, None, 66))),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                Ok(Some((200, None, 38))),
            ),
            ("HTTP/1.1 200 OK\r\n", Ok(None)),
            ("HTTP/1.1 2", Ok(None)),
            ("", Ok(None)),
            ("SSH-2.0-OpenSSH_9.2\r\n", Err(NotHttp)),
            ("HTTP/1.1 abc OK\r\n\r\n", Err(NotHttp)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_head(text.as_bytes()), *want, "{text:?}");
        }
        // A head that never ends is cut at MAX_HEAD.
        let endless = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(parse_head(endless.as_bytes()), Err(NotHttp));
    }

    #[test]
    fn request_text() {
        let r = request("127.0.0.1:8080", "/health?x=1");
        assert!(
            r.starts_with("GET /health?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
            "{r}"
        );
        assert!(r.ends_with("Connection: close\r\n\r\n"), "{r}");
    }
}
