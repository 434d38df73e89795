//! The prober table at its edges: bounded per service, unknown names kept
//! apart, evictions reported as such, and messages that name the rule that
//! applied. Load balancers are played by probes from distinct loopback
//! source addresses (127.x.y.z), with and without an `agent-send` payload.

use crate::util::*;
use serde_json::Value;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A probe from `source`, sending `payload` first (HAProxy's agent-send);
/// the reply.
fn probe_from(source: Ipv4Addr, to: SocketAddr, payload: &[u8]) -> String {
    use std::os::fd::FromRawFd;
    // std cannot bind before connect: do it with libc.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    let addr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let local = addr(source, 0);
    let SocketAddr::V4(to) = to else { panic!() };
    let remote = addr(*to.ip(), to.port());
    // The stream owns the descriptor from here: closed on every path.
    let mut stream = unsafe { TcpStream::from_raw_fd(fd) };
    unsafe {
        assert_eq!(
            libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len),
            0,
            "bind {source}"
        );
        assert_eq!(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
            0,
            "connect from {source}"
        );
    }
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    if !payload.is_empty() {
        stream.write_all(payload).unwrap();
    }
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// `ctl probers --json`'s list.
fn probers(agent: &Agent) -> Vec<Value> {
    let (code, out, err) = agent.ctl(&["probers", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    v["probers"].as_array().unwrap().clone()
}

/// Starts an agent with services `api` and `web` besides the default, and
/// `args`.
fn with_services(dir: &TempDir, args: &[&str]) -> Agent {
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    write_state(&dir.join("api.json"), r#"{"status":"UP"}"#);
    write_state(&dir.join("web.json"), r#"{"status":"UP"}"#);
    let config = dir.join("hapgent.toml");
    fs::write(
        &config,
        format!(
            "[services.api]\nstate_file = {:?}\n[services.web]\nstate_file = {:?}\n",
            dir.join("api.json"),
            dir.join("web.json"),
        ),
    )
    .unwrap();
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    Agent::builder().state(&state).args(&all).start()
}

/// Load balancers probing in the background until dropped: every
/// (source, payload) pair, again and again.
struct Probing {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Probing {
    fn start(to: SocketAddr, probers: Vec<(Ipv4Addr, &'static [u8])>) -> Probing {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                for (source, payload) in &probers {
                    probe_from(*source, to, payload);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Probing {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Probing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Three load balancers, each probing two services, with `max_probers = 4`:
/// the bound is per service, so all six probers are kept (their counts
/// grow) and `--wait-seen` confirms all three load balancers.
#[test]
fn the_prober_bound_is_per_service() {
    let dir = TempDir::new("probers-per-service");
    let agent = with_services(&dir, &["--max-probers", "4"]);
    let lbs = [
        Ipv4Addr::new(127, 0, 3, 2),
        Ipv4Addr::new(127, 0, 3, 3),
        Ipv4Addr::new(127, 0, 3, 4),
    ];
    let mut pairs = Vec::new();
    for lb in lbs {
        pairs.push((lb, &b"api\n"[..]));
        pairs.push((lb, &b"web\n"[..]));
    }
    let _probing = Probing::start(agent.addrs[0], pairs);
    wait_for("six probers, each probing repeatedly", || {
        let list = probers(&agent);
        list.len() == 6 && list.iter().all(|p| p["probes"].as_u64() >= Some(3))
    });
    // The timeout only bounds a failure: the load balancers keep probing.
    let (code, out, err) = agent.ctl(&[
        "--service",
        "api",
        "drain",
        "--wait-seen",
        "--timeout",
        "60s",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for lb in lbs {
        assert!(
            out.contains(&format!("{lb} has seen version 1 of service api")),
            "{out}"
        );
    }
    assert!(
        out.contains("all 3 load balancers have seen version 1 of service api"),
        "{out}"
    );
}

/// The same against real HAProxy: three HAProxy processes, each probing
/// services `api` and `web` every 200 ms from its own source address, with
/// `max_probers = 4`. All six probers are kept, `--wait-seen` confirms the
/// three load balancers, and each shows the drain once it returned.
#[test]
fn three_haproxies_two_services_four_probers_each() {
    use crate::haproxy::Haproxy;
    let dir = TempDir::new("probers-haproxy");
    let agent = with_services(&dir, &["--max-probers", "4"]);
    let mut lbs = Vec::new();
    for n in 2..=4 {
        let lb_dir = TempDir::new(&format!("probers-haproxy-{n}"));
        let source = format!("source 127.0.7.{n}");
        let api = format!("{source} agent-send \"api\\n\"");
        let web = format!("{source} agent-send \"web\\n\"");
        let backends = [
            ("api", "200ms", api.as_str()),
            ("web", "200ms", web.as_str()),
        ];
        let Some(lb) = Haproxy::start_backends(&lb_dir, agent.port(), &backends) else {
            return;
        };
        lbs.push((lb, lb_dir));
    }
    wait_for("six probers, each probing repeatedly", || {
        let list = probers(&agent);
        list.len() == 6 && list.iter().all(|p| p["probes"].as_u64() >= Some(3))
    });
    let (code, out, err) = agent.ctl(&[
        "--service",
        "api",
        "drain",
        "--wait-seen",
        "--timeout",
        "60s",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("all 3 load balancers have seen version 1 of service api"),
        "{out}"
    );
    for (lb, _) in &lbs {
        lb.wait_for_in(
            "api",
            "after --wait-seen",
            &[("srv_admin_state", "8"), ("stat.status", "~DRAIN")],
        );
        lb.wait_for_in("web", "web untouched", &[("srv_admin_state", "0")]);
    }
}

/// One source naming 300 services that are not configured, with
/// `max_probers = 64`: the unknown names have a budget of their own, and
/// the real load balancers stay in the table.
#[test]
fn unknown_names_cannot_push_out_load_balancers() {
    let dir = TempDir::new("probers-unknown");
    let agent = with_services(&dir, &["--max-probers", "64"]);
    let to = agent.addrs[0];
    let lbs = [Ipv4Addr::new(127, 0, 4, 2), Ipv4Addr::new(127, 0, 4, 3)];
    for _ in 0..2 {
        for lb in lbs {
            assert_eq!(probe_from(lb, to, b"api\n"), "up ready 100%\n");
        }
    }
    let odd = Ipv4Addr::new(127, 0, 4, 9);
    for i in 0..300 {
        assert_eq!(probe_from(odd, to, format!("nosuch{i}\n").as_bytes()), "\n");
    }
    let list = probers(&agent);
    for lb in lbs {
        let entry = list
            .iter()
            .find(|p| p["address"] == lb.to_string().as_str())
            .unwrap_or_else(|| panic!("{lb} was pushed out ({} probers listed)", list.len()));
        assert_eq!(entry["probes"], 2, "{entry}");
        assert_eq!(entry["service"], "api");
    }
    let unknown = list.iter().filter(|p| p["unknown_service"] == true).count();
    assert!((1..=64).contains(&unknown), "{unknown} unknown probers");
}

/// How many bytes of what was written to `stream` the peer has not read
/// yet (SIOCOUTQ on a Unix stream socket).
fn unread(stream: &UnixStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    assert_eq!(rc, 0);
    n
}

/// A load balancer evicted during a `--wait-seen` (more probers than
/// `max_probers`) is reported as evicted, not as having stopped probing.
#[test]
fn an_evicted_prober_is_reported_as_evicted() {
    let dir = TempDir::new("probers-evicted");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder()
        .state(&path)
        .args(&["--max-probers", "2"])
        .start();
    let to = agent.addrs[0];
    let (a, b, c) = (
        Ipv4Addr::new(127, 0, 5, 2),
        Ipv4Addr::new(127, 0, 5, 3),
        Ipv4Addr::new(127, 0, 5, 4),
    );
    for lb in [a, b, a, b] {
        probe_from(lb, to, b"");
    }
    let (code, _, err) = agent.ctl(&["drain"]);
    assert_eq!(code, 0, "{err}");
    // The wait, through the control protocol: once the agent has read the
    // request it has decided whom to await (a and b), before any probe.
    let mut wait = UnixStream::connect(agent.control_socket()).unwrap();
    wait.set_read_timeout(Some(PATIENCE * 2)).unwrap();
    wait.write_all(b"{\"v\":1,\"command\":\"wait-seen\",\"version\":1,\"timeout_ms\":60000}\n")
        .unwrap();
    wait_for("the agent read the wait-seen request", || {
        unread(&wait) == 0
    });
    // A third source pushes a (the longest unseen) out; b sees version 1.
    probe_from(c, to, b"");
    assert_eq!(probe_from(b, to, b""), "up drain 100%\n");
    let mut answer = String::new();
    wait.read_to_string(&mut answer).unwrap();
    let v: Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(v["error"], "not-seen", "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{a} was evicted from the prober table")),
        "{message}"
    );
    assert!(!message.contains("stopped probing"), "{message}");
    let evicted = v["probers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == a.to_string().as_str())
        .cloned()
        .unwrap();
    assert_eq!(evicted["evicted"], true, "{evicted}");
    let (_, metrics, _) = agent.ctl(&["metrics"]);
    assert!(
        metrics.contains("\nhapgent_probers_evicted_total 1\n"),
        "{metrics}"
    );
}

/// When no load balancer counts as probing, the message says which rule
/// applied to each prober of the service (here: silent for longer than
/// three of its intervals plus a second, well within the 30 s window),
/// and the listings say which probers are probing.
#[test]
fn no_probers_names_the_rule_that_applied() {
    let dir = TempDir::new("probers-idle");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    let to = agent.addrs[0];
    let (quick, once) = (Ipv4Addr::new(127, 0, 6, 2), Ipv4Addr::new(127, 0, 6, 3));
    for _ in 0..3 {
        probe_from(quick, to, b"");
    }
    probe_from(once, to, b"");
    wait_for("the prober falls silent", || {
        probers(&agent).iter().all(|p| p["probing"] == false)
    });
    let (_, out, _) = agent.ctl(&["probers"]);
    assert!(out.contains("2 known, 0 probing"), "{out}");
    assert!(out.contains("not probing, last probe"), "{out}");
    let (code, out, err) = agent.ctl(&["drain", "--wait-seen", "--timeout", "5s"]);
    assert_eq!(code, 75, "{out}{err}");
    assert!(
        err.contains("no load balancer is probing this agent"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{quick} has been silent for"))
            && err.contains("intervals plus a second"),
        "{err}"
    );
    assert!(err.contains(&format!("{once} probed once")), "{err}");
    assert!(!err.contains("within the last 30.0 s"), "{err}");
}
