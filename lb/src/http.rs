//! Just enough HTTP/1.1 for the API: read one request with deadlines and a
//! size limit, write one response, close.
//!
//! Parsing is httparse's (a small, fuzzed, widely used parser); this module
//! adds the limits and writes responses by hand, because the API's
//! responses are few and simple. One request per connection
//! (`Connection: close`): clients are scripts and curl, not browsers.

use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::time::{Duration, Instant};

/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;

/// The request head: what routing and authorization need.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body bytes already read together with the head.
    pub rest: Vec<u8>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response; the status line's reason and the framing headers are added
/// when it is written.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
        body.push(b'\n');
        Response {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body,
        }
    }

    /// `{"error": message}` plus optional details (HAProxy's output).
    pub fn error(status: u16, message: &str, output: Option<&str>) -> Response {
        let mut v = serde_json::json!({ "error": message, "status": status });
        if let Some(o) = output {
            v["output"] = serde_json::Value::from(o);
        }
        Response::json(status, &v)
    }

    pub fn with(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    /// The bytes on the wire.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        428 => "Precondition Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Why no request could be read; each maps to one error response, or to
/// none when the client is gone.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    Closed,
    Timeout,
    TooLarge,
    Bad(String),
}

impl ReadError {
    pub fn response(&self) -> Option<Response> {
        match self {
            ReadError::Closed => None,
            ReadError::Timeout => Some(Response::error(
                408,
                "the request was not received in time",
                None,
            )),
            ReadError::TooLarge => {
                Some(Response::error(431, "request headers are too large", None))
            }
            ReadError::Bad(m) => Some(Response::error(400, m, None)),
        }
    }
}

/// Reads into `buf` before `deadline`; 0 means the peer closed.
async fn read_some<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<usize, ReadError> {
    let read = async { stream.read(buf).await.map_err(|_| ReadError::Closed) };
    let timeout = async {
        smol::Timer::at(deadline).await;
        Err(ReadError::Timeout)
    };
    read.or(timeout).await
}

/// Parses a complete head, or `None` if more bytes are needed.
pub fn parse_head(bytes: &[u8]) -> Result<Option<Head>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(n)) => Ok(Some(Head {
            method: req.method.unwrap_or("").to_string(),
            path: req.path.unwrap_or("").to_string(),
            headers: req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).trim().to_string(),
                    )
                })
                .collect(),
            rest: bytes[n..].to_vec(),
        })),
        Err(httparse::Error::TooManyHeaders) => Err(ReadError::TooLarge),
        Err(e) => Err(ReadError::Bad(format!("malformed request: {e}"))),
    }
}

/// Reads the request head within `timeout` (a slow client is cut off when
/// it passes, however it trickles bytes).
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Head, ReadError> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = read_some(stream, &mut chunk, deadline).await?;
        if n == 0 {
            return Err(if buf.is_empty() {
                ReadError::Closed
            } else {
                ReadError::Bad("connection closed mid-request".into())
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head) = parse_head(&buf)? {
            return Ok(head);
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::TooLarge);
        }
    }
}

/// What the head says about the body: its length, or the error response.
pub fn body_length(head: &Head, max: u64) -> Result<u64, Response> {
    if head.header("transfer-encoding").is_some() {
        return Err(Response::error(
            411,
            "chunked bodies are not accepted; send Content-Length (curl --data-binary @FILE)",
            None,
        ));
    }
    let length = content_length(head).map_err(|m| Response::error(400, &m, None))?;
    if length > max {
        return Err(Response::error(
            413,
            &format!("the body is {length} bytes; the limit (max_body) is {max}"),
            None,
        ));
    }
    Ok(length)
}

/// The body length `Content-Length` gives: 0 without one. Several
/// headers must agree: two lengths that differ would frame the body
/// differently for this server and for a proxy in front of it (request
/// smuggling), so they are refused. A value is digits only (`+5` and
/// `5, 5` are not lengths).
pub fn content_length(head: &Head) -> Result<u64, String> {
    let mut length = None;
    for (_, v) in head.headers.iter().filter(|(n, _)| n == "content-length") {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("Content-Length {v:?} is not a number"));
        }
        let n: u64 = v
            .parse()
            .map_err(|_| format!("Content-Length {v} is too large"))?;
        match length {
            Some(before) if before != n => {
                return Err(format!(
                    "two different Content-Length headers ({before} and {n}); send one"
                ));
            }
            _ => length = Some(n),
        }
    }
    Ok(length.unwrap_or(0))
}

/// Reads exactly `length` body bytes within `timeout`, starting with what
/// came with the head. Sends `100 Continue` first when the client asked.
pub async fn read_body<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    head: &Head,
    length: u64,
    timeout: Duration,
) -> Result<Vec<u8>, ReadError> {
    let deadline = Instant::now() + timeout;
    let length = usize::try_from(length).map_err(|_| ReadError::TooLarge)?;
    let mut body = head.rest.clone();
    body.truncate(length);
    if body.len() < length
        && head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
    }
    let mut chunk = vec![0u8; 64 * 1024];
    while body.len() < length {
        let want = (length - body.len()).min(chunk.len());
        let n = read_some(stream, &mut chunk[..want], deadline).await?;
        if n == 0 {
            return Err(ReadError::Bad(
                "connection closed before the whole body arrived".into(),
            ));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let h = parse_head(
            b"PUT /v1/config HTTP/1.1\r\nIf-Match: \"ab\"\r\nContent-Length: 3\r\n\r\nabc",
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str()), ("PUT", "/v1/config"));
        assert_eq!(h.header("if-match"), Some("\"ab\""));
        assert_eq!(h.rest, b"abc");
        assert_eq!(body_length(&h, 3), Ok(3));
        assert_eq!(body_length(&h, 2).unwrap_err().status, 413);
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
            Err(ReadError::Bad(_))
        ));
        let chunked = parse_head(b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(body_length(&chunked, 10).unwrap_err().status, 411);
        let bad = parse_head(b"PUT / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(body_length(&bad, 10).unwrap_err().status, 400);
    }

    #[test]
    fn content_lengths() {
        // (Content-Length headers, length or the start of the message)
        let cases: &[(&[&str], Result<u64, &str>)] = &[
            (&[], Ok(0)),
            (&["5"], Ok(5)),
            (&["5", "5"], Ok(5)),
            (&["0005"], Ok(5)),
            (
                &["5", "6"],
                Err("two different Content-Length headers (5 and 6)"),
            ),
            (
                &["5", "5", "7"],
                Err("two different Content-Length headers (5 and 7)"),
            ),
            (&["+5"], Err("Content-Length \"+5\" is not a number")),
            (&["5, 5"], Err("Content-Length \"5, 5\" is not a number")),
            (&["-1"], Err("Content-Length \"-1\" is not a number")),
            (&[""], Err("Content-Length \"\" is not a number")),
            (
                &["99999999999999999999999"],
                Err("Content-Length 99999999999999999999999 is too large"),
            ),
        ];
        for (values, want) in cases {
            let mut raw = String::from("PUT / HTTP/1.1\r\n");
            for v in *values {
                raw.push_str(&format!("Content-Length: {v}\r\n"));
            }
            raw.push_str("\r\n");
            let head = parse_head(raw.as_bytes()).unwrap().unwrap();
            match (content_length(&head), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{values:?}"),
                (Err(got), Err(want)) => assert!(got.starts_with(want), "{values:?}: {got}"),
                (got, want) => panic!("{values:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn responses() {
        let r = Response::error(409, "busy", None).with("Retry-After", "1".into());
        let text = String::from_utf8(r.serialize()).unwrap();
        assert!(text.starts_with("HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nRetry-After: 1\r\nContent-Length: "), "{text}");
        assert!(
            text.ends_with(
                "\r\nConnection: close\r\n\r\n{\n  \"error\": \"busy\",\n  \"status\": 409\n}\n"
            ),
            "{text}"
        );
    }
}
