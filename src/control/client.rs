//! `hapgent ctl`: the client of the control socket (see `control` for the
//! server and `wire` for the protocol, whose typed answers it reads).
//!
//! It builds one request from the command line, sends it, prints the
//! answer, and turns it into an exit code a deploy script can branch on
//! (see `Error::exit_code`). With `--wait-seen`, a change is followed by a
//! second request that returns once every load balancer probing this host
//! has been served the new state. Every failure names the socket and says
//! what to do.

use super::seconds;
use super::wire::{
    self, Answer, Code, HealthAnswer, MetricsAnswer, ProbersAnswer, Request, ServiceAnswer,
    WaitSeenAnswer,
};
use crate::cli::{Action, Ctl};
use crate::config::Config;
use crate::exit::Error;
use crate::services;
// Everything this module prints goes to stdout through these: they stop
// printing, quietly, when the reader has gone (`| head -1`), where std's
// would panic, and the exit code still tells how the command ended (see
// `hapgent_common::out`).
use hapgent_common::{out as print, outln as println};
use serde_json::{Map, Value};
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// `--timeout` when not given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one `hapgent ctl` command.
pub fn run(config: &Config, ctl: Ctl) -> Result<(), Error> {
    let socket = &config.control_socket;
    if socket.as_os_str().is_empty() {
        return Err(Error::Unavailable(
            "the control socket is disabled (control_socket is empty in hapgent's configuration)"
                .into(),
        ));
    }
    let timeout = match &ctl.timeout {
        Some(text) => hapgent_common::duration::parse(text, hapgent_common::duration::DAY)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--timeout {text:?}: not a duration such as 30s, 500ms or 2m"
                ))
            })?,
        None => DEFAULT_TIMEOUT,
    };
    let Some(action) = ctl.action else {
        return Err(Error::Usage("hapgent ctl needs a command".into()));
    };
    let service = if ctl.all {
        Some(wire::ALL.to_string())
    } else {
        ctl.service.clone()
    };
    let request = request(&action, service.clone())?;
    let changes = matches!(request, Request::Set { .. });
    let answer = ask(socket, &request, Duration::from_secs(10))?;
    let answer = accept(socket, answer)?;
    let wait = matches!(action, Action::WaitSeen) || (changes && ctl.wait_seen);
    if matches!(action, Action::Metrics) {
        let metrics: MetricsAnswer = body(socket, &answer)?;
        print!("{}", metrics.metrics);
        return Ok(());
    }
    if !wait || !ctl.json {
        print_answer(socket, &action, &answer, ctl.json, wait)?;
    }
    if !wait {
        return Ok(());
    }
    // The services to wait for, and the version each must be seen at.
    let listed = services_of(socket, &answer)?;
    let targets: Vec<(String, u64)> = match service.as_deref() {
        Some(wire::ALL) => listed,
        Some(name) => listed
            .into_iter()
            .filter(|(s, _)| s == services::lookup_name(name))
            .collect(),
        None => listed.into_iter().filter(|(s, _)| s.is_empty()).collect(),
    };
    if targets.is_empty() {
        return Err(Error::Usage(format!(
            "there is no service {:?} to wait for",
            service.unwrap_or_default()
        )));
    }
    let deadline = Instant::now() + timeout;
    let mut failure = None;
    for (name, version) in targets {
        let left = deadline.saturating_duration_since(Instant::now());
        let request = Request::WaitSeen {
            service: (!name.is_empty()).then(|| name.clone()),
            version,
            timeout_ms: left.as_millis() as u64,
        };
        let answer = ask(socket, &request, left + Duration::from_secs(10))?;
        if ctl.json {
            println!("{}", Value::Object(answer.fields.clone()));
        } else if let Ok(wait) = answer.body::<WaitSeenAnswer>() {
            // (A failure such as a bad request carries no progress.)
            print_progress(&answer, &wait);
        }
        if let Err(e) = accept(socket, answer) {
            failure.get_or_insert(e);
        }
    }
    failure.map_or(Ok(()), Err)
}

/// The services an answer lists (a status or a change).
#[derive(serde::Deserialize)]
struct Listed {
    #[serde(default)]
    services: Vec<ServiceAnswer>,
}

/// (service, version) of every service an answer lists.
fn services_of(socket: &Path, answer: &Answer) -> Result<Vec<(String, u64)>, Error> {
    let listed: Listed = body(socket, answer)?;
    Ok(listed
        .services
        .into_iter()
        .map(|s| (s.service, s.version))
        .collect())
}

/// An answer's fields as the typed answer `T`.
fn body<T: serde::de::DeserializeOwned>(socket: &Path, answer: &Answer) -> Result<T, Error> {
    answer
        .body()
        .map_err(|e| Error::Runtime(format!("control socket {}: {e}", socket.display())))
}

/// The request for a command line.
fn request(action: &Action, service: Option<String>) -> Result<Request, Error> {
    Ok(match action {
        Action::Status | Action::WaitSeen => Request::Status,
        Action::Probers => Request::Probers,
        Action::Metrics => Request::Metrics,
        Action::Set(fields) => {
            let mut state = Map::new();
            for (field, value) in fields {
                state.insert(field.to_string(), field_value(field, value.as_deref())?);
            }
            Request::Set { service, state }
        }
    })
}

/// A state-file value for `field` from text typed on the command line.
/// Numbers must be whole numbers here; their ranges are checked by the
/// agent, exactly as in the state file.
fn field_value(field: &str, text: Option<&str>) -> Result<Value, Error> {
    let Some(text) = text else {
        return Ok(Value::Null);
    };
    match field {
        "weight" | "maxconn" => text.trim().parse::<u64>().map(Value::from).map_err(|_| {
            Error::Usage(format!(
                "{field} {text:?}: not a whole number (or \"none\" to remove it)"
            ))
        }),
        _ => Ok(Value::from(text)),
    }
}

/// Sends one request and reads the answer, with a deadline.
fn ask(socket: &Path, request: &Request, deadline: Duration) -> Result<Answer, Error> {
    let mut stream = UnixStream::connect(socket).map_err(|e| connect_error(socket, &e))?;
    let io_error =
        |e: io::Error| Error::Runtime(format!("control socket {}: {e}", socket.display()));
    stream.set_read_timeout(Some(deadline)).map_err(io_error)?;
    stream.set_write_timeout(Some(deadline)).map_err(io_error)?;
    // An agent that refuses (permission denied) answers without reading:
    // the write may then fail, but the answer is there to read.
    if let Err(e) = stream.write_all(wire::render_request(request).as_bytes())
        && !matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)
    {
        return Err(io_error(e));
    }
    let mut line = Vec::new();
    BufReader::new((&stream).take(1 << 24))
        .read_until(b'\n', &mut line)
        .map_err(|e| match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Error::Runtime(format!(
                "control socket {}: no answer within {}",
                socket.display(),
                seconds(deadline)
            )),
            _ => io_error(e),
        })?;
    if line.is_empty() {
        return Err(Error::Runtime(format!(
            "control socket {}: the agent closed the connection without an answer (see its log)",
            socket.display()
        )));
    }
    wire::parse_answer(&line)
        .map_err(|e| Error::Runtime(format!("control socket {}: {e}", socket.display())))
}

/// Why connecting failed, in terms of what to do.
fn connect_error(socket: &Path, e: &io::Error) -> Error {
    let path = socket.display();
    match e.kind() {
        ErrorKind::NotFound => Error::Unavailable(format!(
            "{path} does not exist: hapgent is not running, or runs with another control_socket (systemctl status hapgent)"
        )),
        ErrorKind::ConnectionRefused => Error::Unavailable(format!(
            "nothing answers on {path}: hapgent is not running (a socket file was left behind)"
        )),
        ErrorKind::PermissionDenied => Error::NoPermission(format!(
            "permission denied on {path}: run as root or hapgent's user, or join hapgent's control group (control_group; default: hapgent's own group) and log in again"
        )),
        _ => Error::Unavailable(format!("cannot connect to {path}: {e}")),
    }
}

/// The answer if it says ok; otherwise the error its code maps to.
fn accept(socket: &Path, answer: Answer) -> Result<Answer, Error> {
    if answer.ok {
        return Ok(answer);
    }
    let message = answer.message.clone();
    Err(match answer.code() {
        Some(Code::PermissionDenied) => Error::NoPermission(format!(
            "{message} (the agent on {} refused; join its control group or use sudo)",
            socket.display()
        )),
        Some(Code::InvalidState) => Error::Usage(message),
        Some(Code::NoProbers | Code::NotSeen) => Error::NotSeen(message),
        _ => Error::Runtime(message),
    })
}

/// Prints a status, probers or change answer.
fn print_answer(
    socket: &Path,
    action: &Action,
    answer: &Answer,
    json: bool,
    waiting: bool,
) -> Result<(), Error> {
    if json {
        println!("{}", Value::Object(answer.fields.clone()));
        return Ok(());
    }
    let services = services_of_answer(socket, answer)?;
    let several = services.len() > 1;
    if !matches!(action, Action::Probers) {
        print_services(&services);
    }
    if matches!(action, Action::Set(_)) || (waiting && matches!(action, Action::WaitSeen)) {
        return Ok(());
    }
    let probers: ProbersAnswer = body(socket, answer)?;
    print_probers(&probers, several);
    Ok(())
}

fn services_of_answer(socket: &Path, answer: &Answer) -> Result<Vec<ServiceAnswer>, Error> {
    Ok(body::<Listed>(socket, answer)?.services)
}

/// Each service's state, version and reply (with a header when several).
fn print_services(services: &[ServiceAnswer]) {
    let several = services.len() > 1;
    for s in services {
        let saved = if s.saved {
            ""
        } else {
            ", NOT YET SAVED to the state file: the disk is slow or failing (see hapgent's log); served from memory"
        };
        if several {
            println!("service {}:", services::label(&s.service));
        }
        println!("state:   {} (version {}{saved})", s.state, s.version);
        println!("reply:   {}", s.reply);
        if let Some(health) = &s.health {
            print_health(health);
        }
    }
}

/// Why the reply is what it is: the reasons, each check, each monitor.
fn print_health(h: &HealthAnswer) {
    for (i, reason) in h.reasons.iter().enumerate() {
        println!("{}{reason}", if i == 0 { "why:     " } else { "         " });
    }
    for c in &h.checks {
        let last = c.last.as_deref().unwrap_or("no run yet");
        println!(
            "check {}: {}, last {last} in {:.1} ms, {} runs, {} failed",
            c.name, c.status, c.duration_ms, c.runs, c.failures
        );
    }
    if let Some(cap) = &h.capacity {
        let load = cap.load_percent.map_or_else(
            || "no reading yet".to_string(),
            |l| format!("load {l:.1} %"),
        );
        let drain = if cap.draining { ", draining" } else { "" };
        println!("capacity: {load}{drain}");
        for m in &cap.monitors {
            let value = m
                .value
                .map_or_else(|| "no reading yet".into(), |v| format!("{v:.2}"));
            let failing = if m.failing { ", LAST READ FAILED" } else { "" };
            println!(
                "  {}: {value} (full at {}, significance {}): {:.0} % of its capacity{failing}",
                m.name, m.full, m.significance, m.load_percent
            );
        }
    }
}

/// The prober table, one line each.
fn print_probers(answer: &ProbersAnswer, several: bool) {
    let window = Duration::from_millis(answer.seen_window_ms);
    let probing = answer.probers.iter().filter(|p| p.probing).count();
    println!(
        "probers: {} known, {probing} probing (probing: probed twice, and silent for no longer than three of its intervals plus a second, at most {})",
        answer.probers.len(),
        seconds(window)
    );
    for p in &answer.probers {
        let ago = Duration::from_millis(p.last_probe_ms_ago);
        let service = &p.service;
        let about = if p.unknown_service {
            format!(" asks about {service}, which is NOT CONFIGURED (answered with no news);")
        } else if several || !service.is_empty() {
            format!(" service {},", services::label(service))
        } else {
            String::new()
        };
        let probing = if p.probing { "probing" } else { "not probing" };
        println!(
            "  {:<40}{about} {probing}, last probe {} ago, {} probes, version {}: {}",
            p.address,
            seconds(ago),
            p.probes,
            p.version,
            p.reply
        );
    }
}

/// Prints how each load balancer did in a `--wait-seen`.
fn print_progress(answer: &Answer, wait: &WaitSeenAnswer) {
    let version = wait.version;
    let of = if wait.service.is_empty() {
        String::new()
    } else {
        format!(" of service {}", wait.service)
    };
    let probers = wait.probers.as_deref().unwrap_or_default();
    for p in probers {
        let address = &p.address;
        if p.seen {
            let after = Duration::from_millis(p.after_ms.unwrap_or(0));
            println!(
                "{address} has seen version {version}{of} ({} after the change)",
                seconds(after)
            );
        } else if p.evicted == Some(true) {
            println!(
                "{address} has NOT seen version {version}{of}: evicted from the prober table (more load balancers probe this service than max_probers)"
            );
        } else if p.probing == Some(false) {
            let ago = Duration::from_millis(p.last_probe_ms_ago.unwrap_or(0));
            println!(
                "{address} has NOT seen version {version}{of}: stopped probing {} ago",
                seconds(ago)
            );
        } else {
            println!("{address} has NOT seen version {version}{of}: probing, not yet served it");
        }
    }
    if answer.ok {
        println!("{}", all_seen(probers.len(), version, &of));
    }
}

/// The last line of a confirmed wait.
fn all_seen(probers: usize, version: u64, of: &str) -> String {
    match probers {
        1 => format!("the 1 load balancer probing has seen version {version}{of}"),
        n => format!("all {n} load balancers have seen version {version}{of}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_from_command_lines() {
        let set = |f: &[(&'static str, Option<&str>)]| {
            Action::Set(f.iter().map(|(k, v)| (*k, v.map(String::from))).collect())
        };
        let state = |v: Value| Request::Set {
            service: None,
            state: v.as_object().unwrap().clone(),
        };
        use serde_json::json;
        for (action, want) in [
            (Action::Status, Request::Status),
            (Action::Probers, Request::Probers),
            (
                set(&[("status", Some("DRAIN"))]),
                state(json!({"status": "DRAIN"})),
            ),
            (set(&[("weight", Some("50"))]), state(json!({"weight": 50}))),
            (set(&[("weight", None)]), state(json!({"weight": null}))),
            (
                set(&[
                    ("status", Some("UP")),
                    ("maxconn", Some("0")),
                    ("description", Some("v2")),
                ]),
                state(json!({"status": "UP", "maxconn": 0, "description": "v2"})),
            ),
        ] {
            assert_eq!(request(&action, None).unwrap(), want);
        }
        for bad in [
            set(&[("weight", Some("lots"))]),
            set(&[("maxconn", Some("-1"))]),
        ] {
            assert!(
                matches!(request(&bad, None), Err(Error::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn confirmations_count_in_words() {
        assert_eq!(
            all_seen(1, 7, ""),
            "the 1 load balancer probing has seen version 7"
        );
        assert_eq!(
            all_seen(3, 2, " of service api"),
            "all 3 load balancers have seen version 2 of service api"
        );
    }

    #[test]
    fn answers_become_exit_codes() {
        let socket = Path::new("/run/hapgent/control.sock");
        let answer = |code: Code| {
            wire::parse_answer(wire::failure(code, "why", wire::NoFields {}).as_bytes()).unwrap()
        };
        for (code, exit) in [
            (Code::PermissionDenied, 77),
            (Code::InvalidState, 64),
            (Code::NoProbers, 75),
            (Code::NotSeen, 75),
            (Code::BadRequest, 1),
            (Code::Busy, 1),
        ] {
            let e = accept(socket, answer(code)).unwrap_err();
            assert_eq!(
                e.exit_code(),
                std::process::ExitCode::from(exit),
                "{code:?}"
            );
        }
        let refused = connect_error(socket, &io::Error::from(ErrorKind::PermissionDenied));
        assert_eq!(refused.exit_code(), std::process::ExitCode::from(77));
        let absent = connect_error(socket, &io::Error::from(ErrorKind::NotFound));
        assert_eq!(absent.exit_code(), std::process::ExitCode::from(69));
        assert!(absent.to_string().contains("/run/hapgent/control.sock"));
    }
}
