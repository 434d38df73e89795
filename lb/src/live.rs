//! Which configuration the running HAProxy workers loaded, for
//! `GET /v1/config/live`.
//!
//! No HAProxy version tells through its runtime API which file a worker
//! read, so hapgent-lb keeps a record next to haproxy.cfg
//! (`haproxy.cfg.live`, JSON): the SHA-256 of the file at the moment each
//! reload was triggered, tied to the worker PID that reload produced once
//! it is known, and a reload whose outcome was not yet known when its PUT
//! answered (504) with the workers that ran before it. A worker that is
//! neither known nor newer than such a pending reload (HAProxy reloaded or
//! started by someone else) is reported as unknown, never guessed.
//!
//! [`resolve`] is pure; loading and saving the record are thin.

use hapgent_common::files;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Known worker PIDs kept (older ones have long been replaced).
const KEEP: usize = 16;

/// A worker and the SHA-256 of the configuration it loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    pub worker: u32,
    pub sha256: String,
}

/// A reload triggered with `sha256` whose new worker was not seen yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub sha256: String,
    /// The workers (or runtime API PID) before that reload.
    pub before: Vec<u32>,
}

/// The record kept in `haproxy.cfg.live`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub known: Vec<Known>,
    pub pending: Option<Pending>,
}

impl Record {
    /// Records that `worker` runs the configuration `sha256`; a pending
    /// reload is settled by it.
    pub fn learn(&mut self, worker: u32, sha256: &str) {
        self.known.retain(|k| k.worker != worker);
        self.known.push(Known {
            worker,
            sha256: sha256.to_string(),
        });
        let excess = self.known.len().saturating_sub(KEEP);
        self.known.drain(..excess);
        self.pending = None;
    }

    /// Settles a pending reload if `worker` is newer than it: then that
    /// worker loaded the pending configuration. True if it changed.
    pub fn settle(&mut self, worker: u32) -> bool {
        match &self.pending {
            Some(p) if !p.before.contains(&worker) => {
                let sha = p.sha256.clone();
                self.learn(worker, &sha);
                true
            }
            _ => false,
        }
    }
}

/// The SHA-256 of the configuration `worker` loaded, if known.
pub fn resolve(record: &Record, worker: u32) -> Option<String> {
    if let Some(k) = record.known.iter().rev().find(|k| k.worker == worker) {
        return Some(k.sha256.clone());
    }
    match &record.pending {
        Some(p) if !p.before.contains(&worker) => Some(p.sha256.clone()),
        _ => None,
    }
}

/// Where the record of `config` is kept.
pub fn path(config: &Path) -> PathBuf {
    let mut name = config.file_name().map(OsString::from).unwrap_or_default();
    name.push(".live");
    config.with_file_name(name)
}

/// Reads the record; a missing or unreadable one is empty (nothing known).
pub fn load(config: &Path) -> Record {
    files::read_regular(&path(config), 1 << 20)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Saves the record atomically; failures are logged, not fatal (the record
/// only informs `GET /v1/config/live`).
pub fn save(config: &Path, record: &Record) {
    let p = path(config);
    let result = serde_json::to_vec_pretty(record)
        .map_err(std::io::Error::other)
        .and_then(|b| hapgent_common::atomic::replace(&p, &b));
    if let Err(e) = result {
        hapgent_common::warn!("cannot save {}: {e}", p.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_known() {
        let mut r = Record::default();
        assert_eq!(resolve(&r, 10), None);
        r.learn(10, "aa");
        assert_eq!(resolve(&r, 10), Some("aa".into()));
        r.pending = Some(Pending {
            sha256: "bb".into(),
            before: vec![10],
        });
        // The old worker still runs: its own configuration.
        assert_eq!(resolve(&r, 10), Some("aa".into()));
        // A newer worker loaded the pending one.
        assert_eq!(resolve(&r, 11), Some("bb".into()));
        assert!(!r.settle(10));
        assert!(r.settle(11));
        assert_eq!(r.pending, None);
        assert_eq!(resolve(&r, 11), Some("bb".into()));
        // Without a pending reload, a stranger is unknown.
        assert_eq!(resolve(&r, 12), None);
        for w in 0..40 {
            r.learn(100 + w, "cc");
        }
        assert_eq!(r.known.len(), KEEP);
        assert_eq!(
            path(Path::new("/etc/haproxy/haproxy.cfg")),
            Path::new("/etc/haproxy/haproxy.cfg.live")
        );
    }
}
