//! The request head of a Prometheus scrape (`metrics_listen`): anyone who
//! can reach that port writes it.
#![no_main]

use hapgent::metrics::{MAX_HEAD, Route, route};
use hapgent_fuzz::peak_during;
use libfuzzer_sys::fuzz_target;

/// What the scrape task reads at a time (`metrics::scrape`).
const READ_CHUNK: usize = 1024;

fuzz_target!(|data: &[u8]| {
    // Heads beyond the cap are tried too: a short input repeated past it.
    let big;
    let data = if data.first() == Some(&b'+') {
        big = data.repeat(MAX_HEAD / data.len() + 1);
        &big[..]
    } else {
        data
    };
    let (got, peak) = peak_during(|| route(data));
    // Property "no allocation": routing a head takes no heap.
    assert_eq!(peak, 0, "allocated {peak} bytes");
    // Property "head cap": undecided (read more) only below MAX_HEAD.
    if got.is_none() {
        assert!(data.len() < MAX_HEAD, "undecided at {} bytes", data.len());
    }
    // Property "the reader stops within the cap": fed as the scrape task
    // reads (up to READ_CHUNK at a time), a decision comes before the
    // buffer passes MAX_HEAD + READ_CHUNK bytes.
    let mut seen = 0;
    for chunk in data.chunks(READ_CHUNK) {
        seen += chunk.len();
        if route(&data[..seen]).is_some() {
            break;
        }
        assert!(seen < MAX_HEAD, "still reading at {seen} bytes");
    }
    // Property "complete heads are final": bytes after a complete head
    // (a body, a pipelined request) do not change the answer.
    if let Some(r @ (Route::Metrics { .. } | Route::NotFound | Route::MethodNotAllowed)) = got {
        let mut more = data.to_vec();
        more.extend_from_slice(b"GET /x HTTP/1.1\r\n\r\n");
        assert_eq!(route(&more), Some(r));
    }
});
