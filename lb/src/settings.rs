//! Every hapgent-lb setting, described once.
//!
//! [`SETTINGS`] says what each setting is called in the TOML file, the
//! environment (`HAPGENT_LB_*`) and on the command line, its default, its
//! help, and what its value must satisfy. `cli` takes its flags and the
//! usage text's options from it, `config` its text keys and checks, and a
//! test compares it with the README's hapgent-lb settings table and with
//! `Config`'s fields and defaults. The descriptor type is
//! `hapgent_common::settings`, shared with hapgent; [`SPEC`] adds the
//! program's name, environment prefix and default file, which is all
//! `hapgent_common::config` needs to load it.

use hapgent_common::config::Spec;
use hapgent_common::settings::{Builtin, Kind, Setting, any, path};
use std::net::SocketAddr;
use std::path::Path;

/// Read when no `--config` (or `HAPGENT_LB_CONFIG`) is given; may be absent.
pub const DEFAULT_CONFIG: &str = "/etc/hapgent-lb/hapgent-lb.toml";

/// Environment variables that set keys start with this.
pub const ENV_PREFIX: &str = "HAPGENT_LB_";

/// hapgent-lb's configuration as `hapgent_common::config` loads it.
pub static SPEC: Spec = Spec {
    program: "hapgent-lb",
    env_prefix: ENV_PREFIX,
    default_file: DEFAULT_CONFIG,
    settings: SETTINGS,
};

/// hapgent-lb's settings, in the order of the usage text and the README.
pub static SETTINGS: &[Setting] = &[
    Setting {
        key: "haproxy_socket",
        env: Some("HAPGENT_LB_HAPROXY_SOCKET"),
        flag: Some("--haproxy-socket"),
        arg: "PATH",
        default: Builtin::Value("/run/haproxy/admin.sock"),
        kind: Kind::Text(path),
        help: "HAProxy runtime API socket (level admin)",
        doc: "runtime API socket (`stats socket … level admin`)",
        restart: false,
    },
    Setting {
        key: "master_socket",
        env: Some("HAPGENT_LB_MASTER_SOCKET"),
        flag: Some("--master-socket"),
        arg: "PATH",
        default: Builtin::Absent("unset"),
        kind: Kind::Text(any),
        help: "HAProxy master CLI socket (haproxy -W -S PATH); needed by reload = master-socket",
        doc: "master CLI socket (`haproxy -W -S PATH`)",
        restart: false,
    },
    Setting {
        key: "haproxy_config",
        env: Some("HAPGENT_LB_HAPROXY_CONFIG"),
        flag: Some("--haproxy-config"),
        arg: "PATH",
        default: Builtin::Value("/etc/haproxy/haproxy.cfg"),
        kind: Kind::Text(file_name),
        help: "the haproxy.cfg served and replaced",
        doc: "the file served and replaced",
        restart: false,
    },
    Setting {
        key: "haproxy_bin",
        env: Some("HAPGENT_LB_HAPROXY_BIN"),
        flag: Some("--haproxy-bin"),
        arg: "PATH",
        default: Builtin::Value("haproxy"),
        kind: Kind::Text(any),
        help: "haproxy binary used to validate (-c)",
        doc: "binary used for `-c`",
        restart: false,
    },
    Setting {
        key: "reload",
        env: Some("HAPGENT_LB_RELOAD"),
        flag: Some("--reload"),
        arg: "STRATEGY",
        default: Builtin::Value("systemd"),
        kind: Kind::Text(any),
        help: "master-socket, systemd or command",
        doc: "`master-socket`, `systemd` or `command`",
        restart: false,
    },
    Setting {
        key: "reload_command",
        env: Some("HAPGENT_LB_RELOAD_COMMAND"),
        flag: Some("--reload-command"),
        arg: "ARGV",
        default: Builtin::Empty("none"),
        kind: Kind::Text(any),
        help: "argv for reload = command, space-separated (no shell)",
        doc: "argv for `command` (array, or space-separated words; no shell)",
        restart: false,
    },
    Setting {
        key: "systemd_unit",
        env: Some("HAPGENT_LB_SYSTEMD_UNIT"),
        flag: Some("--systemd-unit"),
        arg: "UNIT",
        default: Builtin::Value("haproxy.service"),
        kind: Kind::Text(any),
        help: "unit for reload = systemd",
        doc: "unit for `systemd`",
        restart: false,
    },
    Setting {
        key: "start_command",
        env: Some("HAPGENT_LB_START_COMMAND"),
        flag: Some("--start-command"),
        arg: "ARGV",
        default: Builtin::Empty("reload = systemd: systemctl start UNIT; else none"),
        kind: Kind::Text(any),
        help: "argv that starts HAProxy if a new configuration took it down (no shell)",
        doc: "argv that starts HAProxy after a change took it down (no shell)",
        restart: false,
    },
    Setting {
        key: "allow_exec_sections",
        env: Some("HAPGENT_LB_ALLOW_EXEC_SECTIONS"),
        flag: Some("--allow-exec-sections"),
        arg: "",
        default: Builtin::Value("false"),
        kind: Kind::Switch,
        help: "accept configs that make HAProxy run programs (program, external-check, lua-load...)",
        doc: "accept `program`, `external-check`, `lua-load…` and the like in a PUT",
        restart: false,
    },
    Setting {
        key: "reload_timeout",
        env: Some("HAPGENT_LB_RELOAD_TIMEOUT"),
        flag: Some("--reload-timeout"),
        arg: "MS",
        default: Builtin::Value("10000"),
        kind: Kind::Number {
            min: 100,
            max: 600_000,
            unit: "",
        },
        help: "time for a reload to show up in the runtime API",
        doc: "ms for a reload to become visible",
        restart: false,
    },
    Setting {
        key: "listen_unix",
        env: Some("HAPGENT_LB_LISTEN_UNIX"),
        flag: Some("--listen-unix"),
        arg: "PATH",
        default: Builtin::Value("/run/hapgent-lb/api.sock"),
        kind: Kind::Text(any),
        help: "API Unix socket, mode 0660; empty: none",
        doc: "API socket; empty: none",
        restart: false,
    },
    Setting {
        key: "socket_group",
        env: Some("HAPGENT_LB_SOCKET_GROUP"),
        flag: Some("--socket-group"),
        arg: "GROUP",
        default: Builtin::Empty("hapgent-lb's own group"),
        kind: Kind::Text(any),
        help: "group allowed on the Unix socket",
        doc: "group allowed on the API socket",
        restart: false,
    },
    Setting {
        key: "listen_tcp",
        env: Some("HAPGENT_LB_LISTEN_TCP"),
        flag: Some("--listen-tcp"),
        arg: "ADDR:PORT",
        default: Builtin::Empty("none"),
        kind: Kind::Text(loopback),
        help: "loopback TCP address for the API (needs token_file)",
        doc: "loopback `ADDR:PORT`; needs `token_file`",
        restart: false,
    },
    Setting {
        key: "token_file",
        env: Some("HAPGENT_LB_TOKEN_FILE"),
        flag: Some("--token-file"),
        arg: "PATH",
        default: Builtin::Absent("unset"),
        kind: Kind::Text(any),
        help: "bearer tokens for TCP, one per line as NAME:TOKEN or TOKEN",
        doc: "bearer tokens, `NAME:TOKEN` or `TOKEN` per line",
        restart: false,
    },
    Setting {
        key: "max_body",
        env: Some("HAPGENT_LB_MAX_BODY"),
        flag: Some("--max-body"),
        arg: "BYTES",
        default: Builtin::Value("1048576"),
        kind: Kind::Number {
            min: 1,
            max: 1 << 30,
            unit: "",
        },
        help: "largest request body",
        doc: "largest request body, bytes",
        restart: false,
    },
    Setting {
        key: "header_timeout",
        env: Some("HAPGENT_LB_HEADER_TIMEOUT"),
        flag: Some("--header-timeout"),
        arg: "MS",
        default: Builtin::Value("5000"),
        kind: Kind::Number {
            min: 10,
            max: 600_000,
            unit: "",
        },
        help: "deadline to receive request headers",
        doc: "ms to receive the request headers",
        restart: false,
    },
    Setting {
        key: "body_timeout",
        env: Some("HAPGENT_LB_BODY_TIMEOUT"),
        flag: Some("--body-timeout"),
        arg: "MS",
        default: Builtin::Value("30000"),
        kind: Kind::Number {
            min: 10,
            max: 3_600_000,
            unit: "",
        },
        help: "deadline to receive the body after the headers",
        doc: "ms to receive the body",
        restart: false,
    },
    Setting {
        key: "tcp_auth_timeout",
        env: Some("HAPGENT_LB_TCP_AUTH_TIMEOUT"),
        flag: Some("--tcp-auth-timeout"),
        arg: "MS",
        default: Builtin::Value("2000"),
        kind: Kind::Number {
            min: 10,
            max: 600_000,
            unit: "",
        },
        help: "deadline for a TCP client's headers, with its token (at most header_timeout)",
        doc: "ms for a TCP client's headers, with its token (capped by `header_timeout`)",
        restart: false,
    },
    Setting {
        key: "stop_grace",
        env: Some("HAPGENT_LB_STOP_GRACE"),
        flag: Some("--stop-grace"),
        arg: "MS",
        default: Builtin::Value("30000"),
        kind: Kind::Number {
            min: 0,
            max: 3_600_000,
            unit: "",
        },
        help: "on SIGTERM, time for requests in progress (a config change) to finish",
        doc: "ms a SIGTERM leaves requests in progress (a config change) to finish",
        restart: false,
    },
    Setting {
        key: "poll_interval",
        env: Some("HAPGENT_LB_POLL_INTERVAL"),
        flag: Some("--poll-interval"),
        arg: "MS",
        default: Builtin::Value("200"),
        kind: Kind::Number {
            min: 10,
            max: 60_000,
            unit: "",
        },
        help: "runtime API polling interval for wait and reloads",
        doc: "ms between runtime API polls (`wait`, reload verification)",
        restart: false,
    },
    Setting {
        key: "max_connections",
        env: Some("HAPGENT_LB_MAX_CONNECTIONS"),
        flag: Some("--max-connections"),
        arg: "N",
        default: Builtin::Value("64"),
        kind: Kind::Number {
            min: 1,
            max: 100_000,
            unit: "",
        },
        help: "API connections served at once, per listener",
        doc: "API connections at once, per listener (Unix socket, TCP)",
        restart: false,
    },
];

/// `haproxy_config`: a path that names a file, not `/` or `..`.
fn file_name(text: &str) -> Result<(), String> {
    if Path::new(text).file_name().is_none() {
        return Err("must name a file".into());
    }
    Ok(())
}

/// `listen_tcp`: empty (no TCP) or a loopback `ADDRESS:PORT`.
fn loopback(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    let addr = tcp_address(text)?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address; for remote access put an HAProxy frontend with TLS in front of 127.0.0.1"
        ));
    }
    Ok(())
}

/// Parses `listen_tcp` (`127.0.0.1:8080`, `[::1]:8080`).
pub fn tcp_address(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not ADDRESS:PORT (e.g. 127.0.0.1:9778)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use hapgent_common::settings;

    /// The table and `Config` agree: one entry per field, the same
    /// defaults.
    #[test]
    fn table_matches_config() {
        settings::check_against::<Config>(SETTINGS).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The environment variable and the flag are made from the key the way
    /// `layer` reads and names them.
    #[test]
    fn names_follow_the_key() {
        for s in SETTINGS {
            let env = format!("{ENV_PREFIX}{}", s.key.to_ascii_uppercase());
            let flag = format!("--{}", s.key.replace('_', "-"));
            assert_eq!(s.env, Some(env.as_str()), "{}", s.key);
            assert_eq!(s.flag, Some(flag.as_str()), "{}", s.key);
            let switch = matches!(s.kind, hapgent_common::settings::Kind::Switch);
            assert!(switch || !s.arg.is_empty(), "{}", s.key);
            assert!(!s.help.is_empty(), "{}", s.key);
        }
    }

    /// The README's hapgent-lb settings table is the one made from
    /// `SETTINGS`.
    #[test]
    fn readme_table_matches() {
        let readme = include_str!("../README.md");
        let section = readme
            .split_once("\n## Reference\n")
            .expect("lb/README.md has a \"## Reference\" section")
            .1;
        let table = settings::markdown_table(section, "### Settings")
            .expect("the hapgent-lb section has a table under \"### Settings\"");
        let header = section
            .split_once("\n### Settings\n")
            .and_then(|(_, rest)| rest.lines().find(|l| l.starts_with('|')));
        assert_eq!(
            header,
            settings::MARKDOWN_HEADER.lines().next(),
            "README's hapgent-lb settings table header"
        );
        if let Some(diff) = settings::table_diff(&table, &settings::markdown_rows(SETTINGS)) {
            panic!(
                "README's hapgent-lb settings table differs from SETTINGS (- README, + SETTINGS):\n{diff}"
            );
        }
    }
}
