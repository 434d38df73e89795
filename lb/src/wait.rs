//! `wait BACKEND/SERVER...`: poll HAProxy until servers reach a state.
//!
//! The deciding part is pure: `unmet` lists what one server lacks, and
//! `verdict` judges one poll for every server named. The loop around them
//! polls the runtime API once per round for all the servers (every
//! `poll_interval`), tolerates a runtime API that is briefly away (a
//! reload) once it has answered, and on timeout reports the last observed
//! state of the servers still short of a condition. A socket that does not
//! answer the first poll ends the wait at once (exit 69): a wrong path or a
//! stopped HAProxy is not a slow drain.

use crate::cli::WaitFor;
use crate::exit::Error;
use crate::names::Target;
use crate::runtime;
use crate::stat::{Admin, Backend, Op, Server};
use std::path::Path;
use std::time::{Duration, Instant};

/// The conditions still not met by `server`, as short phrases; empty when
/// all hold.
pub fn unmet(
    admin: Option<Admin>,
    op: Option<Op>,
    sessions_max: Option<u64>,
    server: &Server,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(want) = admin.filter(|a| *a != server.admin) {
        out.push(format!(
            "admin is {} (want {})",
            server.admin.word(),
            want.word()
        ));
    }
    if let Some(want) = op.filter(|o| *o != server.op) {
        out.push(format!("op is {} (want {})", server.op.word(), want.word()));
    }
    if let Some(max) = sessions_max.filter(|m| server.sessions > *m) {
        out.push(format!("{} sessions (want at most {max})", server.sessions));
    }
    out
}

/// One line describing a server, for the timeout message and the log.
pub fn describe(s: &Server) -> String {
    format!(
        "{}/{}: status {}, admin {}, op {}, weight {}/{}, {} sessions, {} queued",
        s.backend,
        s.server,
        s.status,
        s.admin.word(),
        s.op.word(),
        s.weight,
        s.initial_weight,
        s.sessions,
        s.queue
    )
}

/// What one poll says about the servers waited for.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every condition holds for every server: one line each (`describe`),
    /// in the order given.
    Met(Vec<String>),
    /// Some servers are still short of a condition: what was seen of those
    /// and what they lack.
    Pending(String),
    /// HAProxy has no such backend or server: waiting would not help.
    Missing(String),
}

/// Judges one poll. With one server the pending text is that server's
/// line and what it lacks; with several it starts with how many are
/// pending, then the same for each of those, separated by ` | `.
pub fn verdict(targets: &[Target], want: &WaitFor, backends: &[Backend]) -> Verdict {
    let mut missing: Vec<String> = Vec::new();
    let mut servers = Vec::new();
    for t in targets {
        let Some(backend) = backends.iter().find(|b| b.name == t.backend) else {
            let m = format!("HAProxy has no backend {:?}", t.backend);
            if !missing.contains(&m) {
                missing.push(m);
            }
            continue;
        };
        match backend.servers.iter().find(|s| s.server == t.server) {
            Some(server) => servers.push(server),
            None => missing.push(format!(
                "backend {:?} has no server {:?}",
                t.backend, t.server
            )),
        }
    }
    if !missing.is_empty() {
        return Verdict::Missing(missing.join("; "));
    }
    let pending: Vec<String> = servers
        .iter()
        .filter_map(|s| {
            let lacks = unmet(want.admin, want.op, want.sessions_max, s);
            (!lacks.is_empty()).then(|| format!("{}; still {}", describe(s), lacks.join(", ")))
        })
        .collect();
    match pending.len() {
        0 => Verdict::Met(servers.iter().map(|s| describe(s)).collect()),
        _ if servers.len() == 1 => Verdict::Pending(pending.join("")),
        n => Verdict::Pending(format!(
            "{n} of {} servers unmet: {}",
            servers.len(),
            pending.join(" | ")
        )),
    }
}

/// The servers named, validated (exit 64 on a bad name), each once.
fn targets(typed: &[String]) -> Result<Vec<Target>, Error> {
    let mut targets: Vec<Target> = Vec::new();
    for text in typed {
        let t = Target::parse(text).map_err(Error::Usage)?;
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    Ok(targets)
}

/// Polls until `want` holds for all its servers, or its timeout passes;
/// Ok with one line per server.
pub async fn run(socket: &Path, want: &WaitFor, interval: Duration) -> Result<String, Error> {
    let targets = targets(&want.targets)?;
    let deadline = Instant::now() + want.timeout;
    let mut answered = false;
    loop {
        let last = match runtime::backends(socket).await {
            Ok(backends) => {
                answered = true;
                match verdict(&targets, want, &backends) {
                    Verdict::Met(lines) => return Ok(lines.join("\n")),
                    Verdict::Missing(m) => return Err(Error::Runtime(m)),
                    Verdict::Pending(p) => Ok(p),
                }
            }
            Err(e) if !answered => return Err(Error::Unavailable(e)),
            Err(e) => Err(e),
        };
        if Instant::now() >= deadline {
            return Err(match last {
                Ok(pending) => Error::Timeout(format!("after {:?}: {pending}", want.timeout)),
                Err(e) => Error::Unavailable(format!(
                    "{e}; still unreachable when the {:?} timeout passed",
                    want.timeout
                )),
            });
        }
        runtime::sleep(interval.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(admin: Admin, op: Op, sessions: u64) -> Server {
        named("web", "web1", admin, op, sessions)
    }

    fn named(backend: &str, name: &str, admin: Admin, op: Op, sessions: u64) -> Server {
        Server {
            backend: backend.into(),
            server: name.into(),
            status: String::new(),
            admin,
            op,
            weight: 1,
            initial_weight: 1,
            sessions,
            queue: 0,
            check_status: String::new(),
            check_desc: String::new(),
            agent_status: String::new(),
            agent_desc: String::new(),
            address: String::new(),
        }
    }

    #[test]
    fn conditions() {
        use Admin::*;
        use Op::*;
        type Row<'a> = (
            Option<Admin>,
            Option<Op>,
            Option<u64>,
            Server,
            &'a [&'a str],
        );
        let rows: &[Row] = &[
            (None, None, None, server(Ready, Up, 5), &[]),
            (Some(Drain), None, Some(0), server(Drain, Up, 0), &[]),
            (
                Some(Drain),
                None,
                Some(0),
                server(Drain, Up, 2),
                &["2 sessions (want at most 0)"],
            ),
            (
                Some(Drain),
                None,
                Some(0),
                server(Ready, Up, 2),
                &["admin is ready (want drain)", "2 sessions (want at most 0)"],
            ),
            (
                Some(Maint),
                Some(Down),
                None,
                server(Maint, Up, 0),
                &["op is up (want down)"],
            ),
            (None, Some(Up), Some(3), server(Ready, Up, 3), &[]),
        ];
        for (admin, op, max, s, want) in rows {
            assert_eq!(
                unmet(*admin, *op, *max, s),
                *want,
                "{admin:?} {op:?} {max:?}"
            );
        }
    }

    #[test]
    fn verdicts_for_several_servers() {
        use Admin::*;
        use Op::*;
        let backends = [
            Backend {
                name: "web".into(),
                servers: vec![
                    named("web", "web1", Drain, Up, 0),
                    named("web", "web2", Drain, Up, 2),
                    named("web", "web3", Ready, Up, 0),
                ],
                status: "UP".into(),
            },
            Backend {
                name: "api".into(),
                servers: vec![named("api", "api1", Drain, Up, 0)],
                status: "UP".into(),
            },
        ];
        let want = WaitFor {
            targets: Vec::new(),
            admin: Some(Drain),
            op: None,
            sessions_max: Some(0),
            timeout: Duration::from_secs(1),
        };
        let line = |b: &str, s: &str, admin: &str, sessions: u32| {
            format!(
                "{b}/{s}: status , admin {admin}, op up, weight 1/1, {sessions} sessions, 0 queued"
            )
        };
        let rows: Vec<(&[&str], Verdict)> = vec![
            (
                &["web/web1", "api/api1"],
                Verdict::Met(vec![
                    line("web", "web1", "drain", 0),
                    line("api", "api1", "drain", 0),
                ]),
            ),
            (
                &["web/web2"],
                Verdict::Pending(format!(
                    "{}; still 2 sessions (want at most 0)",
                    line("web", "web2", "drain", 2)
                )),
            ),
            (
                &["web/web1", "web/web2", "web/web3"],
                Verdict::Pending(format!(
                    "2 of 3 servers unmet: {}; still 2 sessions (want at most 0) | {}; still admin is ready (want drain)",
                    line("web", "web2", "drain", 2),
                    line("web", "web3", "ready", 0)
                )),
            ),
            (
                &["web/web1", "web/nope", "db/db1", "db/db2"],
                Verdict::Missing(
                    "backend \"web\" has no server \"nope\"; HAProxy has no backend \"db\"".into(),
                ),
            ),
        ];
        for (typed, want_verdict) in rows {
            let typed: Vec<String> = typed.iter().map(|t| t.to_string()).collect();
            let parsed = targets(&typed).unwrap();
            assert_eq!(
                verdict(&parsed, &want, &backends),
                want_verdict,
                "{typed:?}"
            );
        }
    }

    #[test]
    fn targets_are_checked_and_counted_once() {
        let typed = |t: &[&str]| targets(&t.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(typed(&["a/b", "c/d", "a/b"]).unwrap().len(), 2);
        for bad in [&["a/b", "c;d/e"][..], &["a/b", "nope"]] {
            assert!(matches!(typed(bad), Err(Error::Usage(_))), "{bad:?}");
        }
    }
}
