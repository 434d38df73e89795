//! The state file: what the operator wants HAProxy to do with this server.
//!
//! The format is the Zig hapgent's, so existing files and scripts keep
//! working: a JSON object with a required `status` and optional `weight` and
//! `maxconn`, plus an optional `description` that HAProxy shows after `#`.
//! Validation is strict and every problem is reported as one sentence naming
//! the field, because a state file that is silently half-understood is how a
//! server ends up with traffic it should not have.
//!
//! This module parses, validates and saves. It does not decide what to send
//! to HAProxy (see `protocol`), what an unusable file means (see `served`),
//! nor when to load or save (see `service`).

use crate::files::{self, ReadError};
use hapgent_common::atomic;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Largest state file accepted. A real one is under 100 bytes; anything near
/// this is not a state file, and refusing it bounds what a read can cost.
pub const MAX_FILE_BYTES: u64 = 4096;

/// Longest description sent, in bytes. HAProxy accepts far more, but a
/// reply should stay well under 128 bytes, and the description is a label
/// for a human, not a log.
pub const MAX_DESCRIPTION: usize = 64;

/// The statuses of the Zig hapgent, spelled as in its state file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Up,
    Down,
    Ready,
    Drain,
    Fail,
    Maint,
    Stopped,
}

impl Status {
    /// Every status, in the order the documentation lists them.
    pub const ALL: [Status; 7] = [
        Status::Up,
        Status::Down,
        Status::Ready,
        Status::Drain,
        Status::Fail,
        Status::Maint,
        Status::Stopped,
    ];

    /// The name used in the state file and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Down => "DOWN",
            Status::Ready => "READY",
            Status::Drain => "DRAIN",
            Status::Fail => "FAIL",
            Status::Maint => "MAINT",
            Status::Stopped => "STOPPED",
        }
    }

    /// Parses a status name. Case is ignored: `"drain"` meaning anything but
    /// DRAIN would take a server out of rotation over a typing detail.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// One complete state, as stored in the file and held in memory. (It is
/// `Deserialize` for clients reading the agent's answers; a state file is
/// read by `parse`, which is strict.)
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct State {
    pub status: Status,
    /// Percentage of the weight configured in HAProxy, 0–255.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
    /// Connection limit; 0 means unlimited to HAProxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxconn: Option<u16>,
    /// Free text shown by HAProxy after `#`; sanitized when rendered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl State {
    /// A state with only a status, as after an unreadable file (`FAIL`).
    pub fn with_status(status: Status) -> State {
        State {
            status,
            weight: None,
            maxconn: None,
            description: None,
        }
    }

    /// This state with another status, everything else kept: what SIGUSR1
    /// and SIGUSR2 do.
    pub fn set_status(&self, status: Status) -> State {
        State {
            status,
            ..self.clone()
        }
    }

    /// The file contents for this state: compact JSON and a newline.
    pub fn to_json(&self) -> String {
        // Serializing a struct of plain fields into a String cannot fail.
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

impl fmt::Display for State {
    /// A short form for logs: `DRAIN weight=50 maxconn=300 description="x"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status.name())?;
        if let Some(w) = self.weight {
            write!(f, " weight={w}")?;
        }
        if let Some(m) = self.maxconn {
            write!(f, " maxconn={m}")?;
        }
        if let Some(d) = &self.description {
            write!(f, " description={d:?}")?;
        }
        Ok(())
    }
}

/// Why a state file could not be used. Displayed after the file's name.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    Missing,
    NotRegular,
    Unreadable(String),
    TooLarge(u64),
    /// A change (`hapgent ctl set`) whose state would not fit in the state
    /// file: its size as saved, and its description's size.
    WouldBeTooLarge {
        bytes: usize,
        description: usize,
    },
    NotUtf8(usize),
    NotJson(String),
    NotObject,
    MissingStatus,
    UnknownField(String),
    DuplicateField(String),
    BadStatus(String),
    BadType(&'static str, &'static str),
    OutOfRange(&'static str, String, u64),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing => f.write_str("does not exist"),
            Problem::NotRegular => f.write_str("is not a regular file"),
            Problem::Unreadable(e) => write!(f, "cannot be read: {e}"),
            Problem::TooLarge(n) => write!(
                f,
                "is larger than {MAX_FILE_BYTES} bytes ({n} bytes): not a state file"
            ),
            Problem::WouldBeTooLarge { bytes, description } => write!(
                f,
                "would take {bytes} bytes in the state file, over its limit of {MAX_FILE_BYTES}; \
                 its description is {description} bytes: shorten it (HAProxy is sent at most \
                 the first {} anyway)",
                MAX_DESCRIPTION
            ),
            Problem::NotUtf8(at) => write!(f, "is not valid UTF-8 (byte {at})"),
            Problem::NotJson(e) => write!(f, "is not valid JSON: {e}"),
            Problem::NotObject => {
                f.write_str("must hold a JSON object such as {\"status\":\"UP\"}")
            }
            Problem::MissingStatus => f.write_str("has no \"status\" field; it is required"),
            Problem::UnknownField(k) => write!(
                f,
                "has an unknown field {k:?} (known: status, weight, maxconn, description)"
            ),
            Problem::DuplicateField(k) => write!(
                f,
                "has the field {k:?} more than once; which one is meant is unclear"
            ),
            Problem::BadStatus(s) => write!(
                f,
                "has an unknown status {s:?} (expected one of UP, DOWN, READY, DRAIN, FAIL, MAINT, STOPPED)"
            ),
            Problem::BadType(k, want) => write!(f, "field {k:?} must be {want}"),
            Problem::OutOfRange(k, got, max) => {
                write!(f, "field {k:?} is {got}, outside the range 0-{max}")
            }
        }
    }
}

/// Parses and validates the contents of a state file. Pure: the table of
/// valid and invalid files in the tests below is the specification.
pub fn parse(bytes: &[u8]) -> Result<State, Problem> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Problem::TooLarge(bytes.len() as u64));
    }
    parse_any_size(bytes)
}

/// `parse` without the size cap, for text already bounded elsewhere.
fn parse_any_size(bytes: &[u8]) -> Result<State, Problem> {
    let text = std::str::from_utf8(bytes).map_err(|e| Problem::NotUtf8(e.valid_up_to()))?;
    let value: Value = serde_json::from_str(text).map_err(|e| Problem::NotJson(e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(Problem::NotObject);
    };
    if let Some(key) = duplicate_key(text) {
        return Err(Problem::DuplicateField(key));
    }
    let mut status = None;
    let mut state = State::with_status(Status::Fail);
    for (key, value) in &fields {
        match key.as_str() {
            "status" => {
                let name = value
                    .as_str()
                    .ok_or(Problem::BadType("status", "a string such as \"UP\""))?;
                status = Some(Status::parse(name).ok_or_else(|| Problem::BadStatus(name.into()))?);
            }
            // null means absent, as in the Zig hapgent's optional fields.
            "weight" => state.weight = number(value, "weight", u8::MAX.into())?.map(|n| n as u8),
            "maxconn" => {
                state.maxconn = number(value, "maxconn", u16::MAX.into())?.map(|n| n as u16)
            }
            "description" => {
                state.description = match value {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    _ => return Err(Problem::BadType("description", "a string")),
                }
            }
            _ => return Err(Problem::UnknownField(key.clone())),
        }
    }
    state.status = status.ok_or(Problem::MissingStatus)?;
    Ok(state)
}

/// `current` with `fields` changed, as `hapgent ctl` asks: a field given
/// replaces the current value, `null` removes it, a field left out is kept.
/// The result is validated exactly like a state file (it is one: the merged
/// object goes through `parse`), and must fit in one as saved.
pub fn merge(current: &State, fields: &serde_json::Map<String, Value>) -> Result<State, Problem> {
    let Ok(Value::Object(mut object)) = serde_json::to_value(current) else {
        return Err(Problem::NotObject);
    };
    for (key, value) in fields {
        if value.is_null() {
            object.remove(key);
        } else {
            object.insert(key.clone(), value.clone());
        }
    }
    // The request that carried `fields` is bounded (see `wire`); what
    // matters here is the size of the file the change would be saved as.
    let state = parse_any_size(Value::Object(object).to_string().as_bytes())?;
    let bytes = state.to_json().len();
    if bytes as u64 > MAX_FILE_BYTES {
        return Err(Problem::WouldBeTooLarge {
            bytes,
            description: state.description.as_ref().map_or(0, String::len),
        });
    }
    Ok(state)
}

/// The first top-level key that appears twice in a JSON object, if any. A
/// parsed `Value` keeps only the last of them, so this is a second pass
/// over text already known to be a valid object.
fn duplicate_key(text: &str) -> Option<String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seen: Vec<String> = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                if seen.contains(&key) {
                    return Ok(Some(key));
                }
                seen.push(key);
            }
            Ok(None)
        }
    }
    serde_json::Deserializer::from_str(text)
        .deserialize_map(Keys)
        .ok()
        .flatten()
}

/// An optional whole number no larger than `max`.
fn number(value: &Value, key: &'static str, max: u64) -> Result<Option<u64>, Problem> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(v) if v <= max => Ok(Some(v)),
            Some(_) => Err(Problem::OutOfRange(key, n.to_string(), max)),
            None if n.is_i64() => Err(Problem::OutOfRange(key, n.to_string(), max)),
            None => Err(Problem::BadType(key, "a whole number")),
        },
        _ => Err(Problem::BadType(key, "a whole number")),
    }
}

/// Reads and parses the state file at `path` (a regular file of at most
/// `MAX_FILE_BYTES`; see `files`).
pub fn load(path: &Path) -> Result<State, Problem> {
    let bytes = files::read_regular(path, MAX_FILE_BYTES).map_err(|e| match e {
        ReadError::Missing => Problem::Missing,
        ReadError::NotRegular => Problem::NotRegular,
        ReadError::TooLarge { size, .. } => Problem::TooLarge(size),
        ReadError::Io(e) => Problem::Unreadable(e.to_string()),
    })?;
    parse(&bytes)
}

impl Problem {
    /// Whether the file could not be read at all (descriptors exhausted,
    /// I/O error, permission), as opposed to read and found wanting. Only
    /// the latter says anything about the state the operator wants.
    pub fn is_transient(&self) -> bool {
        matches!(self, Problem::Unreadable(_))
    }
}

/// The temporary file a save by this process writes before renaming it
/// over `path` (or the file its links lead to): `.NAME.tmp.PID` beside it.
pub fn temp_path(path: &Path) -> Option<PathBuf> {
    atomic::target(path)
        .and_then(|t| atomic::temp_name(&t))
        .ok()
}

/// Replaces the state file with `state`, atomically (see
/// `hapgent_common::atomic`): a reader, or a crash, sees the old complete
/// file or the new complete file, never a mix. The file keeps its mode and,
/// where permitted, its owner; a symbolic link is followed (and a dangling
/// one gets its target created). On failure the old file is left as it was.
pub fn save(path: &Path, state: &State) -> io::Result<()> {
    atomic::replace(path, state.to_json().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn state(status: Status, w: Option<u8>, m: Option<u16>, d: Option<&str>) -> State {
        State {
            status,
            weight: w,
            maxconn: m,
            description: d.map(String::from),
        }
    }

    #[test]
    fn valid_files() {
        use Status::*;
        let cases: &[(&str, State)] = &[
            (r#"{"status":"UP"}"#, state(Up, None, None, None)),
            (r#"{"status":"DOWN"}"#, state(Down, None, None, None)),
            (r#"{"status":"READY"}"#, state(Ready, None, None, None)),
            (r#"{"status":"DRAIN"}"#, state(Drain, None, None, None)),
            (r#"{"status":"FAIL"}"#, state(Fail, None, None, None)),
            (r#"{"status":"MAINT"}"#, state(Maint, None, None, None)),
            (r#"{"status":"STOPPED"}"#, state(Stopped, None, None, None)),
            (r#"{"status":"drain"}"#, state(Drain, None, None, None)),
            (
                r#"{"status":"UP","weight":77,"maxconn":300}"#,
                state(Up, Some(77), Some(300), None),
            ),
            (
                r#"{"weight":0,"maxconn":0,"status":"DOWN"}"#,
                state(Down, Some(0), Some(0), None),
            ),
            (
                r#"{"status":"UP","weight":255,"maxconn":65535}"#,
                state(Up, Some(255), Some(65535), None),
            ),
            (
                r#"{"status":"UP","weight":null,"maxconn":null,"description":null}"#,
                state(Up, None, None, None),
            ),
            (
                "{\"status\":\"MAINT\",\"description\":\"disk swap\"}\n",
                state(Maint, None, None, Some("disk swap")),
            ),
            (
                " \n\t{ \"status\" : \"UP\" } \n",
                state(Up, None, None, None),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text.as_bytes()).as_ref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn invalid_files() {
        use Problem::*;
        let big = format!(r#"{{"status":"UP","description":"{}"}}"#, "x".repeat(5000));
        let cases: Vec<(&[u8], Problem)> = vec![
            (
                b"",
                NotJson("EOF while parsing a value at line 1 column 0".into()),
            ),
            (
                b"{\"status\":",
                NotJson("EOF while parsing a value at line 1 column 10".into()),
            ),
            (b"[]", NotObject),
            (b"\"UP\"", NotObject),
            (b"{}", MissingStatus),
            (b"{\"weight\":5}", MissingStatus),
            (b"{\"status\":\"UPP\"}", BadStatus("UPP".into())),
            (b"{\"status\":\"failed\"}", BadStatus("failed".into())),
            (
                b"{\"status\":1}",
                BadType("status", "a string such as \"UP\""),
            ),
            (
                b"{\"status\":null}",
                BadType("status", "a string such as \"UP\""),
            ),
            (
                b"{\"status\":\"UP\",\"weight\":256}",
                OutOfRange("weight", "256".into(), 255),
            ),
            (
                b"{\"status\":\"UP\",\"weight\":-1}",
                OutOfRange("weight", "-1".into(), 255),
            ),
            (
                b"{\"status\":\"UP\",\"weight\":1.5}",
                BadType("weight", "a whole number"),
            ),
            (
                b"{\"status\":\"UP\",\"weight\":\"50\"}",
                BadType("weight", "a whole number"),
            ),
            (
                b"{\"status\":\"UP\",\"maxconn\":65536}",
                OutOfRange("maxconn", "65536".into(), 65535),
            ),
            (
                b"{\"status\":\"UP\",\"maxconn\":true}",
                BadType("maxconn", "a whole number"),
            ),
            (
                b"{\"status\":\"UP\",\"description\":5}",
                BadType("description", "a string"),
            ),
            (
                b"{\"status\":\"UP\",\"Weight\":5}",
                UnknownField("Weight".into()),
            ),
            (
                b"{\"status\":\"UP\",\"agent\":\"x\"}",
                UnknownField("agent".into()),
            ),
            (b"{\"status\":\"UP\"\xff}", NotUtf8(14)),
            (big.as_bytes(), TooLarge(big.len() as u64)),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                parse(bytes),
                Err(want),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn problems_read_as_sentences() {
        let p = parse(b"{\"status\":\"UP\",\"weight\":300}").unwrap_err();
        assert_eq!(
            p.to_string(),
            "field \"weight\" is 300, outside the range 0-255"
        );
        let p = parse(b"{\"status\":\"SOON\"}").unwrap_err();
        assert!(p.to_string().contains("unknown status \"SOON\""), "{p}");
    }

    #[test]
    fn json_round_trip() {
        let cases = [
            (state(Status::Up, None, None, None), "{\"status\":\"UP\"}\n"),
            (
                state(Status::Drain, Some(50), Some(0), Some("a \"b\"")),
                "{\"status\":\"DRAIN\",\"weight\":50,\"maxconn\":0,\"description\":\"a \\\"b\\\"\"}\n",
            ),
        ];
        for (s, json) in cases {
            assert_eq!(s.to_json(), json);
            assert_eq!(parse(json.as_bytes()), Ok(s));
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hapgent-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn save_replaces_atomically_and_keeps_mode() {
        let dir = temp_dir("save");
        let path = dir.join("state.json");
        fs::write(&path, "{\"status\":\"UP\"}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let new = state(Status::Down, Some(10), None, None);
        save(&path, &new).unwrap();
        assert_eq!(load(&path), Ok(new));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        // Nothing but the state file is left behind.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn save_creates_a_missing_file() {
        let dir = temp_dir("create");
        let path = dir.join("state.json");
        save(&path, &State::with_status(Status::Up)).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"status\":\"UP\"}\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn save_follows_a_symlink() {
        let dir = temp_dir("link");
        let real = dir.join("real.json");
        let link = dir.join("state.json");
        fs::write(&real, "{\"status\":\"UP\"}").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        save(&link, &State::with_status(Status::Drain)).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(load(&real), Ok(State::with_status(Status::Drain)));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn merge_changes_keeps_and_removes_fields() {
        use serde_json::json;
        let current = state(Status::Drain, Some(30), Some(7), Some("x"));
        let fields = |v: Value| v.as_object().unwrap().clone();
        let cases: Vec<(Value, Result<State, Problem>)> = vec![
            (
                json!({"status": "UP"}),
                Ok(state(Status::Up, Some(30), Some(7), Some("x"))),
            ),
            (
                json!({"weight": null, "description": "deploying"}),
                Ok(state(Status::Drain, None, Some(7), Some("deploying"))),
            ),
            (
                json!({"status": "maint", "maxconn": 0}),
                Ok(state(Status::Maint, Some(30), Some(0), Some("x"))),
            ),
            (
                json!({"weight": 300}),
                Err(Problem::OutOfRange("weight", "300".into(), 255)),
            ),
            (json!({"status": null}), Err(Problem::MissingStatus)),
            (
                json!({"status": "BROKEN"}),
                Err(Problem::BadStatus("BROKEN".into())),
            ),
            (
                json!({"colour": "red"}),
                Err(Problem::UnknownField("colour".into())),
            ),
            (
                json!({"maxconn": "many"}),
                Err(Problem::BadType("maxconn", "a whole number")),
            ),
        ];
        for (change, want) in cases {
            assert_eq!(merge(&current, &fields(change.clone())), want, "{change}");
        }
        // A huge description is refused, saying what to shorten.
        let big = json!({"description": "d".repeat(5000)});
        let problem = merge(&current, &fields(big)).unwrap_err();
        assert_eq!(
            problem,
            Problem::WouldBeTooLarge {
                bytes: State {
                    description: Some("d".repeat(5000)),
                    ..current.clone()
                }
                .to_json()
                .len(),
                description: 5000
            }
        );
        assert!(
            problem
                .to_string()
                .contains("its description is 5000 bytes: shorten it"),
            "{problem}"
        );
        // The limit is the saved file's size, newline included: a state
        // that would save as exactly the limit is accepted, one more byte
        // is not.
        let base = State {
            description: Some(String::new()),
            ..current.clone()
        }
        .to_json()
        .len();
        let fit = MAX_FILE_BYTES as usize - base;
        let ok = merge(&current, &fields(json!({"description": "d".repeat(fit)}))).unwrap();
        assert_eq!(ok.to_json().len() as u64, MAX_FILE_BYTES);
        assert!(matches!(
            merge(
                &current,
                &fields(json!({"description": "d".repeat(fit + 1)}))
            ),
            Err(Problem::WouldBeTooLarge { .. })
        ));
    }

    #[test]
    fn save_through_a_dangling_symlink_creates_its_target() {
        let dir = temp_dir("dangling");
        let link = dir.join("state.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        save(&link, &State::with_status(Status::Down)).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            load(&dir.join("real.json")),
            Ok(State::with_status(Status::Down))
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_save_leaves_old_file() {
        // A directory in place of the temporary name makes the save fail
        // after the old file was read, the way a full disk would.
        let dir = temp_dir("fail");
        let path = dir.join("state.json");
        fs::write(&path, "{\"status\":\"UP\"}").unwrap();
        let tmp = dir.join(format!(".state.json.tmp.{}", std::process::id()));
        fs::create_dir(&tmp).unwrap();
        assert!(save(&path, &State::with_status(Status::Down)).is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"status\":\"UP\"}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn save_replaces_a_planted_temporary_link_without_following_it() {
        let dir = temp_dir("planted");
        let path = dir.join("state.json");
        let victim = dir.join("victim");
        fs::write(&victim, "keep").unwrap();
        let tmp = dir.join(format!(".state.json.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        save(&path, &State::with_status(Status::Up)).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(load(&path), Ok(State::with_status(Status::Up)));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_refuses_what_is_not_a_regular_file() {
        let dir = temp_dir("fifo");
        let fifo = dir.join("state.json");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        // Returns at once instead of waiting for a writer.
        assert_eq!(load(&fifo), Err(Problem::NotRegular));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_reports_missing_and_oversized() {
        let dir = temp_dir("load");
        assert_eq!(load(&dir.join("nope.json")), Err(Problem::Missing));
        let big = dir.join("big.json");
        fs::write(&big, vec![b' '; 1 << 20]).unwrap();
        assert_eq!(load(&big), Err(Problem::TooLarge(1 << 20)));
        assert_eq!(load(&dir), Err(Problem::NotRegular));
        fs::remove_dir_all(&dir).unwrap();
    }
}
