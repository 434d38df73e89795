//! A scratch directory per test or benchmark run, removed when dropped.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory under the system's temporary directory, named after the
/// process and a counter (so parallel tests never meet), removed with its
/// content when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory whose name ends in `name` (for a person reading
    /// a leftover); panics if it cannot be made.
    pub fn new(name: &str) -> TempDir {
        TempDir::create(name).unwrap_or_else(|e| panic!("temporary directory {name:?}: {e}"))
    }

    /// `new`, with the error returned: for the benchmark, which reports
    /// rather than panics.
    pub fn create(name: &str) -> io::Result<TempDir> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("hapgent-{}-{n}-{name}", std::process::id()));
        // A leftover of an earlier process that had this PID.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
