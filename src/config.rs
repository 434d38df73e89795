//! The validated configuration, layered from four sources.
//!
//! Lowest to highest precedence: built-in defaults, the TOML file, the
//! environment (`HAPGENT_<KEY>`, which covers the Zig hapgent's `HAPGENT_IP`,
//! `HAPGENT_PORT` and `HAPGENT_STATE_FILE`), and command-line flags. figment
//! merges the layers and remembers where each value came from, so every
//! error and the `check-config` listing can name the file, variable or flag
//! to fix.
//!
//! This module does not read the state file or open sockets; it only turns
//! text into a `Config` or a `Error::Config` that names the culprit.

use crate::cidr::Cidr;
use crate::exit::Error;
use crate::health::config::{self as health, CapacitySpec, CheckSpec};
use crate::settings::SPEC;
use hapgent_common::config::Problem;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

pub use crate::settings::{DEFAULT_CONFIG, DEFAULT_CONTROL_SOCKET, ENV_PREFIX};

/// What people call the default service (whose own name is empty), so no
/// configured service may be called this.
pub const DEFAULT_SERVICE: &str = "default";

/// Every setting, typed. Names, defaults, help and checks are in
/// `settings::SETTINGS` (a test keeps the two in step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Addresses to listen on; each gets `port`.
    #[serde(deserialize_with = "addresses")]
    pub ip: Vec<IpAddr>,
    /// TCP port; 0 picks a free one (logged at startup), for tests.
    pub port: u16,
    /// The JSON state file.
    pub state_file: PathBuf,
    /// Connections that may be waiting to receive a reply at once.
    pub max_connections: u32,
    /// Milliseconds a client has to accept the reply.
    pub write_timeout: u64,
    /// Log one line per probe: peer address and reply.
    pub log_requests: bool,
    /// While this file exists, the admin state is at least DRAIN.
    pub drain_file: Option<PathBuf>,
    /// While this file exists, the admin state is MAINT.
    pub maint_file: Option<PathBuf>,
    /// Scale the weight by the share of idle CPU time.
    pub cpu_weight: bool,
    /// Milliseconds between CPU samples (the sampling window).
    pub timeframe: u64,
    /// Lowest weight, in percent, that CPU load alone can bring.
    pub min_weight: u32,
    /// Percent of the previous CPU sample kept when smoothing; 0 = off.
    pub cpu_smoothing: u8,
    /// Where CPU counters are read (tests feed their own file).
    pub proc_stat: PathBuf,
    /// Where the memory monitor reads MemTotal and MemAvailable.
    pub proc_meminfo: PathBuf,
    /// Where the load monitor reads the load average.
    pub proc_loadavg: PathBuf,
    /// The directory holding `tcp` and `tcp6`, read by the connections
    /// monitor when netlink is refused.
    pub proc_net: PathBuf,
    /// Take the listening sockets from systemd (`LISTEN_FDS`) instead of
    /// binding `ip` and `port`.
    pub systemd: bool,
    /// The control socket `hapgent ctl` talks to; empty disables it.
    pub control_socket: PathBuf,
    /// Members of this group may use the control socket (besides root and
    /// hapgent's own user); unset: hapgent's own group.
    pub control_group: Option<String>,
    /// Milliseconds since its last probe for a load balancer to count as
    /// probing (for `--wait-seen`).
    pub seen_window: u64,
    /// Most probers remembered; past it the longest unseen is forgotten.
    pub max_probers: u32,
    /// Services selected by an `agent-send` payload naming them; the
    /// settings above are the default service.
    pub services: BTreeMap<String, ServiceConfig>,
    /// Milliseconds to wait for the payload, when services are configured.
    pub payload_timeout: u64,
    /// Sources allowed to probe; unset: everyone. Never empty (`check`
    /// refuses an empty list, which would silently mean everyone).
    #[serde(default, deserialize_with = "ranges")]
    pub allow: Option<Vec<String>>,
    /// Where to serve Prometheus metrics (`GET /metrics`); unset: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The default service's health checks (`[checks.NAME]`), validated by
    /// `health::config::check`.
    pub checks: BTreeMap<String, CheckSpec>,
    /// The capacity monitors (`[capacity]`), for every service.
    pub capacity: Option<CapacitySpec>,
    /// The default service's connections in all, split across the load
    /// balancers probing it.
    pub maxconn_total: Option<u32>,
}

/// One service besides the default: its own state file and flag files
/// (described in `settings::SERVICE`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub state_file: PathBuf,
    #[serde(default)]
    pub drain_file: Option<PathBuf>,
    #[serde(default)]
    pub maint_file: Option<PathBuf>,
    /// This service's health checks (`[services.NAME.checks.CHECK]`).
    /// Left out of `check-config` when there are none, as is an unset
    /// `maxconn_total`: what it lists for a service stays as it was.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, CheckSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxconn_total: Option<u32>,
}

impl Config {
    /// The allow-list, parsed (`check` has made sure it parses).
    pub fn allow_list(&self) -> Vec<Cidr> {
        self.allow
            .iter()
            .flatten()
            .filter_map(|c| c.parse().ok())
            .collect()
    }
}

pub use crate::protocol::valid_service_name;

/// How logs and answers name a service: the default one (whose own name
/// is empty) as `DEFAULT_SERVICE`.
pub fn service_label(name: &str) -> &str {
    if name.is_empty() {
        DEFAULT_SERVICE
    } else {
        name
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ip: vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
            port: 9777,
            state_file: PathBuf::from("/etc/hapgent/state.json"),
            max_connections: 1024,
            write_timeout: 2000,
            log_requests: false,
            drain_file: None,
            maint_file: None,
            cpu_weight: false,
            timeframe: 2000,
            min_weight: 1,
            cpu_smoothing: 0,
            proc_stat: PathBuf::from("/proc/stat"),
            proc_meminfo: PathBuf::from("/proc/meminfo"),
            proc_loadavg: PathBuf::from("/proc/loadavg"),
            proc_net: PathBuf::from("/proc/net"),
            systemd: false,
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            control_group: None,
            seen_window: 30_000,
            max_probers: 4096,
            services: BTreeMap::new(),
            payload_timeout: 100,
            allow: None,
            metrics_listen: None,
            checks: BTreeMap::new(),
            capacity: None,
            maxconn_total: None,
        }
    }
}

/// Where the configuration comes from: what the process was given. Kept
/// by the running agent, which loads it again on SIGHUP.
pub use hapgent_common::config::Inputs;

/// The configuration together with the source of each value.
pub type Loaded = hapgent_common::config::Loaded<Config>;

/// Builds the configuration from defaults, file, environment and flags
/// (see `hapgent_common::config::load`), checked by `SETTINGS` and `check`.
pub fn load(inputs: &Inputs) -> Result<Loaded, Error> {
    hapgent_common::config::load(&SPEC, inputs, check).map_err(Error::Config)
}

/// Refuses a configuration file that is empty at a reload (see
/// `Loaded::refuse_empty`).
pub fn refuse_empty(loaded: &Loaded) -> Result<(), Error> {
    loaded.refuse_empty().map_err(Error::Config)
}

/// Checks what involves several values (services, the control socket):
/// (key, problem) on failure. Each value alone has been checked as
/// `SETTINGS` says.
fn check(config: &Config) -> Result<(), Problem> {
    control_socket_apart(config)?;
    health_apart(config)?;
    // Compared where they lead, as the control socket is: two spellings
    // of one file would have two services overwrite each other's state.
    let at = |p: &Path| where_is(p).unwrap_or_else(|| p.to_path_buf());
    let mut state_files = std::collections::HashSet::new();
    state_files.insert(at(&config.state_file));
    for (name, service) in &config.services {
        if name == DEFAULT_SERVICE {
            return Err((
                "services",
                "\"default\" names the top-level settings; give this service another name".into(),
            ));
        }
        if !valid_service_name(name) {
            return Err((
                "services",
                format!("{name:?} is not a service name (1-64 of A-Z a-z 0-9 _ . : -)"),
            ));
        }
        if !state_files.insert(at(&service.state_file)) {
            return Err((
                "services",
                format!(
                    "{name}: state_file {} is used by another service; each needs its own",
                    service.state_file.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The health tables and budgets, each validated by `health::config`,
/// whose messages name the key (`checks.app.timeout: ...`).
fn health_apart(config: &Config) -> Result<(), Problem> {
    for (name, spec) in &config.checks {
        health::check("checks", name, spec).map_err(|e| ("checks", e))?;
    }
    if let Some(spec) = &config.capacity {
        health::capacity(spec).map_err(|e| ("capacity", e))?;
    }
    if let Some(n) = config.maxconn_total {
        health::maxconn_total("maxconn_total", n).map_err(|e| ("maxconn_total", e))?;
    }
    for (service, s) in &config.services {
        for (name, spec) in &s.checks {
            health::check(&format!("services.{service}.checks"), name, spec)
                .map_err(|e| ("services", e))?;
        }
        if let Some(n) = s.maxconn_total {
            health::maxconn_total(&format!("services.{service}.maxconn_total"), n)
                .map_err(|e| ("services", e))?;
        }
    }
    Ok(())
}

/// The control socket must not be at the path of a file hapgent reads:
/// creating it would replace that file (a state file turned into a
/// socket serves FAIL, and is gone at stop; a flag file's path holding
/// the socket drains the server). Paths are compared as they resolve
/// (`where_is`), so `/run/h/x/../drain` is `/run/h/drain`.
fn control_socket_apart(config: &Config) -> Result<(), Problem> {
    let socket = &config.control_socket;
    if socket.as_os_str().is_empty() {
        return Ok(());
    }
    let Some(at) = where_is(socket) else {
        return Ok(());
    };
    let same = |p: &Path| where_is(p).is_some_and(|p| p == at);
    let mut files: Vec<(String, &Path)> = vec![("state_file".into(), &config.state_file)];
    files.extend(
        config
            .drain_file
            .as_deref()
            .map(|p| ("drain_file".into(), p)),
    );
    files.extend(
        config
            .maint_file
            .as_deref()
            .map(|p| ("maint_file".into(), p)),
    );
    for (name, s) in &config.services {
        files.push((format!("services.{name}.state_file"), &s.state_file));
        files.extend(
            s.drain_file
                .as_deref()
                .map(|p| (format!("services.{name}.drain_file"), p)),
        );
        files.extend(
            s.maint_file
                .as_deref()
                .map(|p| (format!("services.{name}.maint_file"), p)),
        );
    }
    match files.into_iter().find(|(_, p)| same(p)) {
        Some((key, _)) => Err((
            "control_socket",
            format!(
                "{} is also {key}; creating the socket would replace that file: give the control socket a path of its own",
                socket.display()
            ),
        )),
        None => Ok(()),
    }
}

/// Where a path leads: the file itself through every symbolic link if it
/// exists, else its directory resolved so, else (no such directory yet)
/// the absolute path with `.` and `..` taken lexically. `None` if the
/// working directory is unknown.
fn where_is(path: &Path) -> Option<PathBuf> {
    if let Ok(real) = std::fs::canonicalize(path) {
        return Some(real);
    }
    let path = std::path::absolute(path).ok()?;
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name())
        && let Ok(dir) = std::fs::canonicalize(dir)
    {
        return Some(dir.join(name));
    }
    let mut lexical = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                lexical.pop();
            }
            std::path::Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    Some(lexical)
}

/// Accepts `allow` as one range, a comma- or space-separated list, or an
/// array (each checked in `check`, which names the bad one).
fn ranges<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Ranges;

    impl<'de> Visitor<'de> for Ranges {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an address range or a list of them")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(text) = seq.next_element::<String>()? {
                out.push(text);
            }
            Ok(out)
        }
    }

    struct Optional;

    impl<'de> Visitor<'de> for Optional {
        type Value = Option<Vec<String>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an address range or a list of them")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Ranges).map(Some)
        }
    }

    d.deserialize_option(Optional)
}

/// Accepts `ip` as one address, a comma- or space-separated list, or an
/// array of addresses.
fn addresses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    struct Addresses;

    fn parse_one<E: de::Error>(text: &str) -> Result<IpAddr, E> {
        let text = text.trim();
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        bare.parse().map_err(|_| {
            E::custom(format!(
                "{text:?} is not an IP address (e.g. 0.0.0.0, ::, 127.0.0.1)"
            ))
        })
    }

    impl<'de> Visitor<'de> for Addresses {
        type Value = Vec<IpAddr>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an IP address or a list of IP addresses")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(parse_one)
                .collect()
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(text) = seq.next_element::<String>()? {
                out.push(parse_one(&text)?);
            }
            Ok(out)
        }
    }

    d.deserialize_any(Addresses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapgent_common::{conffile, layer};
    use std::fs;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn flags(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    struct TempFile(PathBuf);
    impl TempFile {
        fn new(name: &str, text: &str) -> TempFile {
            let path = std::env::temp_dir()
                .join(format!("hapgent-config-{}-{name}.toml", std::process::id()));
            fs::write(&path, text).unwrap();
            TempFile(path)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    /// The control socket is compared with the files where both paths
    /// lead: a directory reached through a symbolic link is the same
    /// directory (the socket would be created in it, at the flag file).
    #[test]
    fn a_control_socket_reached_through_a_link_is_still_the_flag_file() {
        let dir = std::env::temp_dir().join(format!("hapgent-config-{}-link", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("real")).unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
        let drain = dir.join("real/drain");
        let socket = dir.join("link/drain");
        let got = load_with(
            None,
            &[],
            &[
                ("drain_file", drain.to_str().unwrap()),
                ("control_socket", socket.to_str().unwrap()),
            ],
        );
        fs::remove_dir_all(&dir).unwrap();
        match got {
            Err(Error::Config(message)) => {
                assert!(message.contains("is also drain_file"), "{message}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a control socket at the drain file's path was accepted"),
        }
    }

    fn load_with(
        file: Option<&Path>,
        e: &[(&str, &str)],
        f: &[(&'static str, &str)],
    ) -> Result<Loaded, Error> {
        load(&Inputs {
            config_flag: file.map(Path::to_path_buf),
            default_file: PathBuf::from("/nonexistent/hapgent.toml"),
            env: env(e),
            flags: flags(f),
        })
    }

    /// An empty file is loaded (all defaults) but marked, and a reload
    /// refuses it; a comment, `/dev/null` or no file at all is not empty.
    #[test]
    fn an_empty_file_is_refused_at_reload() {
        let empty = TempFile::new("empty", "");
        let blank = TempFile::new("blank", " \n\n");
        let comment = TempFile::new("comment", "# all defaults\n");
        for (file, refused) in [
            (Some(empty.0.as_path()), true),
            (Some(blank.0.as_path()), true),
            (Some(comment.0.as_path()), false),
            (Some(Path::new("/dev/null")), false),
            (None, false),
        ] {
            let loaded = load_with(file, &[], &[]).unwrap();
            assert_eq!(loaded.config, Config::default());
            match refuse_empty(&loaded) {
                Err(Error::Config(m)) => {
                    assert!(refused, "{file:?}: {m}");
                    assert!(
                        m.contains("is empty; refusing to reload it as all defaults"),
                        "{m}"
                    );
                }
                Err(e) => panic!("{e:?}"),
                Ok(()) => assert!(!refused, "{file:?}"),
            }
        }
    }

    /// For every setting: default < file < env < flag, each layer checked
    /// by giving it alone, and all together.
    #[test]
    fn precedence_for_each_setting() {
        // (key, env var, file value, env value, flag value, expected after each)
        let rows: &[(&'static str, &str, &str, &str, &str)] = &[
            ("ip", "HAPGENT_IP", "\"10.0.0.1\"", "::1", "127.0.0.2"),
            ("port", "HAPGENT_PORT", "1001", "1002", "1003"),
            (
                "state_file",
                "HAPGENT_STATE_FILE",
                "\"/f.json\"",
                "/e.json",
                "/c.json",
            ),
            (
                "max_connections",
                "HAPGENT_MAX_CONNECTIONS",
                "11",
                "12",
                "13",
            ),
            ("write_timeout", "HAPGENT_WRITE_TIMEOUT", "21", "22", "23"),
            (
                "log_requests",
                "HAPGENT_LOG_REQUESTS",
                "true",
                "false",
                "true",
            ),
        ];
        for &(key, var, file_v, env_v, flag_v) in rows {
            let file = TempFile::new(key, &format!("{key} = {file_v}\n"));
            let get = |l: &Loaded| layer::dict_of(&l.config)[key].clone();
            let default = layer::dict_of(&Config::default())[key].clone();

            let none = load_with(None, &[], &[]).unwrap();
            assert_eq!(get(&none), default, "{key} default");

            let f = load_with(Some(&file.0), &[], &[]).unwrap();
            let e = load_with(Some(&file.0), &[(var, env_v)], &[]).unwrap();
            let c = load_with(Some(&file.0), &[(var, env_v)], &[(key, flag_v)]).unwrap();
            let source = |l: &Loaded| l.origin(key);
            assert_eq!(
                source(&f).unwrap(),
                format!("file {}", file.0.display()),
                "{key}"
            );
            assert_eq!(source(&e).unwrap(), format!("env {var}"), "{key}");
            assert_eq!(
                source(&c).unwrap(),
                format!("flag --{}", key.replace('_', "-")),
                "{key}"
            );
            assert_ne!(get(&f), get(&e), "{key}: file and env values must differ");
            assert_ne!(get(&e), get(&c), "{key}: env and flag values must differ");
            // The flag wins even over env; env wins over the file.
            let only_flag = load_with(None, &[], &[(key, flag_v)]).unwrap();
            let only_env = load_with(None, &[(var, env_v)], &[]).unwrap();
            assert_eq!(get(&c), get(&only_flag), "{key}");
            assert_eq!(get(&e), get(&only_env), "{key}");
        }
    }

    #[test]
    fn paths_that_look_like_numbers_stay_paths() {
        let l = load_with(
            None,
            &[
                ("HAPGENT_STATE_FILE", "2024"),
                ("HAPGENT_DRAIN_FILE", "true"),
            ],
            &[("maint_file", "1")],
        )
        .unwrap();
        assert_eq!(l.config.state_file, Path::new("2024"));
        assert_eq!(l.config.drain_file.as_deref(), Some(Path::new("true")));
        assert_eq!(l.config.maint_file.as_deref(), Some(Path::new("1")));
    }

    #[test]
    fn hapgent_environment_is_understood() {
        let l = load_with(
            None,
            &[
                ("HAPGENT_IP", "::"),
                ("HAPGENT_PORT", "9000"),
                ("HAPGENT_STATE_FILE", "/var/lib/hapgent/state.json"),
                ("PATH", "/bin"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(l.config.ip, vec!["::".parse::<IpAddr>().unwrap()]);
        assert_eq!(l.config.port, 9000);
        assert_eq!(
            l.config.state_file,
            Path::new("/var/lib/hapgent/state.json")
        );
    }

    #[test]
    fn address_lists() {
        let ips = |v: &[IpAddr]| {
            v.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        for (e, f, want) in [
            ("127.0.0.1,::1", "", "127.0.0.1 ::1"),
            ("127.0.0.1 [::1]", "", "127.0.0.1 ::1"),
            ("", "ip = [\"::\", \"127.0.0.1\"]", ":: 127.0.0.1"),
            ("", "ip = \"0.0.0.0\"", "0.0.0.0"),
        ] {
            let file = TempFile::new("ips", f);
            let env_pairs: Vec<(&str, &str)> = if e.is_empty() {
                vec![]
            } else {
                vec![("HAPGENT_IP", e)]
            };
            let l = load_with(Some(&file.0), &env_pairs, &[]).unwrap();
            assert_eq!(ips(&l.config.ip), want);
        }
    }

    #[test]
    fn errors_name_key_and_source() {
        let file = TempFile::new("bad", "port = \"http\"\n");
        let bad_toml = TempFile::new("syntax", "port = \n");
        let unknown = TempFile::new("unknown", "prot = 1\n");
        let service = TempFile::new(
            "service",
            "[services.api]\nstate_file = \"/a.json\"\ndrain_file = \"\"\n",
        );
        let empty_allow = TempFile::new("allow", "allow = []\n");
        let service_socket = TempFile::new(
            "socket",
            "control_socket = \"/a.json\"\n[services.api]\nstate_file = \"/a.json\"\n",
        );
        let shared_state = TempFile::new(
            "shared",
            "state_file = \"/n/s.json\"\n[services.api]\nstate_file = \"/n/x/../s.json\"\n",
        );
        const EMPTY_ALLOW: &str = "is empty, and an empty allow-list would let everyone probe; list the sources allowed (\"0.0.0.0/0, ::/0\" for everyone), or leave allow out";
        let fp = |t: &TempFile| t.0.display().to_string();
        let cases: Vec<(Result<Loaded, Error>, String)> = vec![
            (
                load_with(Some(&file.0), &[], &[]),
                format!("port from file {}: string \"http\" is not a whole number between 0 and 65535", fp(&file)),
            ),
            (
                load_with(None, &[("HAPGENT_PORT", "70000")], &[]),
                "port from env HAPGENT_PORT: 70000 is out of range: must be between 0 and 65535".into(),
            ),
            (
                load_with(None, &[], &[("port", "abc")]),
                "port from flag --port: string \"abc\" is not a whole number between 0 and 65535".into(),
            ),
            (
                load_with(Some(&unknown.0), &[], &[]),
                format!("unknown key \"prot\" from file {} (known keys: allow, capacity, checks, control_group, control_socket, cpu_smoothing, cpu_weight, drain_file, ip, log_requests, maint_file, max_connections, max_probers, maxconn_total, metrics_listen, min_weight, payload_timeout, port, proc_loadavg, proc_meminfo, proc_net, proc_stat, seen_window, services, state_file, systemd, timeframe, write_timeout)", fp(&unknown)),
            ),
            (
                load_with(None, &[("HAPGENT_PROT", "1")], &[]),
                "unknown key \"prot\" from env HAPGENT_PROT (known keys: allow, capacity, checks, control_group, control_socket, cpu_smoothing, cpu_weight, drain_file, ip, log_requests, maint_file, max_connections, max_probers, maxconn_total, metrics_listen, min_weight, payload_timeout, port, proc_loadavg, proc_meminfo, proc_net, proc_stat, seen_window, services, state_file, systemd, timeframe, write_timeout)".into(),
            ),
            (
                load_with(None, &[("HAPGENT_IP", "localhost")], &[]),
                "ip from env HAPGENT_IP: \"localhost\" is not an IP address (e.g. 0.0.0.0, ::, 127.0.0.1)".into(),
            ),
            (
                load_with(None, &[], &[("ip", "127.0.0.1,127.0.0.1")]),
                "ip from flag --ip: 127.0.0.1 is listed twice".into(),
            ),
            (
                load_with(None, &[("HAPGENT_MAX_CONNECTIONS", "0")], &[]),
                "max_connections from env HAPGENT_MAX_CONNECTIONS: must be between 1 and 1000000".into(),
            ),
            (
                load_with(None, &[("HAPGENT_DRAIN_FILE", "")], &[]),
                "drain_file from env HAPGENT_DRAIN_FILE: must not be empty (leave it out to disable)".into(),
            ),
            (
                load_with(None, &[], &[("timeframe", "5")]),
                "timeframe from flag --timeframe: must be between 10 and 600000 milliseconds".into(),
            ),
            (
                load_with(None, &[], &[("min_weight", "101")]),
                "min_weight from flag --min-weight: must be between 0 and 100 (percent)".into(),
            ),
            (
                load_with(None, &[("HAPGENT_CPU_SMOOTHING", "100")], &[]),
                "cpu_smoothing from env HAPGENT_CPU_SMOOTHING: must be between 0 and 99 (percent of the previous sample kept)".into(),
            ),
            (
                load_with(None, &[], &[("write_timeout", "0")]),
                "write_timeout from flag --write-timeout: must be between 1 and 60000 milliseconds".into(),
            ),
            (
                load_with(Some(&service.0), &[], &[]),
                format!("services from file {}: api: drain_file must not be empty (leave it out to disable)", fp(&service)),
            ),
            (
                load_with(None, &[("HAPGENT_LOG_REQUESTS", "maybe")], &[]),
                "log_requests from env HAPGENT_LOG_REQUESTS: invalid type: found string \"maybe\", expected a boolean".into(),
            ),
            (
                load_with(Some(Path::new("/nonexistent/hapgent.toml")), &[], &[]),
                "configuration file /nonexistent/hapgent.toml does not exist".into(),
            ),
            (
                load_with(None, &[("HAPGENT_CONFIG", "/nonexistent/h.toml")], &[]),
                "configuration file /nonexistent/h.toml does not exist".into(),
            ),
            (
                load_with(Some(&empty_allow.0), &[], &[]),
                format!("allow from file {}: {EMPTY_ALLOW}", fp(&empty_allow)),
            ),
            (
                load_with(None, &[("HAPGENT_ALLOW", "")], &[]),
                format!("allow from env HAPGENT_ALLOW: {EMPTY_ALLOW}"),
            ),
            (
                load_with(None, &[], &[("state_file", "/s/x.json"), ("control_socket", "/s/./x.json")]),
                "control_socket from flag --control-socket: /s/./x.json is also state_file; creating the socket would replace that file: give the control socket a path of its own".into(),
            ),
            (
                load_with(None, &[("HAPGENT_DRAIN_FILE", "/n/d")], &[("control_socket", "/n/x/../d")]),
                "control_socket from flag --control-socket: /n/x/../d is also drain_file; creating the socket would replace that file: give the control socket a path of its own".into(),
            ),
            (
                load_with(None, &[("HAPGENT_DRAIN_FILE", "/d")], &[("control_socket", "/d")]),
                "control_socket from flag --control-socket: /d is also drain_file; creating the socket would replace that file: give the control socket a path of its own".into(),
            ),
            (
                load_with(Some(&shared_state.0), &[], &[]),
                format!("services from file {}: api: state_file /n/x/../s.json is used by another service; each needs its own", fp(&shared_state)),
            ),
            (
                load_with(Some(&service_socket.0), &[], &[]),
                format!("control_socket from file {}: /a.json is also services.api.state_file; creating the socket would replace that file: give the control socket a path of its own", fp(&service_socket)),
            ),
        ];
        let mut wrong = Vec::new();
        for (result, want) in cases {
            match result {
                Err(Error::Config(m)) if m == want => {}
                Err(e) => wrong.push(format!("want {want}\n got {e:?}")),
                Ok(_) => wrong.push(format!("want {want}\n got accepted")),
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        match load_with(Some(&bad_toml.0), &[], &[]) {
            Err(Error::Config(m)) => assert_eq!(
                m,
                format!(
                    "file {}: TOML parse error at line 1, column 8: string values must be quoted, expected literal string",
                    fp(&bad_toml)
                )
            ),
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn describe_lists_every_key_with_its_source() {
        let file = TempFile::new("describe", "port = 1234\n");
        let l = load_with(
            Some(&file.0),
            &[("HAPGENT_IP", "::1")],
            &[("log_requests", "true")],
        )
        .unwrap();
        let text = l.describe();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 28, "{text}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("# drain_file is unset") && l.ends_with("# default")),
            "{text}"
        );
        // What check-config prints is TOML.
        assert!(toml::from_str::<toml::Table>(&text).is_ok(), "{text}");
        let find = |key: &str| {
            *lines
                .iter()
                .find(|l| l.starts_with(&format!("{key} =")))
                .unwrap()
        };
        assert!(
            find("port").ends_with(&format!("# file {}", file.0.display())),
            "{text}"
        );
        assert!(
            find("ip").contains("[\"::1\"]") && find("ip").ends_with("# env HAPGENT_IP"),
            "{text}"
        );
        assert!(
            find("log_requests").ends_with("# flag --log-requests"),
            "{text}"
        );
        assert!(find("state_file").ends_with("# default"), "{text}");
    }

    /// The packaged configuration file shows every setting as the table
    /// says (see `hapgent_common::conffile`), and loads as it is.
    #[test]
    fn the_packaged_file_shows_every_setting_and_loads() {
        let text = include_str!("../debian/hapgent.toml");
        if let Err(e) = conffile::check::<Config>(crate::settings::SETTINGS, text) {
            panic!("debian/hapgent.toml:\n{e}");
        }
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/hapgent.toml");
        load_with(Some(&path), &[], &[]).unwrap_or_else(|e| panic!("{e}"));
    }
}
