//! The running agent, wired together: it starts the services, the
//! listeners, the control socket and the metrics, routes each probe to its
//! service, applies signals to every service (they are the host switch),
//! carries out reloads, and stops cleanly.
//!
//! One thread, one `LocalExecutor`: all state lives in `RefCell`s that only
//! this thread touches, so there are no locks, and a signal handler never
//! does more than record the signal (see `signals`).
//!
//! This module decides as little as it can; the decisions are pure
//! functions elsewhere: which services a configuration asks for and which
//! a reload keeps (`services`), what a reload applies (`reload`), what a
//! state file read means (`served`), what the flag files and CPU load
//! change in a reply and the reply itself (`protocol`), what to log about
//! unknown service names (`unknown`). Each service keeps its own file in
//! step with what it serves (`service`); connections are `server`'s, the
//! control socket `control`'s.

use crate::config::{self, Config};
use crate::control;
use crate::cpu::{self, Sampler};
use crate::disk::Disk;
use crate::error::Error;
use crate::metrics;
use crate::probers;
use crate::protocol::Payload;
use crate::reload;
use crate::server::{self, Server};
use crate::service::{Bell, Files, Service, Waiters};
use crate::services::{self, Services};
use crate::signals::{self, Kind};
use crate::state::Status;
use crate::systemd::Notifier;
use crate::unknown::{self, Unknown};
use crate::{error, info, listen, log, sys, warn};
use async_signal::{Signal, Signals};
use smol::channel::Receiver;
use smol::{Async, LocalExecutor, Task, future, prelude::*};
use std::cell::{Cell, Ref, RefCell};
use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

/// How long a stop waits for the latest state to reach the disk.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// What a probe with no known service gets: a line with no word, which
/// HAProxy reads as "no status change" (CHECKED): health checks alone
/// decide, as when the agent is unreachable.
pub const NO_NEWS: &[u8] = b"\n";

/// What a probe was served, recorded in the prober table once delivered.
pub struct Served {
    key: probers::Key,
    reply: Rc<[u8]>,
    version: u64,
}

/// The agent as the server sees it: replies, and records deliveries. Weak,
/// so that the server does not keep the agent alive.
pub struct Probes(Weak<Agent>);

impl server::Replies for Probes {
    type Receipt = Option<Served>;

    fn reply(&self, peer: SocketAddr, payload: Payload) -> (Rc<[u8]>, Option<Served>) {
        match self.0.upgrade() {
            Some(agent) => {
                let (reply, served) = agent.reply(peer, payload);
                (reply, Some(served))
            }
            None => (Rc::from(NO_NEWS), None),
        }
    }

    fn delivered(&self, served: Option<Served>) {
        if let (Some(agent), Some(served)) = (self.0.upgrade(), served) {
            agent.delivered(served);
        }
    }
}

/// A listening address and the task serving it.
type Listener = (SocketAddr, Task<()>);

/// Counts kept for the whole agent, for the metrics.
#[derive(Default)]
pub struct Counters {
    pub unknown_service: Cell<u64>,
}

/// The services being served and everything around them.
pub struct Agent {
    ex: Rc<LocalExecutor<'static>>,
    disk: Rc<Disk>,
    inputs: config::Inputs,
    config: RefCell<Config>,
    services: RefCell<Services>,
    reload_bell: Bell,
    signals: RefCell<signals::Reader>,
    cpu: RefCell<Option<Sampler>>,
    notifier: Notifier,
    server: RefCell<Option<Rc<Server<Probes>>>>,
    listeners: RefCell<Vec<(SocketAddr, Task<()>)>>,
    /// The control socket and the task serving it, if any.
    control: RefCell<Option<(control::Socket, Task<()>)>>,
    /// This agent, for the tasks a reload starts (the control socket's).
    me: Weak<Agent>,
    /// Who probed, about which service, and which version each was served.
    probers: RefCell<probers::Table>,
    unknown: RefCell<Unknown>,
    /// Waiters (`--wait-seen`) told after every reply delivered.
    probe_waiters: Waiters,
    pub counters: Counters,
    started: Instant,
}

impl Agent {
    fn new(
        config: Config,
        inputs: config::Inputs,
        ex: Rc<LocalExecutor<'static>>,
        disk: Disk,
        notifier: Notifier,
    ) -> Rc<Agent> {
        let max_probers = config.max_probers as usize;
        let agent = Rc::new_cyclic(|me| Agent {
            ex,
            disk: Rc::new(disk),
            inputs,
            config: RefCell::new(config.clone()),
            services: RefCell::new(Services::default()),
            reload_bell: Bell::new(),
            signals: RefCell::new(signals::Reader::default()),
            cpu: RefCell::new(None),
            notifier,
            server: RefCell::new(None),
            listeners: RefCell::new(Vec::new()),
            control: RefCell::new(None),
            me: me.clone(),
            probers: RefCell::new(probers::Table::new(max_probers)),
            unknown: RefCell::new(Unknown::default()),
            probe_waiters: Waiters::default(),
            counters: Counters::default(),
            started: Instant::now(),
        });
        // At startup the state files are read here: nothing is served yet.
        let wanted = services::wanted(&config);
        let loaded = agent.services.borrow().to_start(&wanted).run();
        agent.update_services(wanted, loaded);
        agent
    }

    /// Makes the service list match `wanted` (see `Services::update`), and
    /// forgets the probers of services no longer served.
    fn update_services(&self, wanted: Vec<Files>, loaded: services::Loaded) {
        let mut services = self.services.borrow_mut();
        services.update(wanted, loaded, |service| {
            let disk = Rc::clone(&self.disk);
            self.ex.spawn(async move { service.run(&disk).await })
        });
        let alive: HashSet<u32> = services.all().iter().map(|s| s.id).collect();
        self.probers
            .borrow_mut()
            .retain(|id| Unknown::is(id) || alive.contains(&id));
    }

    /// Every service, the default first.
    pub fn services(&self) -> Vec<Rc<Service>> {
        self.services.borrow().all()
    }

    /// The service called `name` (empty or `default`: the default one).
    pub fn service(&self, name: &str) -> Option<Rc<Service>> {
        self.services.borrow().get(name)
    }

    /// Whether services besides the default are configured (then probes
    /// are read for their `agent-send` payload).
    pub fn has_services(&self) -> bool {
        self.services.borrow().len() > 1
    }

    /// The name of service number `id` (empty for the default service), or
    /// of the unknown name it stands for.
    pub fn service_name(&self, id: u32) -> String {
        if Unknown::is(id) {
            return self.unknown.borrow().name(id);
        }
        self.services
            .borrow()
            .by_id(id)
            .map_or_else(|| "(removed)".into(), |s| s.name.to_string())
    }

    /// The reply to send now to `peer`, asking about the service its
    /// payload names, and what to record once it is delivered.
    pub fn reply(&self, peer: SocketAddr, payload: Payload) -> (Rc<[u8]>, Served) {
        let service = match payload {
            // The common case, without a lookup: the default service.
            Payload::None => self.services.borrow().default_service(),
            Payload::Name(name) => self.service(name),
            Payload::Invalid => None,
        };
        let Some(service) = service else {
            return self.no_news(peer, payload);
        };
        let probes = &service.counters.probes;
        probes.set(probes.get() + 1);
        let key = (peer.ip(), service.id);
        // A prober already delivered this reply gets its repeat (see
        // `Service::reply_for`).
        let last = self.probers.borrow().get(&key).map(|p| Rc::clone(&p.reply));
        let (idle, min_weight) = self.cpu_load();
        let reply = service.reply_for(idle, min_weight, last.as_ref());
        let served = Served {
            key,
            reply: Rc::clone(&reply),
            version: service.version(),
        };
        (reply, served)
    }

    /// Records a reply written whole to its prober: what `--wait-seen`
    /// counts as seen. A reply never written, or cut short, is not.
    fn delivered(&self, served: Served) {
        self.probers
            .borrow_mut()
            .record(served.key, &served.reply, served.version, Instant::now());
        self.probe_waiters.notify();
    }

    /// A probe that names no configured service, or whose payload is not
    /// a service name (binary, too long, or cut short by
    /// `payload_timeout`): no state change for HAProxy, logged once per
    /// prober and name, counted, recorded once delivered.
    fn no_news(&self, peer: SocketAddr, payload: Payload) -> (Rc<[u8]>, Served) {
        let c = &self.counters.unknown_service;
        c.set(c.get() + 1);
        let name = match payload {
            Payload::Name(name) => name.to_string(),
            _ => "(not a service name)".to_string(),
        };
        let (id, log) = self.unknown.borrow_mut().note(peer.ip(), &name);
        match (log, payload) {
            (unknown::Log::First, Payload::Name(_)) => warn!(
                "{} asked about service {name:?}, which is not configured; answered with no news (its health check alone decides)",
                peer.ip()
            ),
            (unknown::Log::First, _) => warn!(
                "{} sent a payload that is not a service name (binary, over 128 bytes, or no line end within payload_timeout); answered with no news (its health check alone decides)",
                peer.ip()
            ),
            (unknown::Log::Count(n), _) => {
                warn!("{n} more probes named services that are not configured")
            }
            (unknown::Log::Quiet, _) => {}
        }
        let reply: Rc<[u8]> = Rc::from(NO_NEWS);
        let served = Served {
            key: (peer.ip(), id),
            reply: Rc::clone(&reply),
            version: 0,
        };
        (reply, served)
    }

    /// What the dynamic inputs change in `service`'s reply now.
    pub fn overlay(&self, service: &Service) -> crate::protocol::Overlay {
        let (idle, min_weight) = self.cpu_load();
        service.overlay(idle, min_weight)
    }

    /// The reply `service` would give now.
    pub fn current_reply(&self, service: &Service) -> Rc<[u8]> {
        let (idle, min_weight) = self.cpu_load();
        service.current_reply(idle, min_weight)
    }

    /// The CPU idle share (`None` without `cpu_weight` or before the first
    /// sample) and the lowest weight it may bring: what every reply's
    /// weight is scaled with.
    fn cpu_load(&self) -> (Option<u32>, u32) {
        let idle = self.cpu.borrow().as_ref().and_then(Sampler::idle);
        (idle, self.config.borrow().min_weight)
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

    /// The server's counters, if serving.
    pub fn server_counters(&self) -> Option<server::Counters> {
        self.server.borrow().as_ref().map(|s| s.counters())
    }

    /// Seconds since the agent started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
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
                for service in self.services() {
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
            for service in self.services() {
                service.reread(&self.disk, false).await;
            }
            self.notifier.notify("READY=1");
        }
    }

    /// Re-reads the configuration and applies what changed; an invalid
    /// configuration, or a setting that cannot be applied (an address
    /// that cannot be bound, a control socket that cannot be created), is
    /// rejected whole, named, and the running configuration kept. The
    /// state files of services it adds are read on the disk thread.
    async fn reload_config(&self) {
        let inputs = self.inputs.clone();
        let loaded = self
            .disk
            .run(move || config::load(&inputs).and_then(|l| config::refuse_empty(&l).map(|()| l)))
            .await;
        let new = match loaded {
            Some(Ok(loaded)) => loaded.config,
            Some(Err(e)) => {
                error!("reload: {e}; keeping the running configuration");
                return;
            }
            None => return,
        };
        let plan = match reload::plan(&self.config.borrow(), new) {
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
        let start = self.services.borrow().to_start(&wanted);
        let Some(states) = self.disk.run(move || start.run()).await else {
            return reject("services", "the disk thread stopped".into());
        };
        let listeners = if plan.rebind {
            match self.bind_new(&plan.config) {
                Ok(bound) => Some(bound),
                Err(e) => return reject(&reload::culprits(&plan.applied, &["ip", "port"]), e),
            }
        } else {
            None
        };
        let control = if plan.move_control {
            let own = self.control.borrow().as_ref().map(|(s, _)| s.clone());
            match self.open_control(&plan.config, own.as_ref()) {
                Ok(control) => Some(control),
                Err(e) => {
                    let what =
                        reload::culprits(&plan.applied, &["control_socket", "control_group"]);
                    return reject(&what, e);
                }
            }
        } else {
            None
        };
        let new = plan.config;
        if let Some((kept, added)) = listeners {
            self.replace_listeners(&kept, added);
        }
        if let Some(control) = control {
            self.replace_control(control);
        }
        if let Some(server) = self.server.borrow().as_ref() {
            server.set_options(server_options(&new));
            server.set_allow(new.allow_list());
        }
        self.update_cpu(&new);
        self.probers.borrow_mut().set_cap(new.max_probers as usize);
        self.update_services(wanted, states);
        if plan.applied.is_empty() {
            info!("reload: applied nothing (kept {})", plan.kept.join(", "));
        } else {
            info!("reload: applied {}", plan.applied.join(", "));
        }
        *self.config.borrow_mut() = new;
        // The cached replies may depend on anything above.
        for service in self.services() {
            service.invalidate();
        }
        if let Some(server) = self.server.borrow().as_ref() {
            server.set_payload(self.payload_timeout());
        }
    }

    /// The control socket `config` asks for, created and served (`None`
    /// when disabled); `own` is the current one, which it may replace.
    fn open_control(
        &self,
        config: &Config,
        own: Option<&control::Socket>,
    ) -> Result<Option<(control::Socket, Task<()>)>, String> {
        let Some(agent) = self.me.upgrade() else {
            return Err("the agent is stopping".into());
        };
        let Some((socket, listener, access)) =
            control::open(config, own).map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let task = control::serve(&self.ex, listener, agent, access).map_err(|e| {
            control::remove(&socket);
            e.to_string()
        })?;
        Ok(Some((socket, task)))
    }

    /// Serves the new control socket and closes the old one, removing its
    /// file if it is still there and not the new one.
    fn replace_control(&self, new: Option<(control::Socket, Task<()>)>) {
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

    /// How long to wait for an `agent-send` payload: only with services.
    fn payload_timeout(&self) -> Option<Duration> {
        self.has_services()
            .then(|| Duration::from_millis(self.config.borrow().payload_timeout))
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

    /// Binds and serves the addresses `new` adds (see `reload::listeners`),
    /// while the current listeners stay open; returns the current ones to
    /// keep and the new ones. Nothing changes if any cannot be bound.
    fn bind_new(&self, new: &Config) -> Result<(Vec<SocketAddr>, Vec<Listener>), String> {
        let current: Vec<SocketAddr> = self.listeners.borrow().iter().map(|(a, _)| *a).collect();
        let (kept, fresh) = reload::listeners(&current, &new.ip, new.port);
        let Some(server) = self.server.borrow().clone() else {
            return Err("not serving yet".into());
        };
        let bound = listen::bind(&fresh, new.port, &current).map_err(|e| e.to_string())?;
        let added = bound
            .into_iter()
            .map(|listener| serve_on(&server, &self.ex, listener))
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

    /// After a stop: handles the signals delivered before it, stops the
    /// save loops and saves every service's latest state, giving a hung
    /// disk `STOP_GRACE` in all; no temporary file of ours is left behind.
    async fn finish(&self) {
        let last = self.handle_recorded();
        // No loop may queue another save once the last one is done.
        let services = self.services.borrow_mut().stop();
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
}

/// Serves probes on `listener` until the returned task is dropped; the
/// address is its own (the port picked, for port 0).
fn serve_on(
    server: &Rc<Server<Probes>>,
    ex: &Rc<LocalExecutor<'static>>,
    listener: std::net::TcpListener,
) -> Result<(SocketAddr, Task<()>), String> {
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
    let control_socket = control::open(&config, None)?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(metrics::bind(addr)?),
        None => None,
    };

    let ex = Rc::new(LocalExecutor::new());
    let agent = Agent::new(
        config.clone(),
        inputs,
        Rc::clone(&ex),
        disk,
        Notifier::from_env(),
    );
    *agent.cpu.borrow_mut() = sampler;

    let server = Server::new(Probes(Rc::downgrade(&agent)), server_options(&config));
    server.set_allow(config.allow_list());
    server.set_payload(agent.payload_timeout());
    *agent.server.borrow_mut() = Some(Rc::clone(&server));
    let mut addrs = Vec::new();
    for listener in listeners {
        let (addr, task) = serve_on(&server, &ex, listener).map_err(Error::Runtime)?;
        agent.listeners.borrow_mut().push((addr, task));
        addrs.push(addr.to_string());
    }
    if let Some((socket, listener, access)) = control_socket {
        let task = control::serve(&ex, listener, Rc::clone(&agent), access)?;
        *agent.control.borrow_mut() = Some((socket, task));
    }
    let metrics_task = match metrics_listener {
        Some(listener) => Some(metrics::serve(&ex, listener, Rc::clone(&agent))?),
        None => None,
    };
    let mut extras = vec![agent.control.borrow().as_ref().map_or_else(
        || "no control socket".to_string(),
        |(s, _)| format!("control socket {}", s.path.display()),
    )];
    if let Some(addr) = config.metrics_listen {
        extras.push(format!("metrics on http://{addr}/metrics"));
    }
    let services = agent.services();
    if services.len() > 1 {
        extras.push(format!("{} services", services.len() - 1));
    }
    info!(
        "hapgent {} listening on {}; {}; state file {}: {}",
        env!("CARGO_PKG_VERSION"),
        addrs.join(", "),
        extras.join("; "),
        config.state_file.display(),
        services[0].state()
    );
    agent.notifier.notify(&format!(
        "READY=1\nSTATUS=listening on {}",
        addrs.join(", ")
    ));

    smol::block_on(ex.run(async {
        // A task of its own: the future block_on drives is polled on every
        // wake-up of the executor, and polling the signal streams reads
        // their sockets, two system calls per probe when the agent is idle.
        let signals = Rc::clone(&agent);
        ex.spawn(async move { signals.until_stopped(doorbell, stop).await })
            .await;
        // Stop accepting: dropping the tasks closes the listeners.
        agent.listeners.borrow_mut().clear();
        drop(metrics_task);
        let control = agent.control.borrow_mut().take();
        if let Some((socket, task)) = control {
            drop(task);
            control::remove(&socket);
        }
        server.finish().await;
        agent.finish().await;
    }));
    info!("stopped");
    Ok(())
}
