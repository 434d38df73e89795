//! The running agent: the state served, how signals change it, how the
//! disk catches up, and reloads.
//!
//! One thread, one `LocalExecutor`: the state lives in a `RefCell` that only
//! this thread touches, so there are no locks, and a signal handler never
//! does more than record the signal (see `signals`).
//!
//! Memory is the truth for replies; the disk converges to it. A change is
//! served the moment it is handled, in delivery order, and gets the next
//! version number. Saving is a separate loop that always writes the latest
//! version, so a save hanging on a sick disk never delays the next change,
//! and a failed save is logged once per state and retried. File I/O runs on
//! the disk thread (see `disk`), one operation at a time in order, so a
//! re-read (SIGHUP) first brings the file up to date with what is served.
//!
//! This module decides *when* to load, save and reload. *What* a state file
//! may hold is `state`'s business, *what* to reply is `protocol`'s, how
//! connections are served is `server`'s.

use crate::config::{self, Config};
use crate::control;
use crate::cpu::{self, Sampler};
use crate::disk::Disk;
use crate::error::Error;
use crate::flags::FlagFiles;
use crate::probers;
use crate::protocol::{self, Overlay};
use crate::server::{self, Server};
use crate::signals::{self, Kind};
use crate::state::{self, Problem, State, Status};
use crate::systemd::Notifier;
use crate::{error, info, listen, log, sys, warn};
use async_signal::{Signal, Signals};
use smol::channel::{self, Receiver, Sender};
use smol::{Async, LocalExecutor, Task, Timer, future, prelude::*};
use std::cell::{Cell, Ref, RefCell};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

/// How long a stop waits for the latest state to reach the disk.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// First delay before retrying a failed save or read; it doubles up to
/// `RETRY_MAX`.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

type ReplyFn = Box<dyn Fn(SocketAddr) -> Rc<[u8]>>;

/// A doorbell: ringing it when it already rings does nothing, so any
/// number of rings costs one wake-up and no memory.
struct Bell {
    tx: Sender<()>,
    rx: Receiver<()>,
}

impl Bell {
    fn new() -> Bell {
        let (tx, rx) = channel::bounded(1);
        Bell { tx, rx }
    }

    fn ring(&self) {
        let _ = self.tx.try_send(());
    }

    async fn wait(&self) {
        let _ = self.rx.recv().await;
    }
}

/// Tasks waiting for an event (a probe, a save): each gets a coalesced
/// message every time it happens. Costs one check when nobody waits.
#[derive(Default)]
struct Waiters(RefCell<Vec<Sender<()>>>);

impl Waiters {
    fn subscribe(&self) -> Receiver<()> {
        let (tx, rx) = channel::bounded(1);
        self.0.borrow_mut().push(tx);
        rx
    }

    fn notify(&self) {
        if self.0.borrow().is_empty() {
            return;
        }
        let mut waiters = self.0.borrow_mut();
        waiters.retain(|w| !w.is_closed());
        for w in waiters.iter() {
            let _ = w.try_send(());
        }
    }
}

/// Where a change came from: the operator's file (already on disk) or a
/// signal (to be saved).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    File,
    Signal,
}

/// The state being served, what changes it, and the reply last rendered.
pub struct Agent {
    disk: Disk,
    inputs: config::Inputs,
    config: RefCell<Config>,
    state: RefCell<State>,
    /// Version of the state served: one more for every change.
    version: Cell<u64>,
    /// When the current version began.
    changed_at: Cell<Instant>,
    /// The highest version known to be in the state file.
    saved: Cell<u64>,
    /// Whether a save is running on the disk thread.
    saving: Cell<bool>,
    save_bell: Bell,
    reload_bell: Bell,
    signals: RefCell<signals::Reader>,
    flags: RefCell<FlagFiles>,
    cpu: RefCell<Option<Sampler>>,
    notifier: Notifier,
    /// The last reply and the overlay it was rendered with: most probes
    /// see the same inputs and reuse it without formatting anything.
    reply: RefCell<(Overlay, Rc<[u8]>)>,
    server: RefCell<Option<Rc<Server<ReplyFn>>>>,
    listeners: RefCell<Vec<(SocketAddr, Task<()>)>>,
    /// Who probed, and which version each was served.
    probers: RefCell<probers::Table>,
    /// Waiters (`--wait-seen`) told after every probe.
    probe_waiters: Waiters,
    /// Waiters (a ctl change) told after every save.
    save_waiters: Waiters,
}

impl Agent {
    /// Starts from the state file, or from FAIL if it cannot be used (and
    /// if it could not even be read, keeps trying).
    fn new(config: Config, inputs: config::Inputs, disk: Disk, notifier: Notifier) -> Agent {
        for stale in state::remove_stale_temps(&config.state_file) {
            info!("removed {}, left by an interrupted save", stale.display());
        }
        let loaded = state::load(&config.state_file);
        let state = loaded.as_ref().map_or_else(
            |problem| fail_state(&config.state_file, problem),
            State::clone,
        );
        let reply = protocol::render(&state).into_bytes().into();
        let max_probers = config.max_probers as usize;
        let agent = Agent {
            disk,
            inputs,
            flags: RefCell::new(FlagFiles::new(
                config.drain_file.clone(),
                config.maint_file.clone(),
            )),
            config: RefCell::new(config),
            state: RefCell::new(state),
            version: Cell::new(0),
            changed_at: Cell::new(Instant::now()),
            saved: Cell::new(0),
            saving: Cell::new(false),
            save_bell: Bell::new(),
            reload_bell: Bell::new(),
            signals: RefCell::new(signals::Reader::default()),
            cpu: RefCell::new(None),
            notifier,
            reply: RefCell::new((Overlay::default(), reply)),
            server: RefCell::new(None),
            listeners: RefCell::new(Vec::new()),
            probers: RefCell::new(probers::Table::new(max_probers)),
            probe_waiters: Waiters::default(),
            save_waiters: Waiters::default(),
        };
        if loaded.is_err_and(|p| p.is_transient()) {
            agent.reload_bell.ring();
        }
        agent
    }

    fn state_file(&self) -> PathBuf {
        self.config.borrow().state_file.clone()
    }

    /// The reply to send now to `peer`, recorded in the prober table.
    pub fn reply(&self, peer: SocketAddr) -> Rc<[u8]> {
        let reply = self.current_reply();
        self.probers
            .borrow_mut()
            .record(peer.ip(), &reply, self.version.get(), Instant::now());
        self.probe_waiters.notify();
        reply
    }

    /// The reply a probe would get now.
    pub fn current_reply(&self) -> Rc<[u8]> {
        let overlay = {
            let state = self.state.borrow();
            let idle = self.cpu.borrow().as_ref().and_then(Sampler::idle);
            let min_weight = self.config.borrow().min_weight;
            protocol::overlay(&state, self.flags.borrow().check(), idle, min_weight)
        };
        let mut cached = self.reply.borrow_mut();
        if cached.0 != overlay {
            let line = protocol::render_with(&self.state.borrow(), overlay);
            *cached = (overlay, line.into_bytes().into());
        }
        Rc::clone(&cached.1)
    }

    /// The state served.
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// The version of the state served.
    pub fn version(&self) -> u64 {
        self.version.get()
    }

    /// When `version` began being served, if it is the current one.
    pub fn changed_at(&self, version: u64) -> Option<Instant> {
        (version == self.version.get()).then(|| self.changed_at.get())
    }

    /// Whether the state file holds what is served.
    pub fn is_saved(&self) -> bool {
        self.saved.get() >= self.version.get()
    }

    /// The prober table, to read.
    pub fn probers(&self) -> Ref<'_, probers::Table> {
        self.probers.borrow()
    }

    /// How recently a prober must have probed to count as probing.
    pub fn seen_window(&self) -> Duration {
        Duration::from_millis(self.config.borrow().seen_window)
    }

    /// A receiver that gets a message (coalesced) after every probe.
    pub fn subscribe_probes(&self) -> Receiver<()> {
        self.probe_waiters.subscribe()
    }

    /// Waits, at most `limit`, until the state served is in the state
    /// file; returns whether it is.
    pub async fn wait_saved(&self, limit: Duration) -> bool {
        let saved = self.save_waiters.subscribe();
        let deadline = Instant::now() + limit;
        while !self.is_saved() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = saved
                .recv()
                .or(async {
                    Timer::after(left).await;
                    Ok(())
                })
                .await;
        }
        true
    }

    /// Changes state fields as `hapgent ctl` asks (see `state::merge`),
    /// through the same path as a signal: served at once, then saved.
    pub fn change(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
        cause: &str,
    ) -> Result<(), Problem> {
        let new = state::merge(&self.state.borrow(), fields)?;
        self.set(new, cause, Origin::Signal);
        Ok(())
    }

    /// Serves `new` from now on, logging the change and its cause; a change
    /// from a signal is then saved, one from the file already is.
    fn set(&self, new: State, cause: &str, origin: Origin) {
        let version = self.version.get() + 1;
        self.version.set(version);
        self.changed_at.set(Instant::now());
        let old = self.state.replace(new.clone());
        {
            let mut cached = self.reply.borrow_mut();
            let overlay = cached.0;
            *cached = (
                overlay,
                protocol::render_with(&new, overlay).into_bytes().into(),
            );
        }
        if old == new {
            info!("state unchanged: {new} ({cause})");
        } else {
            info!("state changed: {old} -> {new} ({cause})");
        }
        match origin {
            // A save still running would overwrite what was read: let the
            // save loop write it back once that save is done.
            Origin::File if !self.saving.get() => {
                self.saved.set(version);
                self.save_waiters.notify();
            }
            _ => self.save_bell.ring(),
        }
    }

    /// Handles one recorded signal. Status changes apply at once; a reload
    /// is asked of the reload loop, which does its file I/O meanwhile.
    fn handle(&self, kind: Kind) {
        match kind {
            Kind::Up | Kind::Down => {
                let status = if kind == Kind::Up {
                    Status::Up
                } else {
                    Status::Down
                };
                let new = self.state.borrow().set_status(status);
                self.set(new, kind.name(), Origin::Signal);
            }
            Kind::Reload => {
                self.notifier.reloading();
                self.reload_bell.ring();
            }
        }
    }

    /// Handles every signal recorded but not yet handled, in delivery order;
    /// returns the last one's kind.
    fn handle_recorded(&self) -> Option<Kind> {
        let batch = self.signals.borrow_mut().read();
        if batch.lost > 0 {
            warn!(
                "{} state signals arrived faster than they could be handled; the oldest were skipped and the {} latest applied in order",
                batch.lost,
                batch.kinds.len()
            );
        }
        for kind in &batch.kinds {
            self.handle(*kind);
        }
        batch.kinds.last().copied()
    }

    /// Handles state signals whenever async-signal rings, forever.
    async fn handle_signals(&self, mut doorbell: Signals) {
        loop {
            self.handle_recorded();
            match doorbell.next().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => error!("reading signals failed: {e}"),
                None => future::pending::<()>().await,
            }
        }
    }

    /// Writes the latest state to the file whenever it changed, forever.
    /// A failure is logged once per state and retried with backoff, or at
    /// once when a newer state arrives.
    async fn save_loop(&self) {
        let mut failed_version = None;
        let mut failures = 0u32;
        let mut delay = RETRY_FIRST;
        loop {
            self.save_bell.wait().await;
            while self.saved.get() < self.version.get() {
                let version = self.version.get();
                let state = self.state.borrow().clone();
                let path = self.state_file();
                self.saving.set(true);
                let result = {
                    let (path, state) = (path.clone(), state.clone());
                    self.disk.run(move || state::save(&path, &state)).await
                };
                self.saving.set(false);
                match result.unwrap_or_else(|| Err(io::Error::other("the disk thread stopped"))) {
                    Ok(()) => {
                        self.saved.set(self.saved.get().max(version));
                        self.save_waiters.notify();
                        if failures > 0 {
                            info!(
                                "saved the state to {} after {failures} failed attempts",
                                path.display()
                            );
                        }
                        (failures, delay, failed_version) = (0, RETRY_FIRST, None);
                    }
                    Err(e) => {
                        failures += 1;
                        if failed_version != Some(version) {
                            error!(
                                "cannot save the state to {}: {e}; serving {state} from memory and retrying (a restart now would lose it)",
                                path.display()
                            );
                            failed_version = Some(version);
                        }
                        sleep(delay).or(self.save_bell.wait()).await;
                        delay = (delay * 2).min(RETRY_MAX);
                    }
                }
            }
        }
    }

    /// Carries out reloads (SIGHUP), one at a time, forever: the
    /// configuration file first, then the state file; then tells systemd
    /// the reload is done.
    async fn reload_loop(&self) {
        loop {
            self.reload_bell.wait().await;
            self.reload_config().await;
            self.reload_state().await;
            self.notifier.notify("READY=1");
        }
    }

    /// Re-reads the state file. The file is first brought up to date with
    /// what is served (a save that has not happened yet would otherwise be
    /// undone). If the file cannot be read at all, the last good state is
    /// kept and the read retried; if a later signal changes the state
    /// meanwhile, that one wins and the read is dropped.
    async fn reload_state(&self) {
        let asked = self.version.get();
        let mut delay = RETRY_FIRST;
        let mut failing = false;
        loop {
            let path = self.state_file();
            let pending = (self.saved.get() < asked).then(|| self.state.borrow().clone());
            let job = {
                let path = path.clone();
                move || {
                    let saved = pending.map(|s| state::save(&path, &s));
                    (saved, state::load(&path))
                }
            };
            self.saving.set(true);
            let result = self.disk.run(job).await;
            self.saving.set(false);
            let Some((saved, loaded)) = result else {
                error!("cannot re-read the state file: the disk thread stopped");
                return;
            };
            match saved {
                Some(Ok(())) => {
                    self.saved.set(self.saved.get().max(asked));
                    self.save_waiters.notify();
                }
                Some(Err(e)) => error!(
                    "SIGHUP: cannot first save the state served to {}: {e}; reading it anyway",
                    path.display()
                ),
                None => {}
            }
            if self.version.get() != asked {
                info!(
                    "SIGHUP: a later signal changed the state while {} was read; keeping the later state",
                    path.display()
                );
                return;
            }
            match loaded {
                Ok(new) => {
                    if failing {
                        info!("state file {} is readable again", path.display());
                    }
                    self.set(new, "SIGHUP", Origin::File);
                    return;
                }
                Err(problem) if problem.is_transient() => {
                    if !std::mem::replace(&mut failing, true) {
                        error!(
                            "state file {} {problem}; keeping the last good state ({}) and retrying",
                            path.display(),
                            self.state.borrow()
                        );
                    }
                    // A new SIGHUP retries at once, a new change ends it.
                    sleep(delay).or(self.reload_bell.wait()).await;
                    delay = (delay * 2).min(RETRY_MAX);
                    if self.version.get() != asked {
                        return;
                    }
                }
                Err(problem) => {
                    let fail = fail_state(&path, &problem);
                    self.set(fail, "SIGHUP", Origin::File);
                    return;
                }
            }
        }
    }

    /// Re-reads the configuration and applies what changed; an invalid
    /// configuration is rejected whole and the running one kept.
    async fn reload_config(&self) {
        let inputs = self.inputs.clone();
        let loaded = self.disk.run(move || config::load(&inputs)).await;
        let new = match loaded {
            Some(Ok(loaded)) => loaded.config,
            Some(Err(e)) => {
                error!("reload: {e}; keeping the running configuration");
                return;
            }
            None => return,
        };
        let old = self.config.borrow().clone();
        let changed = config::changed(&old, &new);
        if changed.is_empty() {
            return;
        }
        if new.systemd != old.systemd {
            warn!(
                "reload: changing systemd (socket activation) needs a restart; keeping it as it was"
            );
        }
        if new.ip != old.ip || new.port != old.port {
            if old.systemd {
                warn!("reload: systemd passes the listening sockets; ip and port do not apply");
            } else if let Err(e) = self.rebind(&new) {
                error!("reload: {e}; keeping the running configuration");
                return;
            }
        }
        let mut new = new;
        new.systemd = old.systemd;
        if let Some(server) = self.server.borrow().as_ref() {
            server.set_options(server_options(&new));
        }
        *self.flags.borrow_mut() = FlagFiles::new(new.drain_file.clone(), new.maint_file.clone());
        self.update_cpu(&new);
        self.probers.borrow_mut().set_cap(new.max_probers as usize);
        info!("reload: applied {}", changed.join(", "));
        let state_file_changed = new.state_file != old.state_file;
        *self.config.borrow_mut() = new;
        if state_file_changed {
            // What is served was not saved in the new file: read it fresh.
            self.saved.set(self.version.get());
        }
        // The cached reply may depend on anything above.
        self.reply.borrow_mut().0 = Overlay {
            weight: Some(u32::MAX),
            ..Overlay::default()
        };
    }

    /// Starts, stops or retunes CPU sampling after a reload.
    fn update_cpu(&self, new: &Config) {
        let mut cpu = self.cpu.borrow_mut();
        if !new.cpu_weight {
            // A sampling thread keeps running, unread, until a restart.
            *cpu = None;
            return;
        }
        if let Some(sampler) = cpu.as_ref() {
            sampler.update(cpu_settings(new));
            return;
        }
        match sys::with_signals_blocked(|| Sampler::start(cpu_settings(new))) {
            Ok(Ok(sampler)) => *cpu = Some(sampler),
            Ok(Err(e)) => error!("reload: cannot sample CPU load: {e}; weights are not scaled"),
            Err(e) => error!("reload: cannot start CPU sampling: {e}; weights are not scaled"),
        }
    }

    /// Listens on the new addresses before closing the old ones, so no
    /// probe is refused in between; if any cannot be bound, nothing
    /// changes.
    fn rebind(&self, new: &Config) -> Result<(), String> {
        let wanted: Vec<SocketAddr> = new
            .ip
            .iter()
            .map(|ip| SocketAddr::new(*ip, new.port))
            .collect();
        let current: Vec<SocketAddr> = self.listeners.borrow().iter().map(|(a, _)| *a).collect();
        // Port 0 means "any": every reload binds afresh.
        let kept = |a: &SocketAddr| new.port != 0 && current.contains(a);
        let fresh: Vec<_> = wanted.iter().filter(|a| !kept(a)).map(|a| a.ip()).collect();
        let ex = EXECUTOR.with(|ex| ex.borrow().clone());
        let server = self.server.borrow().clone();
        let (Some(ex), Some(server)) = (ex, server) else {
            return Err("not serving yet".into());
        };
        let bound = listen::bind(&fresh, new.port).map_err(|e| e.to_string())?;
        let mut added = Vec::new();
        for listener in bound {
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let watched = Async::new(listener).map_err(|e| e.to_string())?;
            added.push((addr, server.listen(&ex, watched)));
        }
        let mut listeners = self.listeners.borrow_mut();
        listeners.retain(|(addr, _)| kept(addr) && wanted.contains(addr));
        listeners.extend(added);
        let names: Vec<String> = listeners.iter().map(|(a, _)| a.to_string()).collect();
        info!("reload: now listening on {}", names.join(", "));
        Ok(())
    }

    /// Completes at SIGTERM or SIGINT.
    async fn wait_for_stop(&self, mut stop: Signals) {
        let name = loop {
            match stop.next().await {
                Some(Ok(Signal::Int)) => break "SIGINT",
                Some(Ok(_)) => break "SIGTERM",
                Some(Err(e)) => error!("reading signals failed: {e}"),
                None => future::pending::<()>().await,
            }
        };
        info!("stopping ({name})");
        self.notifier.notify("STOPPING=1");
    }

    /// Runs until told to stop; signals, saves and reloads go on meanwhile.
    async fn until_stopped(&self, doorbell: Signals, stop: Signals) {
        self.wait_for_stop(stop)
            .or(self.handle_signals(doorbell))
            .or(self.save_loop())
            .or(self.reload_loop())
            .await;
    }

    /// After a stop: handles the signals delivered before it and saves the
    /// latest state, giving a hung disk `STOP_GRACE`; whatever happens, no
    /// temporary file of ours is left behind.
    async fn finish(&self) {
        let last = self.handle_recorded();
        if last == Some(Kind::Reload) {
            info!("a SIGHUP arrived just before the stop; the state file is left as it is");
            return;
        }
        if self.saved.get() >= self.version.get() {
            return;
        }
        let (path, state) = (self.state_file(), self.state.borrow().clone());
        let save = {
            let path = path.clone();
            async move { self.disk.run(move || state::save(&path, &state)).await }
        };
        let timeout = async {
            Timer::after(STOP_GRACE).await;
            None
        };
        match save.or(timeout).await {
            Some(Ok(())) => {}
            Some(Err(e)) => error!(
                "cannot save the state to {} before stopping: {e}",
                path.display()
            ),
            None => {
                error!(
                    "saving the state to {} did not finish within {STOP_GRACE:?} (is the disk hung?); stopping anyway",
                    path.display()
                );
                if let Some(tmp) = state::temp_path(&state::save_target(&path)) {
                    let _ = std::fs::remove_file(tmp);
                }
            }
        }
    }
}

thread_local! {
    /// The executor serving this thread, for listeners added by a reload.
    static EXECUTOR: RefCell<Option<Rc<LocalExecutor<'static>>>> = const { RefCell::new(None) };
}

/// FAIL, after logging why the state file cannot be used. The file itself
/// is left untouched for the operator.
fn fail_state(path: &std::path::Path, problem: &Problem) -> State {
    error!(
        "state file {} {problem}; reporting FAIL until it is fixed and SIGHUP is sent",
        path.display()
    );
    State::with_status(Status::Fail)
}

async fn sleep(delay: Duration) {
    Timer::after(delay).await;
}

fn server_options(config: &Config) -> server::Options {
    server::Options {
        max_connections: config.max_connections,
        write_timeout: Duration::from_millis(config.write_timeout),
        log_requests: config.log_requests,
    }
}

fn cpu_settings(config: &Config) -> cpu::Settings {
    cpu::Settings {
        path: config.proc_stat.clone(),
        timeframe: Duration::from_millis(config.timeframe),
        smoothing: config.cpu_smoothing,
    }
}

/// The control socket, bound, with who may use it; `None` when disabled.
/// At the default path, a missing directory (hapgent started outside its
/// unit, which creates /run/hapgent) only disables it, with a warning, so an
/// upgrade never stops an agent from serving; a configured path must work.
fn control_socket(
    config: &Config,
) -> Result<Option<(PathBuf, std::os::unix::net::UnixListener, control::Access)>, Error> {
    let path = &config.control_socket;
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let default = path.as_path() == std::path::Path::new(config::DEFAULT_CONTROL_SOCKET);
    if default && path.parent().is_some_and(|d| !d.is_dir()) {
        warn!(
            "control socket disabled: {} does not exist (the unit's RuntimeDirectory=hapgent creates it; set control_socket to use another place, or to \"\" to silence this)",
            path.parent()
                .map_or(String::new(), |d| d.display().to_string())
        );
        return Ok(None);
    }
    let access = control::Access::resolve(config.control_group.as_deref())?;
    let listener = control::bind(path, &access)?;
    Ok(Some((path.clone(), listener, access)))
}

/// Runs the agent until SIGTERM/SIGINT. `signals::install` must have run.
pub fn run(config: Config, inputs: config::Inputs) -> Result<(), Error> {
    // The threads started here (the reactor's, the disk's, the logger's,
    // the CPU sampler's) block all signals, so handlers run on this one.
    let (doorbell, stop, disk, sampler) = sys::with_signals_blocked(|| {
        let doorbell = Signals::new([Signal::Usr1, Signal::Usr2, Signal::Hup])?;
        let stop = Signals::new([Signal::Term, Signal::Int])?;
        log::start_background()?;
        let sampler = config
            .cpu_weight
            .then(|| Sampler::start(cpu_settings(&config)));
        Ok::<_, io::Error>((doorbell, stop, Disk::start()?, sampler))
    })
    .and_then(|r| r)
    .map_err(|e| Error::Runtime(format!("cannot set up signal handling: {e}")))?;
    let sampler = sampler.transpose().map_err(Error::Runtime)?;

    let listeners = listen::listeners(&config)?;
    let control_socket = control_socket(&config)?;
    let agent = Rc::new(Agent::new(
        config.clone(),
        inputs,
        disk,
        Notifier::from_env(),
    ));
    *agent.cpu.borrow_mut() = sampler;

    let ex = Rc::new(LocalExecutor::new());
    EXECUTOR.with(|e| *e.borrow_mut() = Some(Rc::clone(&ex)));
    let weak: Weak<Agent> = Rc::downgrade(&agent);
    let reply: ReplyFn = Box::new(move |peer| {
        weak.upgrade()
            .map_or_else(|| Rc::from(&b""[..]), |a| a.reply(peer))
    });
    let server = Server::new(reply, server_options(&config));
    *agent.server.borrow_mut() = Some(Rc::clone(&server));
    let mut addrs = Vec::new();
    for listener in listeners {
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Runtime(format!("cannot read the listening address: {e}")))?;
        let watched = Async::new(listener)
            .map_err(|e| Error::Runtime(format!("cannot watch the listening socket: {e}")))?;
        agent
            .listeners
            .borrow_mut()
            .push((addr, server.listen(&ex, watched)));
        addrs.push(addr.to_string());
    }
    let control_task = match control_socket {
        Some((path, listener, access)) => {
            let task = control::serve(&ex, listener, Rc::clone(&agent), access)?;
            Some((path, task))
        }
        None => None,
    };
    let control = control_task.as_ref().map_or_else(
        || "no control socket".to_string(),
        |(p, _)| format!("control socket {}", p.display()),
    );
    info!(
        "hapgent {} listening on {}; {control}; state file {}: {}",
        env!("CARGO_PKG_VERSION"),
        addrs.join(", "),
        config.state_file.display(),
        agent.state.borrow()
    );
    agent.notifier.notify(&format!(
        "READY=1\nSTATUS=listening on {}",
        addrs.join(", ")
    ));

    future::block_on(ex.run(async {
        agent.until_stopped(doorbell, stop).await;
        // Stop accepting: dropping the tasks closes the listeners.
        agent.listeners.borrow_mut().clear();
        if let Some((path, task)) = control_task {
            drop(task);
            control::remove(&path);
        }
        server.finish().await;
        agent.finish().await;
    }));
    info!("stopped");
    Ok(())
}
