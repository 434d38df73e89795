//! hapgent-lb's API requests: the HTTP head and body anyone who can reach
//! the API socket sends, decoded the way `serve` does before any handler
//! runs: head (with its size cap), Content-Length (several must agree),
//! route, If-Match, and the backend names of a `PUT /v1/config` body.
//!
//! Input: the bytes of the connection. A first byte of `+` repeats the
//! rest past the head cap.
#![no_main]

use hapgent_fuzz::{peak_during, report_peak};
use hapgent_lb::http::{self, MAX_HEAD, ReadError};
use hapgent_lb::{routes, stat};
use libfuzzer_sys::fuzz_target;
use smol::io::{AsyncRead, AsyncWrite};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// What `read_head` reads at a time.
const READ_CHUNK: usize = 4096;
/// The body limit the fuzzed server is configured with (`max_body`).
const MAX_BODY: u64 = 1 << 20;
/// Most bytes reading one head may hold at once (the measured worst case
/// is below; see FUZZING.md).
const PEAK_LIMIT: usize = 8 * (MAX_HEAD + READ_CHUNK);

/// A connection that delivers `data` (at most `chunk` bytes per read),
/// then end of file; what the server writes is counted and dropped.
struct Conn<'a> {
    data: &'a [u8],
    chunk: usize,
    read: usize,
    written: usize,
}

impl AsyncRead for Conn<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.chunk).min(self.data.len() - self.read);
        buf[..n].copy_from_slice(&self.data[self.read..self.read + n]);
        self.read += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Conn<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.written += buf.len();
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    let big;
    let data = if data.first() == Some(&b'+') && data.len() > 1 {
        big = data[1..].repeat(2 * MAX_HEAD / (data.len() - 1) + 1);
        &big[..]
    } else {
        data
    };
    // Small reads find what only shows at a chunk boundary.
    let chunk = if data.len() % 7 == 0 {
        1 + data.len() % 97
    } else {
        READ_CHUNK
    };
    let mut conn = Conn {
        data,
        chunk,
        read: 0,
        written: 0,
    };
    let timeout = Duration::from_secs(3600);
    let (head, peak) = peak_during(|| smol::future::block_on(http::read_head(&mut conn, timeout)));
    report_peak(peak, data.len());
    // Property "head cap": a head is read or refused before more than
    // MAX_HEAD + one read of bytes are taken from the connection, and
    // reading it holds at most PEAK_LIMIT bytes.
    assert!(
        conn.read <= MAX_HEAD + READ_CHUNK,
        "read {} bytes",
        conn.read
    );
    assert!(peak <= PEAK_LIMIT, "peak {peak} bytes");
    let head = match head {
        Ok(head) => head,
        Err(ReadError::Closed) => return assert!(data.is_empty()),
        // Property "oversized heads are refused": TooLarge only once the
        // cap is passed (or with more headers than the parser holds).
        Err(ReadError::TooLarge) => return,
        Err(ReadError::Bad(_) | ReadError::Timeout) => return,
    };
    // Property "one parse": the head read in pieces is the head parsed
    // at once from everything read.
    match http::parse_head(&data[..conn.read]) {
        Ok(Some(again)) => assert_eq!(again, head),
        other => panic!("read {head:?}, parsed {other:?}"),
    }
    // Property "clean head": no CR, LF or NUL in what handlers and logs
    // see (method, path, header names and values).
    for text in [&head.method, &head.path]
        .into_iter()
        .chain(head.headers.iter().flat_map(|(n, v)| [n, v]))
    {
        assert!(!text.contains(['\r', '\n', '\0']), "{text:?}");
    }
    for (name, _) in &head.headers {
        assert_eq!(name, &name.to_ascii_lowercase());
    }

    let route = routes::route(&head.method, &head.path);
    // Property "names in routes are single path segments".
    if let routes::Route::Backend(name) = &route {
        assert!(!name.is_empty() && !name.contains('/'));
    }
    // Property "one Content-Length": a body length is found only when
    // every Content-Length header is digits and all say the same; two that
    // differ are always refused (the framing would be ambiguous).
    let lengths: Vec<&str> = head
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    let numbers: Vec<Option<u64>> = lengths
        .iter()
        .map(|v| {
            v.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| v.parse().ok())
                .flatten()
        })
        .collect();
    match http::content_length(&head) {
        Ok(n) => {
            assert!(numbers.iter().all(|x| *x == Some(n)), "{lengths:?} -> {n}");
            assert!(n == 0 || !lengths.is_empty());
        }
        Err(_) => assert!(
            numbers.iter().any(Option::is_none) || numbers.windows(2).any(|w| w[0] != w[1]),
            "{lengths:?} refused"
        ),
    }
    let length = match http::body_length(&head, MAX_BODY) {
        Ok(length) => length,
        Err(response) => {
            // Property "refusals are 4xx": 400, 411 or 413.
            assert!(
                [400, 411, 413].contains(&response.status),
                "{}",
                response.status
            );
            return;
        }
    };
    // Property "Content-Length is the body": exactly `length` bytes are
    // taken, from what came with the head and then from the connection.
    let after_head = &data[conn.read - head.rest.len()..];
    let body = smol::future::block_on(http::read_body(&mut conn, &head, length, timeout));
    match body {
        Ok(body) => {
            assert_eq!(&body[..], &after_head[..length as usize]);
            // Property "If-Match of the body's own ETag is accepted", and
            // a missing one is refused with 428.
            let etag = routes::etag(&body);
            assert_eq!(routes::precondition(Some(&etag), &etag), Ok(()));
            assert_eq!(routes::precondition(None, &etag).unwrap_err().0, 428);
            if let Some(if_match) = head.header("if-match") {
                let _ = routes::precondition(Some(if_match), &etag);
            }
            // Property "a config's backends are names from its lines".
            let text = String::from_utf8_lossy(&body);
            for name in stat::config_backends(&text) {
                assert!(!name.is_empty() && !name.contains(char::is_whitespace));
            }
        }
        Err(_) => assert!((after_head.len() as u64) < length),
    }
});
