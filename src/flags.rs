//! The drain and maint flag files: while one exists, the reply's admin
//! state is at least DRAIN, or MAINT.
//!
//! The files are checked (one `stat` each) every time a reply is built, so
//! creating or removing one shows in the very next reply. This module does
//! not decide how their word combines with the state file's (see
//! `protocol::flag_admin` and `protocol::render_with`).

use crate::protocol::{self, Admin};
use std::cell::Cell;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The configured flag files, and what they said last time.
pub struct FlagFiles {
    drain: Option<PathBuf>,
    maint: Option<PathBuf>,
    /// What the files said last time, to log changes once.
    last: Cell<Option<Option<Admin>>>,
}

impl FlagFiles {
    pub fn new(drain: Option<PathBuf>, maint: Option<PathBuf>) -> FlagFiles {
        FlagFiles {
            drain,
            maint,
            last: Cell::new(None),
        }
    }

    /// The configured files: (drain, maint).
    pub fn paths(&self) -> (Option<&Path>, Option<&Path>) {
        (self.drain.as_deref(), self.maint.as_deref())
    }

    /// The admin state the files ask for now, logging when it changes.
    pub fn check(&self) -> Option<Admin> {
        let admin = self.look();
        if self.last.replace(Some(admin)) != Some(admin) {
            let path = |p: &Option<PathBuf>| {
                p.as_deref()
                    .map_or(String::new(), |p| p.display().to_string())
            };
            match admin {
                Some(Admin::Maint) => {
                    crate::info!("maint file {} exists: reporting maint", path(&self.maint))
                }
                Some(_) => {
                    crate::info!("drain file {} exists: reporting drain", path(&self.drain))
                }
                None if self.drain.is_some() || self.maint.is_some() => {
                    crate::info!("no flag file exists: admin state from the state file")
                }
                None => {}
            }
        }
        admin
    }

    /// Each file's presence once (`None` where none is configured), and the
    /// admin state that follows: what one-shot mode reports.
    pub fn snapshot(&self) -> (Option<bool>, Option<bool>, Option<Admin>) {
        let drain = self.drain.as_deref().map(exists);
        let maint = self.maint.as_deref().map(exists);
        let admin = protocol::flag_admin(maint == Some(true), drain == Some(true));
        (drain, maint, admin)
    }

    fn look(&self) -> Option<Admin> {
        self.snapshot().2
    }
}

/// Whether a flag file is present. Only "no such file" means absent: if
/// the file cannot be checked (say, permission denied on its directory), it
/// counts as present, because a flag file only ever takes traffic away.
pub fn exists(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
        ),
    }
}
