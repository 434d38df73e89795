//! The commands and options of `hapgent ctl`, one row each: the single
//! source of which words the command line's parser takes as commands and
//! what each does (`cli`), of the usage text, and of what other tools make
//! from them (man pages, shell completions) through
//! `hapgent::control::VERBS` and `hapgent::control::OPTIONS`.

/// What a command does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Does {
    Status,
    Probers,
    Metrics,
    WaitSeen,
    /// Sets the status to this one (as the state file spells it).
    SetStatus(&'static str),
    /// Sets this state field from the one argument (`none` removes it).
    SetField(&'static str),
    /// Sets several fields from `--status` (required) and the other
    /// fields' flags.
    Set,
}

/// One `hapgent ctl` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verb {
    pub name: &'static str,
    /// Its arguments as the usage text shows them (empty: none).
    pub args: &'static str,
    /// What it does, in one line.
    pub help: &'static str,
    pub does: Does,
}

/// Every `hapgent ctl` command, in the order of the usage text.
pub const VERBS: &[Verb] = &[
    Verb {
        name: "status",
        args: "[--json]",
        help: "the state served, its version, reply, and probers",
        does: Does::Status,
    },
    Verb {
        name: "probers",
        args: "[--json]",
        help: "every load balancer that probed, and its last reply",
        does: Does::Probers,
    },
    Verb {
        name: "metrics",
        args: "",
        help: "the Prometheus metrics text",
        does: Does::Metrics,
    },
    Verb {
        name: "wait-seen",
        args: "[--timeout D]",
        help: "wait until all load balancers saw the current state",
        does: Does::WaitSeen,
    },
    Verb {
        name: "up",
        args: "",
        help: "set the status UP (replies \"up ready\")",
        does: Does::SetStatus("UP"),
    },
    Verb {
        name: "down",
        args: "",
        help: "set the status DOWN",
        does: Does::SetStatus("DOWN"),
    },
    Verb {
        name: "ready",
        args: "",
        help: "set the status READY (replies \"up ready\")",
        does: Does::SetStatus("READY"),
    },
    Verb {
        name: "drain",
        args: "",
        help: "set the status DRAIN",
        does: Does::SetStatus("DRAIN"),
    },
    Verb {
        name: "maint",
        args: "",
        help: "set the status MAINT",
        does: Does::SetStatus("MAINT"),
    },
    Verb {
        name: "weight",
        args: "N|none",
        help: "set the weight in % of HAProxy's (none: remove it)",
        does: Does::SetField("weight"),
    },
    Verb {
        name: "maxconn",
        args: "N|none",
        help: "set the connection limit (none: remove it)",
        does: Does::SetField("maxconn"),
    },
    Verb {
        name: "description",
        args: "TEXT|none",
        help: "set the description (none: remove it)",
        does: Does::SetField("description"),
    },
    Verb {
        name: "set",
        args: "--status S [--weight N] [--maxconn N] [--description T]",
        help: "set several fields at once",
        does: Does::Set,
    },
];

/// One option of `hapgent ctl` (besides the settings' flags, such as
/// `--control-socket`, which it takes as the agent does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtlOption {
    pub flag: &'static str,
    /// Its argument as the usage text shows it (empty: none).
    pub arg: &'static str,
    pub help: &'static str,
}

/// The options of `hapgent ctl`.
pub const OPTIONS: &[CtlOption] = &[
    CtlOption {
        flag: "--json",
        arg: "",
        help: "print the agent's answer as JSON",
    },
    CtlOption {
        flag: "--wait-seen",
        arg: "",
        help: "after a change, wait until every balancer saw it",
    },
    CtlOption {
        flag: "--timeout",
        arg: "D",
        help: "how long --wait-seen waits (30s; e.g. 500ms, 2m)",
    },
    CtlOption {
        flag: "--service",
        arg: "NAME",
        help: "the service to change (default: the default one)",
    },
    CtlOption {
        flag: "--all",
        arg: "",
        help: "change every service",
    },
];

/// The command called `name`.
pub fn verb(name: &str) -> Option<&'static Verb> {
    VERBS.iter().find(|v| v.name == name)
}

/// The commands' names, for messages: `status, probers, ...`.
pub fn names() -> String {
    VERBS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
}

/// The state fields a command sets from one argument; `set` takes each
/// as a flag, and `--status`.
pub fn fields() -> impl Iterator<Item = &'static str> {
    VERBS.iter().filter_map(|v| match v.does {
        Does::SetField(field) => Some(field),
        _ => None,
    })
}

/// The usage text's part about `hapgent ctl`.
pub fn usage() -> String {
    let mut out = String::from("Control commands (hapgent ctl COMMAND [OPTIONS]):\n");
    let rows = VERBS
        .iter()
        .map(|v| (join(v.name, v.args), v.help))
        .chain(OPTIONS.iter().map(|o| (join(o.flag, o.arg), o.help)));
    for (i, (first, help)) in rows.enumerate() {
        if i == VERBS.len() {
            out.push_str("\nControl options:\n");
        }
        // The help in the column of the settings' help (see `--help`).
        if first.len() <= COLUMN {
            out.push_str(&format!("  {first:<COLUMN$} {help}\n"));
        } else {
            out.push_str(&format!("  {first}\n  {:<COLUMN$} {help}\n", ""));
        }
    }
    out
}

/// Width of the first column of the usage text.
const COLUMN: usize = 26;

fn join(word: &str, args: &str) -> String {
    if args.is_empty() {
        word.to_string()
    } else {
        format!("{word} {args}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_usage_lists_each() {
        let usage = usage();
        for (i, v) in VERBS.iter().enumerate() {
            assert_eq!(verb(v.name), Some(v));
            assert!(VERBS[..i].iter().all(|w| w.name != v.name), "{}", v.name);
            assert!(usage.contains(&format!("\n  {} ", v.name)), "{usage}");
        }
        for o in OPTIONS {
            assert!(usage.contains(&format!("\n  {} ", o.flag)), "{usage}");
        }
        assert!(usage.lines().all(|l| l.len() <= 80), "{usage}");
    }
}
