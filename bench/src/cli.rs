//! The command line: the usage text, the options as typed, and their
//! checks (exit status 64 on a mistake). What a run does with them is in
//! `phases` and `wait_seen`; `--floor-server`, the hidden argument that
//! makes this program the floor reference, is handled in `main` before any
//! of this.

use crate::error::Error;
use std::path::PathBuf;
use std::time::Duration;

/// `--help`, and the text after a usage error.
pub const USAGE: &str = "\
Usage: hapgent-bench [OPTIONS] [-- AGENT_COMMAND ARGS...]

Without AGENT_COMMAND, starts BINARY (hapgent) as
  BINARY --config TMP/hapgent.toml --ip 127.0.0.1 --port 0 --state-file TMP/state.json
(a config file that is empty unless --services, --metrics or
--agent-config fill it; no HAPGENT_* variables)
with the state {\"status\":\"UP\"}, and learns its port from the stderr line
`listening on 127.0.0.1:PORT`. With AGENT_COMMAND, starts that command as
given and probes 127.0.0.1:PORT (--port is then required).

Options:
  --binary PATH          hapgent binary to start and to measure
                         (default: target/x86_64-unknown-linux-musl/release/hapgent)
  --size-of PATH         binary whose stripped size is reported (default:
                         BINARY, or AGENT_COMMAND's program)
  --port N               port the AGENT_COMMAND listens on (127.0.0.1)
  --concurrency LIST     concurrent probers, comma-separated (default: 1,8,64)
  --threads N            load-generator threads, each an epoll loop driving
                         its share of the concurrent probes (default: the
                         number of CPUs; never more than the concurrency)
  --checks N             checks per load run (default: 100000)
  --duration SECS        upper bound on each load run (default: 60)
  --runs N               runs per concurrency; medians are reported (default: 3)
  --idle-connections N   connections held open without reading (default: 2000)
  --fresh-probes N       probes timed while they are held (default: 20)
  --starts N             spawn-to-first-reply repetitions (default: 5)
  --send STRING          agent-send payload sent after connect (\\n, \\r, \\t
                         escapes; HAProxy sends nothing without agent-send)
  --expect LINE          every reply must be exactly LINE (without newline)
  --timeout-ms N         per-probe connect and read timeout (default: 2000)
  --probers N            spread the probes over N distinct source addresses
                         (127.0.0.2, 127.0.0.3, ...), as N load balancers
                         would; hapgent then also gets a control socket and
                         the report gives how many probers its table holds
                         (default: every probe from 127.0.0.1)
  --no-floor             do not measure the floor (see below)
  --services N           configure hapgent with N services, [services.s1]
                         ... [services.sN], each with its own state file
                         (UP) in TMP; probes select one with --send 's1\n'
  --metrics              set metrics_listen to a free 127.0.0.1 port and
                         scrape GET /metrics during each load (every
                         --scrape-interval-ms); every scrape must get 200
  --scrape-interval-ms N time between scrapes (default: 1000)
  --agent-config FILE    TOML added to hapgent's configuration file after
                         the generated top-level keys (before the services)
  --wait-seen N          instead of the load: start HAProxy against hapgent
                         and time N `hapgent ctl drain|ready --wait-seen`
                         (alternately), and when HAProxy shows each change
  --prober-table N       instead of the load: fill hapgent's prober table
                         (max_probers = N) from N distinct sources, then
                         evict with more, then run `ctl probers --json`,
                         timing a steady prober throughout (see table.rs)
  --haproxy PATH         HAProxy for --wait-seen and --lb-status (default: haproxy)
  --agent-inter MS       HAProxy's agent-inter for --wait-seen (default: 200)
  --lb-status N          instead of the load: start HAProxy with a generated
                         configuration of --lb-servers servers in
                         --lb-backends backends and time N runs of
                         `hapgent-lb status --json` (wall time, CPU time,
                         peak RSS)
  --lb-binary PATH       hapgent-lb binary for --lb-status (default:
                         target/x86_64-unknown-linux-musl/release/hapgent-lb)
  --lb-servers N         servers for --lb-status (default: 2000)
  --lb-backends N        backends for --lb-status (default: 50)
  --check                short correctness mode: 3000 checks, 300 idle
                         connections, 1 run, 3 starts; also fails if a run
                         stops before all its checks are done
  --json                 print the report as JSON instead of text
  --markdown             also print the medians as a Markdown table
  -h, --help             this text

The floor: after each run, the same load against a bare blocking
accept -> write `up ready 100%\n` -> close loop (this program, run as a
child process so that its CPU time is read like the agent's); the report
gives its CPU per check and the agent's CPU per check divided by it.

Exit status: 0 when every probe got a well-formed reply, 1 on any error or
malformed reply (the report is printed first), 64 on a usage error.
";

/// What the command line asked for, defaults filled in and checked
/// (`--check` sets the short mode's counts unless given explicitly).
#[derive(Clone, Debug)]
pub struct Options {
    pub binary: PathBuf,
    pub size_of: Option<PathBuf>,
    pub port: Option<u16>,
    pub command: Vec<String>,
    pub concurrency: Vec<usize>,
    pub threads: usize,
    pub checks: u64,
    pub duration: Duration,
    pub runs: usize,
    pub idle_connections: usize,
    pub fresh_probes: usize,
    pub starts: usize,
    pub send: Option<Vec<u8>>,
    pub expect: Option<String>,
    pub timeout: Duration,
    pub check: bool,
    pub json: bool,
    pub markdown: bool,
    /// Distinct source addresses of the probes; 0 = the kernel's choice.
    pub probers: u32,
    pub floor: bool,
    /// `--wait-seen N`: the number of timed ctl commands; 0 = the load.
    pub wait_seen: usize,
    /// `--prober-table N`: the prober-table mode; 0 = the load.
    pub prober_table: u32,
    pub haproxy: PathBuf,
    pub agent_inter_ms: u64,
    /// `--lb-status N`: timed runs of `hapgent-lb status --json`; 0 = no.
    pub lb_status: usize,
    pub lb_binary: PathBuf,
    pub lb_servers: usize,
    pub lb_backends: usize,
    /// `--services N`: generated `[services.sN]` tables.
    pub services: usize,
    /// `--metrics`: metrics_listen set and scraped during the load.
    pub metrics: bool,
    pub scrape_interval: Duration,
    /// `--agent-config FILE`: extra TOML for hapgent's configuration.
    pub agent_config: Option<PathBuf>,
}

/// The options from `std::env::args()`; None after `--help`, which has
/// printed the usage text.
pub fn parse_args() -> Result<Option<Options>, Error> {
    let mut o = Options {
        binary: PathBuf::from("target/x86_64-unknown-linux-musl/release/hapgent"),
        size_of: None,
        port: None,
        command: Vec::new(),
        concurrency: vec![1, 8, 64],
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        checks: 100_000,
        duration: Duration::from_secs(60),
        runs: 3,
        idle_connections: 2000,
        fresh_probes: 20,
        starts: 5,
        send: None,
        expect: None,
        timeout: Duration::from_millis(2000),
        check: false,
        json: false,
        markdown: false,
        probers: 0,
        floor: true,
        wait_seen: 0,
        prober_table: 0,
        haproxy: PathBuf::from("haproxy"),
        agent_inter_ms: 200,
        lb_status: 0,
        lb_binary: PathBuf::from("target/x86_64-unknown-linux-musl/release/hapgent-lb"),
        lb_servers: 2000,
        lb_backends: 50,
        services: 0,
        metrics: false,
        scrape_interval: Duration::from_secs(1),
        agent_config: None,
    };
    let (mut checks, mut idle, mut runs, mut starts) = (None, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| Error::Usage(format!("{name} needs a value")))
        };
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, Error> {
            v.parse()
                .map_err(|_| Error::Usage(format!("{name}: not a number: {v}")))
        }
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "--binary" => o.binary = value("--binary")?.into(),
            "--size-of" => o.size_of = Some(value("--size-of")?.into()),
            "--port" => o.port = Some(num("--port", value("--port")?)?),
            "--concurrency" => {
                o.concurrency = value("--concurrency")?
                    .split(',')
                    .map(|c| num("--concurrency", c.trim().to_string()))
                    .collect::<Result<_, _>>()?;
                if o.concurrency.is_empty() || o.concurrency.contains(&0) {
                    return Err(Error::Usage(
                        "--concurrency: each value must be at least 1".into(),
                    ));
                }
            }
            "--threads" => o.threads = num("--threads", value("--threads")?)?,
            "--checks" => checks = Some(num("--checks", value("--checks")?)?),
            "--duration" => {
                o.duration = Duration::from_secs_f64(num("--duration", value("--duration")?)?)
            }
            "--runs" => runs = Some(num("--runs", value("--runs")?)?),
            "--idle-connections" => {
                idle = Some(num("--idle-connections", value("--idle-connections")?)?)
            }
            "--fresh-probes" => o.fresh_probes = num("--fresh-probes", value("--fresh-probes")?)?,
            "--starts" => starts = Some(num("--starts", value("--starts")?)?),
            "--send" => o.send = Some(unescape(&value("--send")?)),
            "--expect" => o.expect = Some(value("--expect")?),
            "--timeout-ms" => {
                o.timeout = Duration::from_millis(num("--timeout-ms", value("--timeout-ms")?)?)
            }
            "--probers" => {
                o.probers = num("--probers", value("--probers")?)?;
                if !(1..=65_536).contains(&o.probers) {
                    return Err(Error::Usage("--probers: between 1 and 65536".into()));
                }
            }
            "--no-floor" => o.floor = false,
            "--wait-seen" => {
                o.wait_seen = num("--wait-seen", value("--wait-seen")?)?;
                if o.wait_seen == 0 {
                    return Err(Error::Usage("--wait-seen: at least 1".into()));
                }
            }
            "--prober-table" => {
                o.prober_table = num("--prober-table", value("--prober-table")?)?;
                if !(1..=10_000_000).contains(&o.prober_table) {
                    return Err(Error::Usage(
                        "--prober-table: between 1 and 10000000".into(),
                    ));
                }
            }
            "--haproxy" => o.haproxy = value("--haproxy")?.into(),
            "--agent-inter" => {
                o.agent_inter_ms = num("--agent-inter", value("--agent-inter")?)?;
                if o.agent_inter_ms == 0 {
                    return Err(Error::Usage("--agent-inter: at least 1 ms".into()));
                }
            }
            "--lb-status" => {
                o.lb_status = num("--lb-status", value("--lb-status")?)?;
                if o.lb_status == 0 {
                    return Err(Error::Usage("--lb-status: at least 1".into()));
                }
            }
            "--lb-binary" => o.lb_binary = value("--lb-binary")?.into(),
            "--lb-servers" => o.lb_servers = num("--lb-servers", value("--lb-servers")?)?,
            "--lb-backends" => {
                o.lb_backends = num("--lb-backends", value("--lb-backends")?)?;
                if o.lb_backends == 0 {
                    return Err(Error::Usage("--lb-backends: at least 1".into()));
                }
            }
            "--services" => {
                o.services = num("--services", value("--services")?)?;
                if o.services > 100_000 {
                    return Err(Error::Usage("--services: at most 100000".into()));
                }
            }
            "--metrics" => o.metrics = true,
            "--scrape-interval-ms" => {
                let ms: u64 = num("--scrape-interval-ms", value("--scrape-interval-ms")?)?;
                if ms == 0 {
                    return Err(Error::Usage("--scrape-interval-ms: at least 1".into()));
                }
                o.scrape_interval = Duration::from_millis(ms);
            }
            "--agent-config" => o.agent_config = Some(value("--agent-config")?.into()),
            "--check" => o.check = true,
            "--json" => o.json = true,
            "--markdown" => o.markdown = true,
            "--" => {
                o.command = args.by_ref().collect();
                if o.command.is_empty() {
                    return Err(Error::Usage(
                        "`--` must be followed by the agent command".into(),
                    ));
                }
            }
            other => return Err(Error::Usage(format!("unknown argument: {other}"))),
        }
    }
    if o.check {
        o.checks = 3000;
        o.idle_connections = 300;
        o.runs = 1;
        o.starts = 3;
    }
    o.checks = checks.unwrap_or(o.checks);
    o.idle_connections = idle.unwrap_or(o.idle_connections);
    o.runs = runs.unwrap_or(o.runs).max(1);
    o.starts = starts.unwrap_or(o.starts);
    if o.lb_status > 0 && (o.wait_seen > 0 || !o.command.is_empty()) {
        return Err(Error::Usage(
            "--lb-status measures hapgent-lb: no --wait-seen, no agent command".into(),
        ));
    }
    if o.wait_seen > 0 && !o.command.is_empty() {
        return Err(Error::Usage(
            "--wait-seen measures hapgent's control socket: no agent command".into(),
        ));
    }
    if !o.command.is_empty() && (o.services > 0 || o.metrics || o.agent_config.is_some()) {
        return Err(Error::Usage(
            "--services, --metrics and --agent-config configure hapgent: no agent command".into(),
        ));
    }
    if !o.command.is_empty() && o.port.is_none() {
        return Err(Error::Usage(
            "an agent command needs --port (the port it listens on)".into(),
        ));
    }
    Ok(Some(o))
}

/// `\n`, `\r`, `\t` and `\\` in a command-line string, as in haproxy.cfg.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some(other) => {
                let mut buf = [0; 4];
                out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
            None => out.push(b'\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn escapes() {
        assert_eq!(unescape("web\\n"), b"web\n");
        assert_eq!(unescape("a\\r\\t\\\\b\\"), b"a\r\t\\b\\");
    }
}
