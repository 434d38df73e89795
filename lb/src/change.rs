//! `PUT /v1/config`: replacing HAProxy's configuration safely, one change
//! at a time; and `GET /v1/config/live`, which configuration runs.
//!
//! The steps, after dataplaneapi's discipline: take the lock file beside
//! haproxy.cfg (so two hapgent-lb processes never change it at once) →
//! check If-Match → refuse exec directives unless allowed → validate the
//! candidate with the same `haproxy` binary (`-c`) → pre-flight what `-c`
//! cannot see (`preflight`) → keep the current file as last-known-good →
//! replace atomically → save the servers' state where the configuration
//! loads it → reload → decide the outcome from HAProxy's processes
//! (`reload`):
//!
//! - live: the file stays, 200 (a content check that disagrees is
//!   reported, not acted on);
//! - failed (the old workers run): the last-known-good file is restored,
//!   502;
//! - HAProxy down: the last-known-good file is restored, HAProxy is started
//!   again with it, 502 saying whether that worked;
//! - unknown at `reload_timeout`: nothing is touched, 504;
//!   `GET /v1/config/live` says later which configuration runs.
//!
//! A refused candidate (422) touches nothing. Every attempt writes one
//! audit line.

use crate::config::Config;
use crate::http::Response;
use crate::live;
use crate::metrics;
use crate::preflight;
use crate::reload::{self, Answer, Outcome};
use crate::routes::{self, etag, sha256};
use crate::runtime;
use hapgent_common::{atomic, files};
use std::borrow::Cow;
use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest `haproxy -c` may take (a config with huge maps takes a while);
/// then it is killed.
const CHECK_DEADLINE: Duration = Duration::from_secs(60);

/// Largest haproxy.cfg read (one written by hand may exceed `max_body`).
const MAX_CONFIG: u64 = 64 << 20;

/// Where the last-known-good copy is kept: `haproxy.cfg.last-good` next to
/// the file (not ending in `.cfg`, so a config directory never loads it).
pub fn last_good_path(config: &Path) -> PathBuf {
    sibling(config, ".last-good")
}

/// The lock file: `haproxy.cfg.lock` next to the file.
pub fn lock_path(config: &Path) -> PathBuf {
    sibling(config, ".lock")
}

fn sibling(config: &Path, suffix: &str) -> PathBuf {
    let mut name = config.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    config.with_file_name(name)
}

/// Reads haproxy.cfg with the shared reader: a regular file (never a FIFO
/// or device that would hang the server), at most 64 MiB.
pub fn read_config(path: &Path) -> Result<Vec<u8>, String> {
    files::read_regular(path, MAX_CONFIG).map_err(|e| format!("{} {e}", path.display()))
}

/// One audit line: who, old and new SHA-256, outcome.
pub fn audit_line(who: &str, old: &str, new: &str, outcome: &str) -> String {
    format!("audit: config change by {who}: old sha256 {old}, new sha256 {new}: {outcome}")
}

/// Takes the change lock (an exclusive `flock` on `haproxy.cfg.lock`),
/// held until the returned file is dropped; Ok(None) if another change
/// (in this or another process) holds it.
fn lock(config: &Path) -> Result<Option<File>, String> {
    let path = lock_path(config);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// Applies a configuration change: the steps of the module's header, in
/// order. Each step either hands the next what it needs or ends the change
/// with its answer, having written the audit line.
pub async fn put(config: &Config, who: &str, if_match: Option<&str>, body: &[u8]) -> Response {
    let change = Change::new(config, who, body);
    match change.apply(if_match).await {
        Ok(answer) | Err(answer) => answer,
    }
}

/// A step of a change: Err is the answer that ends it early.
type Step<T> = Result<T, Response>;

/// One change in progress: the candidate and who sent it.
struct Change<'a> {
    config: &'a Config,
    /// `config.haproxy_config`, the file changed.
    path: &'a Path,
    who: &'a str,
    body: &'a [u8],
    /// The candidate as text (what pre-flight and the content check read).
    text: Cow<'a, str>,
    new_sha: String,
}

/// The file being replaced, read under the lock.
struct Current {
    bytes: Vec<u8>,
    sha: String,
}

impl<'a> Change<'a> {
    fn new(config: &'a Config, who: &'a str, body: &'a [u8]) -> Change<'a> {
        Change {
            config,
            path: &config.haproxy_config,
            who,
            body,
            text: String::from_utf8_lossy(body),
            new_sha: sha256(body),
        }
    }

    /// Lock, read, check, install, reload, answer by the outcome.
    async fn apply(&self, if_match: Option<&str>) -> Step<Response> {
        let _lock = self.take_lock()?;
        let current = self.read_current(if_match)?;
        let mut record = settled_record(self.config).await;
        let new_lines = self.check(&current).await?;
        let before = self.install(&current).await?;
        let notes = self.prepare_reload(&new_lines, &before, &mut record).await;
        let (outcome, output) = reload_and_observe(self.config, &before).await;
        Ok(match outcome {
            Outcome::Live(worker) => self.applied(&current, worker, &output, record, notes).await,
            Outcome::Failed(why) => self.rolled_back(&current, &why, &output, record),
            Outcome::Down(why) => self.revived(&current, &why, &output, record).await,
            Outcome::Unknown(why) => self.unknown(&current, &why, &output, notes),
        })
    }

    /// Writes the change's audit line, with the SHA-256 of the file it
    /// replaces (`-` before that file was read).
    fn audit(&self, old_sha: &str, outcome: &str) {
        hapgent_common::info!("{}", audit_line(self.who, old_sha, &self.new_sha, outcome));
    }

    /// Ends the change early: its audit line, then the error answer.
    fn end(
        &self,
        old_sha: &str,
        outcome: &str,
        status: u16,
        message: &str,
        output: Option<&str>,
    ) -> Response {
        self.audit(old_sha, outcome);
        Response::error(status, message, output)
    }

    /// Takes the change lock; 409 while another change holds it.
    fn take_lock(&self) -> Step<File> {
        match lock(self.path) {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(self.end(
                "-",
                "refused (409): another change is in progress",
                409,
                "another configuration change is in progress; retry when it is done",
                None,
            )),
            Err(e) => Err(self.end("-", "failed (500): cannot take the lock", 500, &e, None)),
        }
    }

    /// Reads the file the change replaces and checks If-Match against it.
    fn read_current(&self, if_match: Option<&str>) -> Step<Current> {
        let bytes = read_config(self.path).map_err(|e| {
            self.end(
                "-",
                "failed (500): cannot read the current file",
                500,
                &e,
                None,
            )
        })?;
        let sha = sha256(&bytes);
        if let Err((status, message)) = routes::precondition(if_match, &etag(&bytes)) {
            let outcome = format!("refused ({status}): precondition");
            return Err(self.end(&sha, &outcome, status, &message, None));
        }
        Ok(Current { bytes, sha })
    }

    /// Refuses a candidate HAProxy should not or could not run: exec
    /// directives (unless allowed), what `haproxy -c` rejects, what the
    /// pre-flight finds missing on this host. Nothing is touched yet.
    /// Returns the candidate's lines.
    async fn check(&self, current: &Current) -> Step<Vec<preflight::Line>> {
        let new_lines = preflight::lines(&self.text);
        if !self.config.allow_exec_sections {
            self.refuse_exec(current, &new_lines)?;
        }
        if let Err((message, output)) = validate(self.config, self.body).await {
            return Err(self.end(
                &current.sha,
                "refused (422): haproxy -c rejected it",
                422,
                &message,
                Some(&output),
            ));
        }
        self.check_host(current, &new_lines).await?;
        Ok(new_lines)
    }

    /// 422 when the candidate makes HAProxy run programs or load code.
    fn refuse_exec(&self, current: &Current, new_lines: &[preflight::Line]) -> Step<()> {
        let found = preflight::exec_directives(new_lines);
        if found.is_empty() {
            return Ok(());
        }
        Err(self.end(
            &current.sha,
            "refused (422): exec directives",
            422,
            &format!(
                "the configuration makes HAProxy run programs or load code ({}); refused because allow_exec_sections is false; nothing was changed",
                found.join("; ")
            ),
            None,
        ))
    }

    /// 422 when the host lacks what the candidate needs and `haproxy -c`
    /// cannot see (`preflight`).
    async fn check_host(&self, current: &Current, new_lines: &[preflight::Line]) -> Step<()> {
        let old_lines = preflight::lines(&String::from_utf8_lossy(&current.bytes));
        let problems = preflight::check(&preflight::needs(new_lines, &old_lines)).await;
        if problems.is_empty() {
            return Ok(());
        }
        Err(self.end(
            &current.sha,
            "refused (422): pre-flight",
            422,
            &format!(
                "HAProxy could not start this configuration on this host: {}; nothing was changed",
                problems.join("; ")
            ),
            None,
        ))
    }

    /// Keeps the current file as last-known-good, notes what HAProxy runs,
    /// and replaces the file; 500 (nothing changed) if either write fails.
    async fn install(&self, current: &Current) -> Step<reload::Before> {
        if let Err(e) = keep_copy(self.path, &last_good_path(self.path), &current.bytes) {
            return Err(self.end(
                &current.sha,
                "failed (500): cannot keep the last-known-good copy",
                500,
                &format!("keeping the last-known-good copy failed, nothing changed: {e}"),
                None,
            ));
        }
        let before = reload::before(self.config).await;
        if let Err(e) = atomic::replace(self.path, self.body) {
            return Err(self.end(
                &current.sha,
                "failed (500): cannot replace the file",
                500,
                &format!(
                    "replacing {} failed, nothing changed: {e}",
                    self.path.display()
                ),
                None,
            ));
        }
        Ok(before)
    }

    /// Saves the servers' state where the new configuration loads it and
    /// records the change as pending; returns the notes for the answer
    /// (a state not saved, a state file the configuration lacks).
    async fn prepare_reload(
        &self,
        new_lines: &[preflight::Line],
        before: &reload::Before,
        record: &mut live::Record,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(state) = preflight::server_state_file(new_lines)
            && let Err(e) = save_server_state(self.config, &state).await
        {
            notes.push(format!(
                "the servers' state was not saved to {} before the reload, so weights and drain/maint states set at runtime start over: {e}; hapgent-lb needs write access to that directory",
                state.display()
            ));
        }
        notes.extend(preflight::server_state_gap(new_lines));
        record.pending = Some(live::Pending {
            sha256: self.new_sha.clone(),
            before: before.workers(),
        });
        live::save(self.path, record);
        notes
    }

    /// Live: the new file stays; 200 with the new worker (and a content
    /// check that disagrees, as a note).
    async fn applied(
        &self,
        current: &Current,
        worker: u32,
        output: &str,
        mut record: live::Record,
        mut notes: Vec<String>,
    ) -> Response {
        record.learn(worker, &self.new_sha);
        live::save(self.path, &record);
        notes.extend(content_note(self.config, &self.text).await);
        self.audit(&current.sha, "applied (200)");
        let mut v = serde_json::json!({
            "etag": etag(self.body),
            "sha256": self.new_sha,
            "worker": worker,
            "output": output,
        });
        if !notes.is_empty() {
            v["notes"] = serde_json::json!(notes);
        }
        Response::json(200, &v).with("ETag", etag(self.body))
    }

    /// Failed, the old workers run: the previous file is restored; 502.
    fn rolled_back(
        &self,
        current: &Current,
        why: &str,
        output: &str,
        mut record: live::Record,
    ) -> Response {
        record.pending = None;
        live::save(self.path, &record);
        let restored = match restore(self.path, &current.bytes) {
            Ok(()) => "the previous file was restored; HAProxy still serves it".to_string(),
            Err(e) => e,
        };
        self.audit(&current.sha, &format!("rolled back (502): {why}"));
        hapgent_common::error!("configuration change failed: {why}; {restored}");
        Response::error(502, &format!("{why}; {restored}"), Some(output))
    }

    /// HAProxy down: the previous file is restored and HAProxy started
    /// again with it; 502 saying whether that worked.
    async fn revived(
        &self,
        current: &Current,
        why: &str,
        output: &str,
        mut record: live::Record,
    ) -> Response {
        record.pending = None;
        let restored = match restore(self.path, &current.bytes) {
            Err(e) => e,
            Ok(()) => match reload::revive(self.config).await {
                Ok((how, worker)) => {
                    record.learn(worker, &current.sha);
                    format!(
                        "the previous file was restored and HAProxy was {how} with it (worker {worker})"
                    )
                }
                Err(e) => {
                    format!("the previous file was restored, but HAProxy is NOT running: {e}")
                }
            },
        };
        live::save(self.path, &record);
        self.audit(&current.sha, &format!("rolled back (502): {why}"));
        hapgent_common::error!("configuration change took HAProxy down: {why}; {restored}");
        Response::error(502, &format!("{why}; {restored}"), Some(output))
    }

    /// Unknown at `reload_timeout`: nothing is touched; 504.
    fn unknown(&self, current: &Current, why: &str, output: &str, notes: Vec<String>) -> Response {
        self.audit(&current.sha, &format!("unknown (504): {why}"));
        hapgent_common::warn!("configuration change outcome unknown: {why}");
        let mut v = serde_json::json!({
            "error": format!(
                "{why}; haproxy.cfg keeps the new configuration and nothing was restored; GET /v1/config/live says which configuration the workers run once HAProxy has decided"
            ),
            "status": 504,
            "sha256": self.new_sha,
            "output": output,
        });
        if !notes.is_empty() {
            v["notes"] = serde_json::json!(notes);
        }
        Response::json(504, &v)
    }
}

/// The live record, with a pending reload settled if the worker answering
/// the runtime API shows how it ended.
async fn settled_record(config: &Config) -> live::Record {
    let path = &config.haproxy_config;
    let mut record = live::load(path);
    if record.pending.is_some()
        && let Ok(pid) = runtime::pid(&config.haproxy_socket).await
        && record.settle(pid)
    {
        live::save(path, &record);
    }
    record
}

/// Asks HAProxy to reload and watches its processes until the outcome is
/// known: (outcome, the reload command's or master's output).
async fn reload_and_observe(config: &Config, before: &reload::Before) -> (Outcome, String) {
    let asked = Instant::now();
    let (answer, output) = match reload::trigger(config).await {
        Ok(x) => x,
        // The request may have reached HAProxy (a cut answer): the
        // processes tell.
        Err(e) => (Answer::Silent, e),
    };
    let outcome = reload::observe(config, before, answer).await;
    metrics::reloaded(&outcome, asked.elapsed());
    (outcome, output)
}

/// Restores the previous content; Err says where the copy is.
fn restore(path: &Path, current: &[u8]) -> Result<(), String> {
    atomic::replace(path, current).map_err(|e| {
        format!(
            "RESTORING {} FAILED: {e}; restore it from {}",
            path.display(),
            last_good_path(path).display()
        )
    })
}

/// Writes `bytes` to `copy` atomically with the mode and owner of
/// `original` (a copy of a 0640 file must not be world-readable, not even
/// for a moment).
fn keep_copy(original: &Path, copy: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let meta = std::fs::metadata(original)?;
    let mode = meta.mode() & 0o7777;
    // atomic::replace takes mode and owner from the file it replaces: make
    // sure that file exists with the right ones first.
    let existing = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode & 0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(copy)?;
    let _ = std::os::unix::fs::fchown(&existing, Some(meta.uid()), Some(meta.gid()));
    existing.set_permissions(std::fs::Permissions::from_mode(mode))?;
    drop(existing);
    atomic::replace(copy, bytes)
}

/// Writes `show servers state` to the configuration's server-state file,
/// so that the new workers start with the weights and drain/maint states
/// the running ones have (HAProxy's seamless-reload recipe).
async fn save_server_state(config: &Config, state: &Path) -> Result<(), String> {
    let text = runtime::query(&config.haproxy_socket, "show servers state").await?;
    if !text.starts_with('1') {
        return Err(format!(
            "`show servers state` answered {:?}",
            text.lines().next().unwrap_or("")
        ));
    }
    atomic::replace(state, text.as_bytes()).map_err(|e| e.to_string())
}

/// After a reload that is live: the backends the file defines that the
/// runtime API does not show (a `disabled` one, one in a `.if` block whose
/// condition only HAProxy knows…). Reported, never acted on.
async fn content_note(config: &Config, text: &str) -> Option<String> {
    let have: Vec<String> = runtime::backends(&config.haproxy_socket)
        .await
        .ok()?
        .into_iter()
        .map(|b| b.name)
        .collect();
    let missing: Vec<String> = preflight::backend_names(&preflight::lines(text))
        .into_iter()
        .filter(|b| !have.contains(b))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the new workers run this file, but `show stat` lists no backend named {} (disabled, or inside a .if block)",
            missing.join(", ")
        )
    })
}

/// `GET /v1/config/live`: which configuration the worker answering the
/// runtime API loaded, as far as hapgent-lb knows.
pub async fn live(config: &Config) -> Response {
    let path = &config.haproxy_config;
    let file_sha = read_config(path).map(|b| sha256(&b)).ok();
    let worker = match runtime::pid(&config.haproxy_socket).await {
        Ok(w) => w,
        Err(e) => return Response::error(502, &e, None),
    };
    let workers = match &config.master_socket {
        Some(m) => reload::show_proc(m).await.ok().map(|p| p.workers),
        None => None,
    };
    let record = live::load(path);
    let sha = live::resolve(&record, worker);
    let mut v = serde_json::json!({
        "worker": worker,
        "sha256": sha,
        "file_sha256": file_sha,
        "file_is_live": sha.is_some() && sha == file_sha,
    });
    if let Some(w) = workers {
        v["workers"] = serde_json::json!(w);
    }
    if sha.is_none() {
        v["note"] = serde_json::Value::from(
            "unknown: this worker was not started by a change through hapgent-lb (HAProxy was started or reloaded by something else)",
        );
    }
    Response::json(200, &v)
}

/// Where this process writes the candidate it checks: hidden, next to the
/// real file. `shutdown` removes it if a stop interrupts the check.
pub fn candidate_path(config: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(config.file_name().unwrap_or_default());
    name.push(format!(".candidate.{}", std::process::id()));
    config.with_file_name(name)
}

/// Runs `haproxy -c` on the candidate, written next to the real file so
/// relative paths resolve the same; Err((message, HAProxy's output)).
async fn validate(config: &Config, body: &[u8]) -> Result<(), (String, String)> {
    let candidate = candidate_path(&config.haproxy_config);
    let _ = std::fs::remove_file(&candidate);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&candidate)
        .and_then(|mut f| std::io::Write::write_all(&mut f, body));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&candidate);
        return Err((
            format!("cannot write the candidate {}: {e}", candidate.display()),
            String::new(),
        ));
    }
    let mut command = std::process::Command::new(&config.haproxy_bin);
    if config.master_socket.is_some() {
        command.arg("-W");
    }
    command.arg("-c").arg("-f").arg(&candidate);
    let result = hapgent_common::process::run(command, CHECK_DEADLINE).await;
    let _ = std::fs::remove_file(&candidate);
    let out = result.map_err(|e| (e, String::new()))?;
    let output = out.output.replace(
        &candidate.display().to_string(),
        &config.haproxy_config.display().to_string(),
    );
    match out.status {
        Some(s) if s.success() => Ok(()),
        Some(_) => Err((
            rejected_message(&output, hapgent_common::creds::own_ids()),
            output,
        )),
        None => Err((
            format!(
                "{} -c did not finish within {} s and was killed; nothing was changed",
                config.haproxy_bin.display(),
                CHECK_DEADLINE.as_secs()
            ),
            output,
        )),
    }
}

/// The 422 message for a configuration `haproxy -c` rejected. `-c` runs as
/// hapgent-lb's user, not as HAProxy's master (usually root, which reads
/// certificates, keys and maps before dropping privileges): a file only
/// root may read fails the check though HAProxy would load it, so the
/// message says so and what to do.
fn rejected_message(output: &str, (uid, gid): (u32, u32)) -> String {
    let mut m =
        String::from("HAProxy rejected the configuration (haproxy -c); nothing was changed");
    if uid != 0 && output.contains("Permission denied") {
        m.push_str(&format!(
            "; `haproxy -c` runs as hapgent-lb's user (uid {uid}, gid {gid}), which may not read a file HAProxy's master reads as root: make it readable by that group (e.g. chgrp haproxy FILE; chmod 640 FILE)"
        ));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_only_root_may_read_is_named_as_such() {
        let denied = "[ALERT] : 'bind :443' : unable to stat SSL certificate from file '/etc/haproxy/x.pem' : Permission denied.\n";
        let plain = "HAProxy rejected the configuration (haproxy -c); nothing was changed";
        assert_eq!(rejected_message("unknown keyword", (110, 120)), plain);
        assert_eq!(rejected_message(denied, (0, 0)), plain);
        let m = rejected_message(denied, (110, 120));
        assert!(m.starts_with(plain), "{m}");
        assert!(
            m.contains("runs as hapgent-lb's user (uid 110, gid 120), which may not read a file HAProxy's master reads as root"),
            "{m}"
        );
    }

    #[test]
    fn paths_and_audit() {
        assert_eq!(
            last_good_path(Path::new("/etc/haproxy/haproxy.cfg")),
            Path::new("/etc/haproxy/haproxy.cfg.last-good")
        );
        assert_eq!(
            lock_path(Path::new("/etc/haproxy/haproxy.cfg")),
            Path::new("/etc/haproxy/haproxy.cfg.lock")
        );
        assert_eq!(
            audit_line("uid 0", "aa", "bb", "applied (200)"),
            "audit: config change by uid 0: old sha256 aa, new sha256 bb: applied (200)"
        );
    }

    #[test]
    fn the_copy_has_the_mode_of_the_original_and_the_lock_excludes() {
        let dir = std::env::temp_dir().join(format!("hapgent-lb-change-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, "x").unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o640)).unwrap();
        let copy = last_good_path(&cfg);
        keep_copy(&cfg, &copy, b"x").unwrap();
        let mode = std::fs::metadata(&copy).unwrap().mode() & 0o7777;
        assert_eq!(
            (mode, std::fs::read(&copy).unwrap()),
            (0o640, b"x".to_vec())
        );
        let held = lock(&cfg).unwrap().expect("free");
        assert!(lock(&cfg).unwrap().is_none(), "a second lock while held");
        drop(held);
        assert!(lock(&cfg).unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
