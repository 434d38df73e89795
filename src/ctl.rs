//! `hapgent ctl`: the client of the control socket (see `control` for the
//! server and `wire` for the protocol).
//!
//! It builds one request from the command line, sends it, prints the
//! answer, and turns it into an exit code a deploy script can branch on
//! (see `Error::exit_code`). With `--wait-seen`, a change is followed by a
//! second request that returns once every load balancer probing this host
//! has been served the new state. Every failure names the socket and says
//! what to do.

use crate::cli::{Action, Ctl};
use crate::config::Config;
use crate::control::seconds;
use crate::error::Error;
use crate::services;
use crate::wire::{self, Answer, Code, Request};
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
        print!("{}", text(&answer.fields, "metrics"));
        return Ok(());
    }
    if !wait || !ctl.json {
        print_answer(&action, &answer, ctl.json, wait);
    }
    if !wait {
        return Ok(());
    }
    // The services to wait for, and the version each must be seen at.
    let listed = services_of(&answer);
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
        } else {
            print_progress(&answer);
        }
        if let Err(e) = accept(socket, answer) {
            failure.get_or_insert(e);
        }
    }
    failure.map_or(Ok(()), Err)
}

/// (service, version) of every service an answer lists.
fn services_of(answer: &Answer) -> Vec<(String, u64)> {
    answer
        .fields
        .get("services")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|s| {
                    Some((
                        s.get("service")?.as_str()?.to_string(),
                        s.get("version")?.as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
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

fn text<'a>(fields: &'a Map<String, Value>, key: &str) -> &'a str {
    fields.get(key).and_then(Value::as_str).unwrap_or("")
}

fn number(fields: &Map<String, Value>, key: &str) -> u64 {
    fields.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Prints a status, probers or change answer.
fn print_answer(action: &Action, answer: &Answer, json: bool, waiting: bool) {
    if json {
        println!("{}", Value::Object(answer.fields.clone()));
        return;
    }
    let f = &answer.fields;
    let services = f
        .get("services")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let several = services.len() > 1;
    if !matches!(action, Action::Probers) {
        for s in &services {
            let Value::Object(s) = s else { continue };
            // A status with --wait-seen lists only what it waits for.
            let name = text(s, "service");
            let state = s
                .get("state")
                .and_then(|v| crate::state::parse(v.to_string().as_bytes()).ok())
                .map_or_else(String::new, |v| v.to_string());
            let saved = if s.get("saved").and_then(Value::as_bool) == Some(false) {
                ", NOT YET SAVED to the state file: the disk is slow or failing (see hapgent's log); served from memory"
            } else {
                ""
            };
            if several {
                println!("service {}:", services::label(name));
            }
            println!("state:   {state} (version {}{saved})", number(s, "version"));
            println!("reply:   {}", text(s, "reply"));
        }
    }
    if matches!(action, Action::Set(_)) || (waiting && matches!(action, Action::WaitSeen)) {
        return;
    }
    let probers = f
        .get("probers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let window = Duration::from_millis(number(f, "seen_window_ms"));
    let probing = probers
        .iter()
        .filter(|p| p.get("probing").and_then(Value::as_bool) == Some(true))
        .count();
    println!(
        "probers: {} known, {probing} probing (probing: probed twice, and silent for no longer than three of its intervals plus a second, at most {})",
        probers.len(),
        seconds(window)
    );
    for p in probers {
        let Value::Object(p) = p else { continue };
        let ago = Duration::from_millis(number(&p, "last_probe_ms_ago"));
        let service = text(&p, "service");
        let about = if p.get("unknown_service").and_then(Value::as_bool) == Some(true) {
            format!(" asks about {service}, which is NOT CONFIGURED (answered with no news);")
        } else if several || !service.is_empty() {
            format!(" service {},", services::label(service))
        } else {
            String::new()
        };
        let probing = if p.get("probing").and_then(Value::as_bool) == Some(true) {
            "probing"
        } else {
            "not probing"
        };
        println!(
            "  {:<40}{about} {probing}, last probe {} ago, {} probes, version {}: {}",
            text(&p, "address"),
            seconds(ago),
            number(&p, "probes"),
            number(&p, "version"),
            text(&p, "reply")
        );
    }
}

/// Prints how each load balancer did in a `--wait-seen`.
fn print_progress(answer: &Answer) {
    let f = &answer.fields;
    let version = number(f, "version");
    let service = text(f, "service");
    let of = if service.is_empty() {
        String::new()
    } else {
        format!(" of service {service}")
    };
    let probers = f
        .get("probers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for p in &probers {
        let Value::Object(p) = p else { continue };
        let address = text(p, "address");
        if p.get("seen").and_then(Value::as_bool) == Some(true) {
            let after = Duration::from_millis(number(p, "after_ms"));
            println!(
                "{address} has seen version {version}{of} ({} after the change)",
                seconds(after)
            );
        } else if p.get("evicted").and_then(Value::as_bool) == Some(true) {
            println!(
                "{address} has NOT seen version {version}{of}: evicted from the prober table (more load balancers probe this service than max_probers)"
            );
        } else if p.get("probing").and_then(Value::as_bool) == Some(false) {
            let ago = Duration::from_millis(number(p, "last_probe_ms_ago"));
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
            wire::parse_answer(wire::failure(code, "why", Map::new()).as_bytes()).unwrap()
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
