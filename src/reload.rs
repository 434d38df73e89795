//! A configuration reload (SIGHUP): what a new configuration changes in the
//! running agent, which of its changes need a restart and are refused with
//! a warning, and which listeners a new `ip` or `port` keeps.
//!
//! Pure: the agent reads the file and applies the plan (see `agent`), in
//! the order given, so an address that cannot be bound rejects the reload
//! before anything changed.

use crate::config::{self, Config};
use std::net::{IpAddr, SocketAddr};

/// One thing a reload does before the new configuration takes over.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Log this warning (prefixed `reload: `): a change that needs a restart.
    Warn(&'static str),
    /// Listen on the new `ip` and `port` (see `listeners`); if that fails,
    /// the reload is rejected and the running configuration kept.
    Rebind,
}

/// What a reload does.
#[derive(Debug)]
pub struct Plan {
    /// The settings that changed, for the log.
    pub changed: Vec<String>,
    /// Done in order before `config` takes over.
    pub steps: Vec<Step>,
    /// The configuration to run with from now on: the new one, with the
    /// settings that need a restart kept as they were.
    pub config: Config,
}

/// The plan for going from `old` to `new`; `None` when nothing changed.
pub fn plan(old: &Config, new: Config) -> Option<Plan> {
    let changed = config::changed(old, &new);
    if changed.is_empty() {
        return None;
    }
    let mut steps = Vec::new();
    if new.systemd != old.systemd {
        steps.push(Step::Warn(
            "changing systemd (socket activation) needs a restart; keeping it as it was",
        ));
    }
    if new.ip != old.ip || new.port != old.port {
        steps.push(if old.systemd {
            Step::Warn("systemd passes the listening sockets; ip and port do not apply")
        } else {
            Step::Rebind
        });
    }
    if new.control_socket != old.control_socket || new.control_group != old.control_group {
        steps.push(Step::Warn(
            "control_socket and control_group need a restart; keeping them as they were",
        ));
    }
    if new.metrics_listen != old.metrics_listen {
        steps.push(Step::Warn(
            "metrics_listen needs a restart; keeping it as it was",
        ));
    }
    let config = Config {
        systemd: old.systemd,
        control_socket: old.control_socket.clone(),
        control_group: old.control_group.clone(),
        metrics_listen: old.metrics_listen,
        ..new
    };
    Some(Plan {
        changed,
        steps,
        config,
    })
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

    #[test]
    fn restart_only_settings_are_kept_with_a_warning() {
        use Step::*;
        const SYSTEMD: Step =
            Warn("changing systemd (socket activation) needs a restart; keeping it as it was");
        const SOCKETS: Step =
            Warn("systemd passes the listening sockets; ip and port do not apply");
        const CONTROL: Step =
            Warn("control_socket and control_group need a restart; keeping them as they were");
        const METRICS: Step = Warn("metrics_listen needs a restart; keeping it as it was");
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
        // (old, new, steps)
        let cases: Vec<(&Config, Config, Vec<Step>)> = vec![
            (
                &old,
                Config {
                    min_weight: 7,
                    ..old.clone()
                },
                vec![],
            ),
            (&old, port(&old), vec![Rebind]),
            (
                &old,
                Config {
                    ip: vec!["127.0.0.1".parse().unwrap()],
                    ..old.clone()
                },
                vec![Rebind],
            ),
            (&activated, port(&activated), vec![SOCKETS]),
            (&old, port(&activated), vec![SYSTEMD, Rebind]),
            (&activated, port(&old), vec![SYSTEMD, SOCKETS]),
            (&old, activated.clone(), vec![SYSTEMD]),
            (
                &old,
                Config {
                    control_socket: PathBuf::from("/x"),
                    ..old.clone()
                },
                vec![CONTROL],
            ),
            (
                &old,
                Config {
                    control_group: Some("adm".into()),
                    ..old.clone()
                },
                vec![CONTROL],
            ),
            (
                &old,
                Config {
                    metrics_listen: metrics,
                    ..port(&old)
                },
                vec![Rebind, METRICS],
            ),
        ];
        for (old, new, steps) in cases {
            let wanted = new.clone();
            let plan = plan(old, new).expect("a change");
            assert_eq!(plan.steps, steps, "{:?}", plan.changed);
            // The rest applies; what needs a restart stays.
            let kept = Config {
                systemd: old.systemd,
                control_socket: old.control_socket.clone(),
                control_group: old.control_group.clone(),
                metrics_listen: old.metrics_listen,
                ..wanted
            };
            assert_eq!(plan.config, kept, "{:?}", plan.changed);
        }
        assert!(plan(&old, old.clone()).is_none());
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
