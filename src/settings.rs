//! Every hapgent setting, described once.
//!
//! [`SETTINGS`] is the one place that says what a setting is called in the
//! TOML file, the environment (`HAPGENT_*`, which the Zig hapgent's
//! `HAPGENT_IP`, `HAPGENT_PORT` and `HAPGENT_STATE_FILE` are part of) and on
//! the command line, its default, its help, and what its value must
//! satisfy. `cli` takes its flags from it, `config` its text keys and
//! checks, the usage text its options, and a test compares it with the
//! README's settings table and with `Config`'s fields and defaults.
//!
//! The descriptor type and what is made from it live in
//! `hapgent_common::settings`, shared with hapgent-lb; this module owns
//! only hapgent's table, the checks particular to hapgent's values, and
//! [`SPEC`]: the table with the program's name, environment prefix and
//! default file, which is all `hapgent_common::config` needs to load it.

use crate::cidr::Cidr;
use hapgent_common::config::Spec;
use hapgent_common::settings::{Builtin, Kind, Setting, any, optional_path, path};

/// Read when no `--config` (or `HAPGENT_CONFIG`) is given; may be absent.
pub const DEFAULT_CONFIG: &str = "/etc/hapgent/hapgent.toml";

/// Where the control socket is, unless configured otherwise: the
/// directory is the unit's `RuntimeDirectory=hapgent`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/hapgent/control.sock";

/// Environment variables that set keys start with this.
pub const ENV_PREFIX: &str = "HAPGENT_";

/// hapgent's configuration as `hapgent_common::config` loads it.
pub static SPEC: Spec = Spec {
    program: "hapgent",
    env_prefix: ENV_PREFIX,
    default_file: DEFAULT_CONFIG,
    settings: SETTINGS,
};

/// hapgent's settings, in the order of the usage text and the README.
pub static SETTINGS: &[Setting] = &[
    Setting {
        key: "ip",
        env: Some("HAPGENT_IP"),
        flag: Some("--ip"),
        arg: "ADDR",
        default: Builtin::Value("0.0.0.0"),
        kind: Kind::List(addresses),
        help: "address(es) to listen on, comma-separated",
        doc: "address(es) to listen on: one, a comma-separated list, or a TOML array; `::` also accepts IPv4 on Linux",
        restart: false,
    },
    Setting {
        key: "port",
        env: Some("HAPGENT_PORT"),
        flag: Some("--port"),
        arg: "PORT",
        default: Builtin::Value("9777"),
        kind: Kind::Number {
            min: 0,
            max: 65535,
            unit: "",
        },
        help: "TCP port",
        doc: "TCP port; 0 picks any free port, logged at startup",
        restart: false,
    },
    Setting {
        key: "state_file",
        env: Some("HAPGENT_STATE_FILE"),
        flag: Some("--state-file"),
        arg: "PATH",
        default: Builtin::Value("/etc/hapgent/state.json"),
        kind: Kind::Text(path),
        help: "JSON state file",
        doc: "the JSON state file",
        restart: false,
    },
    Setting {
        key: "max_connections",
        env: Some("HAPGENT_MAX_CONNECTIONS"),
        flag: Some("--max-connections"),
        arg: "N",
        default: Builtin::Value("1024"),
        kind: Kind::Number {
            min: 1,
            max: 1_000_000,
            unit: "",
        },
        help: "connections served at once",
        doc: "replies that may be waiting on a slow client at once; more are closed",
        restart: false,
    },
    Setting {
        key: "write_timeout",
        env: Some("HAPGENT_WRITE_TIMEOUT"),
        flag: Some("--write-timeout"),
        arg: "MS",
        default: Builtin::Value("2000"),
        kind: Kind::Number {
            min: 1,
            max: 60_000,
            unit: " milliseconds",
        },
        help: "deadline to send a reply",
        doc: "milliseconds a client has to take its reply",
        restart: false,
    },
    Setting {
        key: "log_requests",
        env: Some("HAPGENT_LOG_REQUESTS"),
        flag: Some("--log-requests"),
        arg: "",
        default: Builtin::Value("false"),
        kind: Kind::Switch,
        help: "log each probe's peer and reply",
        doc: "log each probe's peer address and reply",
        restart: false,
    },
    Setting {
        key: "drain_file",
        env: Some("HAPGENT_DRAIN_FILE"),
        flag: Some("--drain-file"),
        arg: "PATH",
        default: Builtin::Absent("unset"),
        kind: Kind::Text(optional_path),
        help: "report drain while this file exists",
        doc: "while this file exists, report `drain`",
        restart: false,
    },
    Setting {
        key: "maint_file",
        env: Some("HAPGENT_MAINT_FILE"),
        flag: Some("--maint-file"),
        arg: "PATH",
        default: Builtin::Absent("unset"),
        kind: Kind::Text(optional_path),
        help: "report maint while this file exists (wins)",
        doc: "while this file exists, report `maint` (wins over the drain file)",
        restart: false,
    },
    Setting {
        key: "cpu_weight",
        env: Some("HAPGENT_CPU_WEIGHT"),
        flag: Some("--cpu-weight"),
        arg: "",
        default: Builtin::Value("false"),
        kind: Kind::Switch,
        help: "scale the weight by the idle CPU share",
        doc: "scale the weight by the idle CPU share",
        restart: false,
    },
    Setting {
        key: "timeframe",
        env: Some("HAPGENT_TIMEFRAME"),
        flag: Some("--timeframe"),
        arg: "MS",
        default: Builtin::Value("2000"),
        kind: Kind::Number {
            min: 10,
            max: 600_000,
            unit: " milliseconds",
        },
        help: "CPU sampling window",
        doc: "CPU sampling window in milliseconds",
        restart: false,
    },
    Setting {
        key: "min_weight",
        env: Some("HAPGENT_MIN_WEIGHT"),
        flag: Some("--min-weight"),
        arg: "PERCENT",
        default: Builtin::Value("1"),
        kind: Kind::Number {
            min: 0,
            max: 100,
            unit: " (percent)",
        },
        help: "lowest weight CPU load can bring",
        doc: "lowest weight, in percent, that CPU load alone can bring",
        restart: false,
    },
    Setting {
        key: "cpu_smoothing",
        env: Some("HAPGENT_CPU_SMOOTHING"),
        flag: Some("--cpu-smoothing"),
        arg: "PERCENT",
        default: Builtin::Value("0"),
        kind: Kind::Number {
            min: 0,
            max: 99,
            unit: " (percent of the previous sample kept)",
        },
        help: "share of the previous sample kept",
        doc: "percent of the previous sample kept (exponential smoothing; 0 = off)",
        restart: false,
    },
    Setting {
        key: "proc_stat",
        env: Some("HAPGENT_PROC_STAT"),
        flag: Some("--proc-stat"),
        arg: "PATH",
        default: Builtin::Value("/proc/stat"),
        kind: Kind::Text(path),
        help: "CPU counters file",
        doc: "where CPU counters are read",
        restart: false,
    },
    // The proc paths apply at a reload: the capacity sampler is started
    // again with them (see `daemon`), as the CPU sampler is retuned.
    Setting {
        key: "proc_meminfo",
        env: Some("HAPGENT_PROC_MEMINFO"),
        flag: Some("--proc-meminfo"),
        arg: "PATH",
        default: Builtin::Value("/proc/meminfo"),
        kind: Kind::Text(path),
        help: "memory counters file",
        doc: "where the `memory` capacity monitor reads MemTotal and MemAvailable",
        restart: false,
    },
    Setting {
        key: "proc_loadavg",
        env: Some("HAPGENT_PROC_LOADAVG"),
        flag: Some("--proc-loadavg"),
        arg: "PATH",
        default: Builtin::Value("/proc/loadavg"),
        kind: Kind::Text(path),
        help: "load average file",
        doc: "where the `load` capacity monitor reads the load average",
        restart: false,
    },
    Setting {
        key: "proc_net",
        env: Some("HAPGENT_PROC_NET"),
        flag: Some("--proc-net"),
        arg: "PATH",
        default: Builtin::Value("/proc/net"),
        kind: Kind::Text(path),
        help: "directory of the tcp and tcp6 tables",
        doc: "the directory holding `tcp` and `tcp6`, read by the `connections` capacity monitor when netlink is refused",
        restart: false,
    },
    Setting {
        key: "systemd",
        env: Some("HAPGENT_SYSTEMD"),
        flag: Some("--systemd"),
        arg: "",
        default: Builtin::Value("false"),
        kind: Kind::Switch,
        help: "use listening sockets passed by systemd",
        doc: "serve the listening sockets passed by systemd (`LISTEN_FDS`) instead of binding `ip`/`port`",
        restart: true,
    },
    Setting {
        key: "control_socket",
        env: Some("HAPGENT_CONTROL_SOCKET"),
        flag: Some("--control-socket"),
        arg: "PATH",
        default: Builtin::Value(DEFAULT_CONTROL_SOCKET),
        kind: Kind::Text(any),
        help: "control socket for hapgent ctl, empty: none",
        doc: "the control socket of `hapgent ctl`; empty disables it",
        restart: false,
    },
    Setting {
        key: "control_group",
        env: Some("HAPGENT_CONTROL_GROUP"),
        flag: Some("--control-group"),
        arg: "NAME",
        default: Builtin::Absent("hapgent's own group"),
        kind: Kind::Text(group),
        help: "group allowed to use the control socket",
        doc: "members may use the control socket (besides root and hapgent's user)",
        restart: false,
    },
    Setting {
        key: "seen_window",
        env: Some("HAPGENT_SEEN_WINDOW"),
        flag: Some("--seen-window"),
        arg: "MS",
        default: Builtin::Value("30000"),
        kind: Kind::Number {
            min: 1_000,
            max: 3_600_000,
            unit: " milliseconds",
        },
        help: "how recent a probe counts for --wait-seen",
        doc: "the longest silence, in milliseconds, after which a load balancer no longer counts as probing for `--wait-seen` (it also stops counting after three of its own intervals plus a second)",
        restart: false,
    },
    Setting {
        key: "max_probers",
        env: Some("HAPGENT_MAX_PROBERS"),
        flag: Some("--max-probers"),
        arg: "N",
        default: Builtin::Value("4096"),
        kind: Kind::Number {
            min: 1,
            max: 8_192,
            unit: "",
        },
        help: "load balancers remembered per service",
        doc: "load balancers remembered per service (probes naming services that are not configured share 64 more); past it the one of that service unseen for longest is forgotten",
        restart: false,
    },
    Setting {
        key: "services",
        env: None,
        flag: None,
        arg: "",
        default: Builtin::Empty("none"),
        kind: Kind::Table {
            name: "NAME",
            entry: SERVICE,
        },
        help: "",
        doc: "services that HAProxy's `agent-send` names, as `[services.NAME]` tables (file only; see \"Services\")",
        restart: false,
    },
    Setting {
        key: "payload_timeout",
        env: Some("HAPGENT_PAYLOAD_TIMEOUT"),
        flag: Some("--payload-timeout"),
        arg: "MS",
        default: Builtin::Value("100"),
        kind: Kind::Number {
            min: 1,
            max: 10_000,
            unit: " milliseconds",
        },
        help: "with services: wait for agent-send",
        doc: "with services, milliseconds to wait for the `agent-send` payload",
        restart: false,
    },
    Setting {
        key: "allow",
        env: Some("HAPGENT_ALLOW"),
        flag: Some("--allow"),
        arg: "CIDR",
        default: Builtin::Absent("everyone"),
        kind: Kind::List(ranges),
        help: "sources allowed to probe, comma-separated",
        doc: "sources allowed to probe: CIDRs, comma-separated or a TOML array; unset allows everyone, an empty list is an error (write `0.0.0.0/0, ::/0` for everyone)",
        restart: false,
    },
    Setting {
        key: "metrics_listen",
        env: Some("HAPGENT_METRICS_LISTEN"),
        flag: Some("--metrics-listen"),
        arg: "ADDR:PORT",
        default: Builtin::Absent("off"),
        kind: Kind::Text(any),
        help: "serve Prometheus metrics",
        doc: "`address:port` for `GET /metrics`",
        restart: true,
    },
    // Checks, capacity and budgets apply at a reload: the checks' thread
    // and the capacity sampler are started again with the new tables
    // (checks whose definition did not change keep their results), so a
    // restart, which also starts every check afresh, gains nothing.
    Setting {
        key: "checks",
        env: None,
        flag: None,
        arg: "",
        default: Builtin::Empty("none"),
        kind: Kind::Table {
            name: "NAME",
            entry: CHECK,
        },
        help: "",
        doc: "the default service's health checks, as `[checks.NAME]` tables (file only; see \"Health and capacity\"); a failing check lowers the reply as its `on_fail` says",
        restart: false,
    },
    Setting {
        key: "capacity",
        env: None,
        flag: None,
        arg: "",
        default: Builtin::Absent("off"),
        kind: Kind::Table {
            name: "MONITOR",
            entry: MONITOR,
        },
        help: "",
        doc: "capacity monitors for every service, as `[capacity]` with `interval`, `min_weight`, `smoothing`, `drain_above`, `drain_hysteresis` and a `[capacity.MONITOR]` table each for `memory`, `load`, `cpu`, `disk`, `connections` (file only; see \"Health and capacity\")",
        restart: false,
    },
    Setting {
        key: "maxconn_total",
        env: Some("HAPGENT_MAXCONN_TOTAL"),
        flag: Some("--maxconn-total"),
        arg: "N",
        default: Builtin::Absent("no limit"),
        kind: Kind::Number {
            min: 1,
            max: 65_535,
            unit: "",
        },
        help: "connections in all, split across the LBs",
        doc: "the default service's connections in all: each reply carries `maxconn:` this divided by the load balancers probing (rounded up); a `maxconn` in the state wins",
        restart: false,
    },
];

/// The settings of one `[services.NAME]` table.
pub static SERVICE: &[Setting] = &[
    Setting {
        key: "state_file",
        env: None,
        flag: None,
        arg: "",
        default: Builtin::Required,
        kind: Kind::Text(path),
        help: "",
        doc: "the service's JSON state file; each service needs its own",
        restart: false,
    },
    Setting {
        key: "drain_file",
        env: None,
        flag: None,
        arg: "",
        default: Builtin::Absent("unset"),
        kind: Kind::Text(optional_path),
        help: "",
        doc: "while this file exists, the service reports `drain`",
        restart: false,
    },
    Setting {
        key: "maint_file",
        env: None,
        flag: None,
        arg: "",
        default: Builtin::Absent("unset"),
        kind: Kind::Text(optional_path),
        help: "",
        doc: "while this file exists, the service reports `maint`",
        restart: false,
    },
    Setting {
        key: "checks",
        env: None,
        flag: None,
        arg: "",
        default: Builtin::Empty("none"),
        kind: Kind::Table {
            name: "CHECK",
            entry: CHECK,
        },
        help: "",
        doc: "the service's health checks, as `[services.NAME.checks.CHECK]` tables, like `[checks.NAME]`",
        restart: false,
    },
    Setting {
        key: "maxconn_total",
        env: None,
        flag: None,
        arg: "",
        default: Builtin::Absent("no limit"),
        kind: Kind::Number {
            min: 1,
            max: 65_535,
            unit: "",
        },
        help: "",
        doc: "the service's connections in all, split across the load balancers probing it, like `maxconn_total`",
        restart: false,
    },
];

/// The settings of one health check (`[checks.NAME]`). Validated whole by
/// `health::config::check`, whose messages name the key; the kinds here
/// only describe them.
pub static CHECK: &[Setting] = &[
    entry(
        "http",
        "unset",
        "`http://ADDRESS[:PORT][/PATH]`: a GET to a local address passes with a 2xx or 3xx status (plain HTTP)",
    ),
    entry(
        "tcp",
        "unset",
        "`ADDRESS:PORT`: passes when a TCP connection is established",
    ),
    typed(
        "exec",
        "unset",
        Kind::List(any_list),
        "a program and its arguments, run without a shell; passes when it exits 0 (killed with its process group at `timeout`)",
    ),
    typed(
        "interval",
        "`2000`",
        Kind::Number {
            min: 100,
            max: 3_600_000,
            unit: " milliseconds",
        },
        "milliseconds from the start of a run to the start of the next",
    ),
    typed(
        "timeout",
        "`1000`",
        Kind::Number {
            min: 10,
            max: 3_600_000,
            unit: " milliseconds",
        },
        "milliseconds a run may take before it counts as failed",
    ),
    typed(
        "rise",
        "`2`",
        Kind::Number {
            min: 1,
            max: 100,
            unit: "",
        },
        "consecutive passes for a failing check to pass again",
    ),
    typed(
        "fall",
        "`3`",
        Kind::Number {
            min: 1,
            max: 100,
            unit: "",
        },
        "consecutive failures for a passing check to fail",
    ),
    entry(
        "on_fail",
        "`\"down\"`",
        "what a failing check makes the reply: `down`, `drain` or `maint`",
    ),
];

/// The settings of one capacity monitor (`[capacity.MONITOR]`).
pub static MONITOR: &[Setting] = &[
    entry(
        "full",
        "per monitor",
        "the value at which no capacity is left: memory 95 (% in use), load 2.0 (per core), cpu 100 (% busy), disk 95 (% used); `connections` needs one",
    ),
    typed(
        "significance",
        "`1`",
        Kind::Number {
            min: 1,
            max: 1_000,
            unit: "",
        },
        "its share in the composite load, relative to the other monitors",
    ),
    entry(
        "path",
        "unset",
        "`disk` only: a path on the filesystem to watch",
    ),
    typed(
        "ports",
        "unset",
        Kind::List(any_list),
        "`connections` only: the local ports whose established connections count",
    ),
];

/// An entry of a health table: file only, checked by `health::config`
/// (the kind describes it; text, whatever its value, is left to that).
const fn entry(key: &'static str, default: &'static str, doc: &'static str) -> Setting {
    typed(key, default, Kind::Text(any), doc)
}

/// `entry`, with a kind: a number's range is checked twice, here first.
const fn typed(key: &'static str, default: &'static str, kind: Kind, doc: &'static str) -> Setting {
    Setting {
        key,
        env: None,
        flag: None,
        arg: "",
        default: Builtin::Absent(default),
        kind,
        help: "",
        doc,
        restart: false,
    }
}

/// A list entry of a health table, checked by `health::config`.
fn any_list(_: &[&str]) -> Result<(), String> {
    Ok(())
}

/// `ip`: at least one address, none twice (each one parsed by serde).
fn addresses(ips: &[&str]) -> Result<(), String> {
    if ips.is_empty() {
        return Err("at least one address is required".into());
    }
    for (i, ip) in ips.iter().enumerate() {
        if ips[..i].contains(ip) {
            return Err(format!("{ip} is listed twice"));
        }
    }
    Ok(())
}

/// `allow`: at least one address range (an empty list would let everyone
/// in, which is not what an operator who wrote one means), each valid.
fn ranges(ranges: &[&str]) -> Result<(), String> {
    if ranges.is_empty() {
        return Err(
            "is empty, and an empty allow-list would let everyone probe; list the sources allowed (\"0.0.0.0/0, ::/0\" for everyone), or leave allow out"
                .into(),
        );
    }
    for range in ranges {
        range.parse::<Cidr>()?;
    }
    Ok(())
}

/// `control_group`: a group name as the system's tools accept it.
fn group(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if !valid {
        return Err(format!(
            "{name:?} is not a group name (letters, digits, '_', '-', '.')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ServiceConfig};
    use hapgent_common::layer;
    use hapgent_common::settings;
    use std::path::PathBuf;

    /// The table and `Config` agree (one entry per field, the same
    /// defaults), and a service's table has one entry per field of
    /// `ServiceConfig`.
    #[test]
    fn tables_match_config() {
        settings::check_against::<Config>(SETTINGS).unwrap_or_else(|e| panic!("{e}"));
        let service = layer::dict_of(&ServiceConfig {
            state_file: PathBuf::from("/s"),
            drain_file: Some(PathBuf::from("/d")),
            maint_file: Some(PathBuf::from("/m")),
            checks: [("app".to_string(), Default::default())].into(),
            maxconn_total: Some(1),
        });
        let mut keys: Vec<&str> = SERVICE.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            service.keys().map(String::as_str).collect::<Vec<_>>(),
            "SERVICE and ServiceConfig's fields differ"
        );
    }

    /// The environment variable and the flag are made from the key the way
    /// `layer` reads and names them; the Zig hapgent's variables are there.
    #[test]
    fn names_follow_the_key() {
        for s in SETTINGS {
            let table = matches!(s.kind, Kind::Table { .. });
            let env = format!("{ENV_PREFIX}{}", s.key.to_ascii_uppercase());
            let flag = format!("--{}", s.key.replace('_', "-"));
            assert_eq!(s.env, (!table).then_some(env.as_str()), "{}", s.key);
            assert_eq!(s.flag, (!table).then_some(flag.as_str()), "{}", s.key);
            assert_eq!(
                s.arg.is_empty(),
                matches!(s.kind, Kind::Switch | Kind::Table { .. })
            );
            assert_eq!(s.help.is_empty(), table, "{}", s.key);
        }
        for var in ["HAPGENT_IP", "HAPGENT_PORT", "HAPGENT_STATE_FILE"] {
            assert!(SETTINGS.iter().any(|s| s.env == Some(var)), "{var}");
        }
    }

    /// The README's settings table is the one made from `SETTINGS`.
    #[test]
    fn readme_table_matches() {
        let readme = include_str!("../README.md");
        let table = settings::markdown_table(readme, "## Settings")
            .expect("README has a table under \"## Settings\"");
        let header = readme
            .split_once("\n## Settings\n")
            .and_then(|(_, rest)| rest.lines().find(|l| l.starts_with('|')));
        assert_eq!(
            header,
            settings::MARKDOWN_HEADER.lines().next(),
            "README's settings table header"
        );
        if let Some(diff) = settings::table_diff(&table, &settings::markdown_rows(SETTINGS)) {
            panic!("README's settings table differs from SETTINGS (- README, + SETTINGS):\n{diff}");
        }
    }
}
