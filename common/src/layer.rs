//! The building blocks of layered configuration: built-in defaults < a
//! TOML file < `PREFIX_KEY` environment variables < command-line flags.
//!
//! Each layer is a [`Layer`] figment provider whose name (`"default"`,
//! `"file"`, `"env"`, `"flag"`) and, for the file, path let [`origin`] say
//! where a value came from the way the user would write it (`file
//! /etc/x.toml`, `env HAPGENT_LB_KEY`, `flag --key`). Errors come back as
//! one line of text; the caller wraps them in its own error type.
//!
//! This module does not know any program's settings: the caller brings its
//! `Config` type (serialized with [`dict_of`] for the defaults and the list
//! of known keys), its environment prefix, and which keys hold text.

use figment::value::{Dict, Map, Num, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A figment layer with a fixed set of values, named so that [`origin`]
/// can describe it: `"default"`, `"file"` (with `source`), `"env"`, `"flag"`.
pub struct Layer {
    /// What [`origin`] reports: `"default"`, `"file"`, `"env"` or `"flag"`.
    pub name: &'static str,
    /// The file a `"file"` layer was read from.
    pub source: Option<PathBuf>,
    /// The values, keys as in the TOML file.
    pub dict: Dict,
}

impl Layer {
    /// A layer of fixed values (defaults, environment, flags).
    pub fn new(name: &'static str, dict: Dict) -> Layer {
        Layer {
            name,
            source: None,
            dict,
        }
    }

    /// The `"file"` layer read from the TOML file at `path`.
    pub fn file(path: &Path) -> Result<Layer, String> {
        Ok(Layer {
            name: "file",
            source: Some(path.to_path_buf()),
            dict: read_toml(path)?,
        })
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        match &self.source {
            Some(path) => Metadata::from(self.name, path.as_path()),
            None => Metadata::named(self.name),
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Names a value's source the way the user would write it: `file PATH`,
/// `env PREFIXKEY`, `flag --key`, or the layer's name.
pub fn origin(md: &Metadata, key: &str, env_prefix: &str) -> String {
    if let Some(path) = md.source.as_ref().and_then(|s| s.file_path()) {
        return format!("file {}", path.display());
    }
    match md.name.as_ref() {
        "env" => format!("env {env_prefix}{}", key.to_ascii_uppercase()),
        "flag" => format!("flag --{}", key.replace('_', "-")),
        other => other.to_string(),
    }
}

/// Largest configuration file read; a real one is a few KiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a TOML file into a dictionary; the error is one line starting
/// with `file PATH:`. It must be a regular file of at most
/// `MAX_FILE_BYTES` (a FIFO would hang the start, `/dev/zero` would never
/// end); `/dev/null` is read as an empty file, the usual way to say "no
/// configuration file".
pub fn read_toml(path: &Path) -> Result<Dict, String> {
    let fail = |what: String| format!("file {}: {what}", path.display());
    if path == Path::new("/dev/null") {
        return Ok(Dict::new());
    }
    let bytes =
        crate::files::read_regular(path, MAX_FILE_BYTES).map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "is not valid UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    toml::from_str(&text).map_err(|e| fail(one_line(&e.to_string())))
}

/// Joins a multi-line message (the TOML parser draws the offending line)
/// into one line, keeping the words and dropping the drawing.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| {
            !(l.starts_with('|')
                || l.split_once(" |")
                    .is_some_and(|(n, _)| n.parse::<u32>().is_ok()))
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// Settings from `PREFIX<KEY>` variables, keys lowercased, values parsed by
/// `parse(key, text)`. `PREFIXCONFIG` names the file and is not a setting.
/// Names must be upper case, as every documented one is: `PREFIXport` is a
/// typo to report, not a second spelling of `PREFIXPORT`.
pub fn env_dict(
    env: &[(String, String)],
    prefix: &str,
    parse: impl Fn(&str, &str) -> Value,
) -> Result<Dict, String> {
    let mut dict = Dict::new();
    for (name, text) in env {
        let Some(k) = name.strip_prefix(prefix) else {
            continue;
        };
        if k == "CONFIG" {
            continue;
        }
        if k.is_empty() || k.bytes().any(|b| b.is_ascii_lowercase()) {
            let hint = if k.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {prefix}{}?)", k.to_ascii_uppercase())
            };
            return Err(format!(
                "environment variable {name}: setting names are upper case{hint}"
            ));
        }
        let key = k.to_ascii_lowercase();
        let value = parse(&key, text);
        dict.insert(key, value);
    }
    Ok(dict)
}

/// Settings from flags as typed, (key, text), parsed like the environment.
pub fn flag_dict(flags: &[(&'static str, String)], parse: impl Fn(&str, &str) -> Value) -> Dict {
    flags
        .iter()
        .map(|(k, v)| (k.to_string(), parse(k, v)))
        .collect()
}

/// A value typed on a command line or in the environment: text as is when
/// `text_key` (a path may well be called `2024`); otherwise `true`/`false`
/// are booleans, whole numbers are numbers, and anything else is text (and
/// then rejected with the key's expected type).
pub fn parse_value(text: &str, text_key: bool) -> Value {
    let trimmed = text.trim();
    if text_key {
        return Value::from(text.to_string());
    }
    if let Ok(b) = trimmed.parse::<bool>() {
        Value::from(b)
    } else if let Ok(n) = trimmed.parse::<u64>() {
        Value::from(Num::U64(n))
    } else if let Ok(n) = trimmed.parse::<i64>() {
        Value::from(Num::I64(n))
    } else {
        Value::from(text.to_string())
    }
}

/// A serializable configuration as a dictionary (empty if it is not a map).
pub fn dict_of<T: Serialize>(value: &T) -> Dict {
    match Value::serialize(value) {
        Ok(Value::Dict(_, dict)) => dict,
        _ => Dict::new(),
    }
}

/// One line for a figment error, naming the key and its source.
pub fn report(figment: &Figment, error: figment::Error, env_prefix: &str) -> String {
    let key = error.path.join(".");
    let md = error
        .metadata
        .as_ref()
        .or_else(|| figment.find_metadata(&key));
    let from = match md {
        Some(md) => format!(" from {}", origin(md, &key, env_prefix)),
        None => String::new(),
    };
    let kind = describe_kind(&error.kind);
    if key.is_empty() {
        format!("error{from}: {kind}")
    } else {
        format!("{key}{from}: {kind}")
    }
}

/// A figment error in the user's terms: a number out of its type's range
/// says so, instead of "invalid type".
fn describe_kind(kind: &figment::error::Kind) -> String {
    use figment::error::{Actual, Kind};
    let (Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected)) = kind else {
        return kind.to_string();
    };
    let max: u128 = match expected.as_str() {
        "u8" => u8::MAX.into(),
        "u16" => u16::MAX.into(),
        "u32" => u32::MAX.into(),
        "u64" => u64::MAX.into(),
        _ => return kind.to_string(),
    };
    match actual {
        Actual::Unsigned(n) => format!("{n} is out of range: must be between 0 and {max}"),
        Actual::Signed(n) => format!("{n} is out of range: must be between 0 and {max}"),
        _ => format!("{actual} is not a whole number between 0 and {max}"),
    }
}

/// Refuses a key that is not in `known`, naming where it came from and
/// listing the known ones (a typo should not be silently ignored).
pub fn check_known(figment: &Figment, known: &Dict, env_prefix: &str) -> Result<(), String> {
    let data = figment.data().map_err(|e| report(figment, e, env_prefix))?;
    let Some(dict) = data.get(&Profile::Default) else {
        return Ok(());
    };
    for key in dict.keys() {
        if !known.contains_key(key) {
            let from = figment.find_metadata(key).map_or_else(String::new, |md| {
                format!(" from {}", origin(md, key, env_prefix))
            });
            let keys: Vec<&str> = known.keys().map(String::as_str).collect();
            return Err(format!(
                "unknown key {key:?}{from} (known keys: {})",
                keys.join(", ")
            ));
        }
    }
    Ok(())
}

/// `key = value  # source` lines, one per key of `effective`, valid TOML
/// (an unset optional value is written as a comment).
pub fn describe(figment: &Figment, effective: &Dict, env_prefix: &str) -> String {
    let mut out = String::new();
    for (key, value) in effective {
        let source = figment
            .find_metadata(key)
            .map_or_else(|| "default".to_string(), |md| origin(md, key, env_prefix));
        for line in toml_lines(key, value) {
            out.push_str(&format!("{line:<44} # {source}\n"));
        }
    }
    out
}

/// `key = value` lines for one setting, valid TOML: an unset value is a
/// comment, a table one line per leaf (`services."api.v2".state_file = ..`),
/// an empty table a comment, but an empty table inside one `{}` (it may
/// mean something by being there: `[capacity.load]`).
fn toml_lines(key: &str, value: &Value) -> Vec<String> {
    match value {
        Value::Empty(..) => vec![format!("# {key} is unset")],
        Value::Dict(_, dict) if dict.is_empty() && key.contains('.') => {
            vec![format!("{key} = {{}}")]
        }
        Value::Dict(_, dict) if dict.is_empty() => vec![format!("# {key}: none")],
        Value::Dict(_, dict) => dict
            .iter()
            .flat_map(|(k, v)| {
                let bare = k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                let k = if bare { k.clone() } else { toml_text(k) };
                toml_lines(&format!("{key}.{k}"), v)
            })
            .collect(),
        v => vec![format!("{key} = {}", toml_text(v))],
    }
}

/// A value or quoted key in TOML. JSON's rendering is valid TOML except
/// for DEL (U+007F), which JSON leaves raw and TOML allows only escaped.
fn toml_text<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value)
        .unwrap_or_default()
        .replace('\u{7f}', "\\u007f")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Settings {
        port: u16,
        name: String,
        extra: Option<String>,
    }

    fn figment(
        file: Option<&Path>,
        env: &[(&str, &str)],
        flags: &[(&'static str, &str)],
    ) -> Figment {
        let parse = |k: &str, v: &str| parse_value(v, k == "name");
        let defaults = Settings {
            port: 1,
            name: "x".into(),
            extra: None,
        };
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let flags: Vec<(&'static str, String)> =
            flags.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let mut f = Figment::new().merge(Layer::new("default", dict_of(&defaults)));
        if let Some(p) = file {
            f = f.merge(Layer::file(p).unwrap());
        }
        f.merge(Layer::new("env", env_dict(&env, "T_", parse).unwrap()))
            .merge(Layer::new("flag", flag_dict(&flags, parse)))
    }

    #[test]
    fn layers_take_precedence_and_name_their_source() {
        let path = std::env::temp_dir().join(format!("hapgent-common-{}.toml", std::process::id()));
        std::fs::write(&path, "port = 2\nname = \"file\"\n").unwrap();
        let f = figment(
            Some(&path),
            &[("T_PORT", "3"), ("T_CONFIG", "ignored")],
            &[("name", "007")],
        );
        let s: Settings = f.extract().unwrap();
        assert_eq!(
            s,
            Settings {
                port: 3,
                name: "007".into(),
                extra: None
            }
        );
        let source = |f: &Figment, key: &str| origin(f.find_metadata(key).unwrap(), key, "T_");
        assert_eq!(source(&f, "port"), "env T_PORT");
        assert_eq!(source(&f, "name"), "flag --name");
        let text = describe(&f, &dict_of(&s), "T_");
        assert!(text.contains("# extra is unset"), "{text}");
        assert!(text.contains("name = \"007\""), "{text}");
        let only_file = figment(Some(&path), &[], &[]);
        assert_eq!(
            source(&only_file, "port"),
            format!("file {}", path.display())
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn errors_are_one_line_and_name_the_source() {
        let f = figment(None, &[("T_PORT", "http")], &[]);
        let e = f.extract::<Settings>().unwrap_err();
        assert_eq!(
            report(&f, e, "T_"),
            "port from env T_PORT: string \"http\" is not a whole number between 0 and 65535"
        );
        let f = figment(None, &[], &[("prot", "1")]);
        let known = dict_of(&Settings {
            port: 1,
            name: String::new(),
            extra: Some(String::new()),
        });
        assert_eq!(
            check_known(&f, &known, "T_").unwrap_err(),
            "unknown key \"prot\" from flag --prot (known keys: extra, name, port)"
        );
        let bad =
            std::env::temp_dir().join(format!("hapgent-common-bad-{}.toml", std::process::id()));
        std::fs::write(&bad, "port = \n").unwrap();
        let e = Layer::file(&bad).err().unwrap();
        assert_eq!(
            e,
            format!(
                "file {}: TOML parse error at line 1, column 8: string values must be quoted, expected literal string",
                bad.display()
            )
        );
        std::fs::remove_file(&bad).unwrap();
    }

    #[test]
    fn environment_names_are_upper_case() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let parse = |_: &str, v: &str| parse_value(v, true);
        assert_eq!(
            env_dict(&env(&[("T_port", "1")]), "T_", parse).unwrap_err(),
            "environment variable T_port: setting names are upper case (did you mean T_PORT?)"
        );
        assert!(env_dict(&env(&[("T_", "1")]), "T_", parse).is_err());
        let ok = env_dict(
            &env(&[("T_PORT", "1"), ("T_CONFIG", "/x"), ("OTHER", "y")]),
            "T_",
            parse,
        )
        .unwrap();
        assert_eq!(ok.keys().collect::<Vec<_>>(), ["port"]);
    }

    #[test]
    fn described_values_are_toml_that_reads_back() {
        // Found by fuzzing (config): a path with DEL in it was described
        // raw, which no TOML parser accepts, so check-config's output did
        // not load.
        for text in [
            "/var/lib/x\u{7f}y",
            "\u{7f}",
            "a\"b\\c",
            "tab\tnl\n\u{1}",
            "caf\u{e9} \u{fffd}",
        ] {
            let mut dict = Dict::new();
            dict.insert(text.to_string(), Value::from(text.to_string()));
            let lines = toml_lines("k", &Value::from(text.to_string()))
                .into_iter()
                .chain(toml_lines("t", &Value::from(dict)));
            let toml: String = lines.map(|l| l + "\n").collect();
            let read: Dict = toml::from_str(&toml).unwrap_or_else(|e| panic!("{toml:?}: {e}"));
            assert_eq!(read["k"].as_str(), Some(text), "{toml:?}");
            let table = read["t"].as_dict().unwrap();
            assert_eq!(table[text].as_str(), Some(text), "{toml:?}");
        }
    }

    #[test]
    fn values_from_text() {
        for (text, text_key, want) in [
            ("true", false, Value::from(true)),
            ("12", false, Value::from(Num::U64(12))),
            ("-3", false, Value::from(Num::I64(-3))),
            ("abc", false, Value::from("abc".to_string())),
            ("12", true, Value::from("12".to_string())),
        ] {
            assert_eq!(parse_value(text, text_key), want, "{text}");
        }
    }
}
