//! The command line as the user typed it.
//!
//! Only recognizes the command, its own options and the setting flags; a
//! setting's value is handed to `config` as text and checked there, so an
//! error names the flag the same way it would name a file or variable.

use crate::exit::Error;
use crate::settings::SETTINGS;
use crate::stat::{Admin, Op};
use hapgent_common::settings;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// What `wait` waits for: the same conditions for every server named
/// (`BACKEND/SERVER`, as typed; `wait` validates them); `None` means "any".
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct WaitFor {
    pub targets: Vec<String>,
    pub admin: Option<Admin>,
    pub op: Option<Op>,
    pub sessions_max: Option<u64>,
    pub timeout: Duration,
}

/// What to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Status { backend: Option<String>, json: bool },
    Wait(WaitFor),
    Serve,
    CheckConfig,
    Help,
    Version,
}

/// The parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Cli {
    pub command: Command,
    pub config: Option<PathBuf>,
    pub flags: Vec<(&'static str, String)>,
}

const HEAD: &str = "\
hapgent-lb: HAProxy's view of its servers, waiting for drains, safe config reloads

Usage: hapgent-lb COMMAND [OPTIONS]

Commands:
  status [--backend B] [--json]   every server: status, admin/op state, weight,
                                  sessions, queue, check and agent results
  wait BACKEND/SERVER... [--admin ready|drain|maint] [--op up|down|starting|stopping]
       [--sessions-max N] [--timeout D]
                                  poll until all conditions hold for every
                                  server named (exit 0) or D passes (exit 75;
                                  D like 90s, 5m, 500ms; default 60s); exit 69
                                  if HAProxy's socket does not answer
  serve                           the HTTP API (see README)
  check-config                    print each setting with its source

";

const TAIL: &str = "\
  -h, --help                 print this help
  -V, --version              print the version

Exit codes: 0 ok, 1 failure, 64 usage error, 69 HAProxy unreachable,
75 wait timed out, 78 configuration error.
";

/// The usage text, its options for the configuration made from
/// `settings::SPEC`.
pub fn usage() -> String {
    format!("{HEAD}{}{TAIL}", crate::settings::SPEC.usage())
}

/// Parses `wait --timeout`: `500ms`, `90s`, `5m`, `1h`, plain seconds, or
/// anything else `hapgent_common::duration` reads (`1.5s`, `2min`), up to
/// the largest number of milliseconds.
pub fn duration(text: &str) -> Result<Duration, String> {
    hapgent_common::duration::parse(text, Duration::from_millis(u64::MAX))
        .ok_or_else(|| format!("{text:?} is not a duration (e.g. 500ms, 90s, 5m)"))
}

/// Sets one of `wait`'s own options (`--admin`, `--op`, `--sessions-max`,
/// `--timeout`) from its value as typed.
fn wait_option(flag: &str, v: &str, wait: &mut WaitFor) -> Result<(), Error> {
    match flag {
        "admin" => {
            wait.admin = Some(Admin::parse(v).ok_or_else(|| {
                Error::Usage(format!("--admin {v:?}: expected ready, drain or maint"))
            })?)
        }
        "op" => {
            wait.op = Some(Op::parse(v).ok_or_else(|| {
                Error::Usage(format!(
                    "--op {v:?}: expected up, down, starting or stopping"
                ))
            })?)
        }
        "sessions-max" => {
            wait.sessions_max = Some(v.parse().map_err(|_| {
                Error::Usage(format!("--sessions-max {v:?}: expected a whole number"))
            })?)
        }
        _ => wait.timeout = duration(v).map_err(|e| Error::Usage(format!("--timeout: {e}")))?,
    }
    Ok(())
}

/// Parses arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let usage = |e: lexopt::Error| Error::Usage(e.to_string());
    let text = |v: OsString| {
        v.into_string()
            .map_err(|v| Error::Usage(format!("{} is not valid UTF-8", v.to_string_lossy())))
    };
    let mut cli = Cli {
        command: Command::Help,
        config: None,
        flags: Vec::new(),
    };
    let mut name: Option<String> = None;
    let (mut backend, mut json) = (None, false);
    let mut wait = WaitFor {
        targets: Vec::new(),
        admin: None,
        op: None,
        sessions_max: None,
        timeout: Duration::from_secs(60),
    };
    let mut help = false;
    let mut version = false;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Short('h') | Long("help") => help = true,
            Short('V') | Long("version") => version = true,
            Short('c') | Long("config") => cli.config = Some(parser.value().map_err(usage)?.into()),
            Long("json") if name.as_deref() == Some("status") => json = true,
            Long("backend") if name.as_deref() == Some("status") => {
                backend = Some(text(parser.value().map_err(usage)?)?)
            }
            Long(flag @ ("admin" | "op" | "sessions-max" | "timeout"))
                if name.as_deref() == Some("wait") =>
            {
                let flag = flag.to_string();
                let v = text(parser.value().map_err(usage)?)?;
                wait_option(&flag, &v, &mut wait)?;
            }
            Long(flag) => {
                let setting = settings::by_flag(SETTINGS, flag)
                    .ok_or_else(|| Error::Usage(format!("unknown option --{flag}")))?;
                // A switch takes no value: present means true.
                let value = match setting.kind {
                    settings::Kind::Switch => "true".to_string(),
                    _ => text(parser.value().map_err(usage)?)?,
                };
                cli.flags.push((setting.key, value));
            }
            Value(v) if name.is_none() => name = Some(text(v)?),
            Value(v) if name.as_deref() == Some("wait") => wait.targets.push(text(v)?),
            other => return Err(usage(other.unexpected())),
        }
    }
    cli.command = match (help, version, name.as_deref()) {
        (true, _, _) | (_, _, Some("help")) => Command::Help,
        (_, true, _) => Command::Version,
        (_, _, None) => {
            return Err(Error::Usage(
                "a command is required: status, wait, serve or check-config".into(),
            ));
        }
        (_, _, Some("status")) => Command::Status { backend, json },
        (_, _, Some("wait")) if wait.targets.is_empty() => {
            return Err(Error::Usage(
                "wait needs BACKEND/SERVER (one or more)".into(),
            ));
        }
        (_, _, Some("wait")) => Command::Wait(wait),
        (_, _, Some("serve")) => Command::Serve,
        (_, _, Some("check-config")) => Command::CheckConfig,
        (_, _, Some(other)) => {
            return Err(Error::Usage(format!(
                "unknown command {other:?}: expected status, wait, serve or check-config"
            )));
        }
    };
    Ok(cli)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, Error> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn commands() {
        assert_eq!(
            p(&["status", "--backend", "web", "--json"])
                .unwrap()
                .command,
            Command::Status {
                backend: Some("web".into()),
                json: true
            }
        );
        assert_eq!(
            p(&[
                "wait",
                "web/web1",
                "--admin",
                "drain",
                "--sessions-max",
                "0",
                "--timeout",
                "5m"
            ])
            .unwrap()
            .command,
            Command::Wait(WaitFor {
                targets: vec!["web/web1".into()],
                admin: Some(Admin::Drain),
                op: None,
                sessions_max: Some(0),
                timeout: Duration::from_secs(300),
            })
        );
        let several = p(&["wait", "a/b", "--op", "up", "c/d", "e/f"])
            .unwrap()
            .command;
        assert!(
            matches!(&several, Command::Wait(w) if w.targets == ["a/b", "c/d", "e/f"] && w.op == Some(Op::Up)),
            "{several:?}"
        );
        let cli = p(&["serve", "--listen-tcp", "127.0.0.1:1", "-c", "x.toml"]).unwrap();
        assert_eq!(
            (cli.command, cli.flags, cli.config),
            (
                Command::Serve,
                vec![("listen_tcp", "127.0.0.1:1".to_string())],
                Some("x.toml".into())
            )
        );
        assert_eq!(p(&["check-config"]).unwrap().command, Command::CheckConfig);
        assert_eq!(p(&["--help"]).unwrap().command, Command::Help);
        assert_eq!(p(&["-V"]).unwrap().command, Command::Version);
    }

    #[test]
    fn usage_errors() {
        for args in [
            &[][..],
            &["frobnicate"],
            &["wait"],
            &["wait", "web/web1", "--admin", "up"],
            &["wait", "web/web1", "--sessions-max", "-1"],
            &["wait", "web/web1", "--timeout", "soon"],
            &["status", "--admin", "drain"],
            &["serve", "--no-such-flag", "1"],
            &["status", "web"],
        ] {
            assert!(matches!(p(args), Err(Error::Usage(_))), "{args:?}");
        }
    }

    #[test]
    fn durations() {
        for (text, ms) in [
            ("500ms", Some(500)),
            ("90s", Some(90_000)),
            ("2", Some(2000)),
            ("5m", Some(300_000)),
            ("1h", Some(3_600_000)),
            ("100000h", Some(360_000_000_000)),
            ("1.5s", Some(1500)),
            ("2min", Some(120_000)),
            ("s", None),
            ("1d", None),
            ("", None),
            ("99999999999999999999h", None),
        ] {
            assert_eq!(
                duration(text).ok().map(|d| d.as_millis() as u64),
                ms,
                "{text}"
            );
        }
    }

    #[test]
    fn usage_lists_every_setting() {
        let text = usage();
        for s in SETTINGS {
            let Some(flag) = s.flag else { continue };
            assert!(text.contains(&format!("      {flag} ")), "{flag}");
            let args: &[&str] = match s.kind {
                settings::Kind::Switch => &["serve", flag],
                _ => &["serve", flag, "x"],
            };
            let cli = p(args).unwrap_or_else(|e| panic!("{flag}: {e}"));
            assert_eq!(cli.flags.len(), 1, "{flag}");
        }
    }
}
