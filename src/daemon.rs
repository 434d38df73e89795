//! The running process, wired together: it starts the services, the
//! listeners, the control socket, the metrics, the health checks and the
//! capacity monitors (`health::watch`), applies signals to every
//! service (they are the host switch), carries out reloads, and stops
//! cleanly. What is served, and the queries about it, are `agent`'s; this
//! module sits above it, and above `control` and `metrics`, which it
//! starts.
//!
//! One thread, one `LocalExecutor`: all state lives in `RefCell`s that only
//! this thread touches, so there are no locks, and a signal handler never
//! does more than record the signal (see `signals`).
//!
//! This module decides as little as it can; the decisions are pure
//! functions elsewhere: which services a configuration asks for and which
//! a reload keeps (`services`), what a reload applies (`reload`), what a
//! state file read means (`served`). Connections are `server`'s, the
//! control socket `control`'s.

use crate::agent::{Agent, Probes};
use crate::config::{self, Config};
use crate::control;
use crate::cpu::{self, Sampler};
use crate::disk::Disk;
use crate::exit::Error;
use crate::health::watch;
use crate::metrics;
use crate::reload;
use crate::server::{self, Server};
use crate::service::Bell;
use crate::services;
use crate::signals::{self, Kind};
use crate::state::Status;
use crate::systemd::Notifier;
use crate::{error, info, listen, log, sys, warn};
use async_signal::{Signal, Signals};
use smol::{Async, LocalExecutor, Task, future, prelude::*};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a stop waits for the latest state to reach the disk.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// A listening address and the task serving it.
type Listener = (SocketAddr, Task<()>);

/// The control socket and the task serving it.
type Control = (control::Socket, Task<()>);

/// The agent and everything that runs it.
struct Daemon {
    agent: Rc<Agent>,
    ex: Rc<LocalExecutor<'static>>,
    disk: Rc<Disk>,
    inputs: config::Inputs,
    reload_bell: Bell,
    signals: RefCell<signals::Reader>,
    notifier: Notifier,
    server: Rc<Server<Probes>>,
    listeners: RefCell<Vec<Listener>>,
    /// The control socket and the task serving it, if any.
    control: RefCell<Option<Control>>,
    /// Rung by the checks' and capacity threads at each change (see
    /// `health_doorbell`).
    health_ring: Ring,
}

/// Called on another thread when a check's verdict or the capacity
/// changed.
type Ring = Arc<dyn Fn() + Send + Sync>;

/// The bell the checks' and capacity threads ring, and the task that
/// answers it on this thread: replies follow the checks by themselves (a
/// probe reads their cells), so the task only logs the changes of each
/// service's reply, once per change, with the reason.
fn health_doorbell(ex: &LocalExecutor<'static>, agent: &Rc<Agent>) -> (Ring, Task<()>) {
    let (tx, rx) = smol::channel::bounded::<()>(1);
    let ring: Ring = Arc::new(move || {
        // Full: a ring is already pending, which is as good.
        let _ = tx.try_send(());
    });
    let agent = Rc::clone(agent);
    let task = ex.spawn(async move {
        while rx.recv().await.is_ok() {
            agent.health_changed();
        }
    });
    (ring, task)
}

impl Daemon {
    /// Makes the agent's services match `wanted`, each new one's save loop
    /// spawned here.
    fn update_services(&self, wanted: Vec<crate::service::Files>, loaded: services::Loaded) {
        self.agent.update_services(wanted, loaded, |service| {
            let disk = Rc::clone(&self.disk);
            self.ex.spawn(async move { service.run(&disk).await })
        });
    }

    /// Handles one recorded signal: a status for every service (signals
    /// are the host switch), or a reload.
    fn handle(&self, kind: Kind) {
        match kind {
            Kind::Up | Kind::Down => {
                let status = if kind == Kind::Up {
                    Status::Up
                } else {
                    Status::Down
                };
                for service in self.agent.services() {
                    service.set_status(status, kind.name());
                }
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

    /// Carries out reloads (SIGHUP), one at a time, forever: the
    /// configuration file first, then every state file; then tells systemd
    /// the reload is done.
    async fn reload_loop(&self) {
        loop {
            self.reload_bell.wait().await;
            self.reload_config().await;
            for service in self.agent.services() {
                service.reread(&self.disk, false).await;
            }
            self.notifier.notify("READY=1");
        }
    }

    /// The configuration as the inputs say now, refused when it serves
    /// nothing; `None` (logged) when it cannot be used.
    async fn load_config(&self) -> Option<Config> {
        let inputs = self.inputs.clone();
        let loaded = self
            .disk
            .run(move || config::load(&inputs).and_then(|l| config::refuse_empty(&l).map(|()| l)))
            .await;
        match loaded {
            Some(Ok(loaded)) => Some(loaded.config),
            Some(Err(e)) => {
                error!("reload: {e}; keeping the running configuration");
                None
            }
            None => None,
        }
    }

    /// Re-reads the configuration and applies what changed; an invalid
    /// configuration, or a setting that cannot be applied (an address
    /// that cannot be bound, a control socket that cannot be created), is
    /// rejected whole, named, and the running configuration kept. The
    /// state files of services it adds are read on the disk thread.
    async fn reload_config(&self) {
        let Some(new) = self.load_config().await else {
            return;
        };
        let plan = match reload::plan(&self.agent.config(), new) {
            Ok(Some(plan)) => plan,
            Ok(None) => return,
            Err(e) => {
                error!("reload: {e}; keeping the running configuration");
                return;
            }
        };
        for warning in &plan.warnings {
            warn!("reload: {warning}");
        }
        let reject = |what: &str, e: String| {
            error!(
                "reload rejected: {what}: {e}; keeping the running configuration (nothing changed)"
            );
        };
        // Everything that can fail first, then the changes: the state files
        // of services to start are read (on the disk thread) before
        // anything is bound, so nothing bound needs undoing after.
        let wanted = services::wanted(&plan.config);
        let start = self.agent.to_start(&wanted);
        let Some(states) = self.disk.run(move || start.run()).await else {
            return reject("services", "the disk thread stopped".into());
        };
        let listeners = match plan.rebind.then(|| self.bind_new(&plan.config)) {
            None => None,
            Some(Ok(bound)) => Some(bound),
            Some(Err(e)) => return reject(&reload::culprits(&plan.applied, &["ip", "port"]), e),
        };
        let control = match plan.move_control.then(|| self.open_control(&plan.config)) {
            None => None,
            Some(Ok(control)) => Some(control),
            Some(Err(e)) => {
                let what = reload::culprits(&plan.applied, &["control_socket", "control_group"]);
                return reject(&what, e);
            }
        };
        if let Some((kept, added)) = listeners {
            self.replace_listeners(&kept, added);
        }
        if let Some(control) = control {
            self.replace_control(control);
        }
        self.apply(plan, wanted, states);
        let config = self.agent.config().clone();
        self.update_health(&config).await;
    }

    /// The changes of a reload that cannot fail: the server's options,
    /// CPU sampling, the services and the configuration served.
    fn apply(
        &self,
        plan: reload::Plan,
        wanted: Vec<crate::service::Files>,
        states: services::Loaded,
    ) {
        let new = plan.config;
        self.server.set_options(server_options(&new));
        self.server.set_allow(new.allow_list());
        self.update_cpu(&new);
        self.update_services(wanted, states);
        if plan.applied.is_empty() {
            info!("reload: applied nothing (kept {})", plan.kept.join(", "));
        } else {
            info!("reload: applied {}", plan.applied.join(", "));
        }
        self.agent.set_config(new);
        self.server.set_payload(self.agent.payload_timeout());
    }

    /// The control socket `config` asks for, created and served (`None`
    /// when disabled); it may replace the current one.
    fn open_control(&self, config: &Config) -> Result<Option<Control>, String> {
        let own = self.control.borrow().as_ref().map(|(s, _)| s.clone());
        let Some((socket, listener, access)) =
            control::open(config, own.as_ref()).map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let agent = Rc::clone(&self.agent);
        let task = control::serve(&self.ex, listener, agent, access).map_err(|e| {
            control::remove(&socket);
            e.to_string()
        })?;
        Ok(Some((socket, task)))
    }

    /// Serves the new control socket and closes the old one, removing its
    /// file if it is still there and not the new one.
    fn replace_control(&self, new: Option<Control>) {
        let old = std::mem::replace(&mut *self.control.borrow_mut(), new);
        let now = self.control.borrow().as_ref().map(|(s, _)| s.clone());
        if let Some((socket, task)) = old {
            drop(task);
            // At the same path, the new socket has already replaced it.
            if now.as_ref().is_none_or(|n| n.path != socket.path) {
                control::remove(&socket);
            }
        }
        match now {
            Some(socket) => info!("reload: control socket now {}", socket.path.display()),
            None => info!("reload: no control socket now"),
        }
    }

    /// Starts, stops or restarts the health checks and capacity monitors
    /// after a reload, if what they are asked to do changed; a check whose
    /// definition did not change keeps its verdict, and the sampler keeps
    /// running if the capacity and its paths did not change. If they cannot
    /// be started, the running ones are kept (logged).
    ///
    /// They are started on the disk thread (whose signals are blocked, as
    /// its children's will be): a new sampler's first reading may take a
    /// while, and probes are answered meanwhile, by the running ones.
    async fn update_health(&self, new: &Config) {
        let plan = match watch::plan(new) {
            Ok(plan) => plan,
            Err(e) => return error!("reload: {e}; keeping the running checks and monitors"),
        };
        if self.agent.health().as_ref().map(|r| r.plan()) == Some(&plan) {
            return;
        }
        if plan.is_empty() {
            self.agent.set_health(None);
            return;
        }
        let ring = self.health_ring.clone();
        let lent = self.agent.health().as_ref().map(|r| r.lend());
        match self.disk.run(move || watch::start(plan, lent, ring)).await {
            Some(Ok(running)) => {
                info!("reload: {}", running.describe());
                self.agent.set_health(Some(running));
            }
            Some(Err(e)) => error!("reload: {e}; keeping the running checks and monitors"),
            None => {
                error!("reload: the disk thread stopped; keeping the running checks and monitors")
            }
        }
    }

    /// Starts, stops or retunes CPU sampling after a reload.
    fn update_cpu(&self, new: &Config) {
        let mut cpu = self.agent.cpu();
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

    /// Binds and serves the addresses `new` adds (see `reload::listeners`),
    /// while the current listeners stay open; returns the current ones to
    /// keep and the new ones. Nothing changes if any cannot be bound.
    fn bind_new(&self, new: &Config) -> Result<(Vec<SocketAddr>, Vec<Listener>), String> {
        let current: Vec<SocketAddr> = self.listeners.borrow().iter().map(|(a, _)| *a).collect();
        let (kept, fresh) = reload::listeners(&current, &new.ip, new.port);
        let bound = listen::bind(&fresh, new.port, &current).map_err(|e| e.to_string())?;
        let added = bound
            .into_iter()
            .map(|listener| serve_on(&self.server, &self.ex, listener))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((kept, added))
    }

    /// Closes the listeners not in `kept` and adds `added`.
    fn replace_listeners(&self, kept: &[SocketAddr], added: Vec<Listener>) {
        let mut listeners = self.listeners.borrow_mut();
        listeners.retain(|(addr, _)| kept.contains(addr));
        listeners.extend(added);
        let names: Vec<String> = listeners.iter().map(|(a, _)| a.to_string()).collect();
        info!("reload: now listening on {}", names.join(", "));
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

    /// Runs until told to stop; signals and reloads go on meanwhile (and
    /// each service's save loop, as its own task).
    async fn until_stopped(&self, doorbell: Signals, stop: Signals) {
        self.wait_for_stop(stop)
            .or(self.handle_signals(doorbell))
            .or(self.reload_loop())
            .await;
    }

    /// Closes the control socket and removes its file.
    fn close_control(&self) {
        let control = self.control.borrow_mut().take();
        if let Some((socket, task)) = control {
            drop(task);
            control::remove(&socket);
        }
    }

    /// After a stop: handles the signals delivered before it, stops the
    /// save loops and saves every service's latest state, giving a hung
    /// disk `STOP_GRACE` in all; no temporary file of ours is left behind.
    async fn finish(&self) {
        let last = self.handle_recorded();
        // No loop may queue another save once the last one is done.
        let services = self.agent.stop_services();
        let deadline = Instant::now() + STOP_GRACE;
        if last == Some(Kind::Reload) {
            info!("a SIGHUP arrived just before the stop; the state files are left as they are");
        } else {
            for service in &services {
                let left = deadline.saturating_duration_since(Instant::now());
                service.save_before_stop(&self.disk, left).await;
            }
        }
        // Whatever the disk thread still has queued (a save a loop began)
        // must finish before the process ends, or its temporary file stays.
        let left = deadline.saturating_duration_since(Instant::now());
        let drained = async { self.disk.run(|| ()).await.is_some() }
            .or(async {
                smol::Timer::after(left).await;
                false
            })
            .await;
        if !drained {
            error!("the disk did not finish within {STOP_GRACE:?} (is it hung?); stopping anyway");
            for service in &services {
                service.remove_temp();
            }
        }
    }

    /// The startup log line and systemd's READY notification.
    fn announce(&self, addrs: &[String], metrics_listen: Option<SocketAddr>) {
        let mut extras = vec![self.control.borrow().as_ref().map_or_else(
            || "no control socket".to_string(),
            |(s, _)| format!("control socket {}", s.path.display()),
        )];
        if let Some(addr) = metrics_listen {
            extras.push(format!("metrics on http://{addr}/metrics"));
        }
        let services = self.agent.services();
        if services.len() > 1 {
            extras.push(format!("{} services", services.len() - 1));
        }
        info!(
            "hapgent {} listening on {}; {}; state file {}: {}",
            env!("CARGO_PKG_VERSION"),
            addrs.join(", "),
            extras.join("; "),
            self.agent.config().state_file.display(),
            services[0].state()
        );
        self.notifier.notify(&format!(
            "READY=1\nSTATUS=listening on {}",
            addrs.join(", ")
        ));
    }
}

/// Serves probes on `listener` until the returned task is dropped; the
/// address is its own (the port picked, for port 0).
fn serve_on(
    server: &Rc<Server<Probes>>,
    ex: &Rc<LocalExecutor<'static>>,
    listener: std::net::TcpListener,
) -> Result<Listener, String> {
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let watched =
        Async::new(listener).map_err(|e| format!("cannot watch the listening socket: {e}"))?;
    Ok((addr, server.listen(ex, watched)))
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

/// The threads and signal streams a run needs, started with every signal
/// blocked (so that handlers run on the main thread): the state signals'
/// doorbell, the stop signals, the disk thread and, with `cpu_weight`, the
/// CPU sampler. The logger's thread is started here too.
fn start_threads(config: &Config) -> Result<(Signals, Signals, Disk, Option<Sampler>), Error> {
    let (doorbell, stop, disk, sampler) = sys::with_signals_blocked(|| {
        let doorbell = Signals::new([Signal::Usr1, Signal::Usr2, Signal::Hup])?;
        let stop = Signals::new([Signal::Term, Signal::Int])?;
        log::start_background()?;
        let sampler = config
            .cpu_weight
            .then(|| Sampler::start(cpu_settings(config)));
        Ok::<_, io::Error>((doorbell, stop, Disk::start()?, sampler))
    })
    .and_then(|r| r)
    .map_err(|e| Error::Runtime(format!("cannot set up signal handling: {e}")))?;
    let sampler = sampler.transpose().map_err(Error::Runtime)?;
    Ok((doorbell, stop, disk, sampler))
}

/// Starts the health checks and capacity monitors `config` asks for (the
/// capacity's first reading is taken here, before anything is served).
fn start_health(config: &Config, agent: &Agent, ring: Ring) -> Result<(), Error> {
    let plan = watch::plan(config).map_err(Error::Runtime)?;
    if plan.is_empty() {
        return Ok(());
    }
    let running = sys::with_signals_blocked(|| watch::start(plan, None, ring))
        .map_err(|e| Error::Runtime(format!("cannot start the checks: {e}")))?
        .map_err(Error::Runtime)?;
    info!("{}", running.describe());
    agent.set_health(Some(running));
    Ok(())
}

/// Runs the agent until SIGTERM/SIGINT. `signals::install` must have run.
pub fn run(config: Config, inputs: config::Inputs) -> Result<(), Error> {
    let (doorbell, stop, disk, sampler) = start_threads(&config)?;
    let listeners = listen::listeners(&config)?;
    let control_socket = control::open(&config, None)?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(metrics::bind(addr)?),
        None => None,
    };

    let ex = Rc::new(LocalExecutor::new());
    let agent = Agent::new(config.clone());
    *agent.cpu() = sampler;
    let (health_ring, _health_task) = health_doorbell(&ex, &agent);
    let server = Server::new(Probes::new(&agent), server_options(&config));
    agent.set_server(Some(Rc::clone(&server)));
    let daemon = Rc::new(Daemon {
        agent: Rc::clone(&agent),
        ex: Rc::clone(&ex),
        disk: Rc::new(disk),
        inputs,
        reload_bell: Bell::new(),
        signals: RefCell::new(signals::Reader::default()),
        notifier: Notifier::from_env(),
        server: Rc::clone(&server),
        listeners: RefCell::new(Vec::new()),
        control: RefCell::new(None),
        health_ring: Arc::clone(&health_ring),
    });
    // At startup the state files are read here: nothing is served yet.
    let wanted = services::wanted(&config);
    let loaded = agent.to_start(&wanted).run();
    daemon.update_services(wanted, loaded);
    start_health(&config, &agent, health_ring)?;

    server.set_allow(config.allow_list());
    server.set_payload(agent.payload_timeout());
    let mut addrs = Vec::new();
    for listener in listeners {
        let (addr, task) = serve_on(&server, &ex, listener).map_err(Error::Runtime)?;
        daemon.listeners.borrow_mut().push((addr, task));
        addrs.push(addr.to_string());
    }
    if let Some((socket, listener, access)) = control_socket {
        let task = control::serve(&ex, listener, Rc::clone(&agent), access)?;
        *daemon.control.borrow_mut() = Some((socket, task));
    }
    let metrics_task = match metrics_listener {
        Some(listener) => Some(metrics::serve(&ex, listener, Rc::clone(&agent))?),
        None => None,
    };
    daemon.announce(&addrs, config.metrics_listen);

    smol::block_on(ex.run(async {
        // A task of its own: the future block_on drives is polled on every
        // wake-up of the executor, and polling the signal streams reads
        // their sockets, two system calls per probe when the agent is idle.
        let signals = Rc::clone(&daemon);
        ex.spawn(async move { signals.until_stopped(doorbell, stop).await })
            .await;
        // Stop accepting: dropping the tasks closes the listeners.
        daemon.listeners.borrow_mut().clear();
        drop(metrics_task);
        daemon.close_control();
        server.finish().await;
        daemon.finish().await;
    }));
    info!("stopped");
    Ok(())
}
