//! The harness: unique temporary directories, an HAProxy and a hapgent-lb
//! started per test and killed by PID when dropped, a tiny HTTP backend,
//! and clients for HAProxy's CLI and hapgent-lb's API. Every wait is a
//! bounded poll for an event, never a fixed sleep.

use hapgent_testkit::haproxy::{self, Mode};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

pub use hapgent_testkit::haproxy::cli;
pub use hapgent_testkit::{TempDir, free_port};

/// Polls `f` every 50 ms until it returns `Some`, or panics after `limit`
/// with `what`.
pub fn poll<T>(limit: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    hapgent_testkit::poll_every(limit, Duration::from_millis(50), what, f)
}

/// The HAProxy binary the tests run: `haproxy` from PATH (Debian 12: 2.6),
/// or `LB_TEST_HAPROXY` (e.g. the Debian 13 wrapper made by
/// lb/tests/newer-haproxy.sh, HAProxy 3.0).
pub fn haproxy_bin() -> String {
    haproxy::bin().display().to_string()
}

fn signal(pid: u32, sig: i32) {
    hapgent_testkit::kill(pid, sig);
}

/// An HTTP backend answering `200 ok` to every request, on its own thread.
pub struct Backend {
    pub port: u16,
}

impl Backend {
    pub fn start() -> Backend {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(mut s) = stream else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                });
            }
        });
        Backend { port }
    }
}

/// An HAProxy configuration for the tests: frontend `fe` on `fe_port`
/// to backend `web` (server web1 on `be_port`), plus `extra` sections.
pub fn haproxy_config(dir: &Path, fe_port: u16, be_port: u16, extra: &str) -> String {
    format!(
        "global\n    stats socket {}/admin.sock mode 600 level admin\n    hard-stop-after 10s\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind 127.0.0.1:{fe_port}\n    default_backend web\n\
         backend web\n    server web1 127.0.0.1:{be_port} check inter 200ms\n{extra}",
        dir.display()
    )
}

/// HAProxy in master-worker mode, killed (master and workers) when dropped.
pub struct Haproxy {
    inner: hapgent_testkit::Haproxy,
    pub admin: PathBuf,
    pub master: PathBuf,
    pub config: PathBuf,
    pub fe_port: u16,
}

impl Haproxy {
    pub fn start(dir: &TempDir, config: &str, fe_port: u16) -> Haproxy {
        Self::start_env(dir, config, fe_port, &[])
    }

    /// As `start`, with extra environment variables for HAProxy's master;
    /// waits until the runtime API answers and the frontend serves.
    pub fn start_env(dir: &TempDir, config: &str, fe_port: u16, env: &[(&str, &str)]) -> Haproxy {
        let inner = hapgent_testkit::Haproxy::launch(
            &haproxy::bin(),
            dir.path(),
            config,
            Mode::MasterWorker,
            env,
        )
        .expect("haproxy must be installed (apt-get install haproxy)");
        let h = Haproxy {
            admin: inner.admin.clone(),
            master: inner.master.clone(),
            config: inner.config.clone(),
            inner,
            fe_port,
        };
        poll(Duration::from_secs(30), "HAProxy's runtime API", || {
            cli(&h.admin, "show info")
                .ok()
                .filter(|s| s.contains("Pid:"))
        });
        poll(Duration::from_secs(30), "HAProxy's frontend", || {
            h.get().ok().filter(|r| r.starts_with("HTTP/1.1 200"))
        });
        h
    }

    /// The master process's PID (for a reload by signal).
    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// GET / through the frontend; the raw response.
    pub fn get(&self) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.fe_port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    /// The backend names the runtime API shows.
    pub fn backends(&self) -> Vec<String> {
        // Right after a reload the stats socket passes from the old worker
        // to the new one: a connection may be refused for a moment. Every
        // configuration here has a backend, so an answer without one is
        // such a moment, not the answer (bounded: 30 s, a safety net).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let stat = loop {
            match cli(&self.admin, "show stat") {
                Ok(text) if text.contains(",BACKEND,") => break text,
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => break other.unwrap_or_default(),
            }
        };
        let mut names: Vec<String> = stat
            .lines()
            .filter(|l| l.contains(",BACKEND,"))
            .filter_map(|l| l.split(',').next().map(String::from))
            .collect();
        names.dedup();
        names
    }

    /// The worker PIDs `show proc` lists (current and old).
    pub fn workers(&self) -> Vec<u32> {
        self.inner.workers()
    }
}

/// A reply from hapgent-lb's API.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// Parses a raw HTTP response.
pub fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Where the API listens.
#[derive(Clone)]
pub enum Api {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Api {
    pub fn connect(&self) -> Box<dyn ReadWrite> {
        match self {
            Api::Unix(p) => Box::new(UnixStream::connect(p).unwrap()),
            Api::Tcp(a) => Box::new(TcpStream::connect(a).unwrap()),
        }
    }

    /// One request; `headers` as "Name: value" lines.
    pub fn request(&self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Reply {
        let mut s = self.connect();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: lb\r\nContent-Length: {}\r\n",
            body.len()
        );
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let _ = s.write_all(body);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        parse_reply(&raw)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    pub fn put_config(&self, etag: &str, body: &str) -> Reply {
        self.request(
            "PUT",
            "/v1/config",
            &[&format!("If-Match: {etag}")],
            body.as_bytes(),
        )
    }
}

pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// The hapgent-lb binary with a clean environment.
pub fn lb_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hapgent-lb"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c.arg("--config").arg("/dev/null");
    c
}

/// `hapgent-lb serve`, killed by PID when dropped.
pub struct Lb {
    child: Child,
    pub unix: Api,
    pub log: PathBuf,
}

impl Lb {
    /// Serves the API for `h` on `dir/api.sock`, plus `extra` flags.
    pub fn start(dir: &TempDir, h: &Haproxy, extra: &[&str]) -> Lb {
        Self::start_as(dir, h, "api", extra, &[])
    }

    /// As `start`, on `dir/NAME.sock` logging to `dir/NAME.log` (so two
    /// can serve one HAProxy), with extra environment variables.
    pub fn start_as(
        dir: &TempDir,
        h: &Haproxy,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Lb {
        let sock = dir.join(&format!("{name}.sock"));
        let log = dir.join(&format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut c = lb_command();
        c.arg("serve").arg("--haproxy-socket").arg(&h.admin);
        // The master socket and its strategy, unless the test picks another.
        if !extra.contains(&"--reload") {
            c.arg("--master-socket")
                .arg(&h.master)
                .arg("--reload")
                .arg("master-socket");
        }
        c.arg("--haproxy-config")
            .arg(&h.config)
            .arg("--listen-unix")
            .arg(&sock)
            .arg("--poll-interval")
            .arg("50")
            .arg("--haproxy-bin")
            .arg(haproxy_bin())
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = c.spawn().unwrap();
        let mut lb = Lb {
            child,
            unix: Api::Unix(sock.clone()),
            log,
        };
        poll(Duration::from_secs(30), "hapgent-lb's socket", || {
            if let Ok(Some(status)) = lb.child.try_wait() {
                panic!("hapgent-lb exited with {status}: {}", lb.log_text());
            }
            UnixStream::connect(&sock).ok()
        });
        lb
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        hapgent_testkit::stop(&mut self.child);
    }
}

/// Sends requests through HAProxy on `threads` threads until stopped;
/// counts successes and keeps every failure.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub ok: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    pub fn start(port: u16, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let threads = (0..threads)
            .map(|_| {
                let (stop, ok) = (stop.clone(), ok.clone());
                std::thread::spawn(move || {
                    let mut errors = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let result = (|| -> std::io::Result<String> {
                            let mut s = TcpStream::connect(("127.0.0.1", port))?;
                            s.set_read_timeout(Some(Duration::from_secs(30)))?;
                            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
                            let mut out = String::new();
                            s.read_to_string(&mut out)?;
                            Ok(out)
                        })();
                        match result {
                            Ok(r) if r.starts_with("HTTP/1.1 200") && r.ends_with("ok") => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            other => errors.push(format!("{other:?}")),
                        }
                    }
                    errors
                })
            })
            .collect();
        Load { stop, ok, threads }
    }

    /// Stops the load; the errors seen.
    pub fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }
}

impl Lb {
    /// Sends SIGTERM (a stop, as systemd does).
    pub fn terminate(&self) {
        signal(self.child.id(), libc::SIGTERM);
    }

    /// Waits until the process has exited (bounded by `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        poll(limit, "hapgent-lb to exit", || {
            self.child.try_wait().ok().flatten()
        })
    }

    /// Waits until the log holds `what`; the whole log.
    pub fn wait_log(&self, what: &str) -> String {
        poll(
            Duration::from_secs(30),
            &format!("{what:?} in the log"),
            || {
                let log = self.log_text();
                log.contains(what).then_some(log)
            },
        )
    }
}

/// Sends `request` as it is and reads until the server closes; the raw
/// answer, empty if the server closed without one.
pub fn raw_request(api: &Api, request: &[u8]) -> Vec<u8> {
    let mut s = api.connect();
    let _ = s.write_all(request);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    raw
}

/// Runs a command that must exit on its own within `limit` (killed by PID
/// and the test failed otherwise); its status and output (stdout, then
/// stderr).
pub fn exits_within(command: Command, limit: Duration) -> (std::process::ExitStatus, String) {
    let out = hapgent_testkit::exits_within(command, limit)
        .unwrap_or_else(|| panic!("still running after {limit:?}; killed"));
    (out.status, out.stdout + &out.stderr)
}
