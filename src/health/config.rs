//! The health and capacity tables of the configuration, as typed and as
//! validated.
//!
//! `[checks.NAME]` (or `[services.S.checks.NAME]`), `[capacity]` and a
//! service's `maxconn_total` arrive as the `*Spec` types, deserialized
//! with unknown keys refused; [`check`], [`capacity`] and [`maxconn_total`]
//! turn them into the values the runners use, or an error that names the
//! key to fix (`checks.app.timeout: ...`). Everything here is pure; this
//! module does not know where the TOML came from (that is `config`'s) and
//! starts nothing.
//!
//! Defaults, chosen to match HAProxy's own checks where there is one:
//! `interval` 2000 ms (HAProxy's `inter`), `timeout` 1000 ms, `rise` 2,
//! `fall` 3 (HAProxy's), `on_fail` "down"; `[capacity]`: `interval` 1000
//! ms, `min_weight` 1 (as today's CPU weight: load alone never drains every
//! server), `smoothing` 0, no `drain_above`, `drain_hysteresis` 10 points;
//! each monitor's `significance` 1 and its `full` level: memory 95 (% of
//! MemTotal not available), load 2.0 (1-minute load per core), cpu 100 (%
//! busy), disk 95 (% of the filesystem used); `connections` has no default
//! level and needs `full` and `ports`.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// `[checks.NAME]` as written: exactly one of `http`, `tcp`, `exec`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// Milliseconds between the start of one run and the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// Milliseconds a run may take; past it, it fails (and an exec is
    /// killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Consecutive passes for a failing check to pass again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    /// Consecutive failures for a passing check to fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
    /// What a failing check does to the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_fail: Option<String>,
}

/// What a failing check does to the reply (see `precedence`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OnFail {
    /// Drain: no new sessions, established ones stay.
    Drain,
    /// Operationally down (`down`); the admin state is kept.
    Down,
    /// Maintenance: HAProxy also pauses its own checks.
    Maint,
}

impl OnFail {
    pub fn word(self) -> &'static str {
        match self {
            OnFail::Down => "down",
            OnFail::Drain => "drain",
            OnFail::Maint => "maint",
        }
    }
}

/// What a check probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `GET path` over plain HTTP/1.1 to `addr`, with `Host: host`.
    Http {
        addr: SocketAddr,
        host: String,
        path: String,
    },
    /// A TCP connect to `addr`.
    Tcp(SocketAddr),
    /// A program and its arguments, run without a shell.
    Exec(Vec<String>),
}

/// A validated check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub on_fail: OnFail,
}

pub const DEFAULT_INTERVAL_MS: u64 = 2000;
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 3;
/// Longest interval or timeout accepted: an hour.
const MAX_MS: u64 = 3_600_000;
/// rise and fall above this are a typo, not a policy.
const MAX_COUNT: u32 = 100;

fn millis(key: &str, value: Option<u64>, default: u64, min: u64) -> Result<Duration, String> {
    let ms = value.unwrap_or(default);
    if !(min..=MAX_MS).contains(&ms) {
        return Err(format!(
            "{key}: must be between {min} and {MAX_MS} milliseconds, not {ms}"
        ));
    }
    Ok(Duration::from_millis(ms))
}

fn count(key: &str, value: Option<u32>, default: u32) -> Result<u32, String> {
    let n = value.unwrap_or(default);
    if !(1..=MAX_COUNT).contains(&n) {
        return Err(format!("{key}: must be between 1 and {MAX_COUNT}, not {n}"));
    }
    Ok(n)
}

/// Validates `[PREFIX.NAME]`: `prefix` is `checks` or
/// `services.S.checks`, used in every error.
pub fn check(prefix: &str, name: &str, spec: &CheckSpec) -> Result<Check, String> {
    let key = format!("{prefix}.{name}");
    if !crate::protocol::valid_service_name(name) {
        return Err(format!(
            "{key}: a check name is 1 to 64 letters, digits and _.:- characters"
        ));
    }
    let probe = match (&spec.http, &spec.tcp, &spec.exec) {
        (Some(url), None, None) => http_url(url).map_err(|e| format!("{key}.http: {e}"))?,
        (None, Some(addr), None) => {
            Probe::Tcp(socket_addr(addr, None).map_err(|e| format!("{key}.tcp: {e}"))?)
        }
        (None, None, Some(argv)) => {
            match argv.first() {
                None => return Err(format!("{key}.exec: needs at least the program")),
                Some(p) if !p.starts_with('/') => {
                    return Err(format!(
                        "{key}.exec: the program {p:?} must be an absolute path (it runs without a shell or PATH lookup)"
                    ));
                }
                Some(_) => {}
            }
            if argv.iter().any(|a| a.contains('\0')) {
                return Err(format!("{key}.exec: an argument contains a NUL byte"));
            }
            Probe::Exec(argv.clone())
        }
        (None, None, None) => {
            return Err(format!("{key}: needs one of http, tcp or exec"));
        }
        _ => {
            return Err(format!(
                "{key}: has more than one of http, tcp and exec; keep one"
            ));
        }
    };
    let interval = millis(
        &format!("{key}.interval"),
        spec.interval,
        DEFAULT_INTERVAL_MS,
        100,
    )?;
    let timeout = millis(
        &format!("{key}.timeout"),
        spec.timeout,
        DEFAULT_TIMEOUT_MS,
        10,
    )?;
    if timeout > interval {
        return Err(format!(
            "{key}.timeout: {} ms is longer than its interval ({} ms); a check must end before the next starts",
            timeout.as_millis(),
            interval.as_millis()
        ));
    }
    let on_fail = match spec.on_fail.as_deref() {
        None | Some("down") => OnFail::Down,
        Some("drain") => OnFail::Drain,
        Some("maint") => OnFail::Maint,
        Some(other) => {
            return Err(format!(
                "{key}.on_fail: must be \"down\", \"drain\" or \"maint\", not {other:?}"
            ));
        }
    };
    Ok(Check {
        name: name.to_string(),
        probe,
        interval,
        timeout,
        rise: count(&format!("{key}.rise"), spec.rise, DEFAULT_RISE)?,
        fall: count(&format!("{key}.fall"), spec.fall, DEFAULT_FALL)?,
        on_fail,
    })
}

/// An IP address and port; `localhost` is 127.0.0.1 (no name is resolved:
/// a check must not wait on DNS). `default_port` fills in a missing port.
fn socket_addr(text: &str, default_port: Option<u16>) -> Result<SocketAddr, String> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        if a.port() == 0 {
            return Err(format!("{text:?}: port 0 cannot be checked"));
        }
        return Ok(a);
    }
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let (host, rest) = inner
            .split_once(']')
            .ok_or_else(|| format!("{text:?} has no closing ]"))?;
        match rest.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if rest.is_empty() => (host, None),
            None => return Err(format!("{text:?} has text after ]")),
        }
    } else if text.matches(':').count() == 1 {
        let (h, p) = text.split_once(':').unwrap_or((text, ""));
        (h, Some(p))
    } else {
        (text, None)
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("{text:?} has a bad port {p:?}"))?,
        ),
        None => None,
    };
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse::<IpAddr>().map_err(|_| {
            format!(
                "{text:?}: the host must be an IP address or localhost (names are not resolved)"
            )
        })?
    };
    let port = port
        .or(default_port)
        .ok_or_else(|| format!("{text:?} needs a port"))?;
    if port == 0 {
        return Err(format!("{text:?}: port 0 cannot be checked"));
    }
    Ok(SocketAddr::new(ip, port))
}

/// Parses `http://HOST[:PORT][/PATH]`: plain HTTP only, HOST an IP address
/// or localhost.
fn http_url(url: &str) -> Result<Probe, String> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "{url:?}: only http:// is supported (a local check needs no TLS), not {scheme}://"
            ));
        }
        None => return Err(format!("{url:?} must start with http://")),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    if authority.contains('@') {
        return Err(format!("{url:?}: user information is not supported"));
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) || path.contains('#') {
        return Err(format!(
            "{url:?}: the path has a space, control character or fragment"
        ));
    }
    let addr = socket_addr(authority, Some(80)).map_err(|e| format!("{url:?}: {e}"))?;
    Ok(Probe::Http {
        addr,
        host: authority.to_string(),
        path,
    })
}

/// `[capacity]` as written.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySpec {
    /// Milliseconds between samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// Lowest weight, in percent, capacity alone can bring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_weight: Option<u32>,
    /// Percent of the previous composite load kept (0 = off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothing: Option<u8>,
    /// Composite load, in percent, at and above which the reply drains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_above: Option<u8>,
    /// Points below `drain_above` the load must fall to end the drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_hysteresis: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<LevelSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LevelSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<LevelSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionsSpec>,
}

/// A monitor's level at which no capacity is left, and its significance.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LevelSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub significance: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub significance: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub significance: Option<u32>,
}

/// Which quantity a monitor watches.
#[derive(Clone, Debug, PartialEq)]
pub enum Watch {
    /// Percent of MemTotal that is not MemAvailable.
    Memory,
    /// 1-minute load average per online core.
    Load,
    /// Percent of CPU time busy, from the CPU counters.
    Cpu,
    /// Percent of the filesystem holding `path` used.
    Disk(PathBuf),
    /// Established TCP connections whose local port is one of these.
    Connections(Vec<u16>),
}

impl Watch {
    pub fn name(&self) -> &'static str {
        match self {
            Watch::Memory => "memory",
            Watch::Load => "load",
            Watch::Cpu => "cpu",
            Watch::Disk(_) => "disk",
            Watch::Connections(_) => "connections",
        }
    }

    /// Its `full` when none is written (none: it must be written), and the
    /// largest `full` that means something.
    fn full_range(&self) -> (Option<f64>, f64) {
        match self {
            Watch::Memory => (Some(95.0), 100.0),
            Watch::Load => (Some(2.0), 10_000.0),
            Watch::Cpu => (Some(100.0), 100.0),
            Watch::Disk(_) => (Some(95.0), 100.0),
            Watch::Connections(_) => (None, 1e9),
        }
    }
}

/// A validated monitor.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    pub watch: Watch,
    /// The value at which it has no capacity left (> 0).
    pub full: f64,
    /// Its share in the composite load, relative to the others (≥ 1).
    pub significance: u32,
}

/// Validated `[capacity]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Capacity {
    pub interval: Duration,
    pub min_weight: u32,
    pub smoothing: u8,
    /// `(drain at or above, end the drain below)`, in percent load.
    pub drain: Option<(u8, u8)>,
    pub monitors: Vec<Monitor>,
}

pub const DEFAULT_CAPACITY_INTERVAL_MS: u64 = 1000;
pub const DEFAULT_HYSTERESIS: u8 = 10;

/// A monitor as written, whichever its table: what it watches and the
/// level keys every monitor has.
struct Written {
    watch: Watch,
    full: Option<f64>,
    significance: Option<u32>,
}

/// The monitor table: each monitor `[capacity]` names, in the order they
/// are validated and listed, or what is wrong with the keys only it has.
fn monitors_written(spec: &CapacitySpec) -> [Option<Result<Written, String>>; 5] {
    let level = |m: &LevelSpec, watch| {
        Ok(Written {
            watch,
            full: m.full,
            significance: m.significance,
        })
    };
    [
        spec.memory.as_ref().map(|m| level(m, Watch::Memory)),
        spec.load.as_ref().map(|m| level(m, Watch::Load)),
        spec.cpu.as_ref().map(|m| level(m, Watch::Cpu)),
        spec.disk.as_ref().map(disk),
        spec.connections.as_ref().map(connections),
    ]
}

/// `[capacity.disk]`: its `path` must be absolute.
fn disk(m: &DiskSpec) -> Result<Written, String> {
    let path = match &m.path {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => {
            return Err(format!(
                "capacity.disk.path: {} must be an absolute path",
                p.display()
            ));
        }
        None => {
            return Err("capacity.disk.path: needs the path whose filesystem to watch".into());
        }
    };
    Ok(Written {
        watch: Watch::Disk(path),
        full: m.full,
        significance: m.significance,
    })
}

/// `[capacity.connections]`: 1 to 64 `ports`, kept sorted and once each.
fn connections(m: &ConnectionsSpec) -> Result<Written, String> {
    let mut ports = m.ports.clone().unwrap_or_default();
    if ports.is_empty() {
        return Err(
            "capacity.connections.ports: needs the local ports whose connections to count".into(),
        );
    }
    if ports.contains(&0) {
        return Err("capacity.connections.ports: port 0 is not a port".into());
    }
    if ports.len() > 64 {
        return Err("capacity.connections.ports: at most 64 ports".into());
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(Written {
        watch: Watch::Connections(ports),
        full: m.full,
        significance: m.significance,
    })
}

/// A written monitor's level keys, checked; errors name
/// `capacity.MONITOR.KEY`.
fn monitor(written: Written) -> Result<Monitor, String> {
    let key = written.watch.name();
    let (default, max) = written.watch.full_range();
    let full = written.full.or(default).ok_or_else(|| {
        format!("capacity.{key}.full: needs the level at which no capacity is left")
    })?;
    if !(full > 0.0 && full <= max) {
        return Err(format!(
            "capacity.{key}.full: must be above 0 and at most {max}, not {full}"
        ));
    }
    let significance = written.significance.unwrap_or(1);
    if !(1..=1000).contains(&significance) {
        return Err(format!(
            "capacity.{key}.significance: must be between 1 and 1000, not {significance} (leave the monitor out to ignore it)"
        ));
    }
    Ok(Monitor {
        watch: written.watch,
        full,
        significance,
    })
}

/// `drain_above` and `drain_hysteresis`: `(drain at or above, end the
/// drain below)`, or none without `drain_above`.
fn drain(spec: &CapacitySpec) -> Result<Option<(u8, u8)>, String> {
    let hysteresis = spec.drain_hysteresis.unwrap_or(DEFAULT_HYSTERESIS);
    match spec.drain_above {
        None if spec.drain_hysteresis.is_some() => {
            Err("capacity.drain_hysteresis: means nothing without drain_above".into())
        }
        None => Ok(None),
        Some(above) if !(1..=100).contains(&above) => Err(format!(
            "capacity.drain_above: must be between 1 and 100 (percent load), not {above}"
        )),
        Some(above) if hysteresis >= above => Err(format!(
            "capacity.drain_hysteresis: {hysteresis} points would end the drain only below 0 %; make it smaller than drain_above ({above})"
        )),
        Some(above) => Ok(Some((above, above - hysteresis))),
    }
}

/// Validates `[capacity]`. At least one monitor must be named: an empty
/// table is most likely a mistake.
pub fn capacity(spec: &CapacitySpec) -> Result<Capacity, String> {
    let interval = millis(
        "capacity.interval",
        spec.interval,
        DEFAULT_CAPACITY_INTERVAL_MS,
        100,
    )?;
    let min_weight = spec.min_weight.unwrap_or(1);
    if min_weight > 100 {
        return Err(format!(
            "capacity.min_weight: must be between 0 and 100 (percent), not {min_weight}"
        ));
    }
    let smoothing = spec.smoothing.unwrap_or(0);
    if smoothing > 99 {
        return Err(format!(
            "capacity.smoothing: must be between 0 and 99 (percent of the previous sample kept), not {smoothing}"
        ));
    }
    let drain = drain(spec)?;
    let mut monitors = Vec::new();
    for written in monitors_written(spec).into_iter().flatten() {
        monitors.push(monitor(written?)?);
    }
    if monitors.is_empty() {
        return Err(
            "capacity: names no monitor; add one of memory, load, cpu, disk, connections (or remove [capacity])".into(),
        );
    }
    Ok(Capacity {
        interval,
        min_weight,
        smoothing,
        drain,
        monitors,
    })
}

/// Most a `maxconn` can say (the state file's bound).
pub const MAX_MAXCONN: u32 = 65535;

/// Validates a service's `maxconn_total` (`key` names it in errors). 0 is
/// refused: HAProxy reads `maxconn:0` as unlimited, and leaving the key
/// out says that plainly.
pub fn maxconn_total(key: &str, value: u32) -> Result<u32, String> {
    if !(1..=MAX_MAXCONN).contains(&value) {
        return Err(format!(
            "{key}: must be between 1 and {MAX_MAXCONN}, not {value} (leave it out for no limit)"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> CheckSpec {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn check_defaults() {
        let c = check("checks", "app", &spec("tcp = \"127.0.0.1:5432\"")).unwrap();
        assert_eq!(
            c,
            Check {
                name: "app".into(),
                probe: Probe::Tcp("127.0.0.1:5432".parse().unwrap()),
                interval: Duration::from_millis(2000),
                timeout: Duration::from_millis(1000),
                rise: 2,
                fall: 3,
                on_fail: OnFail::Down,
            }
        );
    }

    #[test]
    fn probes() {
        let http = |addr: &str, host: &str, path: &str| Probe::Http {
            addr: addr.parse().unwrap(),
            host: host.into(),
            path: path.into(),
        };
        let cases: &[(&str, Probe)] = &[
            (
                "http = \"http://127.0.0.1:8080/health\"",
                http("127.0.0.1:8080", "127.0.0.1:8080", "/health"),
            ),
            (
                "http = \"http://127.0.0.1\"",
                http("127.0.0.1:80", "127.0.0.1", "/"),
            ),
            (
                "http = \"HTTP://localhost:81/a?b=c\"",
                http("127.0.0.1:81", "localhost:81", "/a?b=c"),
            ),
            (
                "http = \"http://[::1]:8080/\"",
                http("[::1]:8080", "[::1]:8080", "/"),
            ),
            ("http = \"http://[::1]/x\"", http("[::1]:80", "[::1]", "/x")),
            (
                "http = \"http://10.0.0.5:81?x\"",
                http("10.0.0.5:81", "10.0.0.5:81", "/?x"),
            ),
            (
                "tcp = \"[::1]:5432\"",
                Probe::Tcp("[::1]:5432".parse().unwrap()),
            ),
            (
                "tcp = \"localhost:5432\"",
                Probe::Tcp("127.0.0.1:5432".parse().unwrap()),
            ),
            (
                "exec = [\"/bin/check\", \"--quick\"]",
                Probe::Exec(vec!["/bin/check".into(), "--quick".into()]),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                &check("checks", "a", &spec(text)).unwrap().probe,
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn check_errors_name_the_key() {
        let cases: &[(&str, &str)] = &[
            ("", "checks.app: needs one of http, tcp or exec"),
            (
                "tcp = \"127.0.0.1:1\"\nexec = [\"/bin/true\"]",
                "checks.app: has more than one of http, tcp and exec; keep one",
            ),
            (
                "http = \"https://127.0.0.1/\"",
                "checks.app.http: \"https://127.0.0.1/\": only http:// is supported (a local check needs no TLS), not https://",
            ),
            (
                "http = \"127.0.0.1/\"",
                "checks.app.http: \"127.0.0.1/\" must start with http://",
            ),
            (
                "http = \"http://db.example/\"",
                "checks.app.http: \"http://db.example/\": \"db.example\": the host must be an IP address or localhost (names are not resolved)",
            ),
            (
                "http = \"http://127.0.0.1:x/\"",
                "checks.app.http: \"http://127.0.0.1:x/\": \"127.0.0.1:x\" has a bad port \"x\"",
            ),
            (
                "http = \"http://127.0.0.1/a b\"",
                "checks.app.http: \"http://127.0.0.1/a b\": the path has a space, control character or fragment",
            ),
            (
                "http = \"http://u@127.0.0.1/\"",
                "checks.app.http: \"http://u@127.0.0.1/\": user information is not supported",
            ),
            (
                "tcp = \"127.0.0.1\"",
                "checks.app.tcp: \"127.0.0.1\" needs a port",
            ),
            (
                "tcp = \"127.0.0.1:0\"",
                "checks.app.tcp: \"127.0.0.1:0\": port 0 cannot be checked",
            ),
            ("exec = []", "checks.app.exec: needs at least the program"),
            (
                "exec = [\"check-db\"]",
                "checks.app.exec: the program \"check-db\" must be an absolute path (it runs without a shell or PATH lookup)",
            ),
            (
                "tcp = \"127.0.0.1:1\"\ninterval = 50",
                "checks.app.interval: must be between 100 and 3600000 milliseconds, not 50",
            ),
            (
                "tcp = \"127.0.0.1:1\"\ntimeout = 0",
                "checks.app.timeout: must be between 10 and 3600000 milliseconds, not 0",
            ),
            (
                "tcp = \"127.0.0.1:1\"\ninterval = 500\ntimeout = 600",
                "checks.app.timeout: 600 ms is longer than its interval (500 ms); a check must end before the next starts",
            ),
            (
                "tcp = \"127.0.0.1:1\"\nrise = 0",
                "checks.app.rise: must be between 1 and 100, not 0",
            ),
            (
                "tcp = \"127.0.0.1:1\"\nfall = 101",
                "checks.app.fall: must be between 1 and 100, not 101",
            ),
            (
                "tcp = \"127.0.0.1:1\"\non_fail = \"fail\"",
                "checks.app.on_fail: must be \"down\", \"drain\" or \"maint\", not \"fail\"",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                check("checks", "app", &spec(text)).unwrap_err(),
                *want,
                "{text}"
            );
        }
        assert_eq!(
            check("services.api.checks", "a b", &spec("tcp = \"127.0.0.1:1\"")).unwrap_err(),
            "services.api.checks.a b: a check name is 1 to 64 letters, digits and _.:- characters"
        );
        let on_fail = |w: &str| {
            check(
                "c",
                "a",
                &spec(&format!("tcp = \"127.0.0.1:1\"\non_fail = \"{w}\"")),
            )
            .unwrap()
            .on_fail
        };
        assert_eq!(on_fail("drain"), OnFail::Drain);
        assert_eq!(on_fail("maint"), OnFail::Maint);
        assert_eq!(on_fail("down"), OnFail::Down);
        // Unknown keys are refused by the type itself.
        let e = toml::from_str::<CheckSpec>("tcp = \"127.0.0.1:1\"\nretries = 2").unwrap_err();
        assert!(e.to_string().contains("unknown field `retries`"), "{e}");
    }

    fn cap(toml_text: &str) -> Result<Capacity, String> {
        capacity(&toml::from_str::<CapacitySpec>(toml_text).map_err(|e| e.to_string())?)
    }

    /// Each `[capacity]` text is refused with exactly its message.
    fn assert_cap_errors(cases: &[(&str, &str)]) {
        for (text, want) in cases {
            assert_eq!(cap(text).unwrap_err(), *want, "{text}");
        }
    }

    #[test]
    fn capacity_defaults_and_monitors() {
        let c = cap("[memory]\n[load]\n[cpu]\n[disk]\npath = \"/var\"\n[connections]\nports = [443, 80, 443]\nfull = 1000\nsignificance = 3\n").unwrap();
        assert_eq!(c.interval, Duration::from_millis(1000));
        assert_eq!((c.min_weight, c.smoothing, c.drain), (1, 0, None));
        let m = |watch, full, significance| Monitor {
            watch,
            full,
            significance,
        };
        assert_eq!(
            c.monitors,
            vec![
                m(Watch::Memory, 95.0, 1),
                m(Watch::Load, 2.0, 1),
                m(Watch::Cpu, 100.0, 1),
                m(Watch::Disk("/var".into()), 95.0, 1),
                m(Watch::Connections(vec![80, 443]), 1000.0, 3),
            ]
        );
        let c = cap("drain_above = 90\nmin_weight = 10\nsmoothing = 50\n[memory]\nfull = 80\n")
            .unwrap();
        assert_eq!(
            (c.min_weight, c.smoothing, c.drain),
            (10, 50, Some((90, 80)))
        );
        let c = cap("drain_above = 90\ndrain_hysteresis = 0\n[load]\nfull = 1.5\n").unwrap();
        assert_eq!(c.drain, Some((90, 90)));
        assert_eq!(c.monitors[0].full, 1.5);
    }

    #[test]
    fn capacity_errors_name_the_key() {
        let cases: &[(&str, &str)] = &[
            (
                "",
                "capacity: names no monitor; add one of memory, load, cpu, disk, connections (or remove [capacity])",
            ),
            (
                "interval = 10\n[memory]",
                "capacity.interval: must be between 100 and 3600000 milliseconds, not 10",
            ),
            (
                "min_weight = 101\n[memory]",
                "capacity.min_weight: must be between 0 and 100 (percent), not 101",
            ),
            (
                "smoothing = 100\n[memory]",
                "capacity.smoothing: must be between 0 and 99 (percent of the previous sample kept), not 100",
            ),
            (
                "drain_above = 0\n[memory]",
                "capacity.drain_above: must be between 1 and 100 (percent load), not 0",
            ),
            (
                "drain_above = 101\n[memory]",
                "capacity.drain_above: must be between 1 and 100 (percent load), not 101",
            ),
            (
                "drain_above = 5\n[memory]",
                "capacity.drain_hysteresis: 10 points would end the drain only below 0 %; make it smaller than drain_above (5)",
            ),
            (
                "drain_hysteresis = 5\n[memory]",
                "capacity.drain_hysteresis: means nothing without drain_above",
            ),
            (
                "[memory]\nfull = 0",
                "capacity.memory.full: must be above 0 and at most 100, not 0",
            ),
            (
                "[memory]\nfull = 120",
                "capacity.memory.full: must be above 0 and at most 100, not 120",
            ),
            (
                "[cpu]\nfull = -1",
                "capacity.cpu.full: must be above 0 and at most 100, not -1",
            ),
            (
                "[load]\nsignificance = 0",
                "capacity.load.significance: must be between 1 and 1000, not 0 (leave the monitor out to ignore it)",
            ),
            (
                "[disk]",
                "capacity.disk.path: needs the path whose filesystem to watch",
            ),
            (
                "[disk]\npath = \"var\"",
                "capacity.disk.path: var must be an absolute path",
            ),
            (
                "[connections]\nfull = 10",
                "capacity.connections.ports: needs the local ports whose connections to count",
            ),
            (
                "[connections]\nports = [0]\nfull = 10",
                "capacity.connections.ports: port 0 is not a port",
            ),
            (
                "[connections]\nports = [80]",
                "capacity.connections.full: needs the level at which no capacity is left",
            ),
        ];
        assert_cap_errors(cases);
        let e = cap("[memory]\nlimit = 3").unwrap_err();
        assert!(e.contains("unknown field `limit`"), "{e}");
    }

    /// The monitor table: each monitor's largest `full`, and the order in
    /// which monitors are checked (the first wrong one is named).
    #[test]
    fn capacity_monitor_table() {
        let many_ports: Vec<String> = (1..=65).map(|p| p.to_string()).collect();
        let many_ports = format!(
            "[connections]\nports = [{}]\nfull = 10",
            many_ports.join(", ")
        );
        let cases: &[(&str, &str)] = &[
            (&many_ports, "capacity.connections.ports: at most 64 ports"),
            (
                "[load]\nfull = 20000",
                "capacity.load.full: must be above 0 and at most 10000, not 20000",
            ),
            (
                "[connections]\nports = [80]\nfull = 2e9",
                "capacity.connections.full: must be above 0 and at most 1000000000, not 2000000000",
            ),
            (
                "[connections]\n[disk]\n[memory]\nfull = 0",
                "capacity.memory.full: must be above 0 and at most 100, not 0",
            ),
            (
                "[connections]\nports = [80]\n[disk]\nfull = 0",
                "capacity.disk.path: needs the path whose filesystem to watch",
            ),
        ];
        assert_cap_errors(cases);
    }

    #[test]
    fn maxconn_total_bounds() {
        assert_eq!(maxconn_total("maxconn_total", 100), Ok(100));
        assert_eq!(maxconn_total("maxconn_total", 65535), Ok(65535));
        assert_eq!(
            maxconn_total("services.api.maxconn_total", 0).unwrap_err(),
            "services.api.maxconn_total: must be between 1 and 65535, not 0 (leave it out for no limit)"
        );
        assert!(maxconn_total("maxconn_total", 65536).is_err());
    }
}
