//! HAProxy's runtime API answers as hapgent-lb reads them: `show stat`
//! with `show servers state` (joined into backends), `show proc` from the
//! master CLI, and `show info`.
//!
//! Input: the `show stat` answer, a line `%%`, the `show servers state`
//! answer. The whole input is also read as `show proc` and `show info`.
#![no_main]

use hapgent_fuzz::{peak_during, report_peak, split2};
use hapgent_lb::stat;
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

/// Most bytes parsing may hold at once, per byte of input, plus a constant
/// (the measured worst case is below; see FUZZING.md). Parsing builds a
/// record of a dozen strings per server row, so it is a multiple of the
/// input; the answers it reads are capped (`runtime::MAX_ANSWER`).
const PEAK_PER_BYTE: usize = 128;
const PEAK_BASE: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    // As runtime::query hands answers over: lossy UTF-8.
    let (stat_text, state_text) = split2(data, b"\n%%\n");
    let stat_text = String::from_utf8_lossy(stat_text);
    let state_text = String::from_utf8_lossy(state_text);
    let size = stat_text.len() + state_text.len();
    let (parsed, peak) = peak_during(|| stat::parse(&stat_text, &state_text));
    report_peak(peak, size);
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
        // Property "a server is listed only if `show servers state` has
        // it": a row there names its backend and server.
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
        }
        // Property "renders as JSON" (`status --json`, GET /v1/backends).
        let json = serde_json::to_string(&serde_json::json!({ "backends": backends })).unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
    }

    let text = String::from_utf8_lossy(data);
    if let Ok(procs) = stat::parse_procs(&text) {
        // Property "only listed workers": one PID per worker line at most.
        assert!(procs.workers.len() <= text.lines().count());
        // Property "failed reloads are a subset": a count that HAProxy
        // prints as `N [failed: M]`, read as such.
        let _ = procs.failed;
    }
    let _ = stat::info_pid(&text);
});
