//! The command line as the user typed it.
//!
//! This module only recognizes flags and the command; it does not validate
//! values. A value given here (`--port abc`) is handed to `config` as text,
//! where it is checked like the same value from the file or environment, so
//! one error message names the key and says it came from a flag. Which
//! flags set which settings, and their part of the usage text, come from
//! `settings::SETTINGS`.

use crate::control::verbs::{self, Does};
use crate::exit::Error;
use crate::settings::SETTINGS;
use hapgent_common::settings::{self, Kind};
use std::ffi::OsString;
use std::path::PathBuf;

/// What to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve agent checks until SIGTERM (the default).
    Run,
    /// Print the effective configuration and where each value came from.
    CheckConfig,
    /// Print the reply that would be sent now and exit (one-shot mode);
    /// `json`: as a JSON object.
    Reply {
        json: bool,
    },
    /// Talk to the running agent through its control socket.
    Ctl(Ctl),
    Help,
    Version,
}

/// The parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Cli {
    pub command: Command,
    /// `--config PATH`: a file that must exist, unlike the default one.
    pub config: Option<PathBuf>,
    /// Settings given as flags: (setting key, value as typed).
    pub flags: Vec<(&'static str, String)>,
}

/// The usage text before the settings' options.
const HEAD: &str = "\
hapgent: answers HAProxy agent checks with this server's state

Usage: hapgent [COMMAND] [OPTIONS]

Commands:
  run            serve agent checks (the default)
  check-config   print the effective configuration with the source of each
                 value, and exit non-zero if it is invalid
  reply [--json] print the reply that would be sent now and exit (one-shot)
  ctl COMMAND    talk to the running agent through its control socket (the
                 commands and their options are below)

";

/// The usage text between the commands and the settings' options.
const OPTIONS_HEAD: &str =
    "Options (each also HAPGENT_<KEY> in the environment and <key> in the file):\n";

/// The usage text after the settings' options.
const TAIL: &str = "  -h, --help                 print this help
  -V, --version              print the version

Signals: SIGUSR1 sets UP, SIGUSR2 sets DOWN (both saved to the state file),
SIGHUP re-reads the configuration and the state file, SIGTERM/SIGINT stop.
Exit codes: 0 ok, 1 runtime failure, 64 usage error, 78 configuration error;
hapgent ctl: 69 agent unreachable, 75 not seen in time, 77 permission denied.
";

/// The usage text; its options for settings are made from `SETTINGS`,
/// its part about `hapgent ctl` from `control::VERBS`.
pub fn usage_text() -> String {
    format!(
        "{HEAD}{}\n{OPTIONS_HEAD}  -c, --config PATH          configuration file [default: {}]\n{}{TAIL}",
        verbs::usage(),
        crate::config::DEFAULT_CONFIG,
        settings::usage(SETTINGS)
    )
}

/// Parses arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, Error> {
    use lexopt::Arg::{Long, Short, Value};
    let mut parser = lexopt::Parser::from_args(args);
    let mut cli = Cli {
        command: Command::Run,
        config: None,
        flags: Vec::new(),
    };
    // Values of repeatable flags, joined once all are seen.
    let mut lists: Vec<(&'static str, Vec<String>)> = Vec::new();
    let mut command_seen = false;
    while let Some(arg) = parser.next().map_err(usage)? {
        // Owned, so that the parser can be asked for a value meanwhile.
        let arg = match arg {
            Short(c) => Arg::Short(c),
            Long(l) => Arg::Long(l.to_string()),
            Value(v) => Arg::Value(v),
        };
        if let Command::Ctl(ctl) = &mut cli.command
            && ctl_arg(&arg, &mut parser, ctl)?
        {
            continue;
        }
        match arg {
            Arg::Short('h') => cli.command = Command::Help,
            Arg::Short('V') => cli.command = Command::Version,
            Arg::Short('c') => cli.config = Some(parser.value().map_err(usage)?.into()),
            Arg::Short(c) => return Err(Error::Usage(format!("invalid option '-{c}'"))),
            Arg::Long(flag) if flag == "help" => cli.command = Command::Help,
            Arg::Long(flag) if flag == "version" => cli.command = Command::Version,
            Arg::Long(flag) if flag == "config" => {
                cli.config = Some(parser.value().map_err(usage)?.into())
            }
            Arg::Long(flag) if flag == "json" && matches!(cli.command, Command::Reply { .. }) => {
                cli.command = Command::Reply { json: true }
            }
            Arg::Long(flag) => setting_flag(&flag, &mut parser, &mut cli.flags, &mut lists)?,
            Arg::Value(word) if !command_seen && matches!(cli.command, Command::Run) => {
                command_seen = true;
                cli.command = command(&word)?;
            }
            Arg::Value(word) => {
                return Err(Error::Usage(format!(
                    "unexpected argument {:?}",
                    word.to_string_lossy()
                )));
            }
        }
    }
    // In the table's order, so that the result does not depend on the
    // order of the flags.
    for s in SETTINGS {
        if let Some((key, values)) = lists.iter().find(|(k, _)| *k == s.key) {
            cli.flags.push((key, values.join(",")));
        }
    }
    if let Command::Ctl(ctl) = &cli.command {
        check_ctl(ctl)?;
    }
    Ok(cli)
}

/// The command `word` names.
fn command(word: &OsString) -> Result<Command, Error> {
    Ok(match word.to_str() {
        Some("run") => Command::Run,
        Some("check-config") => Command::CheckConfig,
        Some("reply") => Command::Reply { json: false },
        Some("ctl") => Command::Ctl(Ctl::default()),
        _ => {
            return Err(Error::Usage(format!(
                "unknown command {:?}",
                word.to_string_lossy()
            )));
        }
    })
}

/// A setting's flag `--flag` (its value taken from the parser): recorded
/// in `flags`, or for a list in `lists`, to be joined once all are seen.
fn setting_flag(
    flag: &str,
    parser: &mut lexopt::Parser,
    flags: &mut Vec<(&'static str, String)>,
    lists: &mut Vec<(&'static str, Vec<String>)>,
) -> Result<(), Error> {
    let Some(setting) = settings::by_flag(SETTINGS, flag) else {
        return Err(Error::Usage(format!("unknown option --{flag}")));
    };
    let key = setting.key;
    match setting.kind {
        Kind::Switch => {
            flags.retain(|(k, _)| *k != key);
            flags.push((key, "true".into()));
        }
        Kind::List(_) => {
            let value = text(&format!("--{flag}"), parser.value().map_err(usage)?)?;
            match lists.iter_mut().find(|(k, _)| *k == key) {
                Some((_, values)) => values.push(value),
                None => lists.push((key, vec![value])),
            }
        }
        _ => {
            let value = text(&format!("--{flag}"), parser.value().map_err(usage)?)?;
            flags.retain(|(k, _)| *k != key);
            flags.push((key, value));
        }
    }
    Ok(())
}

/// One command-line argument, owned.
enum Arg {
    Short(char),
    Long(String),
    Value(OsString),
}

fn usage(e: lexopt::Error) -> Error {
    Error::Usage(e.to_string())
}

fn text(what: &str, value: OsString) -> Result<String, Error> {
    value
        .into_string()
        .map_err(|_| Error::Usage(format!("{what}: value is not valid UTF-8")))
}

/// What `hapgent ctl` was asked to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ctl {
    pub action: Option<Action>,
    /// `--json`: print the agent's answer as JSON.
    pub json: bool,
    /// `--wait-seen`: after a change, wait until every load balancer has
    /// been served it.
    pub wait_seen: bool,
    /// `--timeout D` as typed.
    pub timeout: Option<String>,
    /// Whether the command was `set` (which needs `--status`).
    pub set: bool,
    /// `--service NAME`: the service to act on (unset: the default one).
    pub service: Option<String>,
    /// `--all`: act on every service.
    pub all: bool,
}

/// A `hapgent ctl` command.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Status,
    Probers,
    Metrics,
    WaitSeen,
    /// State fields to set: (field, value as typed; `None` removes it).
    Set(Vec<(&'static str, Option<String>)>),
}

/// Takes one argument of `hapgent ctl` if it is ctl's; `false` if it is
/// for the general parser (settings flags, `--config`, `--help`).
fn ctl_arg(arg: &Arg, parser: &mut lexopt::Parser, ctl: &mut Ctl) -> Result<bool, Error> {
    match arg {
        Arg::Long(f) if f == "json" => ctl.json = true,
        Arg::Long(f) if f == "wait-seen" => ctl.wait_seen = true,
        Arg::Long(f) if f == "all" => ctl.all = true,
        Arg::Long(f) if f == "service" => {
            ctl.service = Some(text("--service", parser.value().map_err(usage)?)?)
        }
        Arg::Long(f) if f == "timeout" => {
            ctl.timeout = Some(text("--timeout", parser.value().map_err(usage)?)?)
        }
        Arg::Long(flag) if flag == "status" || verbs::fields().any(|f| f == flag) => {
            let Some(Action::Set(fields)) = &mut ctl.action else {
                return Err(Error::Usage(format!(
                    "--{flag} belongs to \"hapgent ctl set\" (or use \"hapgent ctl {flag} VALUE\")"
                )));
            };
            let value = text(&format!("--{flag}"), parser.value().map_err(usage)?)?;
            let field = verbs::fields().find(|f| f == flag).unwrap_or("status");
            fields.retain(|(f, _)| *f != field);
            fields.push((
                field,
                (value != "none" || field == "status").then_some(value),
            ));
        }
        Arg::Value(word) if ctl.action.is_none() => {
            ctl.action = Some(ctl_verb(&word.to_string_lossy(), parser, ctl)?);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The action of the ctl command `word` (see `control::VERBS`); a field's
/// command takes its value from the parser.
fn ctl_verb(word: &str, parser: &mut lexopt::Parser, ctl: &mut Ctl) -> Result<Action, Error> {
    let Some(verb) = verbs::verb(word) else {
        return Err(Error::Usage(format!(
            "unknown ctl command {word:?} (known: {})",
            verbs::names()
        )));
    };
    Ok(match verb.does {
        Does::Status => Action::Status,
        Does::Probers => Action::Probers,
        Does::Metrics => Action::Metrics,
        Does::WaitSeen => Action::WaitSeen,
        Does::Set => {
            ctl.set = true;
            Action::Set(Vec::new())
        }
        Does::SetStatus(status) => Action::Set(vec![("status", Some(status.to_string()))]),
        Does::SetField(field) => {
            let value = match parser.value() {
                Ok(v) => text(word, v)?,
                Err(_) => {
                    return Err(Error::Usage(format!(
                        "hapgent ctl {word} needs a value (or \"none\" to remove it)"
                    )));
                }
            };
            Action::Set(vec![(field, (value != "none").then_some(value))])
        }
    })
}

/// What a complete `hapgent ctl` command line must satisfy.
fn check_ctl(ctl: &Ctl) -> Result<(), Error> {
    match &ctl.action {
        None => Err(Error::Usage(format!(
            "hapgent ctl needs a command ({})",
            verbs::names()
        ))),
        Some(Action::Set(fields)) if ctl.set && !fields.iter().any(|(f, _)| *f == "status") => {
            Err(Error::Usage(
                "hapgent ctl set needs --status and may take --weight, --maxconn, --description"
                    .into(),
            ))
        }
        Some(Action::Set(_)) | Some(Action::WaitSeen) if ctl.json && ctl.wait_seen => Ok(()),
        Some(Action::Status | Action::Probers | Action::Metrics) if ctl.wait_seen => {
            Err(Error::Usage(
                "--wait-seen goes with a command that changes the state".into(),
            ))
        }
        Some(Action::Status | Action::Probers | Action::Metrics)
            if ctl.all || ctl.service.is_some() =>
        {
            Err(Error::Usage(
                "status, probers and metrics show every service; --service and --all go with changes and wait-seen".into(),
            ))
        }
        _ if ctl.all && ctl.service.is_some() => Err(Error::Usage(
            "--service and --all exclude each other".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    /// Command line, command, `--config`, settings.
    type Case = (
        &'static str,
        Command,
        Option<&'static str>,
        &'static [(&'static str, &'static str)],
    );

    #[test]
    fn accepted() {
        let cases: &[Case] = &[
            ("", Command::Run, None, &[]),
            ("run", Command::Run, None, &[]),
            ("check-config", Command::CheckConfig, None, &[]),
            ("--help", Command::Help, None, &[]),
            ("-V", Command::Version, None, &[]),
            ("-c /x.toml", Command::Run, Some("/x.toml"), &[]),
            (
                "check-config --config=/y.toml",
                Command::CheckConfig,
                Some("/y.toml"),
                &[],
            ),
            (
                "--port 80 --state-file /s.json --log-requests",
                Command::Run,
                None,
                &[
                    ("port", "80"),
                    ("state_file", "/s.json"),
                    ("log_requests", "true"),
                ],
            ),
            ("--port 80 --port 81", Command::Run, None, &[("port", "81")]),
            (
                "--ip 127.0.0.1 --ip ::1 --max-connections 5 --write-timeout 10",
                Command::Run,
                None,
                &[
                    ("max_connections", "5"),
                    ("write_timeout", "10"),
                    ("ip", "127.0.0.1,::1"),
                ],
            ),
            // Values are not checked here: config reports them with a source.
            ("--port abc", Command::Run, None, &[("port", "abc")]),
            ("reply", Command::Reply { json: false }, None, &[]),
            (
                "reply --json --drain-file /d",
                Command::Reply { json: true },
                None,
                &[("drain_file", "/d")],
            ),
            (
                "--cpu-weight --systemd --timeframe 100 --maint-file /m",
                Command::Run,
                None,
                &[
                    ("cpu_weight", "true"),
                    ("systemd", "true"),
                    ("timeframe", "100"),
                    ("maint_file", "/m"),
                ],
            ),
        ];
        for (line, command, config, flags) in cases {
            let cli = parse(args(line)).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(&cli.command, command, "{line}");
            assert_eq!(
                cli.config.as_deref(),
                config.map(std::path::Path::new),
                "{line}"
            );
            let got: Vec<(&str, &str)> = cli.flags.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(&got, flags, "{line}");
        }
    }

    /// Every setting's flag is accepted and sets its key; a switch takes
    /// no value, a list's flag may be repeated; the usage text lists it.
    #[test]
    fn every_setting_flag_is_accepted_and_listed() {
        let usage = usage_text();
        for s in SETTINGS {
            let Some(flag) = s.flag else { continue };
            assert!(
                usage.contains(&format!("      {flag} ")),
                "{flag}:\n{usage}"
            );
            let (line, want) = match s.kind {
                Kind::Switch => (flag.to_string(), "true".to_string()),
                Kind::List(_) => (format!("{flag} a {flag} b"), "a,b".to_string()),
                _ => (format!("{flag} 2024"), "2024".to_string()),
            };
            let cli = parse(args(&line)).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(cli.flags, [(s.key, want)], "{line}");
        }
    }

    #[test]
    fn rejected() {
        for (line, message) in [
            ("--bogus", "unknown option --bogus"),
            ("--port", "missing argument for option '--port'"),
            ("serve", "unknown command \"serve\""),
            ("run extra", "unexpected argument \"extra\""),
            ("-x", "invalid option '-x'"),
            ("--json", "unknown option --json"),
            (
                "--log-requests=yes",
                "unexpected argument for option '--log-requests': \"yes\"",
            ),
        ] {
            match parse(args(line)) {
                Err(Error::Usage(m)) => assert_eq!(m, message, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }
}
