//! A packaged configuration file (`debian/hapgent.toml`) held to the
//! settings table, so that a new setting cannot be left out of it.
//!
//! The file is prose comments around one line per setting: `key = value`
//! where the package sets it, `#key = value` (or `# key = value`) where it
//! shows an example to uncomment. [`check`] asks of it that every setting
//! of the table has its line; that a commented example of a setting with a
//! built-in value shows that value (uncommenting it changes nothing); that
//! the file with every example uncommented loads (the examples are valid);
//! and that a line says "restart to change" exactly when the table marks
//! the setting `restart`. Tables appear as `[key.NAME]` headers, commented
//! or not, with their entries' lines after them.
//!
//! This module reads no file: a program's test hands it the text.

use crate::layer::{self, Layer};
use crate::settings::{self, Builtin, Kind, Setting};
use figment::Figment;
use figment::value::Dict;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a line of a setting that needs a restart says after its value.
pub const RESTART_MARK: &str = "# restart to change";

/// One line of a setting, as the file has it.
struct Line<'a> {
    setting: &'static Setting,
    /// The line without its comment mark, as TOML.
    toml: &'a str,
    /// Whether it was commented out (an example).
    example: bool,
}

/// Checks a packaged configuration file against the settings table and
/// the configuration type `C` (see the module's description): every
/// problem, one per line.
pub fn check<C>(settings: &'static [Setting], text: &str) -> Result<(), String>
where
    C: Default + Serialize + DeserializeOwned + PartialEq,
{
    let (lines, uncommented) = read(settings, text);
    let mut problems = Vec::new();
    for s in settings {
        if !lines.iter().any(|l| l.setting.key == s.key) {
            problems.push(format!("{} is missing: add {}", s.key, suggestion(s)));
        }
    }
    for line in &lines {
        if line.toml.contains(RESTART_MARK) != line.setting.restart {
            let should = if line.setting.restart { "" } else { " not" };
            problems.push(format!(
                "{}: the line should{should} end with \"{RESTART_MARK}\"",
                line.setting.key
            ));
        }
        if line.example
            && let Err(e) = shows_default::<C>(line)
        {
            problems.push(e);
        }
    }
    if let Err(e) = loads::<C>(settings, &uncommented) {
        problems.push(format!("with every example uncommented: {e}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The lines of top-level settings, and the text with every example line
/// (a setting's, a table header, a table entry's) uncommented.
fn read<'a>(settings: &'static [Setting], text: &'a str) -> (Vec<Line<'a>>, String) {
    let mut lines = Vec::new();
    let mut uncommented = String::new();
    // The entries' settings once a table header has been seen.
    let mut entries: Option<&'static [Setting]> = None;
    for raw in text.lines() {
        let (body, example) = match raw.strip_prefix('#') {
            Some(rest) => (rest.trim_start(), true),
            None => (raw, false),
        };
        if let Some((setting, entry)) = table_header(settings, body) {
            // Every table's header counts, not only the first one's.
            if !lines.iter().any(|l: &Line| l.setting.key == setting.key) {
                lines.push(Line {
                    setting,
                    toml: body,
                    example,
                });
            }
            entries = Some(entry);
            uncommented.push_str(body);
        } else if let Some(setting) = key_of(entries.unwrap_or(settings), body) {
            if entries.is_none() {
                lines.push(Line {
                    setting,
                    toml: body,
                    example,
                });
            }
            uncommented.push_str(body);
        } else if !example {
            uncommented.push_str(raw);
        }
        uncommented.push('\n');
    }
    (lines, uncommented)
}

/// The table setting that a `[key.NAME]` line opens, and its entries'
/// settings.
fn table_header(
    settings: &'static [Setting],
    line: &str,
) -> Option<(&'static Setting, &'static [Setting])> {
    let inside = line.trim().strip_prefix('[')?.strip_suffix(']')?;
    let (key, _) = inside.split_once('.')?;
    let setting = settings::find(settings, key.trim())?;
    match setting.kind {
        Kind::Table { entry, .. } => Some((setting, entry)),
        _ => None,
    }
}

/// The setting a `key = value` line sets, if it is one of `settings`.
fn key_of(settings: &'static [Setting], line: &str) -> Option<&'static Setting> {
    let (key, _) = line.split_once('=')?;
    settings::find(settings, key.trim())
}

/// The line to add for a missing setting.
fn suggestion(s: &Setting) -> String {
    let restart = if s.restart {
        format!("  {RESTART_MARK}")
    } else {
        String::new()
    };
    match (&s.kind, &s.default) {
        (Kind::Table { .. }, _) => format!("#[{}.NAME] with its entries", s.key),
        (Kind::Text(_) | Kind::List(_), Builtin::Value(text)) => {
            format!("#{} = {:?}{restart}", s.key, text)
        }
        (_, Builtin::Value(text)) => format!("#{} = {text}{restart}", s.key),
        _ => format!("#{} = <an example>{restart}", s.key),
    }
}

/// A commented example of a setting with a built-in value shows that
/// value: uncommenting it changes nothing.
fn shows_default<C>(line: &Line) -> Result<(), String>
where
    C: Default + Serialize + DeserializeOwned + PartialEq,
{
    let Builtin::Value(default) = line.setting.default else {
        return Ok(());
    };
    let key = line.setting.key;
    let wrong = || {
        format!(
            "{key}: the example \"{}\" is not the default {default}",
            line.toml
        )
    };
    let dict: Dict = toml::from_str(line.toml).map_err(|_| wrong())?;
    let config: C = Figment::new()
        .merge(Layer::new("default", layer::dict_of(&C::default())))
        .merge(Layer::new("file", dict))
        .extract()
        .map_err(|_| wrong())?;
    if config != C::default() {
        return Err(wrong());
    }
    Ok(())
}

/// The text loads as a configuration: TOML, known keys of the right
/// types, each value as the table's checks want it.
fn loads<C>(settings: &'static [Setting], text: &str) -> Result<(), String>
where
    C: Default + Serialize + DeserializeOwned,
{
    let dict: Dict = toml::from_str(text).map_err(|e| layer::one_line(&e.to_string()))?;
    let figment = Figment::new()
        .merge(Layer::new("default", layer::dict_of(&C::default())))
        .merge(Layer::new("file", dict));
    layer::check_known(&figment, &layer::dict_of(&C::default()), "")?;
    let config: C = figment
        .extract()
        .map_err(|e| layer::report(&figment, e, ""))?;
    settings::check(settings, &layer::dict_of(&config))
        .map_err(|(key, problem)| format!("{key}: {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    static ENTRY: &[Setting] = &[Setting {
        key: "file",
        env: None,
        flag: None,
        arg: "",
        default: Builtin::Required,
        kind: Kind::Text(settings::path),
        help: "",
        doc: "",
        restart: false,
    }];

    static SETTINGS: &[Setting] = &[
        Setting {
            key: "port",
            env: None,
            flag: None,
            arg: "",
            default: Builtin::Value("9"),
            kind: Kind::Number {
                min: 1,
                max: 99,
                unit: "",
            },
            help: "",
            doc: "",
            restart: false,
        },
        Setting {
            key: "name",
            env: None,
            flag: None,
            arg: "",
            default: Builtin::Absent("unset"),
            kind: Kind::Text(settings::any),
            help: "",
            doc: "",
            restart: true,
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
            doc: "",
            restart: false,
        },
    ];

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Config {
        port: u16,
        name: Option<String>,
        entries: BTreeMap<String, Entry>,
    }

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        file: String,
    }

    impl Default for Config {
        fn default() -> Self {
            Config {
                port: 9,
                name: None,
                entries: BTreeMap::new(),
            }
        }
    }

    const GOOD: &str = "\
# A port, as the package sets it.
port = 7

# A name = something, in prose.
# name = \"x\"  # restart to change

#[entries.a]
#file = \"/a\"
";

    #[test]
    fn a_file_that_shows_every_setting_passes() {
        assert_eq!(check::<Config>(SETTINGS, GOOD), Ok(()));
        let example = GOOD.replace("port = 7", "#port = 9");
        assert_eq!(check::<Config>(SETTINGS, &example), Ok(()));
    }

    #[test]
    fn each_problem_is_named() {
        for (from, to, want) in [
            ("port = 7\n", "", "port is missing: add #port = 9"),
            (
                "port = 7",
                "#port = 7",
                "port: the example \"port = 7\" is not the default 9",
            ),
            (
                "port = 7",
                "#port = 100",
                "port: the example \"port = 100\" is not the default 9",
            ),
            (
                "  # restart to change",
                "",
                "name: the line should end with \"# restart to change\"",
            ),
            (
                "#file = \"/a\"",
                "#file = \"\"",
                "with every example uncommented: entries: a: file must not be empty",
            ),
            ("#file", "#fiel", "with every example uncommented:"),
            (
                "#[entries.a]\n#file = \"/a\"\n",
                "",
                "entries is missing: add #[entries.NAME] with its entries",
            ),
        ] {
            let text = GOOD.replace(from, to);
            assert_ne!(text, GOOD, "{from}");
            let got = check::<Config>(SETTINGS, &text).unwrap_err();
            assert!(got.starts_with(want), "{from:?}: want {want}\n got {got}");
        }
        let unmarked = GOOD.replace("# name = \"x\"  # restart to change", "#name = \"x\"");
        let suggested = GOOD.replace("port = 7\n", "").replace("# name", "#bogus");
        let got = check::<Config>(SETTINGS, &suggested).unwrap_err();
        assert!(
            got.contains("name is missing: add #name = <an example>  # restart to change"),
            "{got}"
        );
        assert!(check::<Config>(SETTINGS, &unmarked).is_err());
    }
}
