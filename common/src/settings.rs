//! One description per setting, from which everything else about it follows.
//!
//! A program lists its settings once, as a static array of [`Setting`]s:
//! TOML key, environment variable, flag, built-in default as text, help for
//! `--help`, the README's explanation, and the kind of value with its
//! checks. From that array come the flags the command line accepts, which
//! keys hold text whatever they look like, the checks run on a loaded
//! configuration, the settings part of the usage text, and the README's
//! settings table (which a test compares with the README).
//!
//! This module does not deserialise anything: figment still layers the
//! sources and serde still builds the typed configuration. The checks run
//! on that configuration serialised back into a figment dictionary, so the
//! table needs no accessor per field. A program's test keeps the table and
//! its configuration type in step (one entry per field, same defaults).

use crate::layer;
use figment::value::{Dict, Value};
use serde::{Serialize, de::DeserializeOwned};

/// One setting, described once.
#[derive(Debug)]
pub struct Setting {
    /// The key in the TOML file, and in the configuration type.
    pub key: &'static str,
    /// The environment variable: the program's prefix and the key in upper
    /// case (what `layer::env_dict` reads); `None` when set in the file only.
    pub env: Option<&'static str>,
    /// The flag, `--` and the key with dashes (what `layer::origin`
    /// names); `None` when set in the file only.
    pub flag: Option<&'static str>,
    /// What the flag's value is called in the usage text (`PATH`, `MS`);
    /// empty for a switch.
    pub arg: &'static str,
    /// The value used when no source gives one.
    pub default: Builtin,
    /// What the value is, and what it must satisfy.
    pub kind: Kind,
    /// A short phrase for the usage text.
    pub help: &'static str,
    /// The README's explanation (Markdown); a number's range is added.
    pub doc: &'static str,
    /// Whether a running program that reloads its configuration keeps this
    /// setting as it was (a change takes a restart). The reload asks this
    /// column, and the README's row says so.
    pub restart: bool,
}

/// A setting's built-in value.
#[derive(Debug)]
pub enum Builtin {
    /// A value, written as it would be in the environment.
    Value(&'static str),
    /// No value (`None`); the text says what that means ("unset", "off").
    Absent(&'static str),
    /// The empty value: empty text, an empty list or an empty table; the
    /// text says what that means ("everyone", "none").
    Empty(&'static str),
    /// None: the setting must be given (an entry of a table).
    Required,
}

/// What a setting's value is: how it is read from text, whether its flag
/// takes a value, and what is checked once the configuration is loaded.
#[derive(Debug)]
pub enum Kind {
    /// `true` or `false`; the flag takes no value and sets `true`.
    Switch,
    /// A whole number from `min` to `max`; `unit` ends the message when it
    /// is out of range (" milliseconds").
    Number {
        min: u64,
        max: u64,
        unit: &'static str,
    },
    /// Text, whatever it looks like (a path may well be called `2024`),
    /// checked by the function when it is set.
    Text(fn(&str) -> Result<(), String>),
    /// A list of text items: one value, comma- or space-separated, or a
    /// TOML array; the flag may be repeated. Checked as a whole.
    List(fn(&[&str]) -> Result<(), String>),
    /// A table of named entries, in the file only, each with the settings
    /// of `entry`; `name` stands for an entry's name in the README.
    Table {
        name: &'static str,
        entry: &'static [Setting],
    },
}

/// A check for text that any value passes.
pub fn any(_: &str) -> Result<(), String> {
    Ok(())
}

/// A check for a path that must not be empty.
pub fn path(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(())
}

/// A check for an optional path: unset disables, empty is a mistake.
pub fn optional_path(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty (leave it out to disable)".into());
    }
    Ok(())
}

/// The setting with this key.
pub fn find<'a>(settings: &'a [Setting], key: &str) -> Option<&'a Setting> {
    settings.iter().find(|s| s.key == key)
}

/// The setting set by `--long` (`long` as typed, without the dashes).
pub fn by_flag<'a>(settings: &'a [Setting], long: &str) -> Option<&'a Setting> {
    settings
        .iter()
        .find(|s| s.flag.and_then(|f| f.strip_prefix("--")) == Some(long))
}

/// Whether the key's value is text whatever it looks like; an unknown
/// key's is not (it is refused by name anyway).
pub fn is_text(settings: &[Setting], key: &str) -> bool {
    find(settings, key).is_some_and(|s| matches!(s.kind, Kind::Text(_) | Kind::List(_)))
}

/// A value typed in the environment or on the command line, read as the
/// setting's kind says: see [`layer::parse_value`].
pub fn parse(settings: &[Setting], key: &str, text: &str) -> figment::value::Value {
    layer::parse_value(text, is_text(settings, key))
}

/// The built-in values as a dictionary, each read from its text like an
/// environment variable; an absent one is left out. What a program's test
/// compares with its `Default`.
pub fn defaults(settings: &[Setting]) -> Dict {
    let mut dict = Dict::new();
    for s in settings {
        let value = match (&s.default, &s.kind) {
            (Builtin::Value(text), _) => parse(settings, s.key, text),
            (Builtin::Empty(_), Kind::List(_)) => Value::from(Vec::<Value>::new()),
            (Builtin::Empty(_), Kind::Table { .. }) => Value::from(Dict::new()),
            (Builtin::Empty(_), _) => Value::from(String::new()),
            (Builtin::Absent(_) | Builtin::Required, _) => continue,
        };
        dict.insert(s.key.to_string(), value);
    }
    dict
}

/// Checks each setting of a loaded configuration (serialised with
/// `layer::dict_of`): the first problem, with the key it is about. An
/// entry of a table is named in the problem (`api: state_file must not be
/// empty`).
pub fn check(settings: &'static [Setting], dict: &Dict) -> Result<(), (&'static str, String)> {
    for s in settings {
        if let Some(value) = dict.get(s.key) {
            check_value(s, value).map_err(|problem| (s.key, problem))?;
        }
    }
    Ok(())
}

/// Checks one value against its setting's kind; an unset value passes.
fn check_value(setting: &Setting, value: &Value) -> Result<(), String> {
    match (&setting.kind, value) {
        (_, Value::Empty(..)) => Ok(()),
        (Kind::Number { min, max, unit }, v) => match v.to_u128() {
            Some(n) if (u128::from(*min)..=u128::from(*max)).contains(&n) => Ok(()),
            _ => Err(format!("must be between {min} and {max}{unit}")),
        },
        (Kind::Text(check), Value::String(_, text)) => check(text),
        (Kind::List(check), Value::Array(_, items)) => {
            let items: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            check(&items)
        }
        (Kind::Table { entry, .. }, Value::Dict(_, entries)) => {
            for (name, fields) in entries {
                let Value::Dict(_, fields) = fields else {
                    continue;
                };
                for s in entry.iter() {
                    if let Some(v) = fields.get(s.key) {
                        check_value(s, v).map_err(|p| format!("{name}: {} {p}", s.key))?;
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Where the help text starts in the usage text's option lines.
const HELP_COLUMN: usize = 29;

/// Longest usage line, unless one word is longer.
const USAGE_WIDTH: usize = 79;

/// The usage text's lines for the settings that have a flag, in the
/// table's order: flag and value name, help, and the default (but for a
/// switch), wrapped under the help column.
pub fn usage(settings: &[Setting]) -> String {
    let mut out = String::new();
    for s in settings {
        let Some(flag) = s.flag else { continue };
        let head = match s.kind {
            Kind::Switch => format!("      {flag}"),
            _ => format!("      {flag} {}", s.arg),
        };
        let mut words: Vec<String> = s.help.split_whitespace().map(String::from).collect();
        if let Kind::List(_) = s.kind {
            words.push("(repeatable)".into());
        }
        match (&s.kind, &s.default) {
            (Kind::Switch, _) | (_, Builtin::Required) => {}
            (_, Builtin::Value(text) | Builtin::Absent(text) | Builtin::Empty(text)) => {
                words.push(format!("[default: {text}]"))
            }
        }
        out.push_str(&wrap(head, &words));
    }
    out
}

/// `head` padded to the help column (or followed by two spaces when it
/// reaches it), then `words` filled to `USAGE_WIDTH`, continued under the
/// help column. A `[default: …]` word is never split.
fn wrap(head: String, words: &[String]) -> String {
    let mut out = String::new();
    let mut line = if head.len() + 2 > HELP_COLUMN {
        format!("{head}  ")
    } else {
        format!("{head:<HELP_COLUMN$}")
    };
    let mut empty = true;
    for word in words {
        if !empty && line.len() + 1 + word.len() > USAGE_WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(HELP_COLUMN);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// The header of the README's settings table.
pub const MARKDOWN_HEADER: &str = "| TOML key | environment | flag | default | meaning |\n\
                                   |---|---|---|---|---|";

/// The README's settings table rows, one per setting in the table's order;
/// a table's entry settings follow it as `key.NAME.entry_key`.
pub fn markdown_rows(settings: &[Setting]) -> Vec<String> {
    let mut rows = Vec::new();
    for s in settings {
        rows.push(markdown_row(s, ""));
        if let Kind::Table { name, entry } = s.kind {
            for e in entry {
                rows.push(markdown_row(e, &format!("{}.{name}.", s.key)));
            }
        }
    }
    rows
}

/// Ends the README's explanation of a setting that a reload keeps.
pub const RESTART_NOTE: &str = "; **restart to change** (a reload keeps it)";

/// The keys of the settings a reload keeps as they were (see
/// [`Setting::restart`]), in the table's order.
pub fn restart_only(settings: &[Setting]) -> Vec<&'static str> {
    settings
        .iter()
        .filter(|s| s.restart)
        .map(|s| s.key)
        .collect()
}

/// One row of the README's settings table.
fn markdown_row(s: &Setting, prefix: &str) -> String {
    let code = |text: Option<&str>| text.map_or_else(|| "—".to_string(), |t| format!("`{t}`"));
    let mut flag = code(s.flag);
    if let (Kind::List(_), Some(_)) = (&s.kind, s.flag) {
        flag.push_str(" (repeatable)");
    }
    let default = match s.default {
        Builtin::Value(text) => format!("`{text}`"),
        Builtin::Absent(text) | Builtin::Empty(text) => text.to_string(),
        Builtin::Required => "required".to_string(),
    };
    let mut meaning = match s.kind {
        Kind::Number { min, max, .. } => format!("{} ({min}–{max})", s.doc),
        _ => s.doc.to_string(),
    };
    if s.restart {
        meaning.push_str(RESTART_NOTE);
    }
    format!(
        "| `{prefix}{}` | {} | {flag} | {default} | {meaning} |",
        s.key,
        code(s.env)
    )
}

/// The rows of the first Markdown table after the line `heading` in
/// `markdown` (header and separator lines left out), or `None` when there
/// is no such heading or table.
pub fn markdown_table<'a>(markdown: &'a str, heading: &str) -> Option<Vec<&'a str>> {
    let after = markdown.split_once(&format!("\n{heading}\n"))?.1;
    let mut lines = after
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    lines.next()?; // the header
    lines.next()?; // |---|---|
    Some(lines.collect())
}

/// For a program's tests: its table and its configuration type `C` agree.
/// Every field of `C` has exactly one entry and every entry a field, and
/// the table's defaults, read as if typed in the environment, load as
/// `C::default()`. The error lists every disagreement.
pub fn check_against<C>(settings: &[Setting]) -> Result<(), String>
where
    C: Default + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let fields = layer::dict_of(&C::default());
    let mut keys: Vec<&str> = settings.iter().map(|s| s.key).collect();
    keys.sort_unstable();
    let listed = keys.len();
    keys.dedup();
    if keys.len() != listed {
        return Err(format!("a key is listed twice: {keys:?}"));
    }
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    if keys != names {
        return Err(format!(
            "the table lists {keys:?}, the fields are {names:?}"
        ));
    }
    let table = figment::Figment::new().merge(layer::Layer::new("default", defaults(settings)));
    let config: C = table
        .extract()
        .map_err(|e| format!("the table's defaults do not load: {e}"))?;
    let got = layer::dict_of(&config);
    let wrong: Vec<String> = fields
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: table {:?}, default {v:?}", got.get(k)))
        .collect();
    if !wrong.is_empty() || config != C::default() {
        return Err(format!(
            "the table's defaults differ:\n{}",
            wrong.join("\n")
        ));
    }
    Ok(())
}

/// Which rows differ between a document's table and the rows wanted, as
/// `-` (only in the document) and `+` (only wanted) lines in table order,
/// followed by the whole table to paste; `None` when they are the same.
pub fn table_diff(document: &[&str], wanted: &[String]) -> Option<String> {
    if document.len() == wanted.len() && document.iter().zip(wanted).all(|(d, w)| d == w) {
        return None;
    }
    // Longest common subsequence, so that one row added or removed shows
    // as that row alone (tables are tens of rows).
    let (n, m) = (document.len(), wanted.len());
    let mut common = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if document[i] == wanted[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && document[i] == wanted[j] {
            (i, j) = (i + 1, j + 1);
        } else if j == m || (i < n && common[i + 1][j] >= common[i][j + 1]) {
            out.push_str(&format!("- {}\n", document[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", wanted[j]));
            j += 1;
        }
    }
    out.push_str(&format!(
        "\nThe whole table, as it should read:\n\n{MARKDOWN_HEADER}\n{}\n",
        wanted.join("\n")
    ));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn even(items: &[&str]) -> Result<(), String> {
        if items.len() % 2 == 1 {
            return Err(format!("{} items: an even number is needed", items.len()));
        }
        Ok(())
    }

    static ENTRY: &[Setting] = &[Setting {
        key: "file",
        env: None,
        flag: None,
        arg: "",
        default: Builtin::Required,
        kind: Kind::Text(path),
        help: "",
        doc: "the entry's file",
        restart: false,
    }];

    static SETTINGS: &[Setting] = &[
        Setting {
            key: "port",
            env: Some("T_PORT"),
            flag: Some("--port"),
            arg: "PORT",
            default: Builtin::Value("9"),
            kind: Kind::Number {
                min: 1,
                max: 99,
                unit: " (a port)",
            },
            help: "TCP port",
            doc: "the port",
            restart: false,
        },
        Setting {
            key: "verbose",
            env: Some("T_VERBOSE"),
            flag: Some("--verbose"),
            arg: "",
            default: Builtin::Value("false"),
            kind: Kind::Switch,
            help: "say more",
            doc: "say more",
            restart: true,
        },
        Setting {
            key: "names",
            env: Some("T_NAMES"),
            flag: Some("--names"),
            arg: "NAME",
            default: Builtin::Empty("nobody"),
            kind: Kind::List(even),
            help: "names, a long explanation of what they are, which goes on and on until it wraps",
            doc: "names",
            restart: false,
        },
        Setting {
            key: "extra",
            env: Some("T_EXTRA"),
            flag: Some("--extra-long-flag-name"),
            arg: "PATH",
            default: Builtin::Absent("unset"),
            kind: Kind::Text(optional_path),
            help: "an extra file",
            doc: "an extra file",
            restart: false,
        },
        Setting {
            key: "entries",
            env: None,
            flag: None,
            arg: "",
            default: Builtin::Empty("none"),
            kind: Kind::Table {
                name: "NAME",
                entry: ENTRY,
            },
            help: "",
            doc: "named entries",
            restart: false,
        },
    ];

    #[test]
    fn flags_and_text_keys_come_from_the_table() {
        assert_eq!(by_flag(SETTINGS, "port").map(|s| s.key), Some("port"));
        assert_eq!(
            by_flag(SETTINGS, "extra-long-flag-name").map(|s| s.key),
            Some("extra")
        );
        assert!(by_flag(SETTINGS, "entries").is_none());
        assert!(is_text(SETTINGS, "names") && is_text(SETTINGS, "extra"));
        assert!(!is_text(SETTINGS, "port") && !is_text(SETTINGS, "unknown"));
        assert_eq!(
            parse(SETTINGS, "extra", "12"),
            Value::from("12".to_string())
        );
        assert_eq!(parse(SETTINGS, "port", "12").to_u128(), Some(12));
    }

    #[test]
    fn defaults_are_read_like_the_environment() {
        let d = defaults(SETTINGS);
        assert_eq!(d["port"].to_u128(), Some(9));
        assert_eq!(d["verbose"], Value::from(false));
        assert_eq!(d["names"], Value::from(Vec::<Value>::new()));
        assert_eq!(d["entries"], Value::from(Dict::new()));
        assert!(!d.contains_key("extra"));
    }

    #[test]
    fn checks_name_the_key_and_the_entry() {
        let dict = |pairs: Vec<(&str, Value)>| -> Dict {
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        let ok = dict(vec![
            ("port", Value::from(99u16)),
            ("names", Value::from(vec!["a", "b"])),
        ]);
        assert_eq!(check(SETTINGS, &ok), Ok(()));
        for (pairs, key, problem) in [
            (
                vec![("port", Value::from(0u16))],
                "port",
                "must be between 1 and 99 (a port)",
            ),
            (
                vec![("names", Value::from(vec!["a"]))],
                "names",
                "1 items: an even number is needed",
            ),
            (
                vec![("extra", Value::from(""))],
                "extra",
                "must not be empty (leave it out to disable)",
            ),
            (
                vec![(
                    "entries",
                    Value::from(dict(vec![(
                        "api",
                        Value::from(dict(vec![("file", Value::from(""))])),
                    )])),
                )],
                "entries",
                "api: file must not be empty",
            ),
        ] {
            assert_eq!(check(SETTINGS, &dict(pairs)), Err((key, problem.into())));
        }
    }

    #[test]
    fn usage_lines_are_aligned_and_wrapped() {
        assert_eq!(
            usage(SETTINGS),
            "      --port PORT            TCP port [default: 9]\n\
             \x20     --verbose              say more\n\
             \x20     --names NAME           names, a long explanation of what they are, which\n\
             \x20                            goes on and on until it wraps (repeatable)\n\
             \x20                            [default: nobody]\n\
             \x20     --extra-long-flag-name PATH  an extra file [default: unset]\n"
        );
    }

    #[test]
    fn markdown_rows_and_their_diff() {
        let rows = markdown_rows(SETTINGS);
        assert_eq!(
            rows,
            [
                "| `port` | `T_PORT` | `--port` | `9` | the port (1–99) |",
                "| `verbose` | `T_VERBOSE` | `--verbose` | `false` | say more; **restart to change** (a reload keeps it) |",
                "| `names` | `T_NAMES` | `--names` (repeatable) | nobody | names |",
                "| `extra` | `T_EXTRA` | `--extra-long-flag-name` | unset | an extra file |",
                "| `entries` | — | — | none | named entries |",
                "| `entries.NAME.file` | — | — | required | the entry's file |",
            ]
        );
        let doc = format!(
            "# T\n\n## Settings\n\ntext\n\n{MARKDOWN_HEADER}\n{}\n\nmore\n| not | this |\n",
            rows.join("\n")
        );
        let table = markdown_table(&doc, "## Settings").unwrap();
        assert_eq!(table_diff(&table, &rows), None);
        let diff = table_diff(&table[1..], &rows).unwrap();
        assert!(diff.starts_with(&format!("+ {}\n\n", rows[0])), "{diff}");
        let mut changed = table.clone();
        changed[2] = "| `names` | changed |";
        changed.push("| extra |");
        let diff = table_diff(&changed, &rows).unwrap();
        assert!(
            diff.starts_with(&format!(
                "- | `names` | changed |\n+ {}\n- | extra |\n\n",
                rows[2]
            )),
            "{diff}"
        );
        assert!(markdown_table(&doc, "## Other").is_none());
        assert_eq!(restart_only(SETTINGS), ["verbose"]);
    }

    /// `check_against` finds a default that differs and a field without
    /// an entry, and accepts a table that agrees.
    #[test]
    fn check_against_finds_disagreements() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Agrees {
            port: u16,
            verbose: bool,
        }
        impl Default for Agrees {
            fn default() -> Self {
                Agrees {
                    port: 9,
                    verbose: false,
                }
            }
        }
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug, Default)]
        struct OtherDefault {
            port: u16,
            verbose: bool,
        }
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug, Default)]
        struct ExtraField {
            port: u16,
            verbose: bool,
            colour: bool,
        }
        let two = &SETTINGS[..2];
        assert_eq!(check_against::<Agrees>(two), Ok(()));
        let e = check_against::<OtherDefault>(two).unwrap_err();
        assert!(e.contains("port: table") && !e.contains("verbose"), "{e}");
        let e = check_against::<ExtraField>(two).unwrap_err();
        assert!(e.contains("colour"), "{e}");
    }
}
