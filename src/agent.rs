//! The running agent: current state, dynamic inputs, signals, listeners.
//!
//! One thread, one `LocalExecutor`: the state lives in a `RefCell` that only
//! this thread touches, so there are no locks, and a signal handler never
//! does more than wake the executor (the Zig hapgent locked and allocated
//! inside its handlers). File I/O that might hang on a sick disk (saving,
//! re-reading the state file) runs on the disk thread while probes keep
//! being answered from memory.
//!
//! This module decides *when* to load, save, sample and notify. *What* a
//! state file may hold is `state`'s business, *what* to reply is
//! `protocol`'s, and *how* CPU load becomes a weight is `cpu`'s.

use crate::config::Config;
use crate::cpu::{self, Sampler};
use crate::disk::Disk;
use crate::error::Error;
use crate::protocol::{self, Admin, Overlay};
use crate::server::{self, Server};
use crate::state::{self, State, Status};
use crate::systemd::{self, Notifier};
use crate::{error, info, sys};
use async_signal::{Signal, Signals};
use smol::{Async, LocalExecutor, future, prelude::*};
use std::cell::{Cell, RefCell};
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// The drain and maint flag files, checked each time a reply is built.
pub struct FlagFiles {
    drain: Option<PathBuf>,
    maint: Option<PathBuf>,
    /// What the files said last time, to log changes once.
    last: Cell<Option<Admin>>,
}

impl FlagFiles {
    pub fn new(config: &Config) -> FlagFiles {
        FlagFiles {
            drain: config.drain_file.clone(),
            maint: config.maint_file.clone(),
            last: Cell::new(None),
        }
    }

    /// The admin state the files ask for now: one `stat` per configured
    /// file, so a file created or removed shows in the very next reply.
    pub fn check(&self) -> Option<Admin> {
        let exists = |p: &Option<PathBuf>| p.as_deref().is_some_and(flag_exists);
        let admin = protocol::flag_admin(exists(&self.maint), exists(&self.drain));
        if self.last.replace(admin) != admin {
            let path = |p: &Option<PathBuf>| {
                p.as_deref()
                    .map_or(String::new(), |p| p.display().to_string())
            };
            match admin {
                Some(Admin::Maint) => {
                    info!("maint file {} exists: reporting maint", path(&self.maint))
                }
                Some(_) => info!("drain file {} exists: reporting drain", path(&self.drain)),
                None => info!("no flag file exists: admin state from the state file"),
            }
        }
        admin
    }
}

/// Whether a flag file is present. Only "no such file" means absent: if
/// the file cannot be checked (say, permission denied on its directory), it
/// counts as present, because a flag file only ever takes traffic away.
fn flag_exists(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
        ),
    }
}

/// The state being served, the inputs that change replies, and the reply
/// last rendered from them.
pub struct Agent {
    disk: Disk,
    state_file: PathBuf,
    state: RefCell<State>,
    flags: FlagFiles,
    cpu: Option<Sampler>,
    notifier: Notifier,
    /// The last reply and the overlay it was rendered with: most probes
    /// see the same inputs and reuse it without formatting anything.
    reply: RefCell<(Overlay, Rc<[u8]>)>,
}

impl Agent {
    /// Starts from the state file, or from FAIL if it cannot be used.
    pub fn new(config: &Config, disk: Disk, notifier: Notifier) -> Agent {
        let state = load_or_fail(&config.state_file);
        let cpu = config.cpu_weight.then(|| {
            Sampler::new(
                config.proc_stat.clone(),
                Duration::from_millis(config.timeframe),
                config.cpu_smoothing,
                config.min_weight,
            )
        });
        let reply = protocol::render(&state).into_bytes().into();
        Agent {
            disk,
            state_file: config.state_file.clone(),
            state: RefCell::new(state),
            flags: FlagFiles::new(config),
            cpu,
            notifier,
            reply: RefCell::new((Overlay::default(), reply)),
        }
    }

    /// What the flag files and the CPU sample change right now.
    fn overlay(&self) -> Overlay {
        let weight = self.cpu.as_ref().and_then(|cpu| {
            let base = self.state.borrow().weight.map_or(100, u32::from);
            cpu.idle()
                .map(|idle| cpu::scale(base, idle, cpu.min_weight))
        });
        Overlay {
            admin: self.flags.check(),
            weight,
        }
    }

    /// The reply to send now.
    pub fn reply(&self) -> Rc<[u8]> {
        let overlay = self.overlay();
        let mut cached = self.reply.borrow_mut();
        if cached.0 != overlay {
            let line = protocol::render_with(&self.state.borrow(), overlay);
            *cached = (overlay, line.into_bytes().into());
        }
        Rc::clone(&cached.1)
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
        let mut cached = self.reply.borrow_mut();
        let overlay = cached.0;
        *cached = (
            overlay,
            protocol::render_with(&new, overlay).into_bytes().into(),
        );
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
        self.notifier.reloading();
        let path = self.state_file.clone();
        match self.disk.run(move || load_or_fail(&path)).await {
            Some(state) => self.set(state, "SIGHUP"),
            None => error!("cannot re-read the state file: the disk thread stopped"),
        }
        self.notifier.notify("READY=1");
    }

    /// Handles SIGUSR1, SIGUSR2 and SIGHUP, forever. They are handled one
    /// at a time, in the order they were delivered, each save finished
    /// before the next signal: so the file always matches what is served.
    async fn handle_signals(&self, mut signals: Signals) {
        while let Some(signal) = signals.next().await {
            match signal {
                Ok(Signal::Usr1) => self.change_status(Status::Up, "SIGUSR1").await,
                Ok(Signal::Usr2) => self.change_status(Status::Down, "SIGUSR2").await,
                Ok(Signal::Hup) => self.reload().await,
                Ok(_) => {}
                Err(e) => error!("reading signals failed: {e}"),
            }
        }
    }

    /// Completes at SIGTERM or SIGINT. Kept apart from the state signals so
    /// that a stop is obeyed even while a save waits on a hung disk.
    async fn wait_for_stop(&self, mut signals: Signals) {
        let name = loop {
            match signals.next().await {
                Some(Ok(Signal::Int)) => break "SIGINT",
                Some(Ok(_)) => break "SIGTERM",
                Some(Err(e)) => error!("reading signals failed: {e}"),
                // The stream never ends while the agent runs.
                None => future::pending::<()>().await,
            }
        };
        info!("stopping ({name})");
        self.notifier.notify("STOPPING=1");
    }

    /// Runs until told to stop: state signals and CPU sampling go on in the
    /// meantime.
    async fn until_stopped(&self, signals: Signals, stop: Signals) {
        let work = async {
            self.handle_signals(signals).await;
            future::pending::<()>().await;
        };
        self.wait_for_stop(stop)
            .or(work)
            .or(self.sample_cpu())
            .await;
    }

    /// Gives a save or re-read still running on the disk thread a moment to
    /// finish, so a stop right after a signal still leaves it on disk.
    async fn settle(&self) {
        let done = async { self.disk.run(|| ()).await.is_some() };
        let waited = async {
            smol::Timer::after(Duration::from_secs(2)).await;
            false
        };
        if !done.or(waited).await {
            error!(
                "a state file operation did not finish within 2 s (is the disk hung?); stopping anyway"
            );
        }
    }

    /// Samples CPU load in the background, if enabled; otherwise never ends
    /// and does nothing.
    async fn sample_cpu(&self) {
        match &self.cpu {
            Some(cpu) => cpu.run().await,
            None => future::pending().await,
        }
    }
}

/// Loads the state file; an unusable one is logged and means FAIL, as in
/// the Zig hapgent. The file itself is left untouched for the operator.
fn load_or_fail(path: &Path) -> State {
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
    let (signals, stop, disk) = sys::with_signals_blocked(|| {
        let signals = Signals::new([Signal::Usr1, Signal::Usr2, Signal::Hup])?;
        let stop = Signals::new([Signal::Term, Signal::Int])?;
        Ok::<_, io::Error>((signals, stop, Disk::start()?))
    })
    .and_then(|r| r)
    .map_err(|e| Error::Runtime(format!("cannot set up signal handling: {e}")))?;

    let listeners = if config.systemd {
        systemd::adopt()?
    } else {
        bind(&config)?
    };
    let listeners = listeners
        .into_iter()
        .map(|l| {
            Async::new(l)
                .map_err(|e| Error::Runtime(format!("cannot watch the listening socket: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let agent = Rc::new(Agent::new(&config, disk, Notifier::from_env()));
    if let Some(cpu) = &agent.cpu {
        cpu.first_sample().map_err(Error::Runtime)?;
    }
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
    agent.notifier.notify(&format!(
        "READY=1\nSTATUS=listening on {}",
        addrs.join(", ")
    ));

    let options = server::Options {
        max_connections: config.max_connections,
        write_timeout: Duration::from_millis(config.write_timeout),
        log_requests: config.log_requests,
    };
    let replies = Rc::clone(&agent);
    let server = Server::new(move || replies.reply(), options);
    let ex = Rc::new(LocalExecutor::new());
    let shutdown = agent.until_stopped(signals, stop);
    future::block_on(ex.run(async {
        server::serve(&ex, listeners, server, shutdown).await;
        agent.settle().await;
    }));
    info!("stopped");
    Ok(())
}

/// One-shot mode: prints the reply that would be sent now — state file,
/// flag files and a CPU sample over `timeframe` — and returns. With `json`,
/// prints the reply and its inputs as one JSON object.
pub fn once(config: Config, json: bool) -> Result<(), Error> {
    let state = state::load(&config.state_file);
    let served = state
        .as_ref()
        .map_or_else(|_| State::with_status(Status::Fail), State::clone);
    if let Err(problem) = &state {
        error!(
            "state file {} {problem}; reporting FAIL",
            config.state_file.display()
        );
    }
    // Each flag file is checked once: `None` where none is configured.
    let drain = config.drain_file.as_deref().map(flag_exists);
    let maint = config.maint_file.as_deref().map(flag_exists);
    let admin = protocol::flag_admin(maint == Some(true), drain == Some(true));
    let idle = if config.cpu_weight {
        let before = read_times(&config.proc_stat)?;
        std::thread::sleep(Duration::from_millis(config.timeframe));
        cpu::idle_ppm(before, read_times(&config.proc_stat)?)
    } else {
        None
    };
    let base = served.weight.map_or(100, u32::from);
    let weight = idle.map(|i| cpu::scale(base, i, config.min_weight));
    let reply = protocol::render_with(&served, Overlay { admin, weight });
    if json {
        let value = serde_json::json!({
            "reply": reply.trim_end(),
            "state": state.as_ref().ok(),
            "state_error": state.as_ref().err().map(|p| format!("state file {} {p}", config.state_file.display())),
            "drain_file": drain,
            "maint_file": maint,
            "cpu_idle_percent": idle.map(|i| f64::from(i) / 10_000.0),
            "weight": weight.unwrap_or(base),
        });
        println!("{value}");
    } else {
        print!("{reply}");
    }
    Ok(())
}

fn read_times(path: &Path) -> Result<cpu::Times, Error> {
    let text = fs::read_to_string(path)
        .map_err(|e| Error::Runtime(format!("{} cannot be read: {e}", path.display())))?;
    cpu::parse(&text).map_err(|e| Error::Runtime(format!("{} {e}", path.display())))
}
