//! The probe path at its edges: what counts as a reply delivered (what
//! `--wait-seen` relies on), payload waits that must not keep probes out,
//! payloads cut short by the deadline, and slow clients on the metrics
//! port. Faults come from Debian's `strace` (`-e inject=sendto:error=…`
//! fails the agent's socket writes: replies are its only `sendto`), from
//! clients that reset (`SO_LINGER` 0) and from clients that never send.
//!
//! Every wait is for an event (a reply, a closed connection, a count of
//! open files); none asserts after a fixed sleep.

use crate::util::*;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
use std::time::Duration;

/// The services' states: the default UP, `api` DRAIN at 40%, `web` DOWN.
const DEFAULT: &str = "up ready 100%\n";
const API: &str = "up drain 40%\n";
const WEB: &str = "down 100%\n";
const NO_NEWS: &str = "\n";

/// Writes the state files and a configuration with services `api` and
/// `web`; returns the configuration's path.
fn services_config(dir: &TempDir) -> String {
    write_state(&dir.join("state.json"), r#"{"status":"UP"}"#);
    write_state(&dir.join("api.json"), r#"{"status":"DRAIN","weight":40}"#);
    write_state(&dir.join("web.json"), r#"{"status":"DOWN"}"#);
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
    config.to_str().unwrap().to_string()
}

/// An agent with services `api` and `web`, plus `args`.
fn with_services(dir: &TempDir, args: &[&str]) -> Agent {
    let config = services_config(dir);
    let mut all = vec!["--config", config.as_str()];
    all.extend_from_slice(args);
    Agent::builder()
        .state(&dir.join("state.json"))
        .args(&all)
        .start()
}

/// A connection to `to` from the loopback address `source`.
fn connect_from(source: Ipv4Addr, to: SocketAddr) -> TcpStream {
    // std cannot bind before connect: do it with libc.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
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
    // SAFETY: the sockaddrs live across the calls; `fd` is ours.
    unsafe {
        assert_eq!(
            libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len),
            0
        );
        assert_eq!(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
            0
        );
        TcpStream::from_raw_fd(fd)
    }
}

/// Closes `stream` with a reset (`SO_LINGER` 0), as a prober that gives up
/// without reading.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and option of the right size.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    drop(stream);
}

/// Reads until the agent closes; an error (a reset) ends it too.
fn read_reply(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends `payload`, then reads the reply to its end.
fn probe_with(addr: SocketAddr, payload: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    s.write_all(payload).unwrap();
    read_reply(&mut s)
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// The prober addresses `ctl probers --json` lists, through `socket`.
fn probers(socket: &Path) -> Vec<String> {
    let (code, out, err) = ctl_at(socket, &["probers", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    v["probers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["address"].as_str().unwrap().to_string())
        .collect()
}

/// Starts hapgent under strace with `inject` on its `sendto` calls (its
/// probe replies), with a control socket in `dir`; returns the agent and
/// the socket.
fn traced(dir: &TempDir, inject: &str, args: &[&str]) -> (Agent, std::path::PathBuf) {
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let socket = dir.join("control.sock");
    let inject = format!("inject=sendto:{inject}");
    let agent = Agent::builder()
        .strace(&["-e", "trace=sendto", "-e", &inject])
        .state(&state)
        .control_socket(&socket)
        .args(args)
        .start();
    (agent, socket)
}

/// A prober whose replies fail to be written (ECONNRESET, as when HAProxy
/// gave up on the check) has seen nothing: a change is not confirmed by
/// it, and it is not listed as a load balancer.
#[test]
fn a_reply_whose_write_fails_is_not_seen() {
    let dir = TempDir::new("probe-path-econnreset");
    // sendto #1 is the answer to `ctl drain`; #2 to #4 the three replies.
    let (agent, socket) = traced(&dir, "error=ECONNRESET:when=2..4", &["--log-requests"]);
    let (code, out, err) = ctl_at(&socket, &["drain"]);
    assert_eq!(code, 0, "{out}{err}");
    // The agent closes each connection without a reply.
    for _ in 0..3 {
        assert_eq!(try_probe(agent.addrs[0], PATIENCE).unwrap_or_default(), "");
    }
    let (code, out, err) = ctl_at(&socket, &["wait-seen", "--timeout", "5s"]);
    assert_eq!(
        code, 75,
        "a reply never written confirmed a change:\n{out}{err}"
    );
    assert!(
        err.contains("no load balancer is probing this agent"),
        "{err}"
    );
    assert_eq!(probers(&socket), Vec::<String>::new());
    agent.wait_log("up drain 100% (not delivered: Connection reset by peer");
}

/// A prober that resets its connection (`SO_LINGER` 0) before the agent
/// writes has seen nothing: the agent does not reply to a reset
/// connection, and does not list it as a load balancer.
#[test]
fn a_prober_that_resets_before_its_reply_is_not_seen() {
    let dir = TempDir::new("probe-path-linger0");
    // With services the agent waits for a payload: the reset comes while
    // it waits, long before its deadline.
    let agent = with_services(&dir, &["--payload-timeout", "10000"]);
    let addr = agent.addrs[0];
    let base = open_fds(agent.pid());
    for _ in 0..3 {
        let s = connect_from(Ipv4Addr::new(127, 0, 0, 7), addr);
        wait_for("the connection accepted", || open_fds(agent.pid()) > base);
        reset(s);
        wait_for("the reset connection closed", || {
            open_fds(agent.pid()) == base
        });
    }
    // A prober that reads is listed; the one that reset is not.
    let mut s = connect_from(Ipv4Addr::new(127, 0, 0, 8), addr);
    s.write_all(b"api\n").unwrap();
    assert_eq!(read_reply(&mut s), API);
    assert_eq!(probers(&agent.control_socket()), ["127.0.0.8"]);
}

/// A reply whose write would block is written by a task: it counts once
/// its last byte is written, and not at all if its deadline cuts it.
#[test]
fn a_slow_reply_is_seen_only_once_written() {
    // Every other write would block: each reply is finished by a task.
    let dir = TempDir::new("probe-path-eagain-half");
    let (agent, socket) = traced(&dir, "error=EAGAIN:when=1+2", &[]);
    for _ in 0..2 {
        assert_eq!(agent.probe(), DEFAULT);
    }
    assert_eq!(probers(&socket), ["127.0.0.1"]);
    drop(agent);
    // Every write would block (the first 2,000; then control answers go
    // through) and the deadline, 1 ms, cuts the reply long before that.
    let dir = TempDir::new("probe-path-eagain-all");
    let (agent, socket) = traced(&dir, "error=EAGAIN:when=1..2000", &["--write-timeout", "1"]);
    assert_eq!(try_probe(agent.addrs[0], PATIENCE).unwrap_or_default(), "");
    assert_eq!(probers(&socket), Vec::<String>::new());
}

/// Clients that connect and never send fill the line of payload waits; a
/// newer probe still gets in, since the one waiting longest is closed
/// (unanswered: it may be a probe whose payload is on its way): a probe
/// that sends its payload only after being accepted gets its service, one
/// that sends none (a backend without `agent-send`) the default service at
/// its `payload_timeout`.
#[test]
fn never_sending_clients_do_not_keep_probes_out() {
    let dir = TempDir::new("probe-path-never-send");
    let agent = with_services(
        &dir,
        &["--max-connections", "4", "--payload-timeout", "10000"],
    );
    let addr = agent.addrs[0];
    let base = open_fds(agent.pid());
    let mut silent: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    wait_for("the silent clients accepted", || {
        open_fds(agent.pid()) >= base + 4
    });
    // The oldest silent client is closed to make room, which says the
    // probe was accepted; then it sends its payload.
    let mut api = TcpStream::connect(addr).unwrap();
    assert_eq!(read_reply(&mut silent[0]), "");
    api.write_all(b"api\n").unwrap();
    assert_eq!(read_reply(&mut api), API);
    agent.wait_log("connections are waiting for their agent-send payload (max_connections)");

    // No payload at all, with the line full of silent clients.
    let dir = TempDir::new("probe-path-no-payload");
    let agent = with_services(
        &dir,
        &["--max-connections", "2", "--payload-timeout", "1000"],
    );
    let addr = agent.addrs[0];
    let base = open_fds(agent.pid());
    let silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    wait_for("the silent clients accepted", || {
        open_fds(agent.pid()) >= base + 2
    });
    let mut none = TcpStream::connect(addr).unwrap();
    assert_eq!(read_reply(&mut none), DEFAULT);
    drop(silent);
}

/// A payload still without its line end at `payload_timeout` is a name
/// cut short: answered with no news, never as the service whose name it
/// begins with. Half-closed after it, it is the whole payload.
#[test]
fn a_payload_cut_by_the_deadline_is_no_news() {
    let dir = TempDir::new("probe-path-cut");
    let agent = with_services(&dir, &["--payload-timeout", "1000"]);
    let addr = agent.addrs[0];
    // `web` of `webapp`, and nothing more before the deadline.
    assert_eq!(probe_with(addr, b"web"), NO_NEWS);
    assert_eq!(probe_with(addr, b"ap"), NO_NEWS);
    // The same bytes, then a half-close: the prober says that is all.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"web").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_reply(&mut s), WEB);
    // Nothing at all: no agent-send, the default service.
    assert_eq!(probe_with(addr, b""), DEFAULT);
    agent.wait_log("no line end within payload_timeout");

    // `webapp\n` trickled at 40 ms a byte against the default 100 ms.
    let dir = TempDir::new("probe-path-trickle");
    let agent = with_services(&dir, &[]);
    let s = TcpStream::connect(agent.addrs[0]).unwrap();
    let mut reader = s.try_clone().unwrap();
    let reply = std::thread::spawn(move || read_reply(&mut reader));
    for byte in b"webapp\n" {
        // Writes after the agent answered and closed may fail.
        let _ = (&s).write_all(&[*byte]);
        std::thread::sleep(Duration::from_millis(40));
    }
    assert_eq!(reply.join().unwrap(), NO_NEWS);
}

/// Clients that trickle a request head on the metrics port fill its 16
/// connections; a scrape still gets through (the one open longest is
/// closed for it).
#[test]
fn slow_metrics_clients_do_not_starve_scrapes() {
    let dir = TempDir::new("probe-path-metrics");
    let state = dir.join("state.json");
    write_state(&state, r#"{"status":"UP"}"#);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let agent = Agent::builder()
        .state(&state)
        .args(&["--metrics-listen", &listen])
        .start();
    let metrics: SocketAddr = listen.parse().unwrap();
    let base = open_fds(agent.pid());
    let slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(metrics).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    wait_for("16 slow clients held", || {
        open_fds(agent.pid()) >= base + 16
    });
    let mut scrape = TcpStream::connect(metrics).unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let text = read_reply(&mut scrape);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(text.contains("hapgent_build_info"), "{text}");
    drop(slow);
}

/// HAProxy adds no line end to `agent-send`: with `agent-send "web"` it
/// sends `web` and waits, and hapgent cannot tell that from `webapp` cut
/// short. It answers with no news, which HAProxy takes as no change
/// (CHECKED, the health check alone decides), and logs how to fix it;
/// `agent-send "web\n"` gets web's state.
#[test]
fn haproxy_gets_no_news_for_an_agent_send_without_a_line_end() {
    let dir = TempDir::new("probe-path-haproxy-cut");
    let agent = with_services(&dir, &[]);
    let Some(lb) = crate::haproxy::Haproxy::start_backends(
        &dir,
        agent.port(),
        &[
            ("cut", "200ms", "agent-send \"web\""),
            ("whole", "200ms", "agent-send \"web\\n\""),
        ],
    ) else {
        return;
    };
    lb.wait_for_in("whole", "web is down", &[("srv_op_state", "0")]);
    agent.wait_log("end its agent-send with \\n (agent-send \"web\\n\")");
    lb.wait_for_in(
        "cut",
        "no news",
        &[("stat.agent_status", "CHECKED"), ("stat.status", "UP")],
    );
    let view = lb.view_of("cut");
    assert_eq!(
        view.get("srv_op_state").map(String::as_str),
        Some("2"),
        "{view:?}"
    );
}

#[test]
fn a_payload_over_512_bytes_does_not_reset_the_reply() {
    let dir = TempDir::new("payload");
    let path = dir.join("state.json");
    write_state(&path, r#"{"status":"UP"}"#);
    let agent = Agent::builder().state(&path).start();
    let payload = vec![b'x'; 4_000];
    for i in 0..200 {
        // The payload is in the socket before the agent accepts it, as
        // with HAProxy's agent-send (sent right after connecting): the
        // agent is stopped while the client connects and sends. (A payload
        // that only arrives after the reply was sent and the socket closed
        // can still be answered by a reset; HAProxy has the line by then.)
        agent.signal(libc::SIGSTOP);
        let mut stream = TcpStream::connect_timeout(&agent.addrs[0], PATIENCE).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.write_all(&payload).unwrap();
        agent.signal(libc::SIGCONT);
        let mut reply = Vec::new();
        let read = stream.read_to_end(&mut reply);
        assert!(read.is_ok(), "round {i}: {read:?} after {reply:?}");
        assert_eq!(reply, b"up ready 100%\n", "round {i}");
    }
}
