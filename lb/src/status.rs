//! `status`: HAProxy's view of every server as a table or JSON. The JSON
//! is the HTTP API's too (`GET /v1/backends`, `GET /v1/backends/NAME`):
//! one definition of its shape, the bytes `status --json` prints.
//!
//! Rendering is pure (tested on parsed captures); fetching is
//! `runtime::backends`, which reads HAProxy's answers line by line into
//! compact records, so that rendering is the only other copy of the data.

use crate::stat::Backend;
use serde::Serialize;

/// `status --json`: `{"backends": [...]}`, pretty-printed, serialized
/// straight from the records (keys in the records' field order, which is
/// alphabetical, as a `serde_json::Value` would sort them).
pub fn json(backends: &[Backend]) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Listing<'a> {
        backends: &'a [Backend],
    }
    // About 420 bytes per server: sized once rather than grown by doubling.
    let servers: usize = backends.iter().map(|b| b.servers.len()).sum();
    let mut out = Vec::with_capacity(1024 + 512 * servers);
    serde_json::to_writer_pretty(&mut out, &Listing { backends })?;
    String::from_utf8(out).map_err(serde::ser::Error::custom)
}

/// `GET /v1/backends/NAME`: one backend, pretty-printed, the object it is
/// in `json`'s listing.
pub fn backend_json(backend: &Backend) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(backend)
}

/// A fixed-width table, one row per server, with the reason columns (check
/// and agent result) last because they are the longest.
pub fn table(backends: &[Backend]) -> String {
    let mut rows = vec![
        [
            "BACKEND", "SERVER", "STATUS", "ADMIN", "OP", "WEIGHT", "SESS", "QUEUE", "CHECK",
            "AGENT",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for b in backends {
        for s in &b.servers {
            let reason = |status: &str, desc: &str| match (status, desc) {
                ("", "") => "-".to_string(),
                (s, "") => s.to_string(),
                (s, d) => format!("{s} ({d})"),
            };
            rows.push(vec![
                s.backend.clone(),
                s.server.clone(),
                s.status.clone(),
                s.admin.word().into(),
                s.op.word().into(),
                format!("{}/{}", s.weight, s.initial_weight),
                s.sessions.to_string(),
                s.queue.to_string(),
                reason(&s.check_status, &s.check_desc),
                reason(&s.agent_status, &s.agent_desc),
            ]);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat;

    #[test]
    fn json_is_what_a_json_value_prints() {
        // The bytes `status --json` printed when it went through
        // `serde_json::json!`, which sorts keys: the same for every capture.
        for v in ["2.6", "3.0"] {
            let dir = format!("{}/tests/data/haproxy-{v}", env!("CARGO_MANIFEST_DIR"));
            let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).unwrap();
            let backends =
                stat::parse(&read("show-stat.txt"), &read("show-servers-state.txt")).unwrap();
            let via_value =
                serde_json::to_string_pretty(&serde_json::json!({ "backends": backends })).unwrap();
            assert_eq!(json(&backends).unwrap(), via_value, "{v}");
        }
    }

    #[test]
    fn table_from_haproxy_2_6() {
        let backends = stat::parse(
            include_str!("../tests/data/haproxy-2.6/show-stat.txt"),
            include_str!("../tests/data/haproxy-2.6/show-servers-state.txt"),
        )
        .unwrap();
        let text = table(&backends);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            lines[0]
                .starts_with("BACKEND  SERVER  STATUS    ADMIN  OP    WEIGHT   SESS  QUEUE  CHECK"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("web      web2    no check  ready  up    50/100   1     0      -"),
            "{text}"
        );
        assert!(lines[1].ends_with("L7OK (Layer7 check passed)"), "{text}");
        assert!(
            lines[2].starts_with("web      web1    DRAIN     drain  up    100/100"),
            "{text}"
        );
        assert!(
            lines[4].starts_with("api      api1    MAINT     maint  down  1/1"),
            "{text}"
        );
    }
}
