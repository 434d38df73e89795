//! Names and paths from users that reach HAProxy's runtime API or pick an
//! API handler: `routes::route` (method and request target),
//! `names::check`, `names::Target::parse` (`BACKEND/SERVER` from the
//! command line).
//!
//! Input: a method, a space, a request target; the target is also read
//! as a name and as `BACKEND/SERVER`.
#![no_main]

use hapgent_lb::names::{self, Target};
use hapgent_lb::routes::{self, Route};
use libfuzzer_sys::fuzz_target;

/// What HAProxy's CLI treats as syntax: a name with one of these could
/// smuggle a second command or argument.
const CLI_SYNTAX: &[char] = &[';', '\n', '\r', ' ', '\t', '\0', '#', '\\', '\'', '"', '/'];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (method, target) = text.split_once(' ').unwrap_or(("GET", text));
    match routes::route(method, target) {
        // Property "a backend route names one path segment", as typed.
        Route::Backend(name) => {
            assert!(!name.is_empty() && !name.contains(['/', '?']), "{name:?}");
            assert!(target.starts_with(&format!("/v1/backends/{name}")));
            assert_eq!(method, "GET");
        }
        Route::MethodNotAllowed(allow) => assert!(["GET", "GET, PUT"].contains(&allow)),
        Route::GetConfig | Route::Backends | Route::LiveConfig | Route::Metrics => {
            assert_eq!(method, "GET")
        }
        Route::PutConfig => assert_eq!(method, "PUT"),
        Route::NotFound => {}
    }

    for name in [text, target] {
        if names::check("backend", name).is_ok() {
            // Property "no command smuggling": an accepted name holds no
            // character the runtime API reads as syntax, is 1-128 bytes.
            assert!(!name.contains(CLI_SYNTAX), "{name:?}");
            assert!((1..=128).contains(&name.len()));
        }
    }
    if let Ok(t) = Target::parse(text) {
        // Property "target round trip": BACKEND/SERVER prints as typed,
        // and both halves are names on their own.
        assert_eq!(format!("{}/{}", t.backend, t.server), text);
        assert!(names::check("backend", &t.backend).is_ok());
        assert!(names::check("server", &t.server).is_ok());
    }
});
