//! The `agent-send` payload: the first bytes any prober (or anyone who can
//! reach the agent port) sends.
#![no_main]

use hapgent::config::valid_service_name;
use hapgent::protocol::{MAX_PAYLOAD, Payload, parse_payload};
use hapgent_fuzz::peak_during;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line_end = data.iter().position(|&b| b == b'\n');
    for complete in [false, true] {
        let (got, peak) = peak_during(|| parse_payload(data, complete));
        // Property "no allocation": deciding on a payload takes no heap at
        // all, whatever its size; a probe flood costs no memory here.
        assert_eq!(peak, 0, "allocated {peak} bytes");
        match got {
            // Property "waits only below the cap": undecided only while no
            // line end has come, more may come, and fewer than MAX_PAYLOAD
            // bytes are buffered. The reader never holds more.
            None => assert!(line_end.is_none() && !complete && data.len() < MAX_PAYLOAD),
            // Property "a name is the first line": exactly the first line
            // (CR stripped), and a valid service name (1-64 safe bytes).
            Some(Payload::Name(name)) => {
                let line = &data[..line_end.unwrap_or(data.len())];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                assert_eq!(name.as_bytes(), line);
                assert!(valid_service_name(name), "{name:?}");
                assert!(name.len() <= 64);
            }
            // Property "empty means the default service": only an empty
            // first line (or nothing at all) selects it.
            Some(Payload::None) => {
                let line = &data[..line_end.unwrap_or(data.len())];
                assert!(line.is_empty() || line == b"\r", "{line:?}");
            }
            Some(Payload::Invalid) => {}
        }
        // Property "decisions are final": once decided before the end of
        // input, more input (what a prober sends after its line) changes
        // nothing.
        if let (Some(decided), false) = (got, complete) {
            let mut more = data.to_vec();
            more.extend_from_slice(data);
            more.extend_from_slice(b"x\n");
            assert_eq!(parse_payload(&more, complete), Some(decided));
        }
    }
});
