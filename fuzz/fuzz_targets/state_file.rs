//! The JSON state file: written by operators, scripts and `hapgent ctl`.
#![no_main]

use hapgent::protocol;
use hapgent::state::{self, MAX_FILE_BYTES, Problem, State, Status};
use hapgent_fuzz::{peak_during, report_peak};
use libfuzzer_sys::fuzz_target;

/// Most bytes a parse may hold at once, per byte of the largest accepted
/// file. The worst known is 98: an array of one-key objects, each a B-tree
/// node of about 600 bytes in serde_json's `Value` (see FUZZING.md).
const PEAK_PER_BYTE: usize = 128;

fuzz_target!(|data: &[u8]| {
    // Oversized files are tried too: a short input repeated past the cap.
    let big;
    let data = if data.first() == Some(&b'+') {
        big = data.repeat((MAX_FILE_BYTES as usize / data.len()) + 1);
        &big[..]
    } else {
        data
    };
    let (parsed, peak) = peak_during(|| state::parse(data));
    report_peak(peak, data.len());
    if data.len() as u64 > MAX_FILE_BYTES {
        // Property "size cap": a file larger than MAX_FILE_BYTES is refused
        // as too large before it is parsed: nothing is allocated for it.
        assert_eq!(parsed, Err(Problem::TooLarge(data.len() as u64)));
        assert_eq!(peak, 0, "allocated {peak} bytes for an oversized file");
        return;
    }
    // Property "bounded memory": at most PEAK_PER_BYTE bytes per byte of
    // the largest accepted file, whatever the JSON looks like.
    assert!(
        peak <= PEAK_PER_BYTE * MAX_FILE_BYTES as usize,
        "peak {peak} bytes for {} bytes",
        data.len()
    );
    let Ok(state) = parsed else { return };

    // Property "round trip": what a save writes for a state that loaded
    // loads again as the same state, and fits under the cap.
    let json = state.to_json();
    assert!(json.len() as u64 <= MAX_FILE_BYTES, "{} bytes", json.len());
    assert_eq!(state::parse(json.as_bytes()), Ok(state.clone()), "{json}");

    // Property "merge of a whole file is the file": `hapgent ctl set` with
    // every field of this file gives this state, whatever came before.
    let serde_json::Value::Object(fields) = serde_json::from_slice(data).unwrap() else {
        unreachable!("a state file that parsed is an object");
    };
    for before in [State::with_status(Status::Down), state.clone()] {
        assert_eq!(state::merge(&before, &fields), Ok(state.clone()));
    }

    // Property "reply well-formed": the agent-check reply for any state
    // that loads is one line of printable ASCII, under 128 bytes.
    let reply = protocol::render(&state);
    assert!(reply.len() < 128, "{reply:?}");
    assert!(reply.ends_with('\n') && reply.matches('\n').count() == 1);
    assert!(
        reply
            .bytes()
            .all(|b| b == b'\n' || (b' '..=b'~').contains(&b))
    );
});
