//! The control socket: where `hapgent ctl` (or any tool speaking the
//! protocol in `wire`) asks the running agent for its state and changes it.
//!
//! A Unix stream socket, created atomically (bound under a temporary name,
//! given mode 0660 and the control group, then renamed into place), served
//! on the agent's executor. Who may use it is decided by the kernel's
//! record of the peer (SO_PEERCRED, SO_PEERGROUPS): root, hapgent's own
//! user, or members of `control_group`; anyone else gets a
//! "permission-denied" answer and a log line. One request per connection,
//! one answer; refusals are logged at most once a minute (with a count),
//! so a stranger cannot flood the log. A request must arrive whole within
//! `READ_DEADLINE` and be at most `wire::MAX_REQUEST` bytes; at most
//! `MAX_CONNECTIONS` allowed peers are served at once (a
//! `hapgent_common::slots` budget, taken once the peer passed, so strangers
//! cannot use up the operators' places). Nothing here ever runs on the
//! path that answers a probe: each connection is its own task.
//!
//! The socket file is `hapgent_common::unix_socket`'s, as hapgent-lb's:
//! created atomically, refused while another hapgent answers on it, a
//! stale socket replaced, never what is not a socket (a regular file, a
//! directory or a link at its path is an error at start or reload), and at
//! stop removed only while it is still this socket (same device and inode).
//! A reload at the same path re-creates our own socket in place. A path
//! equal to a state or flag file is refused by `config`. This module words
//! the errors with hapgent's settings.
//!
//! This module owns the socket (including whether it is opened at all, see
//! `open`), the framing and authorization; how a change is served and
//! saved is `service`'s business (`Service::set`).

use crate::agent::Agent;
use crate::config::{self, Config};
use crate::error::Error;
use crate::log::Limit;
use crate::metrics;
use crate::probers::{self, Progress};
use crate::service::{Cause, Origin, Service};
use crate::sys::{self, Peer};
use crate::unknown::Unknown;
use crate::wire::{self, Code, Request};
use crate::{info, warn};
use hapgent_common::slots::Budget;
use hapgent_common::unix_socket::{self, BindError, Removal, SocketFile};
use serde_json::{Map, Value, json};
use smol::{Async, LocalExecutor, Task, Timer, prelude::*};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a client has to send its request, and to take its answer.
const READ_DEADLINE: Duration = Duration::from_secs(5);
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a change's answer waits for the state file to be written.
const SAVE_WAIT: Duration = Duration::from_secs(3);
/// Control connections served at once; more are refused with "busy".
const MAX_CONNECTIONS: u32 = 64;
/// The socket's mode: its group (`control_group`) may connect.
const MODE: u32 = 0o660;
/// At most one refusal logged per this long (the rest are counted).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// The control socket this agent created: its path, and the file there
/// (device and inode), to tell it from one put there since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub path: PathBuf,
    file: SocketFile,
}

/// Who may use the control socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// hapgent's own user.
    pub uid: u32,
    /// The control group's id, and its name for messages.
    pub gid: u32,
    pub group: String,
}

impl Access {
    /// Resolves `control_group` (unset: hapgent's own group).
    pub fn resolve(group: Option<&str>) -> Result<Access, Error> {
        let (uid, own_gid) = sys::own_ids();
        let Some(name) = group else {
            let group = group_name(own_gid);
            return Ok(Access {
                uid,
                gid: own_gid,
                group,
            });
        };
        match sys::group_id(name) {
            Ok(Some(gid)) => Ok(Access {
                uid,
                gid,
                group: name.to_string(),
            }),
            Ok(None) => Err(Error::Config(format!(
                "control_group: there is no group {name:?} on this host (create it, or leave control_group unset for hapgent's own group)"
            ))),
            Err(e) => Err(Error::Config(format!(
                "control_group: cannot look up group {name:?}: {e}"
            ))),
        }
    }

    /// Whether `peer` may use the socket.
    pub fn allows(&self, peer: &Peer) -> bool {
        peer.uid == 0
            || peer.uid == self.uid
            || peer.gid == self.gid
            || peer.groups.contains(&self.gid)
    }
}

fn group_name(gid: u32) -> String {
    // Only for messages: the number is as good when there is no name.
    fs::read_to_string("/etc/group")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id: u32 = f.nth(1)?.parse().ok()?;
                (id == gid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| gid.to_string())
}

/// Names a peer for logs: `uid 1000 (alice)`.
pub fn describe(peer: &Peer) -> String {
    match sys::user_name(peer.uid) {
        Some(name) => format!("uid {} ({name})", peer.uid),
        None => format!("uid {}", peer.uid),
    }
}

/// The control socket, bound, with who may use it; `None` when disabled.
/// At the default path, a missing directory (hapgent started outside its
/// unit, which creates /run/hapgent) only disables it, with a warning, so an
/// upgrade never stops an agent from serving; a configured path must work.
/// `own` is the socket this agent already has (at a reload), which may be
/// replaced.
pub fn open(
    config: &Config,
    own: Option<&Socket>,
) -> Result<Option<(Socket, UnixListener, Access)>, Error> {
    let path = &config.control_socket;
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let default = path.as_path() == Path::new(config::DEFAULT_CONTROL_SOCKET);
    if default && path.parent().is_some_and(|d| !d.is_dir()) {
        warn!(
            "control socket disabled: {} does not exist (the unit's RuntimeDirectory=hapgent creates it; set control_socket to use another place, or to \"\" to silence this)",
            path.parent()
                .map_or(String::new(), |d| d.display().to_string())
        );
        return Ok(None);
    }
    let access = Access::resolve(config.control_group.as_deref())?;
    let (listener, file) = bind(path, &access, own.map(|s| &s.file))?;
    let socket = Socket {
        path: path.clone(),
        file,
    };
    Ok(Some((socket, listener, access)))
}

/// Creates the control socket at `path` (mode 0660, the control group) by
/// `unix_socket`'s rules; `own`, the socket this agent serves, may be
/// replaced at its own path. Returns the listener and the socket file.
pub fn bind(
    path: &Path,
    access: &Access,
    own: Option<&SocketFile>,
) -> Result<(UnixListener, SocketFile), Error> {
    let own_gid = access.gid == sys::own_ids().1;
    let group = (!own_gid).then_some(access.gid);
    unix_socket::bind_with_own(path, MODE, group, own).map_err(|e| {
        let what = explain(&e, path, access, own_gid);
        Error::Runtime(format!("control socket {}: {what}", path.display()))
    })
}

/// A bind error in hapgent's words: what went wrong, and which setting or
/// step fixes it.
fn explain(e: &BindError, path: &Path, access: &Access, own_gid: bool) -> String {
    match e {
        BindError::Directory(dir, None) => format!("{} is not a directory", dir.display()),
        BindError::Directory(dir, Some(e)) => format!(
            "directory {} is unusable ({e}); create it (the unit's RuntimeDirectory=hapgent does) or set control_socket, empty to disable",
            dir.display()
        ),
        BindError::NoFileName => "names no file; set control_socket to a socket's path".into(),
        BindError::NotASocket(kind) => format!(
            "a {kind} is there, not a socket; hapgent replaces only a stale socket: move it away, or set control_socket to a free path"
        ),
        BindError::Answering => {
            "another hapgent is answering on it; stop it, or give this one another control_socket"
                .into()
        }
        BindError::Io(step, e) => {
            let hint = if e.kind() == ErrorKind::PermissionDenied {
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                format!(
                    " (hapgent's user needs write access to {}{})",
                    dir.display(),
                    if own_gid {
                        String::new()
                    } else {
                        format!(" and membership of group {}", access.group)
                    }
                )
            } else {
                String::new()
            };
            format!("cannot create it ({step}): {e}{hint}")
        }
    }
}

/// Serves the control socket until the returned task is dropped.
pub fn serve(
    ex: &Rc<LocalExecutor<'static>>,
    listener: UnixListener,
    agent: Rc<Agent>,
    access: Access,
) -> Result<Task<()>, Error> {
    let listener = Async::new(listener)
        .map_err(|e| Error::Runtime(format!("cannot watch the control socket: {e}")))?;
    let ex2 = Rc::clone(ex);
    Ok(ex.spawn(async move {
        let budget = Rc::new(Budget::new(MAX_CONNECTIONS));
        let access = Rc::new(access);
        let refusals = Rc::new(RefCell::new(Limit::new(REFUSAL_LOG_EVERY)));
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!("control socket: accept failed: {e}");
                    Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (agent, access, budget, refusals) = (
                Rc::clone(&agent),
                Rc::clone(&access),
                Rc::clone(&budget),
                Rc::clone(&refusals),
            );
            ex2.spawn(async move {
                connection(stream, &agent, &access, &budget, &refusals).await;
            })
            .detach();
        }
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
                describe(&peer),
                peer.pid,
                access.group
            );
        }
        let message = format!(
            "permission denied: {} is not root, hapgent's user or a member of group {}",
            describe(&peer),
            access.group
        );
        let answer = wire::failure(Code::PermissionDenied, &message, Map::new());
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
            Map::new(),
        );
        let _ = write_answer(&mut stream, &answer).await;
        return;
    };
    let answer = match read_request(&mut stream).await {
        Ok(line) => match wire::parse_request(&line) {
            Ok(request) => handle(agent, request, &peer).await,
            Err(e) => wire::failure(Code::BadRequest, &e, Map::new()),
        },
        Err(e) => wire::failure(Code::BadRequest, &e, Map::new()),
    };
    if write_answer(&mut stream, &answer).await.is_ok() {
        linger(&mut stream).await;
    }
}

/// After the answer: signals the end, then reads and drops what the client
/// still sends (bounded), so that closing with unread input does not reset
/// the connection and destroy the answer before the client reads it.
async fn linger(stream: &mut Async<UnixStream>) {
    let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0usize;
        while total < 4 * wire::MAX_REQUEST {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    drain
        .or(async {
            Timer::after(Duration::from_secs(1)).await;
        })
        .await;
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

/// Carries out one request and renders the answer.
async fn handle(agent: &Agent, request: Request, peer: &Peer) -> String {
    match request {
        Request::Status => {
            let default = agent.service("").map(|s| service_json(agent, &s));
            let mut fields = default.unwrap_or_default();
            fields.insert("services".into(), services_json(agent, &agent.services()));
            with_probers(agent, fields).await
        }
        Request::Probers => with_probers(agent, Map::new()).await,
        Request::Metrics => {
            let mut fields = Map::new();
            fields.insert("metrics".into(), metrics::render(agent).await.into());
            wire::ok(fields)
        }
        Request::Set { service, state } => {
            let targets = match targets(agent, service.as_deref()) {
                Ok(t) => t,
                Err(answer) => return answer,
            };
            let who = describe(peer);
            // Validate for every service first: all change or none does.
            let mut merged = Vec::with_capacity(targets.len());
            for target in &targets {
                match crate::state::merge(&target.state(), &state) {
                    Ok(new) => merged.push(new),
                    Err(problem) => {
                        let message = format!("the new state {problem}");
                        return wire::failure(Code::InvalidState, &message, Map::new());
                    }
                }
            }
            for (target, new) in targets.iter().zip(merged) {
                target.set(
                    new,
                    &format!("ctl by {who} pid {}", peer.pid),
                    Cause::Ctl,
                    Origin::Change,
                );
            }
            // Answer once it is on disk too, unless the disk is slow: then
            // "saved": false says so.
            for target in &targets {
                target.wait_saved(SAVE_WAIT).await;
            }
            let mut fields = service_json(agent, &targets[0]);
            fields.insert("services".into(), services_json(agent, &targets));
            wire::ok(fields)
        }
        Request::WaitSeen {
            service,
            version,
            timeout_ms,
        } => {
            let target = match targets(agent, service.as_deref()) {
                Ok(mut t) => t.remove(0),
                Err(answer) => return answer,
            };
            wait_seen(agent, &target, version, Duration::from_millis(timeout_ms)).await
        }
    }
}

/// The services a request names: one, or every one for `"*"`; an unknown
/// name is an error answer.
fn targets(agent: &Agent, service: Option<&str>) -> Result<Vec<Rc<Service>>, String> {
    match service {
        Some(wire::ALL) => Ok(agent.services()),
        name => {
            let name = name.unwrap_or("");
            agent.service(name).map(|s| vec![s]).ok_or_else(|| {
                let known: Vec<String> = agent
                    .services()
                    .iter()
                    .filter(|s| !s.name.is_empty())
                    .map(|s| s.name.to_string())
                    .collect();
                let message = format!(
                    "there is no service {name:?} (configured: {})",
                    if known.is_empty() {
                        "none besides the default".to_string()
                    } else {
                        known.join(", ")
                    }
                );
                wire::failure(Code::BadRequest, &message, Map::new())
            })
        }
    }
}

/// One service: name, state served, version, whether saved, reply.
fn service_json(agent: &Agent, service: &Service) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("service".into(), service.name.to_string().into());
    fields.insert("version".into(), service.version().into());
    fields.insert("saved".into(), service.is_saved().into());
    fields.insert(
        "state".into(),
        serde_json::to_value(service.state()).unwrap_or(Value::Null),
    );
    let reply = agent.current_reply(service);
    fields.insert(
        "reply".into(),
        String::from_utf8_lossy(&reply).trim_end().into(),
    );
    fields
}

fn services_json(agent: &Agent, services: &[Rc<Service>]) -> Value {
    Value::Array(
        services
            .iter()
            .map(|s| Value::Object(service_json(agent, s)))
            .collect(),
    )
}

/// `fields` and the prober table (`probers`, `seen_window_ms`), rendered
/// as an answer: the table is copied a chunk at a time and rendered on a
/// thread of its own, so that no probe waits for a listing.
async fn with_probers(agent: &Agent, mut fields: Map<String, Value>) -> String {
    let window = agent.seen_window();
    let snapshot = probers::snapshot(|| agent.probers(), window).await;
    let names = snapshot.names(|id| agent.service_name(id));
    fields.insert("seen_window_ms".into(), (window.as_millis() as u64).into());
    let rendered = probers::off_probe_thread(move || {
        fields.insert("probers".into(), probers_json(snapshot.sorted(), &names));
        wire::ok(fields)
    })
    .await;
    rendered.unwrap_or_else(|| {
        wire::failure(
            Code::Internal,
            "rendering the prober table failed (see hapgent's log)",
            Map::new(),
        )
    })
}

/// The probers, sorted, as the control protocol lists them.
fn probers_json(snapshot: probers::Snapshot, names: &HashMap<u32, String>) -> Value {
    let ms = |d: Duration| d.as_millis() as u64;
    let list: Vec<Value> = snapshot
        .rows
        .iter()
        .map(|p| {
            let mut entry = json!({
                "address": p.address.to_string(),
                "service": names.get(&p.service).map_or("", String::as_str),
                "first_probe_ms_ago": ms(p.first_ago),
                "last_probe_ms_ago": ms(p.last_ago),
                "probes": p.probes,
                "probing": p.probing,
                "version": p.version,
                "reply": snapshot.replies.get(p.reply).map_or("", String::as_str),
            });
            if Unknown::is(p.service) {
                entry["unknown_service"] = true.into();
            }
            entry
        })
        .collect();
    Value::Array(list)
}

/// Waits until every prober of `service` that probed within the seen
/// window has been served `version` or later; fails at once when none has
/// probed, early when all that have not seen it stopped probing, and at
/// the timeout.
async fn wait_seen(agent: &Agent, service: &Service, version: u64, timeout: Duration) -> String {
    let current = service.version();
    if version > current {
        let message =
            format!("version {version} does not exist yet (the state is at version {current})");
        return wire::failure(Code::BadRequest, &message, Map::new());
    }
    let window = agent.seen_window();
    let now = Instant::now();
    let deadline = now + timeout;
    let awaited = agent.probers().recent(service.id, window, now);
    // "Seen after" counts from the change itself when it is the latest.
    let start = service.changed_at(version).unwrap_or(now);
    let mut fields = Map::new();
    fields.insert("service".into(), service.name.to_string().into());
    fields.insert("version".into(), version.into());
    let of = if service.name.is_empty() {
        String::new()
    } else {
        format!(" about service {}", service.name)
    };
    if awaited.is_empty() {
        let idle = agent.probers().idle(service.id, IDLE_NAMED, now);
        let message = format!(
            "no load balancer is probing this agent{of}, so nobody can confirm version {version}: {}",
            why_idle(&idle, window)
        );
        return wire::failure(Code::NoProbers, &message, fields);
    }
    let bell = agent.subscribe_probes();
    loop {
        let now = Instant::now();
        let progress = probers::progress(&agent.probers(), &awaited, version, start, window, now);
        let verdict = probers::verdict(&progress);
        fields.insert("probers".into(), progress_json(&progress));
        match verdict {
            Some(true) => return wire::ok(fields),
            Some(false) => {
                let message = format!(
                    "version {version}{of} was not seen by every load balancer: {}",
                    unseen(&progress)
                );
                return wire::failure(Code::NotSeen, &message, fields);
            }
            None if now >= deadline => {
                let message = format!(
                    "version {version}{of} was not seen by every load balancer within {}: {}",
                    seconds(timeout),
                    unseen(&progress)
                );
                return wire::failure(Code::NotSeen, &message, fields);
            }
            None => {}
        }
        // Wake at the next probe, or when a silent prober may have gone
        // quiet for longer than the window, or at the deadline.
        let pause = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(250));
        let probe = async {
            let _ = bell.recv().await;
        };
        probe
            .or(async {
                Timer::after(pause).await;
            })
            .await;
    }
}

fn progress_json(progress: &[(probers::Key, Progress)]) -> Value {
    let ms = |d: &Duration| d.as_millis() as u64;
    Value::Array(
        progress
            .iter()
            .map(|((addr, _), p)| match p {
                Progress::Seen(d) => json!({"address": addr.to_string(), "seen": true, "after_ms": ms(d)}),
                Progress::Waiting => json!({"address": addr.to_string(), "seen": false, "probing": true}),
                Progress::Gone(d) => json!({"address": addr.to_string(), "seen": false, "probing": false, "last_probe_ms_ago": ms(d)}),
                Progress::Evicted => json!({"address": addr.to_string(), "seen": false, "evicted": true}),
            })
            .collect(),
    )
}

/// The probers that have not seen it, in words.
fn unseen(progress: &[(probers::Key, Progress)]) -> String {
    progress
        .iter()
        .filter_map(|((addr, _), p)| match p {
            Progress::Seen(_) => None,
            Progress::Waiting => Some(format!("{addr} is probing but has not been served it")),
            Progress::Gone(d) => Some(format!("{addr} stopped probing ({} ago)", seconds(*d))),
            Progress::Evicted => Some(format!(
                "{addr} was evicted from the prober table (more load balancers probe this service than max_probers; raise it)"
            )),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Probers named in a "no load balancer is probing" message.
const IDLE_NAMED: usize = 3;

/// What counts as probing, and why each of the probers named does not:
/// the rest of a "no load balancer is probing" message.
fn why_idle(idle: &[probers::Idle], window: Duration) -> String {
    let rule = format!(
        "a load balancer counts once it has probed twice, until it is silent for longer than three of its intervals plus a second (at most seen_window, {})",
        seconds(window)
    );
    if idle.is_empty() {
        return format!("{rule}; none has probed it yet");
    }
    let each: Vec<String> = idle
        .iter()
        .map(|p| match p.interval {
            _ if p.probes < 2 => format!("{} probed once ({} ago)", p.address, seconds(p.silent)),
            Some(i) if i * 3 + Duration::from_secs(1) < window => format!(
                "{} has been silent for {}, longer than three of its {} intervals plus a second",
                p.address,
                seconds(p.silent),
                if i < Duration::from_secs(1) {
                    format!("{} ms", i.as_millis())
                } else {
                    seconds(i)
                }
            ),
            _ => format!(
                "{} has been silent for {}, longer than seen_window",
                p.address,
                seconds(p.silent)
            ),
        })
        .collect();
    format!("{rule}; {}", each.join("; "))
}

/// A duration as `12.3 s`.
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Removes the socket file (at stop, or when a reload moved it), if it is
/// still ours: what another process put at the path since is left alone.
pub fn remove(socket: &Socket) {
    let path = &socket.path;
    match socket.file.remove() {
        Ok(Removal::Removed | Removal::Gone) => {}
        Ok(Removal::NotOurs) => info!(
            "the control socket {} is no longer the one hapgent created; leaving what is there",
            path.display()
        ),
        Err(e) => info!("cannot remove the control socket {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_use_the_socket() {
        let access = Access {
            uid: 500,
            gid: 600,
            group: "hapgent".into(),
        };
        let peer = |uid, gid, groups: &[u32]| Peer {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        };
        for (p, allowed) in [
            (peer(0, 0, &[]), true),
            (peer(500, 1, &[]), true),
            (peer(1000, 600, &[]), true),
            (peer(1000, 1000, &[27, 600]), true),
            (peer(1000, 1000, &[27]), false),
            (peer(600, 500, &[]), false),
        ] {
            assert_eq!(access.allows(&p), allowed, "{p:?}");
        }
    }

    #[test]
    fn unseen_probers_are_named() {
        let a: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let b: std::net::IpAddr = "127.0.0.3".parse().unwrap();
        let text = unseen(&[
            ((a, 0), Progress::Seen(Duration::from_millis(5))),
            ((b, 0), Progress::Gone(Duration::from_millis(31_240))),
        ]);
        assert_eq!(text, "127.0.0.3 stopped probing (31.2 s ago)");
        assert_eq!(
            unseen(&[((a, 0), Progress::Waiting)]),
            "127.0.0.2 is probing but has not been served it"
        );
        assert_eq!(
            unseen(&[((a, 0), Progress::Evicted)]),
            "127.0.0.2 was evicted from the prober table (more load balancers probe this service than max_probers; raise it)"
        );
    }

    #[test]
    fn why_nobody_is_probing_names_the_rule_that_applied() {
        let a: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let ms = Duration::from_millis;
        let idle = |probes, interval: Option<u64>, silent| probers::Idle {
            address: a,
            probes,
            interval: interval.map(ms),
            silent: ms(silent),
        };
        let window = ms(30_000);
        let rule = "a load balancer counts once it has probed twice, until it is silent for longer than three of its intervals plus a second (at most seen_window, 30.0 s)";
        for (list, want) in [
            (vec![], "none has probed it yet".to_string()),
            (
                vec![idle(1, None, 2500)],
                "127.0.0.2 probed once (2.5 s ago)".to_string(),
            ),
            (
                vec![idle(40, Some(200), 1700)],
                "127.0.0.2 has been silent for 1.7 s, longer than three of its 200 ms intervals plus a second".to_string(),
            ),
            (
                vec![idle(3, Some(20_000), 31_000)],
                "127.0.0.2 has been silent for 31.0 s, longer than seen_window".to_string(),
            ),
        ] {
            assert_eq!(why_idle(&list, window), format!("{rule}; {want}"));
        }
    }
}
