//! The front door to a program's configuration: built-in defaults < a
//! TOML file < `PREFIX_KEY` environment variables < command-line flags,
//! loaded the one way both programs load it.
//!
//! A program describes its configuration once, as a [`Spec`]: its name,
//! its environment prefix, its default file and its settings table. It
//! brings its typed configuration and the checks that involve several
//! settings; [`load`] does the rest: which file to read (and whether it
//! must exist), the four layers, unknown keys, the table's checks, and one
//! line per error naming the key and where its value came from. The result,
//! [`Loaded`], remembers the source of every value for `check-config`.
//!
//! This module knows no program's settings or types. Its building blocks
//! are [`crate::layer`] (figment layers that name their source) and
//! [`crate::settings`] (the table).

use crate::layer::{self, Layer};
use crate::settings::{self, Setting};
use figment::Figment;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What a program's configuration is, described once.
#[derive(Debug)]
pub struct Spec {
    /// The program's name, as its messages say it (`hapgent`).
    pub program: &'static str,
    /// What its environment variables start with (`HAPGENT_`);
    /// `PREFIXCONFIG` names the file, every other `PREFIXKEY` sets `key`.
    pub env_prefix: &'static str,
    /// Read when neither `--config` nor `PREFIXCONFIG` names a file; may
    /// be absent.
    pub default_file: &'static str,
    /// Every setting (see [`crate::settings`]).
    pub settings: &'static [Setting],
}

impl Spec {
    /// The usage text's options for the configuration: where settings may
    /// also be given, `--config` with the default file, then one line per
    /// setting flag (see [`settings::usage`]).
    pub fn usage(&self) -> String {
        format!(
            "Options (each also {}<KEY> in the environment and <key> in the file):\n  \
             -c, --config PATH          configuration file [default: {}]\n{}",
            self.env_prefix,
            self.default_file,
            settings::usage(self.settings)
        )
    }

    /// The inputs of this process: `--config` and the setting flags as the
    /// command line gave them, the environment, and the default file.
    pub fn inputs(
        &self,
        config_flag: Option<PathBuf>,
        flags: Vec<(&'static str, String)>,
    ) -> Result<Inputs, String> {
        Ok(Inputs {
            config_flag,
            default_file: PathBuf::from(self.default_file),
            env: environment(self.env_prefix)?,
            flags,
        })
    }
}

/// Where the configuration comes from: what the process was given. Kept
/// by a program that loads it again (the agent, on SIGHUP).
#[derive(Clone, Debug)]
pub struct Inputs {
    /// `--config`, if given: then the file must exist.
    pub config_flag: Option<PathBuf>,
    /// Read when neither `--config` nor `PREFIXCONFIG` names a file; may
    /// be absent. The spec's `default_file` except in tests.
    pub default_file: PathBuf,
    /// The process environment (all of it; only `PREFIX*` is used).
    pub env: Vec<(String, String)>,
    /// Flags as typed: (key, value).
    pub flags: Vec<(&'static str, String)>,
}

/// The process environment as text, for [`Inputs::env`]. A variable that
/// starts with `prefix` and is not UTF-8 is a configuration error rather
/// than silently ignored; any other such variable is left out.
pub fn environment(prefix: &str) -> Result<Vec<(String, String)>, String> {
    text_environment(std::env::vars_os(), prefix)
}

/// [`environment`] of the given variables.
fn text_environment(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    prefix: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut env = Vec::new();
    for (key, value) in vars {
        match (key.to_str(), value.to_str()) {
            (Some(k), Some(v)) => env.push((k.to_string(), v.to_string())),
            _ if key.to_string_lossy().starts_with(prefix) => {
                return Err(format!(
                    "environment variable {} is not valid UTF-8",
                    key.to_string_lossy()
                ));
            }
            _ => {}
        }
    }
    Ok(env)
}

/// A program's checks of what involves several settings: on failure, the
/// key the problem is reported under, and the problem.
pub type Problem = (&'static str, String);

/// The configuration together with the source of each value.
pub struct Loaded<C> {
    pub config: C,
    figment: Figment,
    env_prefix: &'static str,
    /// The configuration file read, when it held nothing but whitespace
    /// (`/dev/null` excepted): all defaults, which a reload refuses.
    empty_file: Option<PathBuf>,
}

impl<C: Serialize> Loaded<C> {
    /// The configuration, without the sources of its values.
    pub fn into_config(self) -> C {
        self.config
    }

    /// `key = value  # source` lines, one per setting (an unset one as a
    /// comment, tables as dotted keys), valid TOML: what `check-config`
    /// prints.
    pub fn describe(&self) -> String {
        layer::describe(
            &self.figment,
            &layer::dict_of(&self.config),
            self.env_prefix,
        )
    }

    /// Where `key`'s value came from, as `describe` says it (`file PATH`,
    /// `env PREFIXKEY`, `flag --key`, `default`).
    pub fn origin(&self, key: &str) -> Option<String> {
        let md = self.figment.find_metadata(key)?;
        Some(layer::origin(md, key, self.env_prefix))
    }

    /// Refuses a configuration file that was empty, as a reload must: a
    /// file caught half-written, or truncated by a deployment gone wrong,
    /// would otherwise move the listener to the default address and the
    /// state to the default file. A deliberate "all defaults" is a file
    /// with a comment in it.
    pub fn refuse_empty(&self) -> Result<(), String> {
        match &self.empty_file {
            Some(file) => Err(format!(
                "configuration file {} is empty; refusing to reload it as all defaults (was it caught half-written? write it whole and rename it into place; for all defaults put a comment in it)",
                file.display()
            )),
            None => Ok(()),
        }
    }
}

/// Builds the configuration from defaults, file, environment and flags:
/// every key known (a field of `C`), every value of the type `C` says and
/// as the spec's table says, then `check` for what involves several. The
/// error is one line naming the key and its source.
pub fn load<C>(
    spec: &Spec,
    inputs: &Inputs,
    check: impl Fn(&C) -> Result<(), Problem>,
) -> Result<Loaded<C>, String>
where
    C: Default + Serialize + DeserializeOwned,
{
    let prefix = spec.env_prefix;
    let (file, must_exist) = which_file(spec, inputs)?;
    let parse = |key: &str, text: &str| settings::parse(spec.settings, key, text);
    let mut figment = Figment::new().merge(Layer::new("default", layer::dict_of(&C::default())));
    let mut empty_file = None;
    if must_exist || file.exists() {
        figment = figment.merge(Layer::file(&file)?);
        let blank = std::fs::read(&file).is_ok_and(|b| b.iter().all(u8::is_ascii_whitespace));
        if blank && file != Path::new("/dev/null") {
            empty_file = Some(file);
        }
    }
    let env = layer::env_dict(&inputs.env, prefix, parse)?;
    let figment = figment
        .merge(Layer::new("env", env))
        .merge(Layer::new("flag", layer::flag_dict(&inputs.flags, parse)));

    layer::check_known(&figment, &layer::dict_of(&C::default()), prefix)?;
    let config: C = figment
        .extract()
        .map_err(|e| layer::report(&figment, e, prefix))?;
    settings::check(spec.settings, &layer::dict_of(&config))
        .and_then(|()| check(&config))
        .map_err(|(key, problem)| {
            let from = figment.find_metadata(key).map_or_else(String::new, |md| {
                format!(" from {}", layer::origin(md, key, prefix))
            });
            format!("{key}{from}: {problem}")
        })?;
    Ok(Loaded {
        config,
        figment,
        env_prefix: prefix,
        empty_file,
    })
}

/// The file to read, and whether it must exist: `--config`, else
/// `PREFIXCONFIG`, else the default file (which may be absent). A file
/// named but missing is an error.
fn which_file(spec: &Spec, inputs: &Inputs) -> Result<(PathBuf, bool), String> {
    let variable = format!("{}CONFIG", spec.env_prefix);
    let env_file = inputs
        .env
        .iter()
        .find(|(k, _)| *k == variable)
        .map(|(_, v)| PathBuf::from(v));
    let (file, must_exist) = match (&inputs.config_flag, env_file) {
        (Some(p), _) => (p.clone(), true),
        (None, Some(p)) => (p, true),
        (None, None) => (inputs.default_file.clone(), false),
    };
    if must_exist && file != Path::new("/dev/null") && !file.exists() {
        return Err(format!(
            "configuration file {} does not exist",
            file.display()
        ));
    }
    Ok((file, must_exist))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Builtin, Kind};
    use std::os::unix::ffi::OsStringExt;

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
                unit: "",
            },
            help: "port",
            doc: "port",
            restart: false,
        },
        Setting {
            key: "name",
            env: Some("T_NAME"),
            flag: Some("--name"),
            arg: "NAME",
            default: Builtin::Value("x"),
            kind: Kind::Text(settings::any),
            help: "name",
            doc: "name",
            restart: false,
        },
    ];

    static SPEC: Spec = Spec {
        program: "t",
        env_prefix: "T_",
        default_file: "/nonexistent/t.toml",
        settings: SETTINGS,
    };

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Config {
        port: u16,
        name: String,
    }

    impl Default for Config {
        fn default() -> Self {
            Config {
                port: 9,
                name: "x".into(),
            }
        }
    }

    /// The one check across settings: the name must not be the port.
    fn apart(c: &Config) -> Result<(), Problem> {
        if c.name == c.port.to_string() {
            return Err(("name", "is the port".into()));
        }
        Ok(())
    }

    struct TempFile(PathBuf);
    impl TempFile {
        fn new(name: &str, text: &str) -> TempFile {
            let path = std::env::temp_dir().join(format!(
                "hapgent-common-config-{}-{name}",
                std::process::id()
            ));
            std::fs::write(&path, text).unwrap();
            TempFile(path)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn load_with(
        file: Option<&Path>,
        env: &[(&str, &str)],
        flags: &[(&'static str, &str)],
    ) -> Result<Loaded<Config>, String> {
        let inputs = Inputs {
            config_flag: file.map(Path::to_path_buf),
            default_file: PathBuf::from(SPEC.default_file),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            flags: flags.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        };
        load(&SPEC, &inputs, apart)
    }

    #[test]
    fn usage_names_the_prefix_and_the_default_file() {
        assert_eq!(
            SPEC.usage(),
            "Options (each also T_<KEY> in the environment and <key> in the file):\n\
             \x20 -c, --config PATH          configuration file [default: /nonexistent/t.toml]\n\
             \x20     --port PORT            port [default: 9]\n\
             \x20     --name NAME            name [default: x]\n"
        );
    }

    #[test]
    fn layers_and_sources() {
        let file = TempFile::new("layers.toml", "port = 2\nname = \"file\"\n");
        let l = load_with(Some(&file.0), &[("T_PORT", "3")], &[("name", "7")]).unwrap();
        assert_eq!(
            l.config,
            Config {
                port: 3,
                name: "7".into()
            }
        );
        assert_eq!(l.origin("port").as_deref(), Some("env T_PORT"));
        assert_eq!(l.origin("name").as_deref(), Some("flag --name"));
        assert!(l.describe().contains("port = 3"), "{}", l.describe());
        let by_env = [("T_CONFIG", file.0.to_str().unwrap())];
        let l = load_with(None, &by_env, &[]).unwrap();
        assert_eq!(l.config.port, 2);
        let l = load_with(None, &[], &[]).unwrap();
        assert_eq!(l.into_config(), Config::default());
    }

    #[test]
    fn errors_name_the_key_and_its_source() {
        for (env, flags, want) in [
            (
                vec![],
                vec![("port", "100")],
                "port from flag --port: must be between 1 and 99",
            ),
            (
                vec![],
                vec![("name", "9")],
                "name from flag --name: is the port",
            ),
            (
                vec![("T_PORT", "4"), ("T_NAME", "4")],
                vec![],
                "name from env T_NAME: is the port",
            ),
            (
                vec![("T_PROT", "4")],
                vec![],
                "unknown key \"prot\" from env T_PROT (known keys: name, port)",
            ),
            (
                vec![("T_CONFIG", "/nonexistent/x.toml")],
                vec![],
                "configuration file /nonexistent/x.toml does not exist",
            ),
        ] {
            assert_eq!(load_with(None, &env, &flags).err().as_deref(), Some(want));
        }
    }

    /// An empty file loads as all defaults but a reload refuses it; a
    /// comment, `/dev/null` or no file is not empty.
    #[test]
    fn an_empty_file_is_marked() {
        let empty = TempFile::new("empty.toml", " \n");
        let comment = TempFile::new("comment.toml", "# all defaults\n");
        for (file, refused) in [
            (Some(empty.0.as_path()), true),
            (Some(comment.0.as_path()), false),
            (Some(Path::new("/dev/null")), false),
            (None, false),
        ] {
            let l = load_with(file, &[], &[]).unwrap();
            assert_eq!(l.refuse_empty().is_err(), refused, "{file:?}");
        }
    }

    #[test]
    fn environment_is_text() {
        let os = |b: &[u8]| OsString::from_vec(b.to_vec());
        let vars = |pairs: &[(&[u8], &[u8])]| -> Vec<(OsString, OsString)> {
            pairs.iter().map(|(k, v)| (os(k), os(v))).collect()
        };
        let ok = text_environment(vars(&[(b"T_A", b"1"), (b"OTHER", b"\xff")]), "T_");
        assert_eq!(ok, Ok(vec![("T_A".to_string(), "1".to_string())]));
        for bad in [vars(&[(b"T_A", b"\xff")]), vars(&[(b"T_\xff", b"1")])] {
            let e = text_environment(bad, "T_").unwrap_err();
            assert!(e.ends_with("is not valid UTF-8"), "{e}");
        }
        assert_eq!(
            text_environment(vars(&[(b"T_A", b"\xff")]), "T_").unwrap_err(),
            "environment variable T_A is not valid UTF-8"
        );
    }
}
