//! The control protocol: one JSON request line, one JSON answer line.
//!
//! Documented in the README ("Control protocol") so that other tools can
//! speak it without `hapgent ctl`. Every request carries `"v": 1`, the
//! protocol version; a server refuses versions it does not know. Requests
//! are parsed strictly (unknown fields are errors) and are at most
//! `MAX_REQUEST` bytes.
//!
//! ```text
//! {"v":1,"command":"status"}
//! {"v":1,"command":"probers"}
//! {"v":1,"command":"metrics"}
//! {"v":1,"command":"set","state":{"status":"DRAIN","weight":null}}
//! {"v":1,"command":"set","service":"api","state":{"status":"DRAIN"}}
//! {"v":1,"command":"wait-seen","version":12,"timeout_ms":30000}
//! ```
//!
//! `set` takes state-file fields: a field given replaces the current
//! value, `null` removes it, a field left out is kept. `service` names the
//! service (left out: the default one; `"*"`: every service); `wait-seen`
//! takes it too. The merged state is
//! validated exactly as a state file is, and a field given twice in
//! `state` is refused as it is in a state file. Answers are objects with
//! `"v":1` and `"ok"`; a failure has `"error"` (a stable code) and
//! `"message"` (a sentence). Everything here is pure.

use serde::Deserialize;
use serde_json::{Map, Value};

/// The protocol version spoken here.
pub const VERSION: u32 = 1;

/// Largest request accepted, newline included.
pub const MAX_REQUEST: usize = 64 * 1024;

/// What a client asks.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Status,
    Probers,
    Metrics,
    /// Fields to change, as in the state file, of a service (`None`: the
    /// default one; `Some("*")`: all).
    Set {
        service: Option<String>,
        state: Map<String, Value>,
    },
    /// Wait until every recent prober of the service has been served
    /// `version` or later.
    WaitSeen {
        service: Option<String>,
        version: u64,
        timeout_ms: u64,
    },
}

/// The `service` value that means every service.
pub const ALL: &str = "*";

/// The failure codes of answers, stable for scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    BadRequest,
    PermissionDenied,
    InvalidState,
    NoProbers,
    NotSeen,
    Busy,
    Internal,
}

impl Code {
    pub fn name(self) -> &'static str {
        match self {
            Code::BadRequest => "bad-request",
            Code::PermissionDenied => "permission-denied",
            Code::InvalidState => "invalid-state",
            Code::NoProbers => "no-probers",
            Code::NotSeen => "not-seen",
            Code::Busy => "busy",
            Code::Internal => "internal",
        }
    }

    pub fn parse(name: &str) -> Option<Code> {
        [
            Code::BadRequest,
            Code::PermissionDenied,
            Code::InvalidState,
            Code::NoProbers,
            Code::NotSeen,
            Code::Busy,
            Code::Internal,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    v: u32,
    command: String,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    state: Option<Fields>,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// The fields of `set`'s `state`: an object whose keys are all different.
/// (A `Map` keeps the last of two equal keys; a state file with one twice
/// is refused, and so is a request.)
struct Fields(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        use serde::de::{self, MapAccess, Visitor};
        struct Once;
        impl<'de> Visitor<'de> for Once {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of state-file fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: Value = map.next_value()?;
                    if fields.contains_key(&key) {
                        let problem = crate::state::Problem::DuplicateField(key);
                        return Err(de::Error::custom(format!("\"state\" {problem}")));
                    }
                    fields.insert(key, value);
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(Once)
    }
}

/// Parses one request line (the newline is optional).
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_REQUEST {
        return Err(format!("request larger than {MAX_REQUEST} bytes"));
    }
    let raw: Raw = serde_json::from_slice(line).map_err(|e| format!("not a valid request: {e}"))?;
    if raw.v != VERSION {
        return Err(format!(
            "protocol version {} is not supported (this hapgent speaks {VERSION})",
            raw.v
        ));
    }
    let extra = |what: &str| Err(format!("\"{what}\" does not apply to {:?}", raw.command));
    if let Some(name) = &raw.service
        && name != ALL
        && !crate::config::valid_service_name(name)
    {
        return Err(format!("{name:?} is not a service name"));
    }
    let request = match raw.command.as_str() {
        "status" | "probers" | "metrics" => {
            if raw.state.is_some() {
                return extra("state");
            }
            if raw.version.is_some() || raw.timeout_ms.is_some() {
                return extra("version/timeout_ms");
            }
            if raw.service.is_some() {
                return extra("service");
            }
            match raw.command.as_str() {
                "status" => Request::Status,
                "probers" => Request::Probers,
                _ => Request::Metrics,
            }
        }
        "set" => {
            if raw.version.is_some() || raw.timeout_ms.is_some() {
                return extra("version/timeout_ms");
            }
            let Fields(state) = raw.state.ok_or("\"set\" needs \"state\"")?;
            if state.is_empty() {
                return Err("\"set\" needs at least one field in \"state\"".into());
            }
            Request::Set {
                service: raw.service,
                state,
            }
        }
        "wait-seen" => {
            if raw.state.is_some() {
                return extra("state");
            }
            if raw.service.as_deref() == Some(ALL) {
                return Err("\"wait-seen\" takes one service, not \"*\"".into());
            }
            Request::WaitSeen {
                service: raw.service,
                version: raw.version.ok_or("\"wait-seen\" needs \"version\"")?,
                timeout_ms: raw.timeout_ms.unwrap_or(30_000).min(24 * 3_600_000),
            }
        }
        other => {
            return Err(format!(
                "unknown command {other:?} (known: status, probers, metrics, set, wait-seen)"
            ));
        }
    };
    Ok(request)
}

/// Renders a request as one line, newline included.
pub fn render_request(request: &Request) -> String {
    let mut value = match request {
        Request::Status => serde_json::json!({"v": VERSION, "command": "status"}),
        Request::Probers => serde_json::json!({"v": VERSION, "command": "probers"}),
        Request::Metrics => serde_json::json!({"v": VERSION, "command": "metrics"}),
        Request::Set { state, .. } => {
            serde_json::json!({"v": VERSION, "command": "set", "state": state})
        }
        Request::WaitSeen {
            version,
            timeout_ms,
            ..
        } => serde_json::json!({
            "v": VERSION, "command": "wait-seen", "version": version, "timeout_ms": timeout_ms,
        }),
    };
    if let Request::Set {
        service: Some(name),
        ..
    }
    | Request::WaitSeen {
        service: Some(name),
        ..
    } = request
        && let Value::Object(map) = &mut value
    {
        map.insert("service".into(), name.clone().into());
    }
    let mut line = value.to_string();
    line.push('\n');
    line
}

/// A successful answer: `fields` with `"v"` and `"ok": true` added.
pub fn ok(mut fields: Map<String, Value>) -> String {
    fields.insert("v".into(), VERSION.into());
    fields.insert("ok".into(), true.into());
    line(fields)
}

/// A failed answer, with optional extra fields.
pub fn failure(code: Code, message: &str, mut fields: Map<String, Value>) -> String {
    fields.insert("v".into(), VERSION.into());
    fields.insert("ok".into(), false.into());
    fields.insert("error".into(), code.name().into());
    fields.insert("message".into(), message.into());
    line(fields)
}

fn line(fields: Map<String, Value>) -> String {
    let mut line = Value::Object(fields).to_string();
    line.push('\n');
    line
}

/// An answer as a client reads it.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub ok: bool,
    /// The failure code; `None` on success (or a code this client does
    /// not know, reported as `Internal` by `code`).
    pub error: Option<String>,
    pub message: String,
    pub fields: Map<String, Value>,
}

impl Answer {
    pub fn code(&self) -> Option<Code> {
        self.error
            .as_deref()
            .map(|e| Code::parse(e).unwrap_or(Code::Internal))
    }
}

/// Parses an answer line.
pub fn parse_answer(line: &[u8]) -> Result<Answer, String> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| format!("not a valid answer: {e}"))?;
    let Value::Object(fields) = value else {
        return Err("not a valid answer: not a JSON object".into());
    };
    if fields.get("v").and_then(Value::as_u64) != Some(u64::from(VERSION)) {
        return Err("the agent speaks another protocol version (is hapgent up to date?)".into());
    }
    let ok = fields
        .get("ok")
        .and_then(Value::as_bool)
        .ok_or("not a valid answer: no \"ok\"")?;
    let text = |k: &str| fields.get(k).and_then(Value::as_str).map(String::from);
    Ok(Answer {
        ok,
        error: if ok { None } else { text("error") },
        message: text("message").unwrap_or_default(),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn requests_parse_and_render_back() {
        let cases = [
            (r#"{"v":1,"command":"status"}"#, Request::Status),
            (r#"{"command":"probers","v":1}"#, Request::Probers),
            (r#"{"v":1,"command":"metrics"}"#, Request::Metrics),
            (
                r#"{"v":1,"command":"set","state":{"status":"DRAIN","weight":null}}"#,
                Request::Set {
                    service: None,
                    state: state(&[("status", "DRAIN".into()), ("weight", Value::Null)]),
                },
            ),
            (
                r#"{"v":1,"command":"set","service":"api","state":{"status":"UP"}}"#,
                Request::Set {
                    service: Some("api".into()),
                    state: state(&[("status", "UP".into())]),
                },
            ),
            (
                r#"{"v":1,"command":"set","service":"*","state":{"status":"UP"}}"#,
                Request::Set {
                    service: Some(ALL.into()),
                    state: state(&[("status", "UP".into())]),
                },
            ),
            (
                r#"{"v":1,"command":"wait-seen","version":7,"timeout_ms":500}"#,
                Request::WaitSeen {
                    service: None,
                    version: 7,
                    timeout_ms: 500,
                },
            ),
            (
                r#"{"v":1,"command":"wait-seen","service":"web","version":7}"#,
                Request::WaitSeen {
                    service: Some("web".into()),
                    version: 7,
                    timeout_ms: 30_000,
                },
            ),
        ];
        for (line, want) in cases {
            let got = parse_request(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(got, want, "{line}");
            let again = render_request(&got);
            assert!(again.ends_with('\n'));
            assert_eq!(parse_request(again.as_bytes()), Ok(want), "{again}");
        }
    }

    #[test]
    fn bad_requests_say_why() {
        let big = format!(
            r#"{{"v":1,"command":"status","x":"{}"}}"#,
            "a".repeat(MAX_REQUEST)
        );
        let cases: &[(&str, &str)] = &[
            ("", "not a valid request"),
            ("status", "not a valid request"),
            ("[1]", "not a valid request"),
            (r#"{"command":"status"}"#, "missing field `v`"),
            (
                r#"{"v":2,"command":"status"}"#,
                "protocol version 2 is not supported",
            ),
            (
                r#"{"v":1,"command":"reboot"}"#,
                "unknown command \"reboot\"",
            ),
            (
                r#"{"v":1,"command":"set","state":{"status":"UP","status":"DOWN"}}"#,
                "\"state\" has the field \"status\" more than once; which one is meant is unclear",
            ),
            (
                r#"{"v":1,"command":"set","state":{"weight":1,"status":"UP","weight":null}}"#,
                "has the field \"weight\" more than once",
            ),
            (
                r#"{"v":1,"command":"set","state":"UP"}"#,
                "expected an object of state-file fields",
            ),
            (
                r#"{"v":1,"command":"set","command":"set","state":{"status":"UP"}}"#,
                "duplicate field `command`",
            ),
            (
                r#"{"v":1,"command":"status","extra":1}"#,
                "unknown field `extra`",
            ),
            (r#"{"v":1,"command":"set"}"#, "\"set\" needs \"state\""),
            (
                r#"{"v":1,"command":"set","state":{}}"#,
                "at least one field",
            ),
            (
                r#"{"v":1,"command":"set","state":[]}"#,
                "not a valid request",
            ),
            (
                r#"{"v":1,"command":"status","state":{"status":"UP"}}"#,
                "does not apply",
            ),
            (
                r#"{"v":1,"command":"set","state":{"status":"UP"},"version":1}"#,
                "does not apply",
            ),
            (r#"{"v":1,"command":"wait-seen"}"#, "needs \"version\""),
            (
                r#"{"v":1,"command":"wait-seen","service":"*","version":1}"#,
                "takes one service",
            ),
            (
                r#"{"v":1,"command":"set","service":"a b","state":{"status":"UP"}}"#,
                "is not a service name",
            ),
            (
                r#"{"v":1,"command":"status","service":"api"}"#,
                "does not apply",
            ),
            (
                r#"{"v":1,"command":"wait-seen","service":"*","version":1}"#,
                "takes one service",
            ),
            (
                r#"{"v":1,"command":"set","service":"a b","state":{"status":"UP"}}"#,
                "is not a service name",
            ),
            (
                r#"{"v":1,"command":"status","service":"api"}"#,
                "does not apply",
            ),
            (
                r#"{"v":1,"command":"wait-seen","version":-1}"#,
                "not a valid request",
            ),
            (&big, "larger than"),
        ];
        for (line, want) in cases {
            match parse_request(line.as_bytes()) {
                Err(e) => assert!(e.contains(want), "{line}: {e}"),
                Ok(r) => panic!("{line}: accepted as {r:?}"),
            }
        }
    }

    #[test]
    fn answers_round_trip() {
        let mut fields = Map::new();
        fields.insert("version".into(), 3.into());
        let good = parse_answer(ok(fields.clone()).as_bytes()).unwrap();
        assert!(good.ok);
        assert_eq!(good.code(), None);
        assert_eq!(good.fields["version"], 3);
        for code in [
            Code::BadRequest,
            Code::PermissionDenied,
            Code::InvalidState,
            Code::NoProbers,
            Code::NotSeen,
            Code::Busy,
            Code::Internal,
        ] {
            let bad = parse_answer(failure(code, "why", fields.clone()).as_bytes()).unwrap();
            assert!(!bad.ok);
            assert_eq!(bad.code(), Some(code));
            assert_eq!(bad.message, "why");
        }
        for (line, want) in [
            ("nope", "not a valid answer"),
            ("[]", "not a JSON object"),
            (r#"{"v":9,"ok":true}"#, "another protocol version"),
            (r#"{"v":1}"#, "no \"ok\""),
        ] {
            let e = parse_answer(line.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
    }
}
