//! The running agent: current state, signals, and the listeners.
//!
//! One thread, one `LocalExecutor`: the state lives in a `RefCell` that only
//! this thread touches, so there are no locks and a signal handler never
//! does more than wake the executor (the Zig hapgent locked and allocated
//! inside its handlers). File I/O that might hang on a sick disk (saving,
//! re-reading) runs on smol's blocking pool while probes keep being answered
//! from memory.
//!
//! This module decides *when* to load and save. *What* a state file may hold
//! is `state`'s business, and *what* to reply is `protocol`'s.

use crate::config::Config;
use crate::disk::Disk;
use crate::error::Error;
use crate::server::{self, Server};
use crate::state::{self, State, Status};
use crate::{error, info, protocol, sys};
use async_signal::{Signal, Signals};
use smol::{Async, LocalExecutor, future, prelude::*};
use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

/// The state being served and the reply rendered from it.
pub struct Agent {
    disk: Disk,
    state_file: PathBuf,
    state: RefCell<State>,
    reply: RefCell<Rc<[u8]>>,
}

impl Agent {
    /// Starts from the state file, or from FAIL if it cannot be used.
    pub fn new(state_file: PathBuf, disk: Disk) -> Agent {
        let state = load_or_fail(&state_file);
        let reply = protocol::render(&state).into_bytes().into();
        Agent {
            disk,
            state_file,
            state: RefCell::new(state),
            reply: RefCell::new(reply),
        }
    }

    /// The reply to send now.
    pub fn reply(&self) -> Rc<[u8]> {
        Rc::clone(&self.reply.borrow())
    }

    /// The state being served.
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// Switches to `new`, logging the change and its cause.
    fn set(&self, new: State, cause: &str) {
        let old = self.state.replace(new.clone());
        if old == new {
            info!("state unchanged: {new} ({cause})");
            return;
        }
        *self.reply.borrow_mut() = protocol::render(&new).into_bytes().into();
        info!("state changed: {old} -> {new} ({cause})");
    }

    /// SIGUSR1/SIGUSR2: change the status, keep the rest, save.
    async fn change_status(&self, status: Status, cause: &str) {
        let new = self.state.borrow().set_status(status);
        self.set(new.clone(), cause);
        let path = self.state_file.clone();
        let saved = self.disk.run(move || state::save(&path, &new)).await;
        let saved = saved.unwrap_or_else(|| Err(io::Error::other("the disk thread stopped")));
        if let Err(e) = saved {
            error!(
                "cannot save the state to {}: {e}; serving it from memory, but a restart would lose it",
                self.state_file.display()
            );
        }
    }

    /// SIGHUP: re-read the state file.
    async fn reload(&self) {
        let path = self.state_file.clone();
        match self.disk.run(move || load_or_fail(&path)).await {
            Some(state) => self.set(state, "SIGHUP"),
            None => error!("cannot re-read the state file: the disk thread stopped"),
        }
    }

    /// Handles state signals until SIGTERM or SIGINT arrives. Signals are
    /// handled one at a time, in the order they were delivered, each save
    /// finished before the next signal: so a burst ends in the state of the
    /// last signal, on disk as in memory.
    pub async fn handle_signals(&self, mut signals: Signals) {
        while let Some(signal) = signals.next().await {
            match signal {
                Ok(Signal::Usr1) => self.change_status(Status::Up, "SIGUSR1").await,
                Ok(Signal::Usr2) => self.change_status(Status::Down, "SIGUSR2").await,
                Ok(Signal::Hup) => self.reload().await,
                Ok(Signal::Term) | Ok(Signal::Int) => {
                    info!(
                        "stopping ({})",
                        if signal.is_ok_and(|s| s == Signal::Int) {
                            "SIGINT"
                        } else {
                            "SIGTERM"
                        }
                    );
                    return;
                }
                Ok(_) => {}
                Err(e) => error!("reading signals failed: {e}"),
            }
        }
    }
}

/// Loads the state file; an unusable one is logged and means FAIL, as in
/// the Zig hapgent. The file itself is left untouched for the operator.
fn load_or_fail(path: &std::path::Path) -> State {
    match state::load(path) {
        Ok(state) => state,
        Err(problem) => {
            error!(
                "state file {} {problem}; reporting FAIL until it is fixed and SIGHUP is sent",
                path.display()
            );
            State::with_status(Status::Fail)
        }
    }
}

/// Binds one listener per configured address.
pub fn bind(config: &Config) -> Result<Vec<TcpListener>, Error> {
    config
        .ip
        .iter()
        .map(|ip| {
            let addr = SocketAddr::new(*ip, config.port);
            TcpListener::bind(addr).map_err(|e| bind_error(addr, &e))
        })
        .collect()
}

/// One line that says why an address could not be used and what to check.
fn bind_error(addr: SocketAddr, e: &io::Error) -> Error {
    let hint = match e.kind() {
        io::ErrorKind::AddrInUse => {
            " (another process holds this port; is hapgent already running?)"
        }
        io::ErrorKind::PermissionDenied => " (ports below 1024 need CAP_NET_BIND_SERVICE)",
        io::ErrorKind::AddrNotAvailable => " (no interface on this host has that address)",
        _ => "",
    };
    Error::Runtime(format!("cannot listen on {addr}: {e}{hint}"))
}

/// Runs the agent until SIGTERM/SIGINT.
pub fn run(config: Config) -> Result<(), Error> {
    // Take over the signals before anything else: SIGUSR1's default action
    // is to terminate, and a deploy script may send it at any moment. The
    // threads started here (the reactor's, the disk's) block all signals.
    let (signals, disk) = sys::with_signals_blocked(|| {
        let signals = Signals::new([
            Signal::Term,
            Signal::Int,
            Signal::Usr1,
            Signal::Usr2,
            Signal::Hup,
        ])?;
        Ok::<_, io::Error>((signals, Disk::start()?))
    })
    .and_then(|r| r)
    .map_err(|e| Error::Runtime(format!("cannot set up signal handling: {e}")))?;
    let listeners = bind(&config)?;
    let listeners = listeners
        .into_iter()
        .map(|l| {
            Async::new(l)
                .map_err(|e| Error::Runtime(format!("cannot watch the listening socket: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let agent = Rc::new(Agent::new(config.state_file.clone(), disk));
    let addrs: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.get_ref().local_addr().ok())
        .map(|a| a.to_string())
        .collect();
    info!(
        "hapgent {} listening on {}; state file {}: {}",
        env!("CARGO_PKG_VERSION"),
        addrs.join(", "),
        config.state_file.display(),
        agent.state()
    );

    let options = server::Options {
        max_connections: config.max_connections,
        write_timeout: Duration::from_millis(config.write_timeout),
        log_requests: config.log_requests,
    };
    let replies = Rc::clone(&agent);
    let server = Server::new(move || replies.reply(), options);
    let ex = Rc::new(LocalExecutor::new());
    future::block_on(ex.run(server::serve(
        &ex,
        listeners,
        server,
        agent.handle_signals(signals),
    )));
    info!("stopped");
    Ok(())
}
