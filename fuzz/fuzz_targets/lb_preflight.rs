//! What hapgent-lb reads from a pushed HAProxy configuration before it
//! touches anything (`preflight`: words, sections and `.if` blocks, exec
//! directives, start-time needs, `bind` address lists, the server-state
//! file, backend names), and the master CLI's `show proc` that decides a
//! reload's outcome (`procs::parse`).
//!
//! Input: the new configuration, a line `%%`, the running one. The whole
//! input is also read as a `show proc` answer.
#![no_main]

use hapgent_fuzz::{peak_during, report_peak, split2};
use hapgent_lb::preflight::{self, Cond, Need};
use hapgent_lb::procs;
use libfuzzer_sys::fuzz_target;

/// Most bytes reading may hold at once, per input byte, plus a constant:
/// one `Line` (words, section name) per line of text.
const PEAK_PER_BYTE: usize = 256;
const PEAK_BASE: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let (new, old) = split2(data, b"\n%%\n");
    // As the body of a PUT is read: lossy UTF-8.
    let new = String::from_utf8_lossy(new);
    let old = String::from_utf8_lossy(old);
    let size = new.len() + old.len();
    let ((new_lines, old_lines), peak) =
        peak_during(|| (preflight::lines(&new), preflight::lines(&old)));
    report_peak(peak, size);
    // Property "bounded memory": proportional to the text.
    assert!(
        peak <= PEAK_BASE + PEAK_PER_BYTE * size,
        "peak {peak} bytes for {size} bytes"
    );
    let count = new.lines().count();
    let mut last = 0;
    for l in &new_lines {
        // Property "lines are the text's own": numbered in order, within
        // the text, never empty, never a conditional directive.
        assert!(l.number > last && l.number <= count, "{l:?}");
        last = l.number;
        assert!(!l.words.is_empty());
        assert!(![".if", ".elif", ".else", ".endif"].contains(&l.words[0].as_str()));
    }
    // Property "exec directives name real lines that are not off".
    for m in preflight::exec_directives(&new_lines) {
        let n: usize = m["line ".len()..m.find(':').unwrap()].parse().unwrap();
        let line = new_lines.iter().find(|l| l.number == n).unwrap();
        assert_ne!(line.cond, Cond::Inactive);
    }
    // Property "backend names are section names as written": each is the
    // second word of a `backend`/`listen` line of the text.
    for name in preflight::backend_names(&new_lines) {
        assert!(new_lines.iter().any(|l| {
            matches!(
                l.words.first().map(String::as_str),
                Some("backend" | "listen")
            ) && l.words.get(1) == Some(&name)
        }));
    }
    // Property "only new addresses must be free; directories are
    // absolute": a port the running configuration binds is never tested.
    let held: Vec<u16> = old_lines
        .iter()
        .filter(|l| l.words.first().is_some_and(|w| w == "bind"))
        .filter_map(|l| l.words.get(1))
        .flat_map(|a| preflight::bind_addresses(a).0)
        .map(|a| a.port())
        .collect();
    for need in preflight::needs(&new_lines, &old_lines) {
        match need {
            Need::Free { addr, .. } => {
                assert!(addr.port() != 0 && !held.contains(&addr.port()), "{addr}")
            }
            Need::Dir { path, .. } => assert!(path.is_absolute(), "{path:?}"),
            Need::User { .. } | Need::Group { .. } => {}
        }
    }
    if let Some(p) = preflight::server_state_file(&new_lines) {
        assert!(p.is_absolute(), "{p:?}");
    }
    // Property "a gap names its line".
    if let Some(m) = preflight::server_state_gap(&new_lines) {
        assert!(m.starts_with("line "), "{m}");
    }

    let text = String::from_utf8_lossy(data);
    if let Ok(p) = procs::parse(&text) {
        // Property "only listed processes": every PID parsed is a word of
        // the answer, and a master line was there.
        let words: Vec<&str> = text.split_whitespace().collect();
        assert!(words.contains(&"master"));
        let numbers: Vec<u32> = words.iter().filter_map(|w| w.parse().ok()).collect();
        for pid in p.workers.iter().chain(&p.old_workers).chain([&p.master]) {
            assert!(numbers.contains(pid), "{pid}");
        }
    }
});
