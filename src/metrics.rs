//! Prometheus metrics: `GET /metrics` on `metrics_listen`, and the same
//! text through `hapgent ctl metrics` for hosts without a scraper.
//!
//! The text is rendered on demand from what the agent already keeps (the
//! services, the prober table, a few counters); nothing is added to the
//! path that answers a probe, and the prober table, which may be large, is
//! copied in chunks and rendered on a thread of its own (see `probers`).
//! HTTP requests are parsed by `httparse`, a small and widely used parser,
//! with a cap on the request head and a deadline; each connection is its
//! own task, at most `MAX_CONNECTIONS` at once, in a `line`: a new
//! connection is never refused, it closes the one open longest, so clients
//! that trickle a request (or never send one) cannot keep a scraper, which
//! sends its request at once, out. Only `GET` (and `HEAD`) of `/metrics` is
//! served.
//!
//! `render` is pure given the agent's state, and every metric it writes is
//! listed in the README.

use crate::agent::Agent;
use crate::error::Error;
use crate::line::Line;
use crate::listen;
use crate::protocol::{self, Admin};
use crate::service::Cause;
use crate::services;
use crate::state::Status;
use smol::{Async, LocalExecutor, Task, Timer, future, prelude::*};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest request head read.
pub const MAX_HEAD: usize = 8192;
/// How long a client has to send its request.
const DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once; a newer one closes the one open longest.
const MAX_CONNECTIONS: usize = 16;
/// Connections accepted in a row before those accepted run: at most half
/// of `MAX_CONNECTIONS`, so each runs (and reads a request sent at once)
/// before enough newer ones come to close it.
const BURST: usize = MAX_CONNECTIONS / 2;

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
    let ex2 = Rc::clone(ex);
    Ok(ex.spawn(async move {
        let line = Line::new(MAX_CONNECTIONS);
        let mut burst = 0;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    crate::warn!("metrics: accept failed: {e}");
                    Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (place, _) = line.join();
            let agent = Rc::clone(&agent);
            ex2.spawn(async move {
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
            // `accept` does not yield while connections are queued.
            burst += 1;
            if burst == BURST {
                burst = 0;
                future::yield_now().await;
            }
        }
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
            let body = render(agent).await;
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
    let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
    // Drop what the client still sends so the close does not reset.
    let mut buf = [0u8; 1024];
    let mut total = 0;
    while total < MAX_HEAD {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
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

/// A metric family: its help and type lines, once.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The metrics text, in the Prometheus exposition format (empty only if
/// rendering failed, a bug).
pub async fn render(agent: &Agent) -> String {
    let mut out = String::with_capacity(4096);
    let services = agent.services();

    family(
        &mut out,
        "hapgent_build_info",
        "gauge",
        "hapgent's version; always 1.",
    );
    let _ = writeln!(
        out,
        "hapgent_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    family(
        &mut out,
        "hapgent_uptime_seconds",
        "gauge",
        "Seconds since hapgent started.",
    );
    let _ = writeln!(
        out,
        "hapgent_uptime_seconds {:.3}",
        agent.uptime().as_secs_f64()
    );

    family(
        &mut out,
        "hapgent_service_status",
        "gauge",
        "The status in the service's state file: 1 for the current one, 0 for the others.",
    );
    for s in &services {
        let current = s.state().status;
        for status in Status::ALL {
            let _ = writeln!(
                out,
                "hapgent_service_status{{service=\"{}\",status=\"{}\"}} {}",
                services::label(&s.name),
                status.name(),
                u8::from(status == current)
            );
        }
    }
    family(
        &mut out,
        "hapgent_service_admin_state",
        "gauge",
        "The administrative state the reply asks HAProxy for (with the flag files): 1 for the current one; none when the reply leaves it unsaid.",
    );
    for s in &services {
        let admin = protocol::admin_of(&s.state(), agent.overlay(s).admin);
        for a in [Admin::Ready, Admin::Drain, Admin::Maint] {
            let _ = writeln!(
                out,
                "hapgent_service_admin_state{{service=\"{}\",state=\"{}\"}} {}",
                services::label(&s.name),
                a.word(),
                u8::from(admin == Some(a))
            );
        }
    }
    family(
        &mut out,
        "hapgent_service_weight_percent",
        "gauge",
        "The weight the reply carries, in percent of the weight configured in HAProxy.",
    );
    for s in &services {
        let weight = protocol::weight(&s.state(), agent.overlay(s));
        let _ = writeln!(
            out,
            "hapgent_service_weight_percent{{service=\"{}\"}} {weight}",
            services::label(&s.name)
        );
    }
    family(
        &mut out,
        "hapgent_service_maxconn",
        "gauge",
        "The connection limit the reply carries (0: unlimited); absent when none is set.",
    );
    for s in &services {
        if let Some(m) = s.state().maxconn {
            let _ = writeln!(
                out,
                "hapgent_service_maxconn{{service=\"{}\"}} {m}",
                services::label(&s.name)
            );
        }
    }
    family(
        &mut out,
        "hapgent_service_state_version",
        "gauge",
        "The version of the state served: one more for every change since hapgent started.",
    );
    for s in &services {
        let _ = writeln!(
            out,
            "hapgent_service_state_version{{service=\"{}\"}} {}",
            services::label(&s.name),
            s.version()
        );
    }
    family(
        &mut out,
        "hapgent_service_state_saved",
        "gauge",
        "1 if the state file holds the state served, 0 while a save is pending or failing.",
    );
    for s in &services {
        let _ = writeln!(
            out,
            "hapgent_service_state_saved{{service=\"{}\"}} {}",
            services::label(&s.name),
            u8::from(s.is_saved())
        );
    }
    family(
        &mut out,
        "hapgent_probes_total",
        "counter",
        "Probes answered, by the service they asked about.",
    );
    for s in &services {
        let _ = writeln!(
            out,
            "hapgent_probes_total{{service=\"{}\"}} {}",
            services::label(&s.name),
            s.counters.probes.get()
        );
    }
    family(
        &mut out,
        "hapgent_probes_refused_total",
        "counter",
        "Probes not answered with a state: allow_list (source not allowed, closed), connection_limit (closed), unknown_service (answered with no news).",
    );
    let server = agent.server_counters().unwrap_or_default();
    for (reason, n) in [
        ("allow_list", server.refused_allow),
        ("connection_limit", server.refused_cap),
        ("unknown_service", agent.counters.unknown_service.get()),
    ] {
        let _ = writeln!(
            out,
            "hapgent_probes_refused_total{{reason=\"{reason}\"}} {n}"
        );
    }
    family(
        &mut out,
        "hapgent_state_changes_total",
        "counter",
        "State changes, by cause: signal (SIGUSR1/SIGUSR2), ctl (hapgent ctl), file (read at SIGHUP).",
    );
    for s in &services {
        for cause in Cause::ALL {
            let _ = writeln!(
                out,
                "hapgent_state_changes_total{{service=\"{}\",cause=\"{}\"}} {}",
                services::label(&s.name),
                cause.name(),
                s.counters.changes[cause as usize].get()
            );
        }
    }
    family(
        &mut out,
        "hapgent_state_save_failures_total",
        "counter",
        "Failed attempts to save the state file.",
    );
    for s in &services {
        let _ = writeln!(
            out,
            "hapgent_state_save_failures_total{{service=\"{}\"}} {}",
            services::label(&s.name),
            s.counters.failed_saves.get()
        );
    }

    family(
        &mut out,
        "hapgent_probers_evicted_total",
        "counter",
        "Probers forgotten to stay within max_probers per service (or the 64 for unknown names); if it keeps rising, raise max_probers.",
    );
    let _ = writeln!(
        out,
        "hapgent_probers_evicted_total {}",
        agent.probers().evicted()
    );
    let snapshot = crate::probers::snapshot(|| agent.probers(), agent.seen_window()).await;
    let names = snapshot.names(|id| agent.service_name(id));
    let rendered = crate::probers::off_probe_thread(move || {
        render_probers(&mut out, snapshot.sorted(), &names, SystemTime::now());
        out
    })
    .await;
    rendered.unwrap_or_default()
}

/// The per-prober series: from a copy of the table, on a thread of its own
/// (see `probers::off_probe_thread`), as the table may be large.
fn render_probers(
    out: &mut String,
    snapshot: crate::probers::Snapshot,
    names: &HashMap<u32, String>,
    now: SystemTime,
) {
    let since_epoch = |ago: Duration| {
        now.checked_sub(ago)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let rows: Vec<(String, &str, &crate::probers::Row)> = snapshot
        .rows
        .iter()
        .map(|p| {
            let service = names.get(&p.service).map_or("", String::as_str);
            (p.address.to_string(), services::label(service), p)
        })
        .collect();
    family(
        out,
        "hapgent_prober_last_probe_timestamp_seconds",
        "gauge",
        "When each load balancer (source address) last probed about each service, Unix time.",
    );
    for (addr, service, p) in &rows {
        let _ = writeln!(
            out,
            "hapgent_prober_last_probe_timestamp_seconds{{prober=\"{addr}\",service=\"{service}\"}} {:.3}",
            since_epoch(p.last_ago)
        );
    }
    family(
        out,
        "hapgent_prober_state_version",
        "gauge",
        "The state version the last reply to each load balancer carried (0 for an unknown service).",
    );
    for (addr, service, p) in &rows {
        let _ = writeln!(
            out,
            "hapgent_prober_state_version{{prober=\"{addr}\",service=\"{service}\"}} {}",
            p.version
        );
    }
    family(
        out,
        "hapgent_prober_probes_total",
        "counter",
        "Probes from each load balancer about each service since it was first seen.",
    );
    for (addr, service, p) in &rows {
        let _ = writeln!(
            out,
            "hapgent_prober_probes_total{{prober=\"{addr}\",service=\"{service}\"}} {}",
            p.probes
        );
    }
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
