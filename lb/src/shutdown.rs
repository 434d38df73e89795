//! What a stop does to a configuration change it interrupts.
//!
//! On SIGTERM `serve` stops accepting and gives the requests in progress
//! `stop_grace` to finish: a `PUT /v1/config` then ends as it always does
//! (applied, refused, or rolled back), with its audit line. Only when the
//! grace period passes first is the change cut off; this module then puts
//! the previous file back and writes the audit line the change could not.
//!
//! What to undo is read from the disk, not from the cut-off change's
//! progress: if haproxy.cfg is the candidate and the last-known-good copy
//! is the file the request's `If-Match` named, the copy is restored and
//! HAProxy asked to reload it (the cut-off change may already have
//! reloaded the candidate). The decision, [`decide`], is pure.

use crate::change::{self, audit_line, last_good_path};
use crate::config::Config;
use crate::reload;
use crate::routes::{self, etag, sha256};
use hapgent_common::atomic;
use smol::future::FutureExt;
use std::time::Duration;

/// How long the restoring reload may take to be requested (not verified:
/// the process is stopping).
const RELOAD_DEADLINE: Duration = Duration::from_secs(5);

/// A `PUT /v1/config` being applied: what the audit line and the recovery
/// need if a stop cuts it off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub who: String,
    pub if_match: Option<String>,
    /// SHA-256 of the candidate (the request's body).
    pub new_sha: String,
}

/// What to do about a cut-off change.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovery {
    /// haproxy.cfg is not the candidate (it was never replaced, or was
    /// restored already), or the candidate is the file it replaced.
    Untouched,
    /// haproxy.cfg is the candidate and the last-known-good copy is what
    /// it replaced: put the copy back.
    Restore,
    /// haproxy.cfg is the candidate, but the copy is not what the request
    /// was based on: nothing safe to do automatically.
    Unsure(String),
}

/// Decides from haproxy.cfg's SHA-256 now and the last-known-good copy's
/// content (if any).
pub fn decide(change: &Change, on_disk_sha: &str, last_good: Option<&[u8]>) -> Recovery {
    if on_disk_sha != change.new_sha {
        return Recovery::Untouched;
    }
    let based_on = |tag: &str| routes::precondition(change.if_match.as_deref(), tag).is_ok();
    if based_on(&format!("\"{}\"", change.new_sha)) {
        return Recovery::Untouched;
    }
    match last_good {
        Some(bytes) if based_on(&etag(bytes)) => Recovery::Restore,
        Some(bytes) => Recovery::Unsure(format!(
            "the last-known-good copy (sha256 {}) is not the file the change replaced",
            sha256(bytes)
        )),
        None => Recovery::Unsure("there is no last-known-good copy".into()),
    }
}

/// Undoes what a change cut off by the end of the grace period left, and
/// writes its audit line.
pub async fn recover(config: &Config, change: &Change, grace_ms: u64) {
    let path = &config.haproxy_config;
    let _ = std::fs::remove_file(change::candidate_path(path));
    let cut = format!("interrupted by the stop ({grace_ms} ms stop_grace passed)");
    let audit = |old: &str, outcome: &str| {
        hapgent_common::info!(
            "{}",
            audit_line(
                &change.who,
                old,
                &change.new_sha,
                &format!("{cut}: {outcome}")
            )
        );
    };
    let on_disk = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            audit("-", &format!("cannot read {}: {e}", path.display()));
            return;
        }
    };
    let last_good = std::fs::read(last_good_path(path)).ok();
    match decide(change, &sha256(&on_disk), last_good.as_deref()) {
        Recovery::Untouched => audit(&sha256(&on_disk), "nothing was changed"),
        Recovery::Unsure(why) => {
            audit("-", &format!("left as is: {why}"));
            hapgent_common::error!(
                "{} holds the interrupted change's candidate and {why}; check it by hand",
                path.display()
            );
        }
        Recovery::Restore => {
            let old = last_good.unwrap_or_default();
            let old_sha = sha256(&old);
            if let Err(e) = atomic::replace(path, &old) {
                audit(&old_sha, &format!("RESTORING FAILED: {e}"));
                hapgent_common::error!(
                    "restoring {} failed: {e}; restore it from {}",
                    path.display(),
                    last_good_path(path).display()
                );
                return;
            }
            let timeout = async {
                smol::Timer::after(RELOAD_DEADLINE).await;
                Err(format!(
                    "not requested within {} s",
                    RELOAD_DEADLINE.as_secs()
                ))
            };
            match reload::trigger(config).or(timeout).await {
                Ok(_) => audit(
                    &old_sha,
                    "rolled back: previous file restored, HAProxy asked to reload it",
                ),
                Err(e) => {
                    audit(
                        &old_sha,
                        &format!("previous file restored, but the reload failed: {e}"),
                    );
                    hapgent_common::error!(
                        "{} was restored but HAProxy could not be reloaded: {e}; reload it by hand",
                        path.display()
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_cut_off_change_leaves_is_undone_only_when_sure() {
        let old: &[u8] = b"old config";
        let older: &[u8] = b"older config";
        let new: &[u8] = b"new config";
        let change = |if_match: Option<&str>| Change {
            who: "uid 0".into(),
            if_match: if_match.map(String::from),
            new_sha: sha256(new),
        };
        let based_on_old = etag(old);
        let based_on_new = etag(new);
        let several = format!("\"x\", {based_on_old}");
        // (If-Match, haproxy.cfg now, last-good copy, want)
        type Row<'a> = (Option<&'a str>, &'a [u8], Option<&'a [u8]>, &'a str);
        let rows: Vec<Row> = vec![
            (Some(&based_on_old), old, None, "untouched"),
            (Some(&based_on_old), old, Some(older), "untouched"),
            (Some(&based_on_old), new, Some(old), "restore"),
            (Some(&based_on_old), new, Some(older), "unsure"),
            (Some(&based_on_old), new, None, "unsure"),
            // The candidate is the file it replaced: nothing to undo.
            (Some(&based_on_new), new, Some(new), "untouched"),
            // Several ETags, one of them the copy's.
            (Some(&several), new, Some(old), "restore"),
        ];
        for (if_match, now, last_good, want) in rows {
            let got = match decide(&change(if_match), &sha256(now), last_good) {
                Recovery::Untouched => "untouched",
                Recovery::Restore => "restore",
                Recovery::Unsure(_) => "unsure",
            };
            assert_eq!(got, want, "{if_match:?} {now:?} {last_good:?}");
        }
    }
}
