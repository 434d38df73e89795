//! A thread for file operations that may hang, so probes never wait on a
//! sick disk.
//!
//! Saving the state file ends in fsync, which can take seconds on a loaded
//! or failing disk, and the state file may live on a network mount. Those
//! calls run here, one at a time in the order they were asked for, while
//! the executor keeps answering probes from memory. This is a single
//! thread, not a pool, because state-file operations must not overtake each
//! other, and it is started with signals blocked (see `sys`).

use smol::channel;
use std::sync::mpsc;
use std::thread;

type Job = Box<dyn FnOnce() + Send>;

/// A handle to the disk thread; the thread ends when the handle is dropped.
pub struct Disk {
    jobs: mpsc::Sender<Job>,
}

impl Disk {
    /// Starts the thread. Call it inside `sys::with_signals_blocked`.
    pub fn start() -> std::io::Result<Disk> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("hapgent-disk".into())
            // Parsing a state file recurses once per nesting level (serde_json
            // stops at 128); 1 MiB covers that with room to spare in debug
            // builds too. Untouched stack pages cost no memory.
            .stack_size(1024 * 1024)
            .spawn(move || {
                for job in queue {
                    job();
                }
            })?;
        Ok(Disk { jobs })
    }

    /// Runs `f` on the disk thread and waits for its result without
    /// blocking the executor. `None` if the thread is gone (it cannot panic
    /// on the jobs hapgent gives it, but the caller must not assume so).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = channel::bounded(1);
        let job: Job = Box::new(move || {
            let _ = tx.send_blocking(f());
        });
        self.jobs.send(job).ok()?;
        rx.recv().await.ok()
    }
}
