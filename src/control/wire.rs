//! The control protocol: one JSON request line, one JSON answer line, and
//! the types of both, used by the agent (`control`), by `hapgent ctl`
//! (`control::client`) and by the examples in docs/control.md (a test
//! below keeps that document in step with these types).
//!
//! Every request carries `"v": 1`, the protocol version; a server refuses
//! versions it does not know. Requests are parsed strictly (unknown fields
//! are errors) and are at most `MAX_REQUEST` bytes.
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
//!
//! Lines are written through `serde_json::Value`, whose objects keep their
//! keys sorted: every object on the wire has its fields in alphabetical
//! order, whatever the order of the fields in the types below.

use crate::state::State;
use serde::{Deserialize, Serialize};
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

/// A request line as it travels: the fields of every command, of which
/// `parse_request` checks that those given apply to the command.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestLine {
    pub v: u32,
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Fields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// The fields of `set`'s `state`: an object whose keys are all different.
/// (A `Map` keeps the last of two equal keys; a state file with one twice
/// is refused, and so is a request.)
#[derive(Debug, Serialize)]
pub struct Fields(pub Map<String, Value>);

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
    let raw: RequestLine =
        serde_json::from_slice(line).map_err(|e| format!("not a valid request: {e}"))?;
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
    let line = |command: &str| RequestLine {
        v: VERSION,
        command: command.into(),
        service: None,
        state: None,
        version: None,
        timeout_ms: None,
    };
    let line = match request {
        Request::Status => line("status"),
        Request::Probers => line("probers"),
        Request::Metrics => line("metrics"),
        Request::Set { service, state } => RequestLine {
            service: service.clone(),
            state: Some(Fields(state.clone())),
            ..line("set")
        },
        Request::WaitSeen {
            service,
            version,
            timeout_ms,
        } => RequestLine {
            service: service.clone(),
            version: Some(*version),
            timeout_ms: Some(*timeout_ms),
            ..line("wait-seen")
        },
    };
    to_line(&line)
}

/// One service as answers show it: its name (empty for the default
/// service), the version of its state, whether the state file holds it,
/// the state, and the reply it gives now (without the newline).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ServiceAnswer {
    pub service: String,
    pub version: u64,
    pub saved: bool,
    pub state: State,
    pub reply: String,
    /// Only for a service with health checks, capacity monitors or a
    /// `maxconn_total`: why the reply is what it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthAnswer>,
}

/// Why a service's reply is what it is: the reasons (headline first), each
/// check's last result, the capacity monitors' values, the budget.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct HealthAnswer {
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckAnswer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityAnswer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxconn_total: Option<u32>,
    /// With `maxconn_total`: the load balancers probing, that it is split
    /// across.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancers: Option<usize>,
}

/// One health check: `passing`, `failing` or `unknown` (no result yet),
/// its last run's result, how long it took, and its counts.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct CheckAnswer {
    pub name: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    pub duration_ms: f64,
    /// Consecutive failures up to the last run.
    pub fails: u32,
    pub runs: u64,
    pub failures: u64,
}

/// The capacity monitors: the composite load, whether it drains, and
/// each monitor's last value.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct CapacityAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_percent: Option<f64>,
    pub draining: bool,
    pub monitors: Vec<MonitorAnswer>,
}

/// One capacity monitor: its value (absent before its first reading), the
/// level at which it is full, its significance, its load, and whether its
/// last read failed.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct MonitorAnswer {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub full: f64,
    pub significance: u32,
    pub load_percent: f64,
    pub failing: bool,
}

/// One prober (a load balancer's source address, about one service) as
/// `status` and `probers` list it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Prober {
    pub address: String,
    pub service: String,
    pub first_probe_ms_ago: u64,
    pub last_probe_ms_ago: u64,
    pub probes: u64,
    pub probing: bool,
    /// The state version its last reply carried.
    pub version: u64,
    pub reply: String,
    /// Set (to `true`) when the name it asks about is not configured.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unknown_service: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// The answer to `probers`, and part of `status`'s.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ProbersAnswer {
    pub probers: Vec<Prober>,
    /// How recently a prober must have probed to count as probing.
    pub seen_window_ms: u64,
}

/// The answer to `status`: the default service's fields, every service,
/// and the probers.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct StatusAnswer {
    #[serde(flatten)]
    pub default: Option<ServiceAnswer>,
    pub services: Vec<ServiceAnswer>,
    #[serde(flatten)]
    pub probers: ProbersAnswer,
}

/// The answer to `set`: the first service changed, and every one changed.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct SetAnswer {
    #[serde(flatten)]
    pub first: ServiceAnswer,
    pub services: Vec<ServiceAnswer>,
}

/// The answer to `metrics`: the Prometheus text.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct MetricsAnswer {
    pub metrics: String,
}

/// The answer to `wait-seen`, and the fields of its `not-seen` and
/// `no-probers` failures: the service and version waited for, and how
/// each prober did (none with `no-probers`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct WaitSeenAnswer {
    pub service: String,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probers: Option<Vec<Progress>>,
}

/// How one prober did in a `wait-seen`: `seen` and `after_ms`; or not
/// seen while `probing`; or not seen, no longer probing, and
/// `last_probe_ms_ago`; or not seen and `evicted` from the prober table.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Progress {
    pub address: String,
    pub seen: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probing: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_ms_ago: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted: Option<bool>,
}

/// An answer line around its fields: `v`, `ok`, and for a failure `error`
/// and `message`. They come after the body's fields, so they win over a
/// field of the same name there.
#[derive(Serialize)]
struct Envelope<'a, T> {
    #[serde(flatten)]
    body: T,
    v: u32,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

/// No fields besides the envelope's, for failures that carry none.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct NoFields {}

/// A successful answer: `body`'s fields with `"v"` and `"ok": true`.
pub fn ok(body: impl Serialize) -> String {
    to_line(&Envelope {
        body,
        v: VERSION,
        ok: true,
        error: None,
        message: None,
    })
}

/// A failed answer, with the fields of `details` (`NoFields` for none).
pub fn failure(code: Code, message: &str, details: impl Serialize) -> String {
    to_line(&Envelope {
        body: details,
        v: VERSION,
        ok: false,
        error: Some(code.name()),
        message: Some(message),
    })
}

/// One line of JSON, its objects' keys sorted (see the module's header).
/// Only a map with keys that are not text could fail here; none of the
/// types above has one.
fn to_line(value: &impl Serialize) -> String {
    let mut line = serde_json::to_value(value)
        .map(|v| v.to_string())
        .unwrap_or_else(|e| {
            let message = format!("rendering the answer failed: {e}");
            serde_json::json!({"v": VERSION, "ok": false, "error": "internal", "message": message})
                .to_string()
        });
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
    /// The answer's fields as the typed answer `T`.
    pub fn body<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(Value::Object(self.fields.clone()))
            .map_err(|e| format!("not a valid answer: {e}"))
    }

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

    /// Example lines of every request and answer, made from the types:
    /// docs/control.md shows each.
    fn examples() -> Vec<String> {
        let state = State {
            status: crate::state::Status::Drain,
            weight: Some(40),
            maxconn: Some(300),
            description: Some("deploying v2".into()),
        };
        let service = ServiceAnswer {
            service: String::new(),
            version: 7,
            saved: true,
            state,
            reply: "up drain 40% maxconn:300 # deploying v2".into(),
            health: None,
        };
        let api = ServiceAnswer {
            service: "api".into(),
            version: 2,
            saved: false,
            state: State::with_status(crate::state::Status::Up),
            reply: "down ready 62% maxconn:50 # check app failed".into(),
            health: Some(HealthAnswer {
                reasons: vec![
                    "down because check app failed 2× (HTTP 503)".into(),
                    "weight 62 % because capacity load is 38 %, mostly memory 81 % used (full at 95 %)".into(),
                    "maxconn 50: maxconn_total 100 split across 2 load balancers".into(),
                ],
                checks: vec![CheckAnswer {
                    name: "app".into(),
                    status: "failing".into(),
                    last: Some("HTTP 503".into()),
                    duration_ms: 1.5,
                    fails: 2,
                    runs: 40,
                    failures: 2,
                }],
                capacity: Some(CapacityAnswer {
                    load_percent: Some(38.0),
                    draining: false,
                    monitors: vec![MonitorAnswer {
                        name: "memory".into(),
                        value: Some(81.0),
                        full: 95.0,
                        significance: 1,
                        load_percent: 85.3,
                        failing: false,
                    }],
                }),
                maxconn_total: Some(100),
                load_balancers: Some(2),
            }),
        };
        let prober = |address: &str, service: &str, unknown_service: bool| Prober {
            address: address.into(),
            service: service.into(),
            first_probe_ms_ago: 61_000,
            last_probe_ms_ago: 1_200,
            probes: 31,
            probing: !unknown_service,
            version: if unknown_service { 0 } else { 7 },
            reply: if unknown_service {
                String::new()
            } else {
                service_reply()
            },
            unknown_service,
        };
        fn service_reply() -> String {
            "up drain 40% maxconn:300 # deploying v2".into()
        }
        let probers = ProbersAnswer {
            probers: vec![
                prober("10.0.0.2", "", false),
                prober("10.0.0.3", "nosuch", true),
            ],
            seen_window_ms: 30_000,
        };
        let progress = |address: &str| Progress {
            address: address.into(),
            seen: false,
            after_ms: None,
            probing: None,
            last_probe_ms_ago: None,
            evicted: None,
        };
        let waited = WaitSeenAnswer {
            service: String::new(),
            version: 7,
            probers: Some(vec![
                Progress {
                    seen: true,
                    after_ms: Some(180),
                    ..progress("10.0.0.2")
                },
                Progress {
                    probing: Some(true),
                    ..progress("10.0.0.3")
                },
                Progress {
                    probing: Some(false),
                    last_probe_ms_ago: Some(31_240),
                    ..progress("10.0.0.4")
                },
                Progress {
                    evicted: Some(true),
                    ..progress("10.0.0.5")
                },
            ]),
        };
        let mut lines: Vec<String> = [
            Request::Status,
            Request::Probers,
            Request::Metrics,
            Request::Set {
                service: Some("api".into()),
                state: state_fields(&[("status", "DRAIN".into()), ("weight", Value::Null)]),
            },
            Request::WaitSeen {
                service: None,
                version: 7,
                timeout_ms: 30_000,
            },
        ]
        .iter()
        .map(render_request)
        .collect();
        lines.extend([
            ok(StatusAnswer {
                default: Some(service.clone()),
                services: vec![service.clone(), api.clone()],
                probers: probers.clone(),
            }),
            ok(probers),
            ok(SetAnswer {
                first: api.clone(),
                services: vec![api],
            }),
            ok(MetricsAnswer {
                metrics: "# HELP hapgent_build_info hapgent's version; always 1.\n...".into(),
            }),
            ok(WaitSeenAnswer {
                probers: waited.probers.as_ref().map(|p| p[..1].to_vec()),
                ..waited.clone()
            }),
            failure(
                Code::NotSeen,
                "version 7 was not seen by every load balancer: ...",
                waited,
            ),
            failure(
                Code::NoProbers,
                "no load balancer is probing this agent, so nobody can confirm version 7: ...",
                WaitSeenAnswer {
                    service: String::new(),
                    version: 7,
                    probers: None,
                },
            ),
            failure(
                Code::InvalidState,
                "the new state field \"weight\" is 300, outside the range 0-255",
                NoFields {},
            ),
        ]);
        lines.iter().map(|l| l.trim_end().to_string()).collect()
    }

    fn state_fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
        state(pairs)
    }

    /// Every object key in `value`, nested ones included.
    fn keys(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    out.push(k.clone());
                    keys(v, out);
                }
            }
            Value::Array(list) => list.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }

    /// docs/control.md shows an example of every request and answer, as
    /// these types write it, names every field of them, and every error
    /// code.
    #[test]
    fn the_protocol_document_matches_the_types() {
        let doc = include_str!("../../docs/control.md");
        let mut missing = Vec::new();
        let mut fields = Vec::new();
        for line in examples() {
            if !doc.contains(&format!("    {line}\n")) {
                missing.push(line.clone());
            }
            keys(&serde_json::from_str(&line).unwrap(), &mut fields);
        }
        assert!(
            missing.is_empty(),
            "docs/control.md lacks these examples (indented 4):\n{}",
            missing.join("\n")
        );
        for field in fields {
            assert!(
                doc.contains(&format!("`{field}`")),
                "docs/control.md never names `{field}`"
            );
        }
        for code in [
            Code::BadRequest,
            Code::PermissionDenied,
            Code::InvalidState,
            Code::NoProbers,
            Code::NotSeen,
            Code::Busy,
            Code::Internal,
        ] {
            assert!(
                doc.contains(&format!("`{}`", code.name())),
                "{}",
                code.name()
            );
        }
        assert!(doc.contains(&format!("`\"v\":{VERSION}`")));
    }
}
