//! `wait-seen`: waits until every load balancer probing a service has
//! been served a version of its state, and says in words which did not
//! and why (the rules are `probers`').

use super::seconds;
use super::wire::{self, Code, NoFields, WaitSeenAnswer};
use crate::agent::Agent;
use crate::probers::{self, Progress};
use crate::service::Service;
use smol::{Timer, prelude::*};
use std::time::{Duration, Instant};

/// Waits until every prober of `service` that probed within the seen
/// window has been served `version` or later; fails at once when none has
/// probed, early when all that have not seen it stopped probing, and at
/// the timeout.
pub async fn wait_seen(
    agent: &Agent,
    service: &Service,
    version: u64,
    timeout: Duration,
) -> String {
    let current = service.version();
    if version > current {
        let message =
            format!("version {version} does not exist yet (the state is at version {current})");
        return wire::failure(Code::BadRequest, &message, NoFields {});
    }
    let window = agent.seen_window();
    let now = Instant::now();
    let deadline = now + timeout;
    let awaited = agent.probers().recent(service.id, window, now);
    // "Seen after" counts from the change itself when it is the latest.
    let start = service.changed_at(version).unwrap_or(now);
    let mut answer = WaitSeenAnswer {
        service: service.name.to_string(),
        version,
        probers: None,
    };
    let of = if service.name.is_empty() {
        String::new()
    } else {
        format!(" about service {}", service.name)
    };
    if awaited.is_empty() {
        let idle = agent.probers().idle(service.id, IDLE_NAMED, now);
        let message = format!(
            "no load balancer is probing this agent{of}, so nobody can confirm version {version}: {}",
            why_idle(&idle, window)
        );
        return wire::failure(Code::NoProbers, &message, answer);
    }
    let bell = agent.subscribe_probes();
    loop {
        let now = Instant::now();
        let progress = probers::progress(&agent.probers(), &awaited, version, start, window, now);
        let verdict = probers::verdict(&progress);
        answer.probers = Some(progress_answer(&progress));
        match verdict {
            probers::Wait::Seen => return wire::ok(answer),
            probers::Wait::Failed => {
                let message = format!(
                    "version {version}{of} was not seen by every load balancer: {}",
                    unseen(&progress)
                );
                return wire::failure(Code::NotSeen, &message, answer);
            }
            probers::Wait::Pending if now >= deadline => {
                let message = format!(
                    "version {version}{of} was not seen by every load balancer within {}: {}",
                    seconds(timeout),
                    unseen(&progress)
                );
                return wire::failure(Code::NotSeen, &message, answer);
            }
            probers::Wait::Pending => {}
        }
        // Wake at the next probe, or when a silent prober may have gone
        // quiet for longer than the window, or at the deadline.
        let pause = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(250));
        let probe = async {
            let _ = bell.recv().await;
        };
        probe
            .or(async {
                Timer::after(pause).await;
            })
            .await;
    }
}

/// How each prober did, as the answer lists it.
fn progress_answer(progress: &[(probers::Key, Progress)]) -> Vec<wire::Progress> {
    let ms = |d: &Duration| Some(d.as_millis() as u64);
    progress
        .iter()
        .map(|((addr, _), p)| {
            let each = wire::Progress {
                address: addr.to_string(),
                seen: false,
                after_ms: None,
                probing: None,
                last_probe_ms_ago: None,
                evicted: None,
            };
            match p {
                Progress::Seen(d) => wire::Progress {
                    seen: true,
                    after_ms: ms(d),
                    ..each
                },
                Progress::Waiting => wire::Progress {
                    probing: Some(true),
                    ..each
                },
                Progress::Gone(d) => wire::Progress {
                    probing: Some(false),
                    last_probe_ms_ago: ms(d),
                    ..each
                },
                Progress::Evicted => wire::Progress {
                    evicted: Some(true),
                    ..each
                },
            }
        })
        .collect()
}

/// The probers that have not seen it, in words.
fn unseen(progress: &[(probers::Key, Progress)]) -> String {
    progress
        .iter()
        .filter_map(|((addr, _), p)| match p {
            Progress::Seen(_) => None,
            Progress::Waiting => Some(format!("{addr} is probing but has not been served it")),
            Progress::Gone(d) => Some(format!("{addr} stopped probing ({} ago)", seconds(*d))),
            Progress::Evicted => Some(format!(
                "{addr} was evicted from the prober table (more load balancers probe this service than max_probers; raise it)"
            )),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Probers named in a "no load balancer is probing" message.
const IDLE_NAMED: usize = 3;

/// What counts as probing, and why each of the probers named does not:
/// the rest of a "no load balancer is probing" message.
fn why_idle(idle: &[probers::Idle], window: Duration) -> String {
    let rule = format!(
        "a load balancer counts once it has probed twice, until it is silent for longer than three of its intervals plus a second (at most seen_window, {})",
        seconds(window)
    );
    if idle.is_empty() {
        return format!("{rule}; none has probed it yet");
    }
    let each: Vec<String> = idle
        .iter()
        .map(|p| match p.interval {
            _ if p.probes < 2 => format!("{} probed once ({} ago)", p.address, seconds(p.silent)),
            Some(i) if i * 3 + Duration::from_secs(1) < window => format!(
                "{} has been silent for {}, longer than three of its {} intervals plus a second",
                p.address,
                seconds(p.silent),
                if i < Duration::from_secs(1) {
                    format!("{} ms", i.as_millis())
                } else {
                    seconds(i)
                }
            ),
            _ => format!(
                "{} has been silent for {}, longer than seen_window",
                p.address,
                seconds(p.silent)
            ),
        })
        .collect();
    format!("{rule}; {}", each.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_probers_are_named() {
        let a: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let b: std::net::IpAddr = "127.0.0.3".parse().unwrap();
        let text = unseen(&[
            ((a, 0), Progress::Seen(Duration::from_millis(5))),
            ((b, 0), Progress::Gone(Duration::from_millis(31_240))),
        ]);
        assert_eq!(text, "127.0.0.3 stopped probing (31.2 s ago)");
        assert_eq!(
            unseen(&[((a, 0), Progress::Waiting)]),
            "127.0.0.2 is probing but has not been served it"
        );
        assert_eq!(
            unseen(&[((a, 0), Progress::Evicted)]),
            "127.0.0.2 was evicted from the prober table (more load balancers probe this service than max_probers; raise it)"
        );
    }

    #[test]
    fn why_nobody_is_probing_names_the_rule_that_applied() {
        let a: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let ms = Duration::from_millis;
        let idle = |probes, interval: Option<u64>, silent| probers::Idle {
            address: a,
            probes,
            interval: interval.map(ms),
            silent: ms(silent),
        };
        let window = ms(30_000);
        let rule = "a load balancer counts once it has probed twice, until it is silent for longer than three of its intervals plus a second (at most seen_window, 30.0 s)";
        for (list, want) in [
            (vec![], "none has probed it yet".to_string()),
            (
                vec![idle(1, None, 2500)],
                "127.0.0.2 probed once (2.5 s ago)".to_string(),
            ),
            (
                vec![idle(40, Some(200), 1700)],
                "127.0.0.2 has been silent for 1.7 s, longer than three of its 200 ms intervals plus a second".to_string(),
            ),
            (
                vec![idle(3, Some(20_000), 31_000)],
                "127.0.0.2 has been silent for 31.0 s, longer than seen_window".to_string(),
            ),
        ] {
            assert_eq!(why_idle(&list, window), format!("{rule}; {want}"));
        }
    }
}
