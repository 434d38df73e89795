//! What a batch of probes came to: how many were answered well, how many
//! failed in each way (with a few examples), and how long the good ones
//! took. Each load thread keeps its own tally; the run merges them.

use crate::probe::{ErrorKind, ProbeError};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Failed probes, counted by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts([u64; ErrorKind::ALL.len()]);

impl ErrorCounts {
    pub fn add(&mut self, kind: ErrorKind, n: u64) {
        self.0[kind as usize] += n;
    }

    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.0[kind as usize]
    }

    /// Every kind with its count, in report order.
    pub fn iter(&self) -> impl Iterator<Item = (ErrorKind, u64)> + '_ {
        ErrorKind::ALL.into_iter().map(|k| (k, self.get(k)))
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// `{"connect": N, "io": N, ...}`: every kind, zeros included.
impl Serialize for ErrorCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(ErrorKind::ALL.len()))?;
        for (kind, n) in self.iter() {
            map.serialize_entry(kind.name(), &n)?;
        }
        map.end()
    }
}

/// Outcome counts and examples of a batch of probes.
#[derive(Default)]
pub struct Tally {
    pub ok: u64,
    pub errors: ErrorCounts,
    /// The first few failures, as text, for the report.
    pub examples: Vec<String>,
    pub latencies_ns: Vec<u64>,
}

/// How many failures a tally keeps as examples.
const EXAMPLES: usize = 5;

impl Tally {
    /// Counts one probe; a well-formed reply other than `expect` (if
    /// given) counts as malformed.
    pub fn record(&mut self, r: Result<Vec<u8>, ProbeError>, expect: Option<&str>, ns: u64) {
        let r = match (r, expect) {
            (Ok(line), Some(want)) if line != want.as_bytes() => {
                Err(ProbeError::Malformed(line, format!("expected {want:?}")))
            }
            (r, _) => r,
        };
        match r {
            Ok(_) => {
                self.ok += 1;
                self.latencies_ns.push(ns);
            }
            Err(e) => {
                self.errors.add(e.kind(), 1);
                // Formatted only while there is room: a failing load makes
                // many, and the load generator's time is the agent's.
                if self.examples.len() < EXAMPLES {
                    self.examples.push(e.to_string());
                }
            }
        }
    }

    /// Counts `n` failures of `kind` that were no single probe (a scrape,
    /// a check never made, an agent that died), with their examples.
    pub fn fail(&mut self, kind: ErrorKind, n: u64, examples: impl IntoIterator<Item = String>) {
        self.errors.add(kind, n);
        let room = EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(examples.into_iter().take(room));
    }

    pub fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        for (kind, n) in other.errors.iter() {
            self.errors.add(kind, n);
        }
        let room = EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
        self.latencies_ns.extend(other.latencies_ns);
    }

    pub fn failed(&self) -> u64 {
        self.errors.total()
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrorCounts, Tally};
    use crate::probe::{ErrorKind, ProbeError};

    #[test]
    fn counts_by_kind_in_report_order() {
        // ErrorCounts indexes by declaration order: it must be ALL's.
        for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i, "{kind}");
        }
        let mut t = Tally::default();
        t.record(Ok(b"up".to_vec()), None, 7);
        t.record(Ok(b"up".to_vec()), Some("down"), 0);
        t.record(Err(ProbeError::Timeout), None, 0);
        t.fail(ErrorKind::Io, 3, (0..9).map(|n| format!("scrape {n}")));
        assert_eq!((t.ok, t.failed(), t.latencies_ns.len()), (1, 5, 1));
        assert_eq!(t.examples.len(), 5);
        assert_eq!(t.examples[0], "malformed reply \"up\": expected \"down\"");
        assert_eq!(
            serde_json::to_string(&t.errors).unwrap(),
            r#"{"connect":0,"io":3,"timeout":1,"incomplete":0,"malformed":1}"#
        );
        let mut all = ErrorCounts::default();
        all.add(ErrorKind::Connect, 2);
        let mut merged = Tally {
            errors: all,
            ..Tally::default()
        };
        merged.merge(t);
        assert_eq!(merged.errors.get(ErrorKind::Connect), 2);
        assert_eq!(merged.failed(), 7);
    }
}
