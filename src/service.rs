//! One service: a state file, its flag files, the state served from it,
//! and the loops that keep the file in step with what is served.
//!
//! The default service is the top-level settings; more can be configured
//! (`[services.NAME]`) and are selected by HAProxy's `agent-send` payload.
//! Each has its own state, version and save path.
//!
//! Memory is the truth for replies; the disk converges to it. A change is
//! served the moment it is made, in order, and gets the next version. A
//! save loop always writes the latest version, so a save hanging on a sick
//! disk never delays the next change, and a failed save is logged once per
//! state and retried. File I/O runs on the disk thread (see `disk`), one
//! operation at a time in order, so a re-read first brings the file up to
//! date with what is served. This module does not know about signals,
//! sockets or probers (see `agent`).

use crate::disk::Disk;
use crate::flags::FlagFiles;
use crate::health::precedence::Decision;
use crate::health::watch::{self, Watched};
use crate::protocol::{self, Admin, Overlay};
use crate::served;
use crate::state::{self, Problem, State, Status};
use crate::{error, info, warn};
use smol::channel::{self, Receiver, Sender};
use smol::{Timer, prelude::*};
use std::cell::{Cell, RefCell};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// First delay before retrying a failed save or read; it doubles up to
/// `RETRY_MAX`.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A doorbell: ringing it when it already rings does nothing, so any
/// number of rings costs one wake-up and no memory. One waiter at a time.
/// A flag and an `Event` (which allocates only once someone listens), so a
/// thousand services cost a few KiB, not a channel each.
pub struct Bell {
    rung: Cell<bool>,
    event: event_listener::Event,
}

impl Bell {
    pub fn new() -> Bell {
        Bell {
            rung: Cell::new(false),
            event: event_listener::Event::new(),
        }
    }

    pub fn ring(&self) {
        self.rung.set(true);
        self.event.notify(1);
    }

    pub async fn wait(&self) {
        loop {
            if self.rung.replace(false) {
                return;
            }
            let listener = self.event.listen();
            // Rung between the check and the listen: do not sleep.
            if self.rung.replace(false) {
                return;
            }
            listener.await;
        }
    }
}

/// Tasks waiting for an event (a probe, a save): each gets a coalesced
/// message every time it happens. Costs one check when nobody waits.
#[derive(Default)]
pub struct Waiters(RefCell<Vec<Sender<()>>>);

impl Waiters {
    pub fn subscribe(&self) -> Receiver<()> {
        let (tx, rx) = channel::bounded(1);
        self.0.borrow_mut().push(tx);
        rx
    }

    pub fn notify(&self) {
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
/// signal or ctl (to be saved).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    File,
    Change,
}

/// Why the state changed, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Signal,
    Ctl,
    File,
}

impl Cause {
    pub const ALL: [Cause; 3] = [Cause::Signal, Cause::Ctl, Cause::File];

    pub fn name(self) -> &'static str {
        match self {
            Cause::Signal => "signal",
            Cause::Ctl => "ctl",
            Cause::File => "file",
        }
    }
}

/// Counts kept per service, for the metrics.
#[derive(Default)]
pub struct Counters {
    pub probes: Cell<u64>,
    pub changes: [Cell<u64>; 3],
    pub failed_saves: Cell<u64>,
}

/// The reply of a service for its current state and inputs: `full` for a
/// prober that has not been served it yet, `repeat` for one that has (see
/// `protocol::render_repeat`; the same line when nothing needs leaving
/// out). Which prober was served which is told by identity: a new pair is
/// made only when the full line's text changes (a drained reply whose
/// load-derived weight changed keeps its repeat: see `reweighed`), and the
/// prober table keeps each prober's last reply alive, so its address
/// cannot be reused.
#[derive(Clone)]
struct Reply {
    full: Rc<[u8]>,
    repeat: Rc<[u8]>,
    /// The full line this one replaced when only the load-derived weight
    /// of a drained reply changed (see `reweighed`): a prober served it
    /// is served the repeat too.
    replaced: Option<Rc<[u8]>>,
}

impl Reply {
    /// The reply for `state` under `overlay`; `before` itself when the full
    /// line is the same as `before`'s, so that a prober served `before` is
    /// still known to have it.
    fn render(state: &State, overlay: Overlay, before: Option<&Reply>) -> Reply {
        let full = protocol::render_with(state, overlay);
        if let Some(before) = before.filter(|b| *b.full == *full.as_bytes()) {
            return before.clone();
        }
        let full: Rc<[u8]> = full.into_bytes().into();
        let repeat = match protocol::render_repeat(state, overlay) {
            Some(line) => line.into_bytes().into(),
            None => Rc::clone(&full),
        };
        Reply {
            full,
            repeat,
            replaced: None,
        }
    }

    /// This reply, rendered for the same state as `before` with other
    /// dynamic inputs, as a continuation of `before` when both drain and
    /// only the load-derived weight differs (their repeats are the same
    /// line): a prober already served `before` keeps getting the repeat.
    /// The weight of a drained server does nothing, and sending it makes
    /// HAProxy log; with `cpu_weight` it changes at nearly every sample.
    /// A change of the state is never a continuation (see `Service::set`).
    fn reweighed(self, before: &Reply) -> Reply {
        let drains = !Rc::ptr_eq(&self.repeat, &self.full);
        if drains && !Rc::ptr_eq(&self.full, &before.full) && *self.repeat == *before.repeat {
            Reply {
                full: self.full,
                repeat: Rc::clone(&before.repeat),
                replaced: Some(Rc::clone(&before.full)),
            }
        } else {
            self
        }
    }

    /// What to send a prober whose last reply was `last`: the repeat if
    /// that was this reply (full or repeated, or the full line it
    /// replaced), the full line otherwise.
    fn for_prober(&self, last: Option<&Rc<[u8]>>) -> &Rc<[u8]> {
        let is = |r: &Rc<[u8]>| last.is_some_and(|l| Rc::ptr_eq(l, r));
        if is(&self.full) || is(&self.repeat) || self.replaced.as_ref().is_some_and(is) {
            &self.repeat
        } else {
            &self.full
        }
    }
}

/// A service as configured: its name (empty for the default service) and
/// files. A service whose files change is started afresh (see `services`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Files {
    pub name: String,
    pub state_file: PathBuf,
    pub drain_file: Option<PathBuf>,
    pub maint_file: Option<PathBuf>,
}

/// What a reply was rendered for besides the state: the flag files' and
/// the CPU's overlay, the load balancers counted for its budget, and the
/// health checks' and monitors' key (`None` without any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Inputs {
    overlay: Overlay,
    lbs: usize,
    health: Option<watch::Key>,
}

/// A service and what it serves.
pub struct Service {
    /// Its name; empty for the default service.
    pub name: Rc<str>,
    /// A number no other service of this process has had, for tables.
    pub id: u32,
    state_file: PathBuf,
    flags: FlagFiles,
    state: RefCell<State>,
    /// Version of the state served: one more for every change.
    version: Cell<u64>,
    /// When the current version began.
    changed_at: Cell<Instant>,
    /// The highest version known to be in the state file.
    saved: Cell<u64>,
    /// Whether a save or re-read is running on the disk thread.
    saving: Cell<bool>,
    save_bell: Bell,
    retry_bell: Bell,
    save_waiters: Waiters,
    /// The last reply and the inputs it was rendered with (`None`: stale,
    /// render again): most probes see the same inputs and reuse it without
    /// formatting anything.
    reply: RefCell<(Option<Inputs>, Reply)>,
    /// What its reply reads of the health checks and capacity monitors,
    /// if any (`agent` attaches it).
    health: RefCell<Option<Rc<Watched>>>,
    /// The operational and admin state of the last decision logged (see
    /// `note_decision`).
    decided: Cell<Option<(Status, Option<Admin>)>>,
    /// Whether the state's `maxconn` wins over `maxconn_total` (logged
    /// when it begins).
    state_maxconn_wins: Cell<bool>,
    pub counters: Counters,
}

impl Service {
    /// Starts from the state file as read (`loaded`: read on the disk
    /// thread beforehand, see `services::Start`), or from FAIL if it cannot
    /// be used (and if it could not even be read, keeps trying: see `run`).
    pub fn new(id: u32, files: Files, loaded: Result<State, state::Problem>) -> Service {
        let Files {
            name,
            state_file,
            drain_file,
            maint_file,
        } = files;
        if let Err(problem) = &loaded {
            log_fail(&state_file, problem);
        }
        let state = served::at_start(&loaded);
        let reply = Reply::render(&state, Overlay::default(), None);
        let service = Service {
            name: Rc::from(name),
            id,
            flags: FlagFiles::new(drain_file, maint_file),
            state_file,
            state: RefCell::new(state),
            version: Cell::new(0),
            changed_at: Cell::new(Instant::now()),
            saved: Cell::new(0),
            saving: Cell::new(false),
            save_bell: Bell::new(),
            retry_bell: Bell::new(),
            save_waiters: Waiters::default(),
            reply: RefCell::new((
                Some(Inputs {
                    overlay: Overlay::default(),
                    lbs: 0,
                    health: None,
                }),
                reply,
            )),
            health: RefCell::new(None),
            decided: Cell::new(None),
            state_maxconn_wins: Cell::new(false),
            counters: Counters::default(),
        };
        if loaded.is_err_and(|p| p.is_transient()) {
            service.retry_bell.ring();
        }
        service
    }

    /// The name and files this service was started with.
    pub fn files(&self) -> Files {
        let (drain, maint) = self.flags.paths();
        Files {
            name: self.name.to_string(),
            state_file: self.state_file.clone(),
            drain_file: drain.map(Path::to_path_buf),
            maint_file: maint.map(Path::to_path_buf),
        }
    }

    pub fn state_file(&self) -> &Path {
        &self.state_file
    }

    /// What the flag files (checked now) and the CPU idle share change in
    /// this service's reply (see `protocol::overlay`).
    pub fn overlay(&self, idle: Option<u32>, min_weight: u32) -> Overlay {
        protocol::overlay(&self.state.borrow(), self.flags.check(), idle, min_weight)
    }

    /// The reply a new prober would get now, given the CPU idle share and
    /// the load balancers probing (`lbs`, counted only when `counts_lbs`).
    pub fn current_reply(&self, idle: Option<u32>, min_weight: u32, lbs: usize) -> Rc<[u8]> {
        self.reply_for(idle, min_weight, lbs, None)
    }

    /// The reply now, given the CPU idle share and the load balancers
    /// probing, for a prober whose last reply was `last` (see
    /// `Reply::for_prober`).
    pub fn reply_for(
        &self,
        idle: Option<u32>,
        min_weight: u32,
        lbs: usize,
        last: Option<&Rc<[u8]>>,
    ) -> Rc<[u8]> {
        let inputs = Inputs {
            overlay: self.overlay(idle, min_weight),
            lbs,
            health: self.health.borrow().as_ref().map(|h| h.key()),
        };
        let mut cached = self.reply.borrow_mut();
        if cached.0 != Some(inputs) {
            // The state is the one `cached` was rendered for (`set`
            // renders it anew): only the dynamic inputs changed.
            let reply = self.render(inputs, Some(&cached.1)).reweighed(&cached.1);
            *cached = (Some(inputs), reply);
        }
        Rc::clone(cached.1.for_prober(last))
    }

    /// The reply for the state served under `inputs`: with health checks
    /// or monitors, as `precedence::decide` combines them.
    fn render(&self, inputs: Inputs, before: Option<&Reply>) -> Reply {
        let state = self.state.borrow();
        match self.health.borrow().as_ref() {
            None => Reply::render(&state, inputs.overlay, before),
            Some(health) => {
                self.note_state_maxconn(&state, health);
                let d = health.decide(&state, inputs.overlay, inputs.lbs);
                Reply::render(&d.state, d.overlay, before)
            }
        }
    }

    /// Logs, once each time it begins, that the state's fixed `maxconn`
    /// wins over a configured `maxconn_total` (see `health::budget`).
    fn note_state_maxconn(&self, state: &State, health: &Watched) {
        let wins = match (state.maxconn, health.maxconn_total) {
            (Some(fixed), Some(total)) => Some((fixed, total)),
            _ => None,
        };
        if self.state_maxconn_wins.replace(wins.is_some()) {
            return;
        }
        if let Some((fixed, total)) = wins {
            let of = if self.name.is_empty() {
                String::new()
            } else {
                format!(" of service {}", self.name)
            };
            warn!(
                "the state{of} sets maxconn {fixed}, which wins over maxconn_total {total}: remove maxconn from the state to split maxconn_total across the load balancers"
            );
        }
    }

    /// Forgets the cached reply (the settings it depends on changed).
    pub fn invalidate(&self) {
        self.reply.borrow_mut().0 = None;
    }

    /// Reads the health checks and monitors in `health` from now on.
    pub fn set_health(&self, health: Option<Rc<Watched>>) {
        *self.health.borrow_mut() = health;
        self.invalidate();
    }

    /// What its reply reads of the checks and monitors, if anything.
    pub fn health(&self) -> Option<Rc<Watched>> {
        self.health.borrow().clone()
    }

    /// Whether its reply depends on how many load balancers probe it.
    pub fn counts_lbs(&self) -> bool {
        self.health
            .borrow()
            .as_ref()
            .is_some_and(|h| h.counts_lbs())
    }

    /// The decision behind its reply now, and why; `None` without health
    /// checks, monitors or a budget (the reply is the state's, with the
    /// overlay).
    pub fn decision(&self, idle: Option<u32>, min_weight: u32, lbs: usize) -> Option<Decision> {
        let health = self.health()?;
        Some(health.decide(&self.state.borrow(), self.overlay(idle, min_weight), lbs))
    }

    /// Records the decision behind its reply; logs it, with its reason,
    /// when the reply's operational or admin state changed since the last
    /// one recorded (the first one is only recorded).
    pub fn note_decision(&self, d: &Decision) {
        let now = (
            d.state.status,
            protocol::admin_of(&d.state, d.overlay.admin),
        );
        if let Some(before) = self.decided.replace(Some(now))
            && before != now
        {
            let of = if self.name.is_empty() {
                String::new()
            } else {
                format!(" of service {}", self.name)
            };
            let line = protocol::render_with(&d.state, d.overlay);
            info!(
                "reply{of} now {}: {}",
                line.trim_end(),
                d.reasons.first().map_or("", String::as_str)
            );
        }
    }

    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

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

    /// Serves `new` from now on, logging the change and its cause; a
    /// change is then saved, a state read from the file already is.
    ///
    /// A change is a change only if something changed: asking for the
    /// state already served (a SIGUSR1 on a server that is up, a `systemctl
    /// reload` of an unchanged file) is logged as such and leaves the
    /// version, the change counters and the reply as they are.
    pub fn set(&self, new: State, cause: &str, kind: Cause, origin: Origin) {
        let of = if self.name.is_empty() {
            String::new()
        } else {
            format!(" of service {}", self.name)
        };
        if *self.state.borrow() == new {
            info!("state{of} unchanged: {new} ({cause})");
            // The file was just read and holds what is served, unless a
            // save still running is about to overwrite it with the same.
            if origin == Origin::File && !self.saving.get() {
                self.saved.set(self.version.get());
                self.save_waiters.notify();
            }
            return;
        }
        let version = self.version.get() + 1;
        self.version.set(version);
        self.changed_at.set(Instant::now());
        let counter = &self.counters.changes[kind as usize];
        counter.set(counter.get() + 1);
        let old = self.state.replace(new.clone());
        {
            let mut cached = self.reply.borrow_mut();
            if let Some(inputs) = cached.0 {
                cached.1 = self.render(inputs, Some(&cached.1));
            }
        }
        info!("state{of} changed: {old} -> {new} ({cause})");
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

    /// Sets the status, keeping the rest: what SIGUSR1 and SIGUSR2 do.
    pub fn set_status(&self, status: Status, cause: &str) {
        let new = self.state.borrow().set_status(status);
        self.set(new, cause, Cause::Signal, Origin::Change);
    }

    /// Waits, at most `limit`, until the state served is in the file;
    /// returns whether it is.
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

    /// Keeps the file in step, forever: saves the latest state whenever it
    /// changed, and retries a re-read that failed to read the file.
    pub async fn run(&self, disk: &Disk) {
        self.save_loop(disk).or(self.retry_loop(disk)).await;
    }

    /// A failed save is logged once per state and retried with backoff,
    /// or at once when a newer state arrives.
    async fn save_loop(&self, disk: &Disk) {
        let mut failed_version = None;
        let mut failures = 0u32;
        let mut delay = RETRY_FIRST;
        loop {
            self.save_bell.wait().await;
            while self.saved.get() < self.version.get() {
                let version = self.version.get();
                let state = self.state.borrow().clone();
                let path = self.state_file.clone();
                self.saving.set(true);
                let result = {
                    let (path, state) = (path.clone(), state.clone());
                    disk.run(move || state::save(&path, &state)).await
                };
                self.saving.set(false);
                match result.unwrap_or_else(|| Err(io::Error::other("the disk thread stopped"))) {
                    Ok(()) => {
                        self.saved.set(self.saved.get().max(version));
                        self.save_waiters.notify();
                        if failures > 0 {
                            info!(
                                "saved the state to {} after {}",
                                path.display(),
                                failed_attempts(failures)
                            );
                        }
                        (failures, delay, failed_version) = (0, RETRY_FIRST, None);
                    }
                    Err(e) => {
                        failures += 1;
                        let failed = &self.counters.failed_saves;
                        failed.set(failed.get() + 1);
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

    /// Retries reading a state file that could not be read (at start or
    /// on a reload), until it works or a change supersedes it.
    async fn retry_loop(&self, disk: &Disk) {
        loop {
            self.retry_bell.wait().await;
            let asked = self.version.get();
            let mut delay = RETRY_FIRST;
            while self.version.get() == asked {
                sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
                if self.version.get() != asked || self.reread(disk, true).await {
                    break;
                }
            }
        }
    }

    /// Re-reads the state file once (SIGHUP), after bringing it up to date
    /// with what is served (a save that has not happened yet would
    /// otherwise be undone). A file that was read and is invalid means
    /// FAIL; one that could not be read at all keeps the last good state,
    /// and the retry loop tries again; a change made meanwhile wins.
    /// Returns whether the file was read.
    pub async fn reread(&self, disk: &Disk, retrying: bool) -> bool {
        let asked = self.version.get();
        let path = self.state_file.clone();
        let pending = (self.saved.get() < asked).then(|| self.state.borrow().clone());
        let job = {
            let path = path.clone();
            move || {
                let saved = pending.map(|s| state::save(&path, &s));
                (saved, state::load(&path))
            }
        };
        self.saving.set(true);
        let result = disk.run(job).await;
        self.saving.set(false);
        let Some((saved, loaded)) = result else {
            error!("cannot re-read the state file: the disk thread stopped");
            return false;
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
                "SIGHUP: a later change was made while {} was read; keeping the later state",
                path.display()
            );
            return true;
        }
        let new = match served::after_reread(&loaded) {
            Ok(new) => new,
            Err(problem) => {
                if !retrying {
                    error!(
                        "state file {} {problem}; keeping the last good state ({}) and retrying",
                        path.display(),
                        self.state.borrow()
                    );
                    self.retry_bell.ring();
                }
                return false;
            }
        };
        match &loaded {
            Ok(_) if retrying => info!("state file {} is readable again", path.display()),
            Ok(_) => {}
            Err(problem) => log_fail(&path, problem),
        }
        self.set(new, "SIGHUP", Cause::File, Origin::File);
        true
    }

    /// Removes the temporary file a save of ours may have left.
    pub fn remove_temp(&self) {
        if let Some(tmp) = state::temp_path(&self.state_file) {
            let _ = std::fs::remove_file(tmp);
        }
    }

    /// After a stop: saves the latest state, giving a hung disk `grace`;
    /// whatever happens, no temporary file of ours is left behind.
    pub async fn save_before_stop(&self, disk: &Disk, grace: Duration) {
        if self.is_saved() {
            return;
        }
        let (path, state) = (self.state_file.clone(), self.state.borrow().clone());
        let save = {
            let path = path.clone();
            async move { disk.run(move || state::save(&path, &state)).await }
        };
        let timeout = async {
            Timer::after(grace).await;
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
                    "saving the state to {} did not finish within the {:.1} s left before stopping (is the disk hung?); stopping anyway",
                    path.display(),
                    grace.as_secs_f64()
                );
                self.remove_temp();
            }
        }
    }
}

/// Logs why the state file cannot be used, and so why FAIL is served. The
/// file itself is left untouched for the operator.
fn log_fail(path: &Path, problem: &Problem) {
    error!(
        "state file {} {problem}; reporting FAIL until it is fixed and SIGHUP is sent",
        path.display()
    );
}

async fn sleep(delay: Duration) {
    Timer::after(delay).await;
}

/// "1 failed attempt", "3 failed attempts".
fn failed_attempts(n: u32) -> String {
    match n {
        1 => "1 failed attempt".into(),
        n => format!("{n} failed attempts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(weight: u8) -> State {
        state::parse(format!(r#"{{"status":"DRAIN","weight":{weight}}}"#).as_bytes()).unwrap()
    }

    fn weighed(weight: u32) -> Overlay {
        Overlay {
            admin: None,
            weight: Some(weight),
        }
    }

    /// What a prober is served over a sequence of replies, each rendered
    /// from the one before as `reply_for` does when only the dynamic
    /// inputs change: (overlay weight, whether the prober last got the
    /// previous reply's full line (else its repeat), expected line).
    #[test]
    fn a_drained_reply_whose_load_weight_changes_still_repeats() {
        let state = drained(50);
        let mut reply = Reply::render(&state, weighed(40), None);
        let text = |r: &Rc<[u8]>| String::from_utf8_lossy(r).into_owned();
        assert_eq!(text(reply.for_prober(None)), "up drain 40%\n");
        for (weight, last_full, want) in [
            // The load moved: no news for HAProxy, whichever it last got.
            (38, true, "up drain\n"),
            (37, false, "up drain\n"),
            (37, true, "up drain\n"),
            (36, true, "up drain\n"),
        ] {
            let last = Rc::clone(if last_full {
                &reply.full
            } else {
                &reply.repeat
            });
            reply = Reply::render(&state, weighed(weight), Some(&reply)).reweighed(&reply);
            assert_eq!(text(reply.for_prober(Some(&last))), want, "{weight}");
        }
        // A change of the state (`set`) is not a continuation: whole.
        let last = Rc::clone(&reply.repeat);
        let changed = Reply::render(&drained(30), weighed(20), Some(&reply));
        assert_eq!(text(changed.for_prober(Some(&last))), "up drain 20%\n");
        // Leaving the drain is whole, weight included.
        let up = state::parse(br#"{"status":"UP","weight":50}"#).unwrap();
        let ready = Reply::render(&up, weighed(36), Some(&reply)).reweighed(&reply);
        assert_eq!(text(ready.for_prober(Some(&last))), "up ready 36%\n");
    }

    #[test]
    fn attempts_are_counted_in_words() {
        for (n, want) in [
            (1, "1 failed attempt"),
            (2, "2 failed attempts"),
            (30, "30 failed attempts"),
        ] {
            assert_eq!(failed_attempts(n), want);
        }
    }
}
