//! The command line: the usage text, the options as typed, and their
//! checks (exit status 64 on a mistake). What a run does with them is in
//! `phases` and `wait_seen`; `--floor-server`, the hidden argument that
//! makes this program the floor reference, is handled in `main` before any
//! of this.

use crate::error::Error;
use std::ops::RangeBounds;
use std::path::PathBuf;
use std::str::FromStr;
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

impl Options {
    /// What a run does when no flag says otherwise.
    fn defaults() -> Options {
        Options {
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
        }
    }
}

/// The options as typed: the counts that `--check` changes are kept apart
/// until the end, so that one given explicitly wins whatever the order.
struct Given {
    o: Options,
    checks: Option<u64>,
    idle_connections: Option<usize>,
    runs: Option<usize>,
    starts: Option<usize>,
}

/// What a flag does with the command line.
enum Takes {
    /// A switch: no value.
    Nothing(fn(&mut Given)),
    /// The next argument, as it is.
    Text(fn(&mut Given, String)),
    /// The next argument, parsed and checked; the function gets the flag's
    /// name for its errors.
    Value(fn(&mut Given, &str, &str) -> Result<(), Error>),
}

/// Every flag but `-h`/`--help` and `--`, one row each: its name and what
/// it sets, with the checks of its value.
const FLAGS: &[(&str, Takes)] = &[
    ("--binary", Takes::Text(|g, v| g.o.binary = v.into())),
    (
        "--size-of",
        Takes::Text(|g, v| g.o.size_of = Some(v.into())),
    ),
    (
        "--port",
        Takes::Value(|g, name, v| num(name, v).map(|n| g.o.port = Some(n))),
    ),
    (
        "--concurrency",
        Takes::Value(|g, name, v| concurrency(name, v).map(|c| g.o.concurrency = c)),
    ),
    (
        "--threads",
        Takes::Value(|g, name, v| num(name, v).map(|n| g.o.threads = n)),
    ),
    (
        "--checks",
        Takes::Value(|g, name, v| num(name, v).map(|n| g.checks = Some(n))),
    ),
    (
        "--duration",
        Takes::Value(|g, name, v| num(name, v).map(|s| g.o.duration = Duration::from_secs_f64(s))),
    ),
    (
        "--runs",
        Takes::Value(|g, name, v| num(name, v).map(|n| g.runs = Some(n))),
    ),
    (
        "--idle-connections",
        Takes::Value(|g, name, v| num(name, v).map(|n| g.idle_connections = Some(n))),
    ),
    (
        "--fresh-probes",
        Takes::Value(|g, name, v| num(name, v).map(|n| g.o.fresh_probes = n)),
    ),
    (
        "--starts",
        Takes::Value(|g, name, v| num(name, v).map(|n| g.starts = Some(n))),
    ),
    ("--send", Takes::Text(|g, v| g.o.send = Some(unescape(&v)))),
    ("--expect", Takes::Text(|g, v| g.o.expect = Some(v))),
    (
        "--timeout-ms",
        Takes::Value(|g, name, v| num(name, v).map(|ms| g.o.timeout = Duration::from_millis(ms))),
    ),
    (
        "--probers",
        Takes::Value(|g, name, v| {
            num_in(name, v, 1..=65_536, "between 1 and 65536").map(|n| g.o.probers = n)
        }),
    ),
    ("--no-floor", Takes::Nothing(|g| g.o.floor = false)),
    (
        "--wait-seen",
        Takes::Value(|g, name, v| num_in(name, v, 1.., "at least 1").map(|n| g.o.wait_seen = n)),
    ),
    (
        "--prober-table",
        Takes::Value(|g, name, v| {
            num_in(name, v, 1..=10_000_000, "between 1 and 10000000").map(|n| g.o.prober_table = n)
        }),
    ),
    ("--haproxy", Takes::Text(|g, v| g.o.haproxy = v.into())),
    (
        "--agent-inter",
        Takes::Value(|g, name, v| {
            num_in(name, v, 1.., "at least 1 ms").map(|ms| g.o.agent_inter_ms = ms)
        }),
    ),
    (
        "--lb-status",
        Takes::Value(|g, name, v| num_in(name, v, 1.., "at least 1").map(|n| g.o.lb_status = n)),
    ),
    ("--lb-binary", Takes::Text(|g, v| g.o.lb_binary = v.into())),
    (
        "--lb-servers",
        Takes::Value(|g, name, v| num(name, v).map(|n| g.o.lb_servers = n)),
    ),
    (
        "--lb-backends",
        Takes::Value(|g, name, v| num_in(name, v, 1.., "at least 1").map(|n| g.o.lb_backends = n)),
    ),
    (
        "--services",
        Takes::Value(|g, name, v| {
            num_in(name, v, ..=100_000, "at most 100000").map(|n| g.o.services = n)
        }),
    ),
    ("--metrics", Takes::Nothing(|g| g.o.metrics = true)),
    (
        "--scrape-interval-ms",
        Takes::Value(|g, name, v| {
            num_in(name, v, 1.., "at least 1")
                .map(|ms| g.o.scrape_interval = Duration::from_millis(ms))
        }),
    ),
    (
        "--agent-config",
        Takes::Text(|g, v| g.o.agent_config = Some(v.into())),
    ),
    ("--check", Takes::Nothing(|g| g.o.check = true)),
    ("--json", Takes::Nothing(|g| g.o.json = true)),
    ("--markdown", Takes::Nothing(|g| g.o.markdown = true)),
];

/// The value of flag `name` as a number.
fn num<T: FromStr>(name: &str, v: &str) -> Result<T, Error> {
    v.parse()
        .map_err(|_| Error::Usage(format!("{name}: not a number: {v}")))
}

/// The value of flag `name` as a number within `range`; `range_text` says
/// the range in the error.
fn num_in<T: FromStr + PartialOrd>(
    name: &str,
    v: &str,
    range: impl RangeBounds<T>,
    range_text: &str,
) -> Result<T, Error> {
    let n = num(name, v)?;
    if !range.contains(&n) {
        return Err(Error::Usage(format!("{name}: {range_text}")));
    }
    Ok(n)
}

/// `--concurrency`'s comma-separated list: at least one value, none 0.
fn concurrency(name: &str, v: &str) -> Result<Vec<usize>, Error> {
    let list = v
        .split(',')
        .map(|c| num(name, c.trim()))
        .collect::<Result<Vec<usize>, _>>()?;
    if list.is_empty() || list.contains(&0) {
        return Err(Error::Usage(format!(
            "{name}: each value must be at least 1"
        )));
    }
    Ok(list)
}

/// The argument after flag `name`: its value.
fn value(name: &str, args: &mut impl Iterator<Item = String>) -> Result<String, Error> {
    args.next()
        .ok_or_else(|| Error::Usage(format!("{name} needs a value")))
}

/// The options from `std::env::args()`; None after `--help`, which has
/// printed the usage text.
pub fn parse_args() -> Result<Option<Options>, Error> {
    parse(std::env::args().skip(1))
}

/// The options from `args` (the program name left out); None after
/// `--help`, which has printed the usage text.
fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, Error> {
    let mut given = Given {
        o: Options::defaults(),
        checks: None,
        idle_connections: None,
        runs: None,
        starts: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "--" => {
                given.o.command = args.by_ref().collect();
                if given.o.command.is_empty() {
                    return Err(Error::Usage(
                        "`--` must be followed by the agent command".into(),
                    ));
                }
            }
            flag => match FLAGS.iter().find(|(name, _)| *name == flag) {
                Some((_, Takes::Nothing(set))) => set(&mut given),
                Some((name, Takes::Text(set))) => set(&mut given, value(name, &mut args)?),
                Some((name, Takes::Value(set))) => set(&mut given, name, &value(name, &mut args)?)?,
                None => return Err(Error::Usage(format!("unknown argument: {flag}"))),
            },
        }
    }
    let o = with_counts(given);
    check_modes(&o)?;
    Ok(Some(o))
}

/// The options with the counts filled in: as given, else `--check`'s short
/// mode, else the defaults; at least one run.
fn with_counts(given: Given) -> Options {
    let mut o = given.o;
    if o.check {
        o.checks = 3000;
        o.idle_connections = 300;
        o.runs = 1;
        o.starts = 3;
    }
    o.checks = given.checks.unwrap_or(o.checks);
    o.idle_connections = given.idle_connections.unwrap_or(o.idle_connections);
    o.runs = given.runs.unwrap_or(o.runs).max(1);
    o.starts = given.starts.unwrap_or(o.starts);
    o
}

/// The options that do not go together: one mode at a time, and an agent
/// command only with `--port` and without what configures hapgent.
fn check_modes(o: &Options) -> Result<(), Error> {
    let command = !o.command.is_empty();
    let conflict = if o.lb_status > 0 && (o.wait_seen > 0 || command) {
        "--lb-status measures hapgent-lb: no --wait-seen, no agent command"
    } else if o.wait_seen > 0 && command {
        "--wait-seen measures hapgent's control socket: no agent command"
    } else if command && (o.services > 0 || o.metrics || o.agent_config.is_some()) {
        "--services, --metrics and --agent-config configure hapgent: no agent command"
    } else if command && o.port.is_none() {
        "an agent command needs --port (the port it listens on)"
    } else {
        return Ok(());
    };
    Err(Error::Usage(conflict.into()))
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
    use super::{FLAGS, Options, USAGE, parse, unescape};

    #[test]
    fn every_flag_in_usage() {
        // An option's line starts with two spaces; its continuations with more.
        let mut listed: Vec<&str> = USAGE
            .lines()
            .filter_map(|l| {
                l.strip_prefix("  -h, ")
                    .or(l.strip_prefix("  --").map(|_| l))
            })
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let mut flags: Vec<&str> = FLAGS.iter().map(|(name, _)| *name).collect();
        flags.push("--help");
        listed.sort_unstable();
        flags.sort_unstable();
        assert_eq!(listed, flags);
    }

    fn parsed(args: &str) -> Result<Options, String> {
        let args = args.split_whitespace().map(String::from);
        match parse(args) {
            Ok(o) => Ok(o.expect("no --help")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn usage_errors() {
        for (args, error) in [
            ("--bogus", "unknown argument: --bogus"),
            ("--port", "--port needs a value"),
            ("--port 70000", "--port: not a number: 70000"),
            ("--concurrency 1,,2", "--concurrency: not a number: "),
            (
                "--concurrency 1,0",
                "--concurrency: each value must be at least 1",
            ),
            ("--probers 0", "--probers: between 1 and 65536"),
            ("--agent-inter 0", "--agent-inter: at least 1 ms"),
            ("--services 100001", "--services: at most 100000"),
            ("--", "`--` must be followed by the agent command"),
            (
                "--lb-status 1 --wait-seen 1",
                "--lb-status measures hapgent-lb: no --wait-seen, no agent command",
            ),
            (
                "--wait-seen 1 -- x",
                "--wait-seen measures hapgent's control socket: no agent command",
            ),
            (
                "--metrics -- x",
                "--services, --metrics and --agent-config configure hapgent: no agent command",
            ),
            (
                "-- x",
                "an agent command needs --port (the port it listens on)",
            ),
        ] {
            assert_eq!(parsed(args).err().as_deref(), Some(error), "{args}");
        }
    }

    #[test]
    fn check_counts_unless_given() {
        let counts = |o: Options| (o.checks, o.idle_connections, o.runs, o.starts);
        for (args, want) in [
            ("", (100_000, 2000, 3, 5)),
            ("--check", (3000, 300, 1, 3)),
            ("--checks 50 --check --starts 1", (50, 300, 1, 1)),
            ("--runs 0 --idle-connections 7", (100_000, 7, 1, 5)),
        ] {
            assert_eq!(parsed(args).map(counts), Ok(want), "{args}");
        }
        let o = parsed("--port 9 --concurrency 2,4 --no-floor -- agent -x").unwrap();
        assert_eq!(
            (o.port, o.concurrency, o.floor),
            (Some(9), vec![2, 4], false)
        );
        assert_eq!(o.command, ["agent", "-x"]);
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape("web\\n"), b"web\n");
        assert_eq!(unescape("a\\r\\t\\\\b\\"), b"a\r\t\\b\\");
    }
}
