//! A configuration reload (SIGHUP): what a new configuration changes in the
//! running agent, which of its changes need a restart and are kept as they
//! were (with a warning), and which listeners a new `ip` or `port` keeps.
//!
//! The settings that need a restart are the ones the settings table marks
//! `restart` (see `settings::SETTINGS`); the README's table says so too.
//! Pure: the agent reads the file and applies the plan (see `agent`): it
//! first creates what the plan asks for (new listeners, the control socket
//! at its new place) and only then changes anything, so a setting that
//! cannot be applied rejects the whole reload, named in the error.

use crate::config::Config;
use crate::settings::{SETTINGS, SPEC};
use figment::Figment;
use hapgent_common::layer::{self, Layer};
use hapgent_common::settings;
use std::net::{IpAddr, SocketAddr};

/// What a reload does.
#[derive(Debug)]
pub struct Plan {
    /// The settings that changed and take effect, for the log.
    pub applied: Vec<String>,
    /// The settings that changed but are kept as they were until a restart.
    pub kept: Vec<String>,
    /// Warnings to log (prefixed `reload: `): why something is kept.
    pub warnings: Vec<String>,
    /// Listen on the new `ip` and `port` (see `listeners`) before the old
    /// listeners close; if that fails, the reload is rejected.
    pub rebind: bool,
    /// Create the control socket as `control_socket` and `control_group`
    /// now say, then close the old one; if that fails, the reload is
    /// rejected. `hapgent ctl` reads the same file, so it looks where the
    /// file says: the socket must be there.
    pub move_control: bool,
    /// The configuration to run with from now on: the new one, with the
    /// settings in `kept` as they were.
    pub config: Config,
}

/// The plan for going from `old` to `new`; `None` when nothing changed;
/// an error only if the settings to keep cannot be kept (a bug).
pub fn plan(old: &Config, new: Config) -> Result<Option<Plan>, String> {
    let changed = changed(old, &new);
    if changed.is_empty() {
        return Ok(None);
    }
    let restart = settings::restart_only(SETTINGS);
    let needs_restart: Vec<&str> = changed
        .iter()
        .map(String::as_str)
        .filter(|k| restart.contains(k))
        .collect();
    let addresses: Vec<&str> = changed
        .iter()
        .map(String::as_str)
        .filter(|k| *k == "ip" || *k == "port")
        .collect();
    let mut warnings = Vec::new();
    if !needs_restart.is_empty() {
        let one = needs_restart.len() == 1;
        warnings.push(format!(
            "{} {}; keeping {} until {} restarts",
            needs_restart.join(", "),
            if one {
                "needs a restart"
            } else {
                "need a restart"
            },
            if one {
                "it as it was"
            } else {
                "them as they were"
            },
            SPEC.program,
        ));
    }
    // With socket activation, ip and port do not apply: kept as they were.
    let inert = old.systemd && !addresses.is_empty();
    if inert {
        warnings.push(format!(
            "systemd passes the listening sockets; {} {} not apply",
            addresses.join(" and "),
            if addresses.len() == 1 { "does" } else { "do" }
        ));
    }
    let rebind = !old.systemd && !addresses.is_empty();
    // In `changed`'s (sorted) order.
    let kept: Vec<String> = changed
        .iter()
        .filter(|k| {
            needs_restart.contains(&k.as_str()) || (inert && addresses.contains(&k.as_str()))
        })
        .cloned()
        .collect();
    let move_control = changed
        .iter()
        .any(|k| k == "control_socket" || k == "control_group");
    let keys: Vec<&str> = kept.iter().map(String::as_str).collect();
    let config = keep(&new, old, &keys)?;
    let applied = changed.into_iter().filter(|k| !kept.contains(k)).collect();
    Ok(Some(Plan {
        applied,
        kept,
        warnings,
        rebind,
        move_control,
        config,
    }))
}

/// The keys whose values differ between two configurations, sorted.
fn changed(old: &Config, new: &Config) -> Vec<String> {
    let (old, new) = (layer::dict_of(old), layer::dict_of(new));
    new.iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

/// `new` with the settings `keys` as they are in `old`: what a reload
/// runs with when those settings need a restart. Done on the serialised
/// form so no setting needs code of its own here.
fn keep(new: &Config, old: &Config, keys: &[&str]) -> Result<Config, String> {
    let mut dict = layer::dict_of(new);
    let old = layer::dict_of(old);
    for key in keys {
        match old.get(*key) {
            Some(value) => dict.insert(key.to_string(), value.clone()),
            None => dict.remove(*key),
        };
    }
    Figment::new()
        .merge(Layer::new("reload", dict))
        .extract()
        .map_err(|e| format!("cannot keep {}: {e}", keys.join(", ")))
}

/// The settings that block a reload when `what` fails: `ip and port`,
/// `port`, `control_socket`... (those among `applied`).
pub fn culprits(applied: &[String], candidates: &[&str]) -> String {
    let named: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|c| applied.iter().any(|a| a == c))
        .collect();
    named.join(" and ")
}

/// Listening on `ips` at `port` from listeners on `current`: the current
/// ones to keep, and the addresses to bind afresh. New listeners are bound
/// before old ones close, so no probe is refused in between; port 0 means
/// "any", so every reload binds afresh.
pub fn listeners(
    current: &[SocketAddr],
    ips: &[IpAddr],
    port: u16,
) -> (Vec<SocketAddr>, Vec<IpAddr>) {
    let mut keep = Vec::new();
    let mut fresh = Vec::new();
    for ip in ips {
        let addr = SocketAddr::new(*ip, port);
        if port != 0 && current.contains(&addr) {
            keep.push(addr);
        } else {
            fresh.push(*ip);
        }
    }
    (keep, fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The settings the table marks `restart` are kept with a warning,
    /// whatever else changes; the rest applies; ip and port apply unless
    /// systemd passes the sockets; the control socket moves.
    #[test]
    fn restart_only_settings_are_kept_with_a_warning() {
        let old = Config::default();
        let activated = Config {
            systemd: true,
            ..Config::default()
        };
        let port = |c: &Config| Config {
            port: c.port + 1,
            ..c.clone()
        };
        let metrics = Some("127.0.0.1:9100".parse().unwrap());
        // (old, new, applied, kept, rebind, move_control)
        type Case<'a> = (&'a Config, Config, &'a [&'a str], &'a [&'a str], bool, bool);
        let cases: Vec<Case> = vec![
            (
                &old,
                Config {
                    min_weight: 7,
                    ..old.clone()
                },
                &["min_weight"],
                &[],
                false,
                false,
            ),
            (&old, port(&old), &["port"], &[], true, false),
            (
                &old,
                Config {
                    ip: vec!["127.0.0.1".parse().unwrap()],
                    ..old.clone()
                },
                &["ip"],
                &[],
                true,
                false,
            ),
            (&activated, port(&activated), &[], &["port"], false, false),
            (&old, port(&activated), &["port"], &["systemd"], true, false),
            (
                &activated,
                port(&old),
                &[],
                &["port", "systemd"],
                false,
                false,
            ),
            (&old, activated.clone(), &[], &["systemd"], false, false),
            (
                &old,
                Config {
                    control_socket: PathBuf::from("/x"),
                    ..old.clone()
                },
                &["control_socket"],
                &[],
                false,
                true,
            ),
            (
                &old,
                Config {
                    control_group: Some("adm".into()),
                    ..old.clone()
                },
                &["control_group"],
                &[],
                false,
                true,
            ),
            // Checks, capacity, budgets and the proc paths apply in place
            // (`daemon` restarts the checks and the sampler).
            (
                &old,
                Config {
                    checks: [(
                        "app".to_string(),
                        toml::from_str("tcp = \"127.0.0.1:5432\"").unwrap(),
                    )]
                    .into(),
                    capacity: Some(toml::from_str("[memory]\nfull = 90").unwrap()),
                    maxconn_total: Some(100),
                    proc_meminfo: PathBuf::from("/x/meminfo"),
                    ..old.clone()
                },
                &["capacity", "checks", "maxconn_total", "proc_meminfo"],
                &[],
                false,
                false,
            ),
            (
                &old,
                Config {
                    metrics_listen: metrics,
                    ..port(&old)
                },
                &["port"],
                &["metrics_listen"],
                true,
                false,
            ),
        ];
        for (old, new, applied, kept, rebind, move_control) in cases {
            let wanted = new.clone();
            let plan = plan(old, new).unwrap().expect("a change");
            assert_eq!(plan.applied, applied, "{wanted:?}");
            assert_eq!(plan.kept, kept, "{wanted:?}");
            assert_eq!(plan.warnings.is_empty(), kept.is_empty(), "{wanted:?}");
            assert_eq!((plan.rebind, plan.move_control), (rebind, move_control));
            // What is kept is as it was; the rest is as asked.
            assert_eq!(changed(&plan.config, &wanted), kept, "{wanted:?}");
            assert!(
                changed(old, &plan.config)
                    .iter()
                    .all(|k| applied.contains(&k.as_str()))
            );
        }
        assert!(plan(&old, old.clone()).unwrap().is_none());
    }

    /// Every setting the table marks `restart` is kept by a reload, and
    /// the warning names it.
    #[test]
    fn every_restart_setting_is_kept() {
        let old = Config::default();
        let new = Config {
            systemd: true,
            metrics_listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..old.clone()
        };
        let plan = plan(&old, new).unwrap().unwrap();
        let mut restart = settings::restart_only(SETTINGS);
        restart.sort_unstable();
        assert_eq!(plan.kept, restart);
        assert_eq!(plan.config, old);
        assert_eq!(
            plan.warnings,
            [
                "metrics_listen, systemd need a restart; keeping them as they were until hapgent restarts"
            ]
        );
        assert!(plan.applied.is_empty());
    }

    /// `keep` puts back exactly the keys asked, set or unset.
    #[test]
    fn keep_restores_the_keys_asked() {
        let old = Config::default();
        let new = Config {
            port: 1,
            metrics_listen: Some("127.0.0.1:9100".parse().unwrap()),
            allow: Some(vec!["10.0.0.0/8".into()]),
            control_group: Some("adm".into()),
            ..old.clone()
        };
        let kept = keep(&new, &old, &["metrics_listen", "control_group"]).unwrap();
        assert_eq!(
            kept,
            Config {
                metrics_listen: None,
                control_group: None,
                ..new.clone()
            }
        );
        assert_eq!(keep(&new, &old, &[]).unwrap(), new);
        assert_eq!(keep(&old, &new, &["allow"]).unwrap().allow, new.allow);
    }

    #[test]
    fn changed_names_the_keys_that_differ() {
        let old = Config::default();
        assert!(changed(&old, &old).is_empty());
        let new = Config {
            log_requests: true,
            port: 1,
            drain_file: Some("/d".into()),
            ..Config::default()
        };
        assert_eq!(changed(&old, &new), ["drain_file", "log_requests", "port"]);
    }

    #[test]
    fn culprits_are_the_changed_candidates() {
        let applied = vec!["ip".to_string(), "min_weight".into(), "port".into()];
        assert_eq!(culprits(&applied, &["ip", "port"]), "ip and port");
        assert_eq!(culprits(&applied[1..], &["ip", "port"]), "port");
    }

    #[test]
    fn listeners_kept_and_bound_afresh() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let any4 = ip("0.0.0.0");
        let lo = ip("127.0.0.1");
        let any6 = ip("::");
        // (current, ips, port, kept, bound afresh)
        let cases = [
            (
                vec![a("0.0.0.0:9777")],
                vec![any4],
                9777,
                vec![a("0.0.0.0:9777")],
                vec![],
            ),
            (
                vec![a("0.0.0.0:9777")],
                vec![any4],
                9778,
                vec![],
                vec![any4],
            ),
            (vec![a("0.0.0.0:9777")], vec![lo], 9777, vec![], vec![lo]),
            (
                vec![a("0.0.0.0:9777")],
                vec![any4, any6],
                9777,
                vec![a("0.0.0.0:9777")],
                vec![any6],
            ),
            (
                vec![a("0.0.0.0:9777"), a("[::]:9777")],
                vec![any6],
                9777,
                vec![a("[::]:9777")],
                vec![],
            ),
            // Port 0: whatever port was picked, bind afresh.
            (vec![a("0.0.0.0:0")], vec![any4], 0, vec![], vec![any4]),
            (vec![a("0.0.0.0:41234")], vec![any4], 0, vec![], vec![any4]),
            (vec![], vec![lo], 9777, vec![], vec![lo]),
        ];
        for (current, ips, port, kept, fresh) in cases {
            assert_eq!(
                listeners(&current, &ips, port),
                (kept, fresh),
                "{current:?} {ips:?} {port}"
            );
        }
    }
}
