//! `PUT /v1/config`: replacing HAProxy's configuration safely, one change
//! at a time.
//!
//! The steps, after dataplaneapi's discipline: check If-Match → write the
//! candidate next to the real file → validate it with the same `haproxy`
//! binary (`-c`) → keep the current file as last-known-good → replace
//! atomically → reload → verify it is live. A refused candidate (422)
//! touches nothing; a reload that fails or cannot be verified restores the
//! last-known-good file, makes sure HAProxy still serves it, and answers
//! 502 with HAProxy's output. Every attempt writes one audit line.

use crate::config::Config;
use crate::http::Response;
use crate::reload;
use crate::routes::{self, etag, sha256};
use crate::stat::config_backends;
use hapgent_common::atomic;
use smol::future::FutureExt;
use std::cell::Cell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest `haproxy -c` may take (a config with huge maps takes a while).
const CHECK_DEADLINE: Duration = Duration::from_secs(60);

/// Holds the one-change-at-a-time lock while a change runs.
struct Busy<'a>(&'a Cell<bool>);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Where the last-known-good copy is kept: `haproxy.cfg.last-good` next to
/// the file (not ending in `.cfg`, so a config directory never loads it).
pub fn last_good_path(config: &Path) -> PathBuf {
    let mut name = config.file_name().map(OsString::from).unwrap_or_default();
    name.push(".last-good");
    config.with_file_name(name)
}

/// One audit line: who, old and new SHA-256, outcome.
pub fn audit_line(who: &str, old: &str, new: &str, outcome: &str) -> String {
    format!("audit: config change by {who}: old sha256 {old}, new sha256 {new}: {outcome}")
}

/// Applies a configuration change; `busy` is the server's single lock.
pub async fn put(
    config: &Config,
    busy: &Cell<bool>,
    who: &str,
    if_match: Option<&str>,
    body: &[u8],
) -> Response {
    let new_sha = sha256(body);
    let audit = |old: &str, outcome: &str| {
        hapgent_common::info!("{}", audit_line(who, old, &new_sha, outcome));
    };
    if busy.replace(true) {
        audit("-", "refused (409): another change is in progress");
        return Response::error(
            409,
            "another configuration change is in progress; retry when it is done",
            None,
        );
    }
    let _busy = Busy(busy);

    let path = &config.haproxy_config;
    let current = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            audit("-", "failed (500): cannot read the current file");
            return Response::error(500, &format!("cannot read {}: {e}", path.display()), None);
        }
    };
    let old_sha = sha256(&current);
    if let Err((status, message)) = routes::precondition(if_match, &etag(&current)) {
        audit(&old_sha, &format!("refused ({status}): precondition"));
        return Response::error(status, &message, None);
    }

    if let Err((message, output)) = validate(config, body).await {
        audit(&old_sha, "refused (422): haproxy -c rejected it");
        return Response::error(422, &message, Some(&output));
    }
    if let Err(e) = atomic::replace(&last_good_path(path), &current) {
        audit(
            &old_sha,
            "failed (500): cannot keep the last-known-good copy",
        );
        return Response::error(
            500,
            &format!("keeping the last-known-good copy failed, nothing changed: {e}"),
            None,
        );
    }
    let before = reload::before(config).await;
    if let Err(e) = atomic::replace(path, body) {
        audit(&old_sha, "failed (500): cannot replace the file");
        return Response::error(
            500,
            &format!("replacing {} failed, nothing changed: {e}", path.display()),
            None,
        );
    }

    let text = String::from_utf8_lossy(body);
    let outcome = match reload::trigger(config).await {
        Err(output) => Err(("the reload was refused".to_string(), output)),
        Ok(output) => match reload::verify(config, &before, &config_backends(&text)).await {
            Ok(()) => Ok(output),
            Err(why) => Err((why, output)),
        },
    };
    match outcome {
        Ok(output) => {
            audit(&old_sha, "applied (200)");
            Response::json(
                200,
                &serde_json::json!({ "etag": etag(body), "sha256": new_sha, "output": output }),
            )
            .with("ETag", etag(body))
        }
        Err((why, output)) => {
            let restored = match atomic::replace(path, &current) {
                Err(e) => format!(
                    "RESTORING {} FAILED: {e}; restore it from {}",
                    path.display(),
                    last_good_path(path).display()
                ),
                Ok(()) => {
                    let old_text = String::from_utf8_lossy(&current);
                    match reload::ensure_serving(config, &config_backends(&old_text)).await {
                        Ok(m) => format!("the previous file was restored; {m}"),
                        Err(e) => format!(
                            "the previous file was restored, but HAProxy is not serving it: {e}"
                        ),
                    }
                }
            };
            audit(&old_sha, &format!("rolled back (502): {why}"));
            hapgent_common::error!("configuration change failed: {why}; {restored}");
            Response::error(502, &format!("{why}; {restored}"), Some(&output))
        }
    }
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
    if let Err(e) = atomic::replace(&candidate, body) {
        return Err((
            format!("cannot write the candidate {}: {e}", candidate.display()),
            String::new(),
        ));
    }
    let mut command = smol::process::Command::new(&config.haproxy_bin);
    if config.master_socket.is_some() {
        command.arg("-W");
    }
    command
        .arg("-c")
        .arg("-f")
        .arg(&candidate)
        .stdin(std::process::Stdio::null());
    let timeout = async {
        smol::Timer::after(CHECK_DEADLINE).await;
        Err(std::io::Error::other("did not finish in time"))
    };
    let result = command.output().or(timeout).await;
    let _ = std::fs::remove_file(&candidate);
    let out = result.map_err(|e| {
        (
            format!("running {} -c failed: {e}", config.haproxy_bin.display()),
            String::new(),
        )
    })?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .replace(
        &candidate.display().to_string(),
        &config.haproxy_config.display().to_string(),
    );
    if out.status.success() {
        Ok(())
    } else {
        Err((
            "HAProxy rejected the configuration (haproxy -c); nothing was changed".into(),
            output,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_audit() {
        assert_eq!(
            last_good_path(Path::new("/etc/haproxy/haproxy.cfg")),
            Path::new("/etc/haproxy/haproxy.cfg.last-good")
        );
        assert_eq!(
            audit_line("uid 0", "aa", "bb", "applied (200)"),
            "audit: config change by uid 0: old sha256 aa, new sha256 bb: applied (200)"
        );
    }
}
