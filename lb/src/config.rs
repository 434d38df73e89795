//! The validated configuration, layered from four sources.
//!
//! Lowest to highest precedence: built-in defaults, the TOML file
//! (`/etc/hapgent-lb/hapgent-lb.toml`, or `--config`/`HAPGENT_LB_CONFIG`),
//! `HAPGENT_LB_<KEY>` variables, and flags. The layering itself lives in
//! `hapgent_common::layer`, shared with hapgent, and each setting is
//! described once in `settings::SETTINGS`; this module owns the typed
//! settings of hapgent-lb and the checks that involve several of them. It opens no sockets and reads
//! no file but the configuration file.

use crate::exit::Error;
use crate::settings::SPEC;
use hapgent_common::config::Problem;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use crate::settings::tcp_address;

/// How a new HAProxy configuration is put into effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// `reload` on the master CLI (`master_socket`).
    MasterSocket,
    /// `systemctl reload <systemd_unit>`.
    Systemd,
    /// `reload_command`, an argv run without a shell.
    Command,
}

/// Every setting, typed. Names, defaults, help and checks are in
/// `settings::SETTINGS` (a test keeps the two in step).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub haproxy_socket: PathBuf,
    pub master_socket: Option<PathBuf>,
    pub haproxy_config: PathBuf,
    pub haproxy_bin: PathBuf,
    pub reload: Strategy,
    #[serde(deserialize_with = "argv")]
    pub reload_command: Vec<String>,
    pub systemd_unit: String,
    #[serde(deserialize_with = "argv")]
    pub start_command: Vec<String>,
    pub allow_exec_sections: bool,
    pub reload_timeout: u64,
    pub listen_unix: PathBuf,
    pub socket_group: String,
    pub listen_tcp: String,
    pub token_file: Option<PathBuf>,
    pub max_body: u64,
    pub header_timeout: u64,
    pub body_timeout: u64,
    pub tcp_auth_timeout: u64,
    pub stop_grace: u64,
    pub poll_interval: u64,
    pub max_connections: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            haproxy_socket: "/run/haproxy/admin.sock".into(),
            master_socket: None,
            haproxy_config: "/etc/haproxy/haproxy.cfg".into(),
            haproxy_bin: "haproxy".into(),
            reload: Strategy::Systemd,
            reload_command: Vec::new(),
            systemd_unit: "haproxy.service".into(),
            start_command: Vec::new(),
            allow_exec_sections: false,
            reload_timeout: 10_000,
            listen_unix: "/run/hapgent-lb/api.sock".into(),
            socket_group: String::new(),
            listen_tcp: String::new(),
            token_file: None,
            max_body: 1 << 20,
            header_timeout: 5_000,
            body_timeout: 30_000,
            tcp_auth_timeout: 2_000,
            stop_grace: 30_000,
            poll_interval: 200,
            max_connections: 64,
        }
    }
}

/// Where the configuration comes from (see `hapgent_common::config`).
pub use hapgent_common::config::Inputs;

/// The configuration with the source of each value.
pub type Loaded = hapgent_common::config::Loaded<Config>;

/// Builds the configuration from defaults, file, environment and flags
/// (see `hapgent_common::config::load`), checked by `SETTINGS` and `check`.
pub fn load(inputs: &Inputs) -> Result<Loaded, Error> {
    hapgent_common::config::load(&SPEC, inputs, check).map_err(Error::Config)
}

/// Checks what involves several values: (key, problem). Each value alone
/// has been checked as `SETTINGS` says.
fn check(c: &Config) -> Result<(), Problem> {
    match c.reload {
        Strategy::MasterSocket if c.master_socket.is_none() => {
            return Err((
                "reload",
                "master-socket needs master_socket (the path given to haproxy -S)".into(),
            ));
        }
        Strategy::Command if c.reload_command.is_empty() => {
            return Err(("reload", "command needs reload_command (an argv)".into()));
        }
        _ => {}
    }
    if !c.listen_tcp.is_empty() && c.token_file.is_none() {
        return Err(("listen_tcp", "TCP needs token_file (bearer tokens)".into()));
    }
    Ok(())
}

/// Accepts `reload_command` and `start_command` as an array or as space-separated words.
fn argv<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Argv {
        Words(String),
        List(Vec<String>),
    }
    Ok(match Argv::deserialize(d)? {
        Argv::Words(s) => s.split_whitespace().map(String::from).collect(),
        Argv::List(v) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::SETTINGS;
    use hapgent_common::conffile;
    use std::path::Path;

    fn load_with(env: &[(&str, &str)], flags: &[(&'static str, &str)]) -> Result<Config, Error> {
        let flags: Vec<(&'static str, String)> =
            flags.iter().map(|(k, v)| (*k, v.to_string())).collect();
        load(&Inputs {
            config_flag: None,
            default_file: PathBuf::from("/nonexistent/hapgent-lb.toml"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            flags,
        })
        .map(|l| l.config)
    }

    #[test]
    fn defaults_env_and_flags() {
        let c = load_with(
            &[
                ("HAPGENT_LB_MAX_BODY", "10"),
                ("HAPGENT_LB_RELOAD", "command"),
                ("HAPGENT_LB_RELOAD_COMMAND", "/bin/kill -USR2 1"),
            ],
            &[("max_body", "20")],
        )
        .unwrap();
        assert_eq!(c.max_body, 20);
        assert_eq!(c.reload, Strategy::Command);
        assert_eq!(c.reload_command, ["/bin/kill", "-USR2", "1"]);
        assert_eq!(load_with(&[], &[]).unwrap(), Config::default());
    }

    #[test]
    fn errors_name_key_and_source() {
        for (env, flags, want) in [
            (
                vec![],
                vec![("listen_tcp", "0.0.0.0:9778")],
                "listen_tcp from flag --listen-tcp: 0.0.0.0:9778 is not a loopback address; for remote access put an HAProxy frontend with TLS in front of 127.0.0.1",
            ),
            (
                vec![],
                vec![("listen_tcp", "127.0.0.1:9778")],
                "listen_tcp from flag --listen-tcp: TCP needs token_file (bearer tokens)",
            ),
            (
                vec![],
                vec![("listen_tcp", "localhost")],
                "listen_tcp from flag --listen-tcp: \"localhost\" is not ADDRESS:PORT (e.g. 127.0.0.1:9778)",
            ),
            (
                vec![("HAPGENT_LB_RELOAD", "master-socket")],
                vec![],
                "reload from env HAPGENT_LB_RELOAD: master-socket needs master_socket (the path given to haproxy -S)",
            ),
            (
                vec![("HAPGENT_LB_RELOAD", "kill")],
                vec![],
                "reload from env HAPGENT_LB_RELOAD: unknown variant: found `kill`, expected `one of `master-socket`, `systemd`, `command``",
            ),
            (
                vec![],
                vec![("max_body", "0")],
                "max_body from flag --max-body: must be between 1 and 1073741824",
            ),
            (
                vec![("HAPGENT_LB_HEADER_TIMOUT", "1")],
                vec![],
                "unknown key \"header_timout\" from env HAPGENT_LB_HEADER_TIMOUT",
            ),
        ] {
            let got = match load_with(&env, &flags) {
                Err(Error::Config(m)) => m,
                other => format!("{other:?}"),
            };
            assert!(got.starts_with(want), "want {want}\n got {got}");
        }
    }

    #[test]
    fn describe_is_valid_toml_with_sources() {
        let l = load(&Inputs {
            config_flag: None,
            default_file: PathBuf::from("/nonexistent"),
            env: vec![],
            flags: vec![("max_body", "5".to_string())],
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let text = l.describe();
        assert!(text.contains("max_body = 5"), "{text}");
        assert!(text.contains("# flag --max-body"), "{text}");
        assert!(text.lines().count() >= SETTINGS.len(), "{text}");
        for key in SETTINGS.iter().map(|s| s.key) {
            assert!(
                text.contains(&format!("{key} = ")) || text.contains(&format!("# {key} is unset")),
                "{key} missing: {text}"
            );
        }
        let parsed: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed.get("max_body").and_then(|v| v.as_integer()), Some(5));
        assert!(
            !parsed.contains_key("token_file"),
            "unset is a comment: {text}"
        );
    }

    /// The packaged configuration file shows every setting as the table
    /// says (see `hapgent_common::conffile`), and loads as it is.
    #[test]
    fn the_packaged_file_shows_every_setting_and_loads() {
        let text = include_str!("../debian/hapgent-lb.toml");
        if let Err(e) = conffile::check::<Config>(SETTINGS, text) {
            panic!("lb/debian/hapgent-lb.toml:\n{e}");
        }
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/hapgent-lb.toml");
        load(&Inputs {
            config_flag: Some(path),
            default_file: PathBuf::from("/nonexistent"),
            env: vec![],
            flags: vec![],
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
}
