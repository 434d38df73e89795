//! The agent's served state, and the queries the rest asks of it: which
//! services there are, the reply to a probe (routed by its payload to its
//! service, with the CPU load, the health checks, the capacity and the
//! connection budget applied), who probed and what each was served (the
//! prober table, which also counts the load balancers a `maxconn_total`
//! is split across), and a few counters.
//!
//! One thread, one `LocalExecutor`: all state lives in `RefCell`s that only
//! this thread touches, so there are no locks.
//!
//! This module decides as little as it can; the decisions are pure
//! functions elsewhere: which services a configuration asks for
//! (`services`), what the flag files and CPU load change in a reply and
//! the reply itself (`protocol`), how checks, capacity and the budget
//! combine with the operator's state (`health::precedence`), what to log about unknown service names
//! (`unknown`). Each service keeps its own file in step with what it
//! serves (`service`). Starting, reloading and stopping the process, its
//! listeners, control socket and signals are `daemon`'s, which sits above
//! this module; the control socket and the metrics only read and change
//! the state through the queries here.

use crate::config::Config;
use crate::cpu::Sampler;
use crate::health::precedence::Decision;
use crate::health::watch::Running;
use crate::probers;
use crate::protocol::Payload;
use crate::server::{self, Server};
use crate::service::{Files, Service, Waiters};
use crate::services::{self, Services};
use crate::unknown::{self, Unknown};
use crate::warn;
use smol::Task;
use smol::channel::Receiver;
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

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

impl Probes {
    pub fn new(agent: &Rc<Agent>) -> Probes {
        Probes(Rc::downgrade(agent))
    }
}

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

/// Counts kept for the whole agent, for the metrics.
#[derive(Default)]
pub struct Counters {
    pub unknown_service: Cell<u64>,
}

/// The services being served and what the agent knows around them.
pub struct Agent {
    /// The running configuration (`daemon` replaces it at a reload).
    config: RefCell<Config>,
    services: RefCell<Services>,
    /// CPU sampling, with `cpu_weight` (`daemon` starts and stops it).
    cpu: RefCell<Option<Sampler>>,
    /// The health checks and capacity monitors (`daemon` starts them);
    /// `None` when none is configured.
    health: RefCell<Option<Running>>,
    /// The server answering probes, for its counters (set once serving).
    server: RefCell<Option<Rc<Server<Probes>>>>,
    /// Who probed, about which service, and which version each was served.
    probers: RefCell<probers::Table>,
    unknown: RefCell<Unknown>,
    /// Waiters (`--wait-seen`) told after every reply delivered.
    probe_waiters: Waiters,
    pub counters: Counters,
    started: Instant,
}

impl Agent {
    /// An agent for `config`, with no service yet (see `update_services`).
    pub fn new(config: Config) -> Rc<Agent> {
        let max_probers = config.max_probers as usize;
        Rc::new(Agent {
            config: RefCell::new(config),
            services: RefCell::new(Services::default()),
            cpu: RefCell::new(None),
            health: RefCell::new(None),
            server: RefCell::new(None),
            probers: RefCell::new(probers::Table::new(max_probers)),
            unknown: RefCell::new(Unknown::default()),
            probe_waiters: Waiters::default(),
            counters: Counters::default(),
            started: Instant::now(),
        })
    }

    /// The running configuration.
    pub fn config(&self) -> Ref<'_, Config> {
        self.config.borrow()
    }

    /// Serves `new` from now on (its prober cap included); the cached
    /// replies are dropped, as they may depend on any setting.
    pub fn set_config(&self, new: Config) {
        self.probers.borrow_mut().set_cap(new.max_probers as usize);
        *self.config.borrow_mut() = new;
        for service in self.services() {
            service.invalidate();
        }
    }

    /// The CPU sampler, to start, retune or stop.
    pub fn cpu(&self) -> RefMut<'_, Option<Sampler>> {
        self.cpu.borrow_mut()
    }

    /// Runs the health checks and monitors of `running` from now on (the
    /// ones before stop once the last reference goes), each service
    /// reading its part.
    pub fn set_health(&self, running: Option<Running>) {
        *self.health.borrow_mut() = running;
        self.attach_health();
    }

    /// The running checks and monitors, if any.
    pub fn health(&self) -> Ref<'_, Option<Running>> {
        self.health.borrow()
    }

    /// Hands each service what it reads of the checks and monitors, and
    /// records the decision behind its reply (see `note_decision`).
    fn attach_health(&self) {
        let running = self.health.borrow();
        for service in self.services() {
            let watched = running.as_ref().and_then(|r| r.watched(&service.name));
            service.set_health(watched);
            if let Some(d) = self.decision(&service) {
                service.note_decision(&d);
            }
        }
    }

    /// A check's verdict or the capacity changed: each service with checks
    /// or monitors logs a change of its reply's state, with the reason.
    /// Replies follow on their own (a probe reads the checks' cells).
    pub fn health_changed(&self) {
        for service in self.services() {
            if let Some(d) = self.decision(&service) {
                service.note_decision(&d);
            }
        }
    }

    /// The decision behind `service`'s reply now, and its reasons; `None`
    /// when it has no check, monitor or budget.
    pub fn decision(&self, service: &Service) -> Option<Decision> {
        let (idle, min_weight) = self.cpu_load();
        service.decision(idle, min_weight, self.lbs(service))
    }

    /// The load balancers probing `service` now, counted only when its
    /// reply depends on them (a `maxconn_total`), else 0. A balancer that
    /// joins counts from its second probe, one that leaves until its
    /// patience runs out (see `probers::Prober::is_probing`), so the
    /// others' share lags by about one probe interval.
    pub fn lbs(&self, service: &Service) -> usize {
        if !service.counts_lbs() {
            return 0;
        }
        self.probers
            .borrow()
            .probing(service.id, self.seen_window(), Instant::now())
    }

    /// The server answering probes for this agent, whose counters the
    /// metrics show.
    pub fn set_server(&self, server: Option<Rc<Server<Probes>>>) {
        *self.server.borrow_mut() = server;
    }

    /// The services `wanted` and the state files read for them
    /// (`services::Start`), as the services to start from.
    pub fn to_start(&self, wanted: &[Files]) -> services::Start {
        self.services.borrow().to_start(wanted)
    }

    /// Makes the service list match `wanted` (see `Services::update`;
    /// `start` spawns a new service's save loop), and forgets the probers
    /// of services no longer served.
    pub fn update_services(
        &self,
        wanted: Vec<Files>,
        loaded: services::Loaded,
        start: impl FnMut(Rc<Service>) -> Task<()>,
    ) {
        let mut services = self.services.borrow_mut();
        services.update(wanted, loaded, start);
        let alive: HashSet<u32> = services.all().iter().map(|s| s.id).collect();
        self.probers
            .borrow_mut()
            .retain(|id| Unknown::is(id) || alive.contains(&id));
        drop(services);
        self.attach_health();
    }

    /// Stops every service's save loop (at stop) and returns the services,
    /// for their last save.
    pub fn stop_services(&self) -> Vec<Rc<Service>> {
        self.services.borrow_mut().stop()
    }

    /// How long to wait for an `agent-send` payload: only with services.
    pub fn payload_timeout(&self) -> Option<Duration> {
        self.has_services()
            .then(|| Duration::from_millis(self.config.borrow().payload_timeout))
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
        let lbs = self.lbs(&service);
        let reply = service.reply_for(idle, min_weight, lbs, last.as_ref());
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
        service.current_reply(idle, min_weight, self.lbs(service))
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
}
