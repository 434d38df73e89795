//! `wait BACKEND/SERVER`: poll HAProxy until a server reaches a state.
//!
//! The deciding part, `unmet`, is pure: given the conditions and what
//! HAProxy reported, it lists what is not there yet. The loop around it
//! polls at `poll_interval`, tolerates a runtime API that is briefly away
//! (a reload), and on timeout reports the last observed state.

use crate::cli::WaitFor;
use crate::error::Error;
use crate::names::Target;
use crate::runtime;
use crate::stat::{Admin, Op, Server};
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

/// Polls until `want` holds for its server, or its timeout passes.
pub async fn run(socket: &Path, want: &WaitFor, interval: Duration) -> Result<String, Error> {
    let target = Target::parse(&want.target).map_err(Error::Usage)?;
    let deadline = Instant::now() + want.timeout;
    loop {
        let last = match runtime::backends(socket).await {
            Ok(backends) => {
                let Some(backend) = backends.iter().find(|b| b.name == target.backend) else {
                    return Err(Error::Runtime(format!(
                        "HAProxy has no backend {:?}",
                        target.backend
                    )));
                };
                let Some(server) = backend.servers.iter().find(|s| s.server == target.server)
                else {
                    return Err(Error::Runtime(format!(
                        "backend {:?} has no server {:?}",
                        target.backend, target.server
                    )));
                };
                let missing = unmet(want.admin, want.op, want.sessions_max, server);
                if missing.is_empty() {
                    return Ok(describe(server));
                }
                format!("{}; still {}", describe(server), missing.join(", "))
            }
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!("after {:?}: {last}", want.timeout)));
        }
        runtime::sleep(interval.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(admin: Admin, op: Op, sessions: u64) -> Server {
        Server {
            backend: "web".into(),
            server: "web1".into(),
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
}
