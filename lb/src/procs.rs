//! HAProxy's processes as the master CLI's `show proc` lists them: the
//! master (its PID, reloads and failed reloads), the current workers and
//! the old ones still finishing their connections.
//!
//! Pure text to records, for the reload verdict (`reload`) and
//! `GET /v1/config/live`. The same format on 2.6 and 3.0 (captures in
//! `lb/tests/data/`):
//!
//! ```text
//! #<PID>          <type>          <reloads>       <uptime>        <version>
//! 3249            master          2 [failed: 1]   0d00h10m21s     2.6.12
//! # workers
//! 23779           worker          0               0d00h00m06s     2.6.12
//! # old workers
//! 23001           worker          1               0d00h00m30s     2.6.12
//! # programs
//! ```
//!
//! The master's failed counter counts failed reloads since the last one
//! that loaded (a successful reload resets it to 0).

/// What `show proc` says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Procs {
    pub master: u32,
    /// Reloads the master has performed (loaded or not).
    pub reloads: u64,
    /// Failed reloads since the last one that loaded.
    pub failed: u64,
    /// Current workers' PIDs.
    pub workers: Vec<u32>,
    /// Old workers' PIDs (finishing their connections).
    pub old_workers: Vec<u32>,
}

/// Parses `show proc`; an answer without a master line is an error.
pub fn parse(text: &str) -> Result<Procs, String> {
    let mut procs = Procs::default();
    let mut master_seen = false;
    let mut section = "";
    for line in text.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix('#') {
            section = if s.starts_with('<') { "" } else { s.trim() };
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(pid), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        match (kind, section) {
            ("master", _) => {
                master_seen = true;
                procs.master = pid;
                procs.reloads = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                procs.failed = line
                    .split_once("[failed:")
                    .and_then(|(_, rest)| rest.split(']').next())
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
            }
            ("worker", "workers") => procs.workers.push(pid),
            ("worker", "old workers") => procs.old_workers.push(pid),
            _ => {}
        }
    }
    if master_seen {
        Ok(procs)
    } else {
        Err(format!(
            "`show proc` answered {:?}, without a master line (is this the master socket?)",
            text.lines().next().unwrap_or("")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_and_shapes() {
        let p26 = include_str!("../tests/data/haproxy-2.6/show-proc.txt");
        let f26 = include_str!("../tests/data/haproxy-2.6/show-proc-failed.txt");
        let f30 = include_str!("../tests/data/haproxy-3.0/show-proc-failed.txt");
        let p = |master, reloads, failed, workers: &[u32], old: &[u32]| Procs {
            master,
            reloads,
            failed,
            workers: workers.to_vec(),
            old_workers: old.to_vec(),
        };
        assert_eq!(parse(p26), Ok(p(21324, 0, 0, &[21375], &[])));
        assert_eq!(parse(f26), Ok(p(21324, 1, 1, &[21375], &[])));
        assert_eq!(parse(f30), Ok(p(11244, 1, 1, &[11255], &[])));
        // After a reload that loaded, an old worker finishing a session.
        let r26 = include_str!("../tests/data/haproxy-2.6/show-proc-reloaded.txt");
        let r30 = include_str!("../tests/data/haproxy-3.0/show-proc-reloaded.txt");
        assert_eq!(parse(r26), Ok(p(27819, 1, 0, &[27956], &[27838])));
        assert_eq!(parse(r30), Ok(p(28916, 1, 0, &[1638], &[29063])));
        let reloaded = "#<PID> <type> <reloads> <uptime> <version>\n9 master 2 [failed: 0] 0d 2.6\n# workers\n12 worker 0 0d 2.6\n# old workers\n10 worker 1 0d 2.6\n# programs\n";
        assert_eq!(parse(reloaded), Ok(p(9, 2, 0, &[12], &[10])));
        let dying =
            "#<PID> <type>\n9 master 2 [failed: 0] 0d\n# workers\n# old workers\n10 worker 1 0d\n";
        assert_eq!(parse(dying), Ok(p(9, 2, 0, &[], &[10])));
        for bad in [
            "",
            "Unknown command.\n",
            "x master",
            "# workers\n1 worker\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
