//! The control protocol (`hapgent ctl`, or any client of the control
//! socket): request lines the agent reads, answer lines the client reads.
#![no_main]

use hapgent::state::{self, State, Status};
use hapgent::wire::{self, Code, MAX_REQUEST, Request};
use hapgent_fuzz::{peak_during, report_peak, same_json, split2};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// Most bytes a parse may hold at once, per byte of the largest accepted
/// request. The worst known is 98: an array of one-key objects, each a B-tree
/// node of about 600 bytes in serde_json's `Value` (see FUZZING.md).
const PEAK_PER_BYTE: usize = 128;

fuzz_target!(|data: &[u8]| {
    // Oversized requests are tried too: a short input repeated past the cap
    // (`+…`); and requests just within it (`*PREFIX\0UNIT`: the prefix,
    // then the unit repeated up to the cap), which libFuzzer's short inputs
    // never reach.
    let big;
    let data = if data.first() == Some(&b'+') {
        big = data.repeat(MAX_REQUEST / data.len() + 1);
        &big[..]
    } else if let Some((b'*', rest)) = data.split_first()
        && let (prefix, unit) = split2(rest, b"\0")
        && !unit.is_empty()
    {
        let mut v = prefix.to_vec();
        while v.len() < MAX_REQUEST {
            v.extend_from_slice(unit);
        }
        v.truncate(MAX_REQUEST);
        big = v;
        &big[..]
    } else {
        data
    };
    let (request, peak) = peak_during(|| wire::parse_request(data));
    report_peak(peak, data.len());
    if data.len() > MAX_REQUEST {
        // Property "size cap": a request longer than MAX_REQUEST is refused
        // before it is parsed (only the error message is allocated).
        assert!(request.is_err());
        assert!(
            peak < 256,
            "allocated {peak} bytes for an oversized request"
        );
        return;
    }
    // Property "bounded memory": a request within the cap never holds more
    // than PEAK_PER_BYTE bytes per byte of the cap.
    assert!(
        peak <= PEAK_PER_BYTE * MAX_REQUEST,
        "peak {peak} bytes for {} bytes",
        data.len()
    );
    if let Ok(request) = request {
        // Property "request round trip": a request that parses renders
        // (as `hapgent ctl` sends it) to one line that parses to the same
        // request, provided the rendering fits the cap.
        let line = wire::render_request(&request);
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line:?}"
        );
        // (Floats may come back one unit in the last place off: see
        // `same_json`.)
        if line.len() <= MAX_REQUEST {
            let again = wire::parse_request(line.as_bytes());
            assert!(
                matches!(&again, Ok(r) if same_request(r, &request)),
                "{line}\n{again:?}"
            );
        }
        // Property "set validates like a state file": what `set` would
        // store is a state file that loads as the same state.
        if let Request::Set { state: fields, .. } = &request
            && let Ok(merged) = state::merge(&State::with_status(Status::Up), fields)
        {
            assert_eq!(state::parse(merged.to_json().as_bytes()), Ok(merged));
        }
        // Property "a field twice is refused": the same request with one
        // of its state fields given twice does not parse, as a state file
        // with a field twice does not load.
        if let Request::Set { state: fields, .. } = &request
            && let Some((key, value)) = fields.iter().next()
        {
            let key = Value::String(key.clone());
            let twice = format!(
                "{{\"v\":1,\"command\":\"set\",\"state\":{{{key}:{value},{key}:{value}}}}}"
            );
            if twice.len() <= MAX_REQUEST {
                let refused = wire::parse_request(twice.as_bytes());
                assert!(
                    matches!(&refused, Err(e) if e.contains("more than once")),
                    "{twice}\n{refused:?}"
                );
            }
        }
    }

    if let Ok(answer) = wire::parse_answer(data) {
        // Property "what the agent writes, the client reads": `ok` and
        // `failure` answers built from these fields parse as such.
        let again = wire::parse_answer(wire::ok(answer.fields.clone()).as_bytes()).unwrap();
        assert!(again.ok && again.error.is_none() && again.code().is_none());
        let failed = wire::failure(Code::Busy, &answer.message, answer.fields.clone());
        let again = wire::parse_answer(failed.as_bytes()).unwrap();
        assert!(!again.ok);
        assert_eq!(again.code(), Some(Code::Busy));
        assert_eq!(again.message, answer.message);
        // Property "answer round trip": the answer's fields, rendered back
        // as a line, parse to the same answer.
        let line = Value::Object(answer.fields.clone()).to_string();
        let again = wire::parse_answer(line.as_bytes()).unwrap();
        assert_eq!(
            (again.ok, &again.error, &again.message),
            (answer.ok, &answer.error, &answer.message)
        );
        let (a, b) = (Value::Object(again.fields), Value::Object(answer.fields));
        assert!(same_json(&a, &b), "{line}");
        let empty = wire::parse_answer(wire::ok(Map::new()).as_bytes()).unwrap();
        assert!(empty.ok);
    }
});

/// Requests equal but for the last bits of floats in `set` fields.
fn same_request(a: &Request, b: &Request) -> bool {
    match (a, b) {
        (
            Request::Set { service, state },
            Request::Set {
                service: s2,
                state: st2,
            },
        ) => service == s2 && same_json(&Value::Object(state.clone()), &Value::Object(st2.clone())),
        _ => a == b,
    }
}
