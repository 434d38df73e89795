//! The man pages and shell completions of hapgent and hapgent-lb, made
//! from the programs' own tables.
//!
//! Every flag, environment variable, TOML key, default, range and help text
//! comes from the settings tables (`hapgent::settings::SETTINGS`,
//! `hapgent_lb::settings::SETTINGS`); exit codes from the programs' `Error`
//! types; default paths from their `config` constants. What is written here
//! is only what no table holds: the prose of a page, the commands and their
//! own options, and what each signal and exit code means.
//!
//! [`outputs`] is every file this crate writes, relative to the workspace
//! root; `main` writes them, and a test fails when the committed ones
//! differ. This crate does not decide what a setting means: a wrong text
//! is fixed in the table it came from.

pub mod complete;
pub mod man;

use hapgent_common::settings::Setting;

/// How to regenerate the committed files (in messages).
pub const REGENERATE: &str = "cargo run -p hapgent-docgen";

/// One program, as its pages and completions describe it.
pub struct Program {
    /// The binary's name.
    pub name: &'static str,
    /// The man page's NAME line, after the dash.
    pub summary: &'static str,
    /// DESCRIPTION paragraphs (the markup of [`man::text`]).
    pub description: &'static [&'static str],
    /// The command run when none is given, if any.
    pub default_command: Option<&'static str>,
    pub commands: Vec<Command>,
    /// `hapgent ctl`'s verbs; empty for a program without one.
    pub verbs: Vec<Verb>,
    /// Options every verb takes (changes, `--service`, ...).
    pub verb_options: Vec<Opt>,
    pub settings: &'static [Setting],
    /// The configuration file read when `--config` is not given.
    pub config_file: &'static str,
    /// The variable that names another configuration file.
    pub config_env: &'static str,
    /// The prefix of the variables that set keys.
    pub env_prefix: &'static str,
    /// Other variables the program reads: (name, effect).
    pub other_env: Vec<(&'static str, &'static str)>,
    /// What the configuration file's page says before its keys.
    pub config_description: &'static [&'static str],
    /// (signal, effect).
    pub signals: Vec<(&'static str, &'static str)>,
    /// (exit code, meaning), from the program's `Error`.
    pub exit_codes: Vec<(u8, &'static str)>,
    /// (path, what it is).
    pub files: Vec<(String, &'static str)>,
    /// Other pages, `name(section)`.
    pub see_also: &'static [&'static str],
}

/// A command of the program (`run`, `status`, ...).
pub struct Command {
    pub name: &'static str,
    /// The arguments after the name, as the synopsis shows them.
    pub args: &'static str,
    pub help: &'static str,
    /// Options only this command takes.
    pub options: Vec<Opt>,
}

/// A `hapgent ctl` verb: its name, its arguments as typed (`N|none`,
/// `--status S [--weight N]`; the `--flags` in them are completed), and a
/// one-line help.
pub struct Verb {
    pub name: &'static str,
    pub args: &'static str,
    pub help: &'static str,
}

/// An option that is not a setting: a command's or a verb's.
pub struct Opt {
    pub flag: &'static str,
    /// The value's name; empty for a switch.
    pub arg: &'static str,
    pub help: &'static str,
    /// What completes the value.
    pub values: Values,
}

/// What completes an option's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Values {
    /// Nothing to offer: a number, a name, text.
    Free,
    /// A file name.
    Files,
    /// One of these words.
    Words(Vec<&'static str>),
    /// A service of the configuration file (its `[services.NAME]` tables).
    Services,
}

/// Every file this crate writes: (path from the workspace root, content).
pub fn outputs() -> Vec<(String, String)> {
    let agent = hapgent();
    let lb = hapgent_lb();
    let mut out = Vec::new();
    for p in [&agent, &lb] {
        out.push((format!("man/{}.1", p.name), man::command_page(p)));
        out.push((format!("man/{}.toml.5", p.name), man::config_page(p)));
        out.push((format!("completions/{}.bash", p.name), complete::bash(p)));
        out.push((format!("completions/_{}", p.name), complete::zsh(p)));
        out.push((format!("completions/{}.fish", p.name), complete::fish(p)));
    }
    out
}

/// What both programs make of running under systemd.
const JOURNAL_STREAM: (&str, &str) = (
    "JOURNAL_STREAM",
    "set by systemd when stderr goes to the journal: log lines then carry a syslog priority prefix and no timestamp",
);

/// The number an exit code stands for (`ExitCode` does not say).
fn code(exit: std::process::ExitCode) -> u8 {
    (0..=u8::MAX)
        .find(|n| std::process::ExitCode::from(*n) == exit)
        .expect("an exit code is a u8")
}

/// The words of [`Values::Words`] for a state's status (`UP`, `DRAIN`, ...).
fn statuses() -> Vec<&'static str> {
    hapgent::state::Status::ALL
        .iter()
        .map(|s| s.name())
        .collect()
}

/// hapgent ctl's verbs, from the agent's own table (`hapgent::control::VERBS`,
/// which the command line's parser and `--help` are made from too).
pub fn ctl_verbs() -> Vec<Verb> {
    hapgent::control::VERBS
        .iter()
        .map(|v| Verb {
            name: v.name,
            args: v.args,
            help: v.help,
        })
        .collect()
}

/// The options of hapgent ctl's verbs (`hapgent::control::OPTIONS`);
/// `--service` completes from the configuration's services.
pub fn ctl_options() -> Vec<Opt> {
    hapgent::control::OPTIONS
        .iter()
        .map(|o| Opt {
            flag: o.flag,
            arg: o.arg,
            help: o.help,
            values: if o.flag == "--service" {
                Values::Services
            } else {
                Values::Free
            },
        })
        .collect()
}

/// A program's exit codes in order: 0 with what success means, then each
/// kind of error's code with its meaning.
fn exit_codes(
    success: &'static str,
    errors: impl Iterator<Item = (std::process::ExitCode, &'static str)>,
) -> Vec<(u8, &'static str)> {
    let mut out = vec![(0, success)];
    out.extend(errors.map(|(exit, meaning)| (code(exit), meaning)));
    out.sort_by_key(|(n, _)| *n);
    out
}

/// A setting's built-in default that is a path (for the FILES section).
fn default_path(settings: &[Setting], key: &str) -> String {
    match hapgent_common::settings::find(settings, key).map(|s| &s.default) {
        Some(hapgent_common::settings::Builtin::Value(v)) => v.to_string(),
        _ => panic!("{key} has a default path"),
    }
}

/// hapgent, the agent.
pub fn hapgent() -> Program {
    let settings = hapgent::settings::SETTINGS;
    let default = |key| default_path(settings, key);
    Program {
        name: "hapgent",
        summary: "answer HAProxy agent checks with this server's state",
        description: &[
            "hapgent runs on each backend server behind HAProxy and answers HAProxy's `agent-check` probes with the server's state: up, down, ready, drain, maint or fail, a weight, a maxconn and a description. The state is read from a JSON state file, and changed with signals, with `hapgent ctl`, or by replacing the file.",
            "With `[services.NAME]` tables in the configuration file, one agent answers for several services: HAProxy's `agent-send` names the service a probe is about, and each service has its own state file.",
            "Settings come from four sources, highest first: command-line flags, `HAPGENT_*` environment variables, the configuration file (see hapgent.toml(5)), and built-in defaults. `hapgent check-config` prints each value with the source it came from.",
        ],
        default_command: Some("run"),
        commands: vec![
            Command {
                name: "run",
                args: "",
                help: "serve agent checks until SIGTERM (the default command)",
                options: vec![],
            },
            Command {
                name: "check-config",
                args: "",
                help: "print the effective configuration with the source of each value, and exit non-zero if it is invalid",
                options: vec![],
            },
            Command {
                name: "reply",
                args: "[--json]",
                help: "print the reply that would be sent now and exit (one-shot)",
                options: vec![Opt {
                    flag: "--json",
                    arg: "",
                    help: "as a JSON object",
                    values: Values::Free,
                }],
            },
            Command {
                name: "ctl",
                args: "VERB [ARGS]",
                help: "talk to the running agent through its control socket (see CTL VERBS)",
                options: vec![],
            },
        ],
        verbs: ctl_verbs(),
        verb_options: ctl_options(),
        settings,
        config_file: hapgent::config::DEFAULT_CONFIG,
        config_env: "HAPGENT_CONFIG",
        env_prefix: "HAPGENT_",
        other_env: vec![
            JOURNAL_STREAM,
            (
                "LISTEN_FDS, LISTEN_PID",
                "the listening sockets systemd passed, served with `--systemd`",
            ),
        ],
        config_description: &[
            "The configuration file of hapgent(1), in TOML. It is read at start and again on SIGHUP; when `--config` (or `HAPGENT_CONFIG`) does not name one, a missing default file means built-in defaults.",
            "Each key can also be set by the environment variable and the flag named with it, which win over the file. An unknown key, or a value outside its range, stops hapgent with exit code 78 and names the key and the file; `hapgent check-config` shows every value and where it came from.",
        ],
        signals: vec![
            (
                "SIGUSR1",
                "set the status UP (weight, maxconn and description kept) and save it to the state file",
            ),
            ("SIGUSR2", "set the status DOWN (the rest kept) and save it"),
            (
                "SIGHUP",
                "reload: re-read the configuration file and the state file",
            ),
            (
                "SIGTERM, SIGINT",
                "stop accepting, finish the replies in flight, save the latest state, and exit 0",
            ),
        ],
        exit_codes: hapgent_exit_codes(),
        files: vec![
            (
                hapgent::config::DEFAULT_CONFIG.to_string(),
                "the configuration file, unless `--config` or `HAPGENT_CONFIG` names another",
            ),
            (
                default("state_file"),
                "the JSON state file, unless `state_file` names another (the Debian package sets /var/lib/hapgent/state.json)",
            ),
            (
                hapgent::config::DEFAULT_CONTROL_SOCKET.to_string(),
                "the control socket of `hapgent ctl`, unless `control_socket` names another",
            ),
        ],
        see_also: &["hapgent.toml(5)", "hapgent-lb(1)", "haproxy(1)"],
    }
}

/// hapgent-lb, the load balancer's side.
pub fn hapgent_lb() -> Program {
    let settings = hapgent_lb::settings::SETTINGS;
    let default = |key| default_path(settings, key);
    let words = |words: &[&'static str]| Values::Words(words.to_vec());
    Program {
        name: "hapgent-lb",
        summary: "HAProxy's view of its servers, waiting for drains, safe configuration reloads",
        description: &[
            "hapgent-lb runs on the HAProxy host, next to HAProxy: it shows HAProxy's view of every server (`status`), waits until a drained server has no sessions left (`wait`), and serves an HTTP API (`serve`) that replaces haproxy.cfg safely: validated with `haproxy -c`, replaced atomically, reloaded, verified live, rolled back on failure, audited.",
            "Settings come from four sources, highest first: command-line flags, `HAPGENT_LB_*` environment variables, the configuration file (see hapgent-lb.toml(5)), and built-in defaults. `hapgent-lb check-config` prints each value with the source it came from.",
        ],
        default_command: None,
        commands: vec![
            Command {
                name: "status",
                args: "[--backend B] [--json]",
                help: "every server: status, admin and operational state, weight, sessions, queue, check and agent results",
                options: vec![
                    Opt {
                        flag: "--backend",
                        arg: "B",
                        help: "only this backend",
                        values: Values::Free,
                    },
                    Opt {
                        flag: "--json",
                        arg: "",
                        help: "as JSON",
                        values: Values::Free,
                    },
                ],
            },
            Command {
                name: "wait",
                args: "BACKEND/SERVER... [--admin ready|drain|maint] [--op up|down|starting|stopping] [--sessions-max N] [--timeout D]",
                help: "poll until every condition holds for every server named (exit 0) or D passes (exit 75)",
                options: vec![
                    Opt {
                        flag: "--admin",
                        arg: "STATE",
                        help: "the administrative state to wait for",
                        values: words(&["ready", "drain", "maint"]),
                    },
                    Opt {
                        flag: "--op",
                        arg: "STATE",
                        help: "the operational state to wait for",
                        values: words(&["up", "down", "starting", "stopping"]),
                    },
                    Opt {
                        flag: "--sessions-max",
                        arg: "N",
                        help: "wait until each server has at most N sessions",
                        values: Values::Free,
                    },
                    Opt {
                        flag: "--timeout",
                        arg: "D",
                        help: "give up after D: `500ms`, `90s`, `5m` (default `60s`)",
                        values: Values::Free,
                    },
                ],
            },
            Command {
                name: "serve",
                args: "",
                help: "serve the HTTP API that shows and replaces HAProxy's configuration, until SIGTERM",
                options: vec![],
            },
            Command {
                name: "check-config",
                args: "",
                help: "print each setting with its source, and exit non-zero if the configuration is invalid",
                options: vec![],
            },
        ],
        verbs: vec![],
        verb_options: vec![],
        settings,
        config_file: hapgent_lb::settings::DEFAULT_CONFIG,
        config_env: "HAPGENT_LB_CONFIG",
        env_prefix: hapgent_lb::settings::ENV_PREFIX,
        other_env: vec![JOURNAL_STREAM],
        config_description: &[
            "The configuration file of hapgent-lb(1), in TOML, read when a command starts; when `--config` (or `HAPGENT_LB_CONFIG`) does not name one, a missing default file means built-in defaults.",
            "Each key can also be set by the environment variable and the flag named with it, which win over the file. An unknown key or an invalid value stops hapgent-lb with exit code 78 and names the key and its source; `hapgent-lb check-config` shows every value and where it came from.",
        ],
        signals: vec![(
            "SIGTERM, SIGINT",
            "`serve` stops accepting, gives requests in progress (a configuration change) up to `stop_grace` to finish, and exits",
        )],
        exit_codes: hapgent_lb_exit_codes(),
        files: vec![
            (
                hapgent_lb::settings::DEFAULT_CONFIG.to_string(),
                "the configuration file, unless `--config` or `HAPGENT_LB_CONFIG` names another",
            ),
            (
                default("haproxy_config"),
                "the HAProxy configuration served and replaced, unless `haproxy_config` names another",
            ),
            (
                default("haproxy_socket"),
                "HAProxy's runtime API socket, unless `haproxy_socket` names another",
            ),
            (
                default("listen_unix"),
                "the API's Unix socket, unless `listen_unix` names another",
            ),
        ],
        see_also: &["hapgent-lb.toml(5)", "hapgent(1)", "haproxy(1)"],
    }
}

/// hapgent's exit codes: 0, then one per kind of `hapgent::exit::Error`.
fn hapgent_exit_codes() -> Vec<(u8, &'static str)> {
    use hapgent::exit::Error;
    // Exhaustive, so that a new kind of error cannot go undocumented.
    let meaning = |e: &Error| match e {
        Error::Runtime(_) => {
            "runtime failure: a port in use, permission denied on bind, an address not on this host"
        }
        Error::Usage(_) => {
            "usage error: an unknown flag or command, a missing value; `hapgent ctl` with an invalid value"
        }
        Error::Unavailable(_) => {
            "`hapgent ctl`: the agent is not running, or its control socket is absent or disabled"
        }
        Error::NotSeen(_) => {
            "`hapgent ctl --wait-seen`: a load balancer did not see the change in time, or none is probing"
        }
        Error::NoPermission(_) => {
            "`hapgent ctl`: permission denied (not root, hapgent's user or in `control_group`)"
        }
        Error::Config(_) => {
            "configuration error: an unknown key, an invalid value, a `--config` file missing or not TOML"
        }
    };
    let errors = [
        Error::Runtime(String::new()),
        Error::Usage(String::new()),
        Error::Unavailable(String::new()),
        Error::NotSeen(String::new()),
        Error::NoPermission(String::new()),
        Error::Config(String::new()),
    ];
    exit_codes(
        "success: stopped by SIGTERM or SIGINT, `--help`, a valid `check-config`",
        errors.iter().map(|e| (e.exit_code(), meaning(e))),
    )
}

/// hapgent-lb's exit codes: 0, then one per kind of
/// `hapgent_lb::exit::Error`.
fn hapgent_lb_exit_codes() -> Vec<(u8, &'static str)> {
    use hapgent_lb::exit::Error;
    let meaning = |e: &Error| match e {
        Error::Runtime(_) => {
            "failure: an unknown backend or server, a socket that cannot be bound, or another `serve` answering on it"
        }
        Error::Usage(_) => "usage error: an unknown flag or command, a missing or invalid value",
        Error::Unavailable(_) => {
            "HAProxy's runtime API does not answer (`status`; `wait` at its first poll or at its timeout)"
        }
        Error::Timeout(_) => {
            "`wait` timed out: the servers still unmet are printed, with their last state"
        }
        Error::Config(_) => {
            "configuration error: an unknown key or invalid value, wherever it came from"
        }
    };
    let errors = [
        Error::Runtime(String::new()),
        Error::Usage(String::new()),
        Error::Unavailable(String::new()),
        Error::Timeout(String::new()),
        Error::Config(String::new()),
    ];
    exit_codes(
        "success; `wait`: every condition holds for every server named",
        errors.iter().map(|e| (e.exit_code(), meaning(e))),
    )
}
