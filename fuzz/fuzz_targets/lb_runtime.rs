//! HAProxy's runtime API answers as hapgent-lb reads them: `show servers
//! state` then `show stat`, each cut into lines by `stat::answer_line` and
//! handed to `stat::StateReader` and `stat::StatReader` one line at a time,
//! as `runtime::backends` does while reading the socket, also restricted to
//! one backend (`stat::parse_only`); and `show info`.
//! (`show proc` is `procs::parse`, fuzzed by `lb_preflight`.)
//!
//! Input: the `show stat` answer, a line `%%`, the `show servers state`
//! answer. The whole input is also read as `show info`.
#![no_main]

use hapgent_fuzz::{peak_during, report_peak, split2};
use hapgent_lb::stat::{self, Backend, StatReader, StateReader};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

/// Most bytes reading may hold at once, per byte of input, plus a constant
/// (the measured worst case is below; see FUZZING.md). The readers hold one
/// line at a time and keep a record of a few short strings per server
/// present in both answers, so it is a multiple of the input; the answers
/// they read are capped (`runtime::MAX_ANSWER`).
const PEAK_PER_BYTE: usize = 128;
const PEAK_BASE: usize = 16 * 1024;

/// Both answers through the readers, line by line as the socket gives them.
fn read(stat_raw: &[u8], state_raw: &[u8]) -> Result<Vec<Backend>, String> {
    let mut states = StateReader::default();
    for raw in state_raw.split_inclusive(|b| *b == b'\n') {
        states.line(&stat::answer_line(raw))?;
    }
    let mut servers = StatReader::new(states.finish()?);
    for raw in stat_raw.split_inclusive(|b| *b == b'\n') {
        servers.line(&stat::answer_line(raw))?;
    }
    servers.finish()
}

fuzz_target!(|data: &[u8]| {
    let (stat_raw, state_raw) = split2(data, b"\n%%\n");
    let size = stat_raw.len() + state_raw.len();
    let (parsed, peak) = peak_during(|| read(stat_raw, state_raw));
    report_peak(peak, size);
    // Property "line by line is whole": the same as parsing both answers
    // whole (lossy UTF-8, `str::lines`), errors included.
    let stat_text = String::from_utf8_lossy(stat_raw);
    let state_text = String::from_utf8_lossy(state_raw);
    assert_eq!(parsed, stat::parse(&stat_text, &state_text));
    // Property "bounded memory": proportional to the answers' size.
    assert!(
        peak <= PEAK_BASE + PEAK_PER_BYTE * size,
        "peak {peak} bytes for {size} bytes"
    );
    if let Ok(backends) = parsed {
        // Property "backends are distinct and hold their own servers",
        // never the FRONTEND/BACKEND summary rows.
        let mut names = HashSet::new();
        for b in &backends {
            assert!(names.insert(&b.name), "backend {:?} twice", b.name);
            for s in &b.servers {
                assert_eq!(s.backend, b.name);
                assert!(s.server != "FRONTEND" && s.server != "BACKEND");
            }
        }
        // Property "a server is listed only if both answers have it": a
        // row of `show servers state` names its backend and server, and
        // a row of `show stat` too (CSV: the names are in it, but for
        // the quotes).
        for s in backends.iter().flat_map(|b| &b.servers) {
            assert!(
                state_text.lines().any(|l| {
                    let words: Vec<&str> = l.split_whitespace().collect();
                    words.contains(&s.backend.as_str()) && words.contains(&s.server.as_str())
                }),
                "{}/{} is not in show servers state",
                s.backend,
                s.server
            );
            let unquoted = |t: &str| t.replace('"', "");
            let (backend, server) = (unquoted(&s.backend), unquoted(&s.server));
            assert!(
                stat_text.lines().any(|l| {
                    let l = unquoted(l);
                    l.contains(&backend) && l.contains(&server)
                }),
                "{}/{} is not in show stat",
                s.backend,
                s.server
            );
        }
        // Property "one backend read is the whole read filtered": reading
        // with `StateReader::only` (`status --backend`, `GET
        // /v1/backends/NAME`) gives that backend as the whole read has it,
        // and nothing for a name the answers lack.
        for name in backends
            .iter()
            .map(|b| b.name.as_str())
            .chain(["\u{1}absent"])
        {
            let mut want = backends.clone();
            want.retain(|b| b.name == name);
            assert_eq!(stat::parse_only(&stat_text, &state_text, name), Ok(want));
        }
        // Property "renders as JSON" (`status --json`, GET /v1/backends),
        // and serialized directly it is what a `serde_json::Value` (keys
        // sorted) prints: the bytes `status --json` has always printed.
        let json = serde_json::to_string(&serde_json::json!({ "backends": backends })).unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
        assert_eq!(
            serde_json::to_string(&backends).unwrap(),
            serde_json::to_string(&serde_json::to_value(&backends).unwrap()).unwrap()
        );
    }

    // Property "the Pid is a `Pid:` line's number".
    let text = String::from_utf8_lossy(data);
    if let Some(pid) = stat::info_pid(&text) {
        assert!(
            text.lines()
                .filter_map(|l| l.strip_prefix("Pid:"))
                .any(|v| v.trim().parse::<u32>() == Ok(pid)),
            "Pid {pid} is not a Pid line"
        );
    }
});
