//! One connection to the control socket: the peer checked, a place taken
//! (or "busy"), one request line read within its deadline and size, one
//! answer written, and the connection lingered on so that the answer is
//! not lost to a reset. Accepting (with backoff) and lingering are
//! `hapgent_common::serving`'s, as for the probe port and hapgent-lb.

use super::access::{self, Access};
use super::handlers;
use super::wire::{self, Code, NoFields};
use crate::agent::Agent;
use crate::exit::Error;
use crate::log::Limit;
use crate::sys;
use crate::warn;
use hapgent_common::serving;
use hapgent_common::slots::Budget;
use smol::{Async, LocalExecutor, Task, Timer, prelude::*};
use std::cell::RefCell;
use std::io::{self, ErrorKind};
use std::os::unix::net::{UnixListener, UnixStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a client has to send its request, and to take its answer.
const READ_DEADLINE: Duration = Duration::from_secs(5);
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// Control connections served at once; more are refused with "busy".
const MAX_CONNECTIONS: u32 = 64;
/// At most one refusal logged per this long (the rest are counted).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);
/// Connections accepted in a row before the accepting task yields.
const BURST: u32 = 16;
/// What is read and dropped after the answer, at most, and for how long.
const LINGER_BYTES: usize = 4 * wire::MAX_REQUEST;
const LINGER_TIME: Duration = Duration::from_secs(1);

/// Serves the control socket until the returned task is dropped.
pub fn serve(
    ex: &Rc<LocalExecutor<'static>>,
    listener: UnixListener,
    agent: Rc<Agent>,
    access: Access,
) -> Result<Task<()>, Error> {
    let listener = Async::new(listener)
        .map_err(|e| Error::Runtime(format!("cannot watch the control socket: {e}")))?;
    let tasks = Rc::clone(ex);
    Ok(ex.spawn(async move {
        let budget = Rc::new(Budget::new(MAX_CONNECTIONS));
        let access = Rc::new(access);
        let refusals = Rc::new(RefCell::new(Limit::new(REFUSAL_LOG_EVERY)));
        serving::accept_loop(&listener, BURST, |(stream, _)| {
            let (agent, access, budget, refusals) = (
                Rc::clone(&agent),
                Rc::clone(&access),
                Rc::clone(&budget),
                Rc::clone(&refusals),
            );
            tasks
                .spawn(async move {
                    connection(stream, &agent, &access, &budget, &refusals).await;
                })
                .detach();
        })
        .await;
    }))
}

/// Serves one connection: authorize, take a place in `budget` (or answer
/// "busy"), read the request, answer.
async fn connection(
    mut stream: Async<UnixStream>,
    agent: &Agent,
    access: &Access,
    budget: &Budget,
    refusals: &RefCell<Limit>,
) {
    let peer = match sys::peer(stream.get_ref()) {
        Ok(p) => p,
        Err(e) => {
            if let Some(more) = refusals.borrow_mut().check(Instant::now()) {
                warn!("control socket: cannot read the peer's credentials: {e}; closing{more}");
            }
            return;
        }
    };
    if !access.allows(&peer) {
        if let Some(more) = refusals.borrow_mut().check(Instant::now()) {
            warn!(
                "control socket: refused {} (pid {}): not root, hapgent's user or in group {}{more}",
                access::describe(&peer),
                peer.pid,
                access.group
            );
        }
        let message = format!(
            "permission denied: {} is not root, hapgent's user or a member of group {}",
            access::describe(&peer),
            access.group
        );
        let answer = wire::failure(Code::PermissionDenied, &message, NoFields {});
        if write_answer(&mut stream, &answer).await.is_ok() {
            linger(&mut stream).await;
        }
        return;
    }
    // Held until the answer is written, however the task ends.
    let Some(_slot) = budget.take() else {
        let answer = wire::failure(
            Code::Busy,
            "too many control connections at once; try again",
            NoFields {},
        );
        let _ = write_answer(&mut stream, &answer).await;
        return;
    };
    let answer = match read_request(&mut stream).await {
        Ok(line) => match wire::parse_request(&line) {
            Ok(request) => handlers::handle(agent, request, &peer).await,
            Err(e) => wire::failure(Code::BadRequest, &e, NoFields {}),
        },
        Err(e) => wire::failure(Code::BadRequest, &e, NoFields {}),
    };
    if write_answer(&mut stream, &answer).await.is_ok() {
        linger(&mut stream).await;
    }
}

/// After the answer: half-closes, then reads and drops what the client
/// still sends (bounded), so that closing with unread input does not reset
/// the connection and destroy the answer before the client reads it.
async fn linger(stream: &mut Async<UnixStream>) {
    serving::linger(stream, LINGER_BYTES, LINGER_TIME).await;
}

/// Reads one line, at most `wire::MAX_REQUEST` bytes, within the deadline.
async fn read_request(stream: &mut Async<UnixStream>) -> Result<Vec<u8>, String> {
    let read = async {
        let mut line = Vec::with_capacity(256);
        let mut buf = [0u8; 4096];
        loop {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading the request failed: {e}"))?;
            if n == 0 {
                return if line.is_empty() {
                    Err("no request before the connection was closed".to_string())
                } else {
                    Ok(line)
                };
            }
            if let Some(end) = buf[..n].iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&buf[..end]);
                return check_size(line);
            }
            line.extend_from_slice(&buf[..n]);
            if line.len() > wire::MAX_REQUEST {
                return Err(format!("request larger than {} bytes", wire::MAX_REQUEST));
            }
        }
    };
    let deadline = async {
        Timer::after(READ_DEADLINE).await;
        Err(format!("no complete request within {READ_DEADLINE:?}"))
    };
    read.or(deadline).await
}

fn check_size(line: Vec<u8>) -> Result<Vec<u8>, String> {
    if line.len() > wire::MAX_REQUEST {
        Err(format!("request larger than {} bytes", wire::MAX_REQUEST))
    } else {
        Ok(line)
    }
}

async fn write_answer(stream: &mut Async<UnixStream>, answer: &str) -> io::Result<()> {
    let write = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.flush().await
    };
    let deadline = async {
        Timer::after(WRITE_DEADLINE).await;
        Err(io::Error::from(ErrorKind::TimedOut))
    };
    write.or(deadline).await
}
