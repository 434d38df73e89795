//! What `haproxy -c` cannot see: the start-time failures of a configuration
//! and the sections that make HAProxy run programs.
//!
//! `haproxy -c` parses a file but does not start it, so a `chroot` into a
//! missing directory, an unknown `user`, a missing pidfile directory or a
//! `bind` on an address another process holds all pass it, and then kill
//! the new worker (taking HAProxy down, or pausing every listener while it
//! retries the bind). [`needs`] reads, from the configuration text alone,
//! what must hold on this host for it to start; [`check`] looks at the
//! host. Separately, [`exec_directives`] finds what makes HAProxy run code
//! a config pusher chose (`program` sections, external checks, Lua, OpenSSL
//! engines/providers, a library preloaded into the master's next re-exec).
//!
//! The reading is deliberately partial: a value with an environment
//! variable (`${X}`) or inside a `.if` block whose condition is not a plain
//! `0`/`1` cannot be known here (HAProxy's master has its own environment)
//! and is not checked for start-time needs; exec directives are looked for
//! everywhere except in a `.if 0` block. Parsing is pure; only [`check`]
//! touches the system (stat, user and group lookups, a test bind).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Section keywords (a line starting with one opens a section).
const SECTIONS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "peers",
    "resolvers",
    "userlist",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "log-forward",
    "fcgi-app",
    "crt-store",
    "traces",
    "acme",
];

/// Most ports of one `bind` range tried (a range is rare and short).
const MAX_RANGE: u16 = 64;

/// Whether a line takes effect, as far as this module can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// Outside any `.if`, or in branches known to be taken.
    Active,
    /// In a branch known not to be taken.
    Inactive,
    /// In a branch that depends on something unknown here.
    Unknown,
}

/// One configuration line, split into words as HAProxy does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number.
    pub number: usize,
    /// The keyword of the section the line is in ("" before the first).
    pub section: String,
    pub words: Vec<String>,
    /// Whether any word uses an environment variable.
    pub variable: bool,
    pub cond: Cond,
}

/// Splits a line into words: `#` starts a comment, `\` escapes the next
/// character, `"…"` and `'…'` quote; the flag says whether an environment
/// variable (`$`, outside single quotes) occurs.
pub fn words(line: &str) -> (Vec<String>, bool) {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut variable = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', q) if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                    in_word = true;
                }
            }
            ('"' | '\'', None) => {
                quote = Some(c);
                in_word = true;
            }
            (c, Some(q)) if c == q => quote = None,
            ('$', q) if q != Some('\'') => {
                variable = true;
                word.push(c);
                in_word = true;
            }
            ('#', None) => break,
            (c, None) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (c, _) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    (words, variable)
}

/// A `.if`/`.elif` condition this module can evaluate: `0` or `1`.
fn condition(words: &[String]) -> Option<bool> {
    match words.get(1..).unwrap_or_default() {
        [w] if w == "1" => Some(true),
        [w] if w == "0" => Some(false),
        _ => None,
    }
}

/// One open `.if` block: whether a branch was taken (None: unknown), and
/// the state of the current branch.
struct Block {
    taken: Option<bool>,
    current: Cond,
}

/// Reads a configuration into lines with their section and condition.
pub fn lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut blocks: Vec<Block> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let (words, variable) = words(raw);
        let Some(first) = words.first() else { continue };
        match first.as_str() {
            ".if" => {
                let c = condition(&words);
                blocks.push(Block {
                    taken: c,
                    current: match c {
                        Some(true) => Cond::Active,
                        Some(false) => Cond::Inactive,
                        None => Cond::Unknown,
                    },
                });
                continue;
            }
            ".elif" | ".else" => {
                if let Some(b) = blocks.last_mut() {
                    let c = if first == ".else" {
                        Some(true)
                    } else {
                        condition(&words)
                    };
                    let (current, taken) = match (b.taken, c) {
                        (Some(true), _) => (Cond::Inactive, Some(true)),
                        (Some(false), Some(true)) => (Cond::Active, Some(true)),
                        (Some(false), Some(false)) => (Cond::Inactive, Some(false)),
                        _ => (Cond::Unknown, None),
                    };
                    b.current = current;
                    b.taken = taken;
                }
                continue;
            }
            ".endif" => {
                blocks.pop();
                continue;
            }
            _ => {}
        }
        let cond = if blocks.iter().any(|b| b.current == Cond::Inactive) {
            Cond::Inactive
        } else if blocks.iter().any(|b| b.current == Cond::Unknown) {
            Cond::Unknown
        } else {
            Cond::Active
        };
        if SECTIONS.contains(&first.as_str()) {
            section = first.clone();
        }
        out.push(Line {
            number: i + 1,
            section: section.clone(),
            words,
            variable,
            cond,
        });
    }
    out
}

/// The directives that make HAProxy run code chosen by whoever wrote the
/// configuration, as messages naming the line.
pub fn exec_directives(lines: &[Line]) -> Vec<String> {
    let mut found = Vec::new();
    for l in lines.iter().filter(|l| l.cond != Cond::Inactive) {
        let w: Vec<&str> = l.words.iter().map(String::as_str).collect();
        let what = match w.as_slice() {
            ["program", ..] => Some("a `program` section (the master runs its command)"),
            ["external-check", ..] | ["option", "external-check", ..] => {
                Some("`external-check` (HAProxy runs a command per health check)")
            }
            ["lua-load" | "lua-load-per-thread" | "lua-prepend-path", ..] => {
                Some("Lua (`lua-load…`: code run inside HAProxy)")
            }
            ["insecure-fork-wanted" | "insecure-setuid-wanted", ..] => Some(
                "`insecure-fork-wanted`/`insecure-setuid-wanted` (lets HAProxy start programs)",
            ),
            ["ssl-engine" | "ssl-provider" | "ssl-provider-path", ..] => {
                Some("an OpenSSL engine or provider (a shared library loaded into HAProxy)")
            }
            ["setenv" | "presetenv", name, ..] if risky_variable(name) => Some(
                "`setenv` of a loader or search-path variable (the master re-executes itself with it on the next reload)",
            ),
            _ => None,
        };
        if let Some(what) = what {
            found.push(format!("line {}: {what}", l.number));
        }
    }
    found
}

/// The `backend` and `listen` section names (unquoted) of lines that are
/// not in a `.if 0` branch.
pub fn backend_names(lines: &[Line]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.cond != Cond::Inactive)
        .filter_map(|l| match l.words.as_slice() {
            [kind, name, ..] if kind == "backend" || kind == "listen" => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// Variables that change which code a process started with them runs.
fn risky_variable(name: &str) -> bool {
    name.starts_with("LD_") || name == "PATH" || name == "GLIBC_TUNABLES"
}

/// Something that must hold on this host for the configuration to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// A directory must exist (chroot, the directory of a pidfile, state
    /// file or Unix socket).
    Dir {
        line: usize,
        what: String,
        path: PathBuf,
    },
    User {
        line: usize,
        name: String,
    },
    Group {
        line: usize,
        name: String,
    },
    /// A TCP address the running configuration does not bind must be free.
    Free {
        line: usize,
        addr: SocketAddr,
        /// The `bind` has `transparent`: HAProxy binds it even when this
        /// host does not have the address (yet), e.g. a keepalived VIP.
        foreign: bool,
    },
}

/// TCP addresses of one `bind` address list (`ADDR:PORT[-PORT2]`, with an
/// optional `ipv4@`/`ipv6@`/`tcp@`/`tcp4@`/`tcp6@` prefix, comma
/// separated), and Unix socket paths. Others (`fd@`, `abns@`, QUIC…) are
/// left out.
pub fn bind_addresses(list: &str) -> (Vec<SocketAddr>, Vec<PathBuf>) {
    let mut tcp = Vec::new();
    let mut unix = Vec::new();
    for item in list.split(',').filter(|s| !s.is_empty()) {
        let item = match item.split_once('@') {
            Some(("ipv4" | "ipv6" | "tcp" | "tcp4" | "tcp6", rest)) => rest,
            Some(("unix", rest)) => {
                unix.push(PathBuf::from(rest));
                continue;
            }
            Some(_) => continue,
            None if item.starts_with('/') => {
                unix.push(PathBuf::from(item));
                continue;
            }
            None => item,
        };
        let Some((host, ports)) = item.rsplit_once(':') else {
            continue;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = match host {
            "" | "*" => Ipv4Addr::UNSPECIFIED.into(),
            h => match h.parse() {
                Ok(ip) => ip,
                Err(_) => continue,
            },
        };
        let (low, high) = match ports.split_once('-') {
            Some((a, b)) => (a.parse::<u16>(), b.parse::<u16>()),
            None => (ports.parse(), ports.parse()),
        };
        let (Ok(low), Ok(high)) = (low, high) else {
            continue;
        };
        if low == 0 || high < low {
            continue;
        }
        for port in low..=high.min(low.saturating_add(MAX_RANGE - 1)) {
            tcp.push(SocketAddr::new(ip, port));
        }
    }
    (tcp, unix)
}

/// Every TCP port a configuration binds (to tell new addresses from those
/// HAProxy already holds).
fn bound_ports(lines: &[Line]) -> BTreeSet<u16> {
    lines
        .iter()
        .filter(|l| l.words.first().is_some_and(|w| w == "bind"))
        .filter_map(|l| l.words.get(1))
        .flat_map(|a| bind_addresses(a).0)
        .map(|a| a.port())
        .collect()
}

/// The `unix-bind prefix` HAProxy puts before the path of each Unix socket
/// of a `bind` line (not of `stats socket`), as is: "" when there is none.
fn unix_bind_prefix(lines: &[Line]) -> String {
    lines
        .iter()
        .filter(|l| l.cond == Cond::Active && !l.variable && l.section == "global")
        .filter(|l| l.words.first().is_some_and(|w| w == "unix-bind"))
        .filter_map(|l| {
            let at = l.words.iter().position(|w| w == "prefix")?;
            l.words.get(at + 1).cloned()
        })
        .next_back()
        .unwrap_or_default()
}

/// What must hold for `new` to start, given that `old` runs now (its TCP
/// ports are HAProxy's own and are not "taken").
pub fn needs(new: &[Line], old: &[Line]) -> Vec<Need> {
    let held = bound_ports(old);
    let prefix = unix_bind_prefix(new);
    let mut needs = Vec::new();
    let mut state_base: Option<String> = None;
    let mut state_file: Option<(usize, String)> = None;
    for l in new.iter().filter(|l| l.cond == Cond::Active && !l.variable) {
        let line = l.number;
        let w: Vec<&str> = l.words.iter().map(String::as_str).collect();
        let dir_of = |what: &str, p: &str| {
            let parent = Path::new(p).parent().filter(|d| !d.as_os_str().is_empty());
            match parent {
                Some(d) if p.starts_with('/') => Some(Need::Dir {
                    line,
                    what: what.into(),
                    path: d.to_path_buf(),
                }),
                _ => None,
            }
        };
        match (l.section.as_str(), w.as_slice()) {
            ("global", ["chroot", dir, ..]) if dir.starts_with('/') => needs.push(Need::Dir {
                line,
                what: "chroot directory".into(),
                path: dir.into(),
            }),
            ("global", ["user", name, ..]) => needs.push(Need::User {
                line,
                name: name.to_string(),
            }),
            ("global", ["group", name, ..]) => needs.push(Need::Group {
                line,
                name: name.to_string(),
            }),
            ("global", ["pidfile", p, ..]) => needs.extend(dir_of("pidfile directory", p)),
            ("global", ["stats", "socket", p, ..]) => {
                let (_, unix) = bind_addresses(p);
                for u in unix {
                    needs.extend(dir_of("stats socket directory", &u.to_string_lossy()));
                }
            }
            ("global", ["server-state-base", dir, ..]) => state_base = Some(dir.to_string()),
            ("global", ["server-state-file", p, ..]) => state_file = Some((line, p.to_string())),
            (_, ["bind", list, options @ ..]) => {
                let (tcp, unix) = bind_addresses(list);
                // A listener in another network namespace: a test bind
                // in this one says nothing about it.
                let elsewhere = options.contains(&"namespace");
                let foreign = options.contains(&"transparent");
                for addr in tcp
                    .into_iter()
                    .filter(|a| !elsewhere && !held.contains(&a.port()))
                {
                    needs.push(Need::Free {
                        line,
                        addr,
                        foreign,
                    });
                }
                for u in unix {
                    let path = format!("{prefix}{}", u.to_string_lossy());
                    needs.extend(dir_of("Unix socket directory", &path));
                }
            }
            _ => {}
        }
    }
    if let Some((line, file)) = state_file
        && let Some(path) = state_path(state_base.as_deref(), &file)
        && let Some(dir) = path.parent()
    {
        needs.push(Need::Dir {
            line,
            what: "server-state-file directory".into(),
            path: dir.to_path_buf(),
        });
    }
    needs
}

/// The global server-state file of a configuration (`server-state-file`,
/// relative to `server-state-base`), when it is known and absolute.
pub fn server_state_file(lines: &[Line]) -> Option<PathBuf> {
    let mut base = None;
    let mut file = None;
    for l in lines
        .iter()
        .filter(|l| l.cond == Cond::Active && !l.variable && l.section == "global")
    {
        match l.words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["server-state-base", b, ..] => base = Some(b.to_string()),
            ["server-state-file", f, ..] => file = Some(f.to_string()),
            _ => {}
        }
    }
    state_path(base.as_deref(), &file?)
}

/// Why the servers' state will not survive a reload although the
/// configuration loads it from a file: a file hapgent-lb cannot place (no
/// `server-state-file`, a relative one without an absolute
/// `server-state-base`, a variable), or per-backend files (`local`), which
/// it does not write. None when it writes the file HAProxy reads, or when
/// nothing is loaded.
pub fn server_state_gap(lines: &[Line]) -> Option<String> {
    let mut modes = lines
        .iter()
        .filter(|l| l.cond != Cond::Inactive)
        .filter_map(|l| match l.words.as_slice() {
            [k, mode, ..] if k == "load-server-state-from-file" => Some((l.number, mode.as_str())),
            _ => None,
        });
    if let Some((line, _)) = modes.clone().find(|(_, m)| *m == "local") {
        return Some(format!(
            "line {line}: `load-server-state-from-file local` reads a file per backend, which hapgent-lb does not write, so that backend's weights and drain/maint states set at runtime start over"
        ));
    }
    let (line, _) = modes.find(|(_, m)| *m == "global")?;
    server_state_file(lines).is_none().then(|| format!(
        "line {line}: `load-server-state-from-file global`, but hapgent-lb cannot tell where the global `server-state-file` is (missing, relative without an absolute `server-state-base`, or with a variable), so it was not saved and weights and drain/maint states set at runtime start over"
    ))
}

fn state_path(base: Option<&str>, file: &str) -> Option<PathBuf> {
    let path = match base {
        Some(b) if !file.starts_with('/') => Path::new(b).join(file),
        _ => PathBuf::from(file),
    };
    path.is_absolute().then_some(path)
}

/// Checks `needs` on this host; each failure as a message naming the line
/// and what to do. A test bind that is merely not permitted (a port below
/// 1024 for an unprivileged hapgent-lb) is not a failure: HAProxy's master
/// may be allowed what hapgent-lb is not.
pub async fn check(needs: &[Need]) -> Vec<String> {
    let mut problems = Vec::new();
    for need in needs {
        let problem = match need {
            Need::Dir { line, what, path } => dir_problem(
                *line,
                what,
                path,
                std::fs::metadata(path).map(|m| m.is_dir()),
            ),
            Need::User { line, name } => match user_exists(name).await {
                Some(false) => Some(format!(
                    "line {line}: user {name:?} does not exist on this host"
                )),
                _ => None,
            },
            Need::Group { line, name } => {
                let numeric = name.parse::<u32>().is_ok();
                match hapgent_common::creds::group_id(name) {
                    Ok(None) if !numeric => Some(format!(
                        "line {line}: group {name:?} does not exist on this host"
                    )),
                    _ => None,
                }
            }
            Need::Free {
                line,
                addr,
                foreign,
            } => match std::net::TcpListener::bind(addr) {
                Ok(_) => None,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Some(format!(
                    "line {line}: bind {addr} is already in use by another process; HAProxy would pause every listener while retrying it, then fail"
                )),
                Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable && !foreign => {
                    Some(format!(
                        "line {line}: bind {addr}: {e} (not an address of this host; add `transparent` to the bind line if it is one this host takes over, e.g. a VIP)"
                    ))
                }
                Err(_) => None,
            },
        };
        problems.extend(problem);
    }
    problems
}

/// What is wrong with a directory HAProxy needs, from what looking at it
/// found (Ok: whether it is a directory). One hapgent-lb may not look at
/// (a parent it cannot search, or hidden by its unit's `ProtectHome`) is
/// not a failure: HAProxy's master, usually root, may see it.
fn dir_problem(
    line: usize,
    what: &str,
    path: &Path,
    found: std::io::Result<bool>,
) -> Option<String> {
    match found {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "line {line}: the {what} {} is not a directory",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => None,
        Err(e) => Some(format!(
            "line {line}: the {what} {} cannot be used: {e}; create it first",
            path.display()
        )),
    }
}

/// Whether a user exists (`getent passwd`, so NSS users count); None if it
/// cannot be told.
async fn user_exists(name: &str) -> Option<bool> {
    if name.parse::<u32>().is_ok() {
        return Some(true);
    }
    let mut c = std::process::Command::new("getent");
    c.arg("passwd").arg(name);
    let f = hapgent_common::process::run(c, std::time::Duration::from_secs(10))
        .await
        .ok()?;
    // getent: 0 found, 2 not found; anything else says nothing.
    match f.status.and_then(|s| s.code()) {
        Some(0) => Some(true),
        Some(2) => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        words(s).0
    }

    #[test]
    fn splitting_words() {
        for (line, want, var) in [
            ("  bind :80  # web", vec!["bind", ":80"], false),
            ("backend \"my app\"", vec!["backend", "my app"], false),
            ("chroot '/var/$x'", vec!["chroot", "/var/$x"], false),
            ("chroot \"${X}\"", vec!["chroot", "${X}"], true),
            ("log a\\ b", vec!["log", "a b"], false),
            ("", vec![], false),
            ("# all comment", vec![], false),
            ("x \"\"", vec!["x", ""], false),
            ("unterminated \"quote", vec!["unterminated", "quote"], false),
        ] {
            assert_eq!(
                words(line),
                (want.iter().map(|s| s.to_string()).collect(), var),
                "{line}"
            );
        }
    }

    #[test]
    fn sections_and_conditions() {
        let text = "global\n  chroot /a\n.if 0\n  chroot /b\n.elif 1\n  chroot /c\n.else\n  chroot /d\n.endif\n.if defined(X)\n  chroot /e\n.else\n  chroot /f\n.endif\nbackend b\n  disabled\n";
        let all = lines(text);
        let got: Vec<(usize, &str, Cond)> = all
            .iter()
            .map(|l| (l.number, l.section.as_str(), l.cond))
            .collect();
        assert_eq!(
            got,
            [
                (1, "global", Cond::Active),
                (2, "global", Cond::Active),
                (4, "global", Cond::Inactive),
                (6, "global", Cond::Active),
                (8, "global", Cond::Inactive),
                (11, "global", Cond::Unknown),
                (13, "global", Cond::Unknown),
                (15, "backend", Cond::Active),
                (16, "backend", Cond::Active),
            ]
        );
    }

    #[test]
    fn exec_directives_are_found() {
        for (text, want) in [
            ("program p\n  command /bin/sh\n", vec![1]),
            (
                "global\n  external-check\nbackend b\n  option external-check\n",
                vec![2, 4],
            ),
            (
                "global\n  lua-load /x.lua\n  lua-load-per-thread /y\n",
                vec![2, 3],
            ),
            (
                "global\n  insecure-fork-wanted\n  ssl-engine rdrand\n",
                vec![2, 3],
            ),
            (
                "global\n  setenv LD_PRELOAD /tmp/x.so\n  setenv FOO bar\n  presetenv PATH /tmp\n",
                vec![2, 4],
            ),
            (".if 0\nprogram p\n.endif\n", vec![]),
            (".if defined(X)\nprogram p\n.endif\n", vec![2]),
            ("global\n  daemon\nbackend program\n", vec![]),
        ] {
            let lines: Vec<usize> = exec_directives(&lines(text))
                .iter()
                .map(|m| m[5..m.find(':').unwrap()].parse().unwrap())
                .collect();
            assert_eq!(lines, want, "{text}");
        }
    }

    #[test]
    fn backend_names_are_unquoted_and_not_off() {
        let text = "backend \"my web\"\n.if 0\nbackend off\n.endif\nlisten stats\nfrontend fe\n";
        assert_eq!(backend_names(&lines(text)), ["my web", "stats"]);
    }

    #[test]
    fn bind_lists() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        for (list, tcp, unix) in [
            (":80", vec![a("0.0.0.0:80")], vec![]),
            (
                "*:80,127.0.0.1:81",
                vec![a("0.0.0.0:80"), a("127.0.0.1:81")],
                vec![],
            ),
            ("ipv6@:::443", vec![a("[::]:443")], vec![]),
            ("[::1]:8080", vec![a("[::1]:8080")], vec![]),
            (
                "127.0.0.1:10-12",
                vec![a("127.0.0.1:10"), a("127.0.0.1:11"), a("127.0.0.1:12")],
                vec![],
            ),
            ("/run/h.sock", vec![], vec!["/run/h.sock"]),
            ("unix@/run/x", vec![], vec!["/run/x"]),
            (
                "fd@3,abns@x,quic4@:443,name:0,bad:port,:70000,:5-4",
                vec![],
                vec![],
            ),
        ] {
            let (t, u) = bind_addresses(list);
            assert_eq!(t, tcp, "{list}");
            assert_eq!(
                u,
                unix.iter().map(PathBuf::from).collect::<Vec<_>>(),
                "{list}"
            );
        }
        assert_eq!(bind_addresses(":1-65535").0.len(), MAX_RANGE as usize);
    }

    #[test]
    fn needs_of_a_config() {
        let old = lines("frontend fe\n  bind 127.0.0.1:80\n");
        let new = lines(
            "global\n  chroot /var/empty\n  user haproxy\n  group haproxy\n  pidfile /run/h/h.pid\n  stats socket /run/s/admin.sock level admin\n  server-state-base /var/state\n  server-state-file global\n  chroot \"${CHROOT}\"\n  pidfile rel.pid\nfrontend fe\n  bind 127.0.0.1:80\n  bind :81\n.if defined(X)\n  bind :82\n.endif\n  bind 192.0.2.1:83 transparent\n  bind :84 namespace blue\n",
        );
        let dir = |line, what: &str, p: &str| Need::Dir {
            line,
            what: what.into(),
            path: p.into(),
        };
        assert_eq!(
            needs(&new, &old),
            [
                dir(2, "chroot directory", "/var/empty"),
                Need::User {
                    line: 3,
                    name: "haproxy".into()
                },
                Need::Group {
                    line: 4,
                    name: "haproxy".into()
                },
                dir(5, "pidfile directory", "/run/h"),
                dir(6, "stats socket directory", "/run/s"),
                Need::Free {
                    line: 13,
                    addr: "0.0.0.0:81".parse().unwrap(),
                    foreign: false,
                },
                Need::Free {
                    line: 17,
                    addr: "192.0.2.1:83".parse().unwrap(),
                    foreign: true,
                },
                dir(8, "server-state-file directory", "/var/state"),
            ]
        );
        assert_eq!(
            server_state_file(&new),
            Some(PathBuf::from("/var/state/global"))
        );
        // `unix-bind prefix` goes before a bind's socket path (not a stats
        // socket's), as is.
        let prefixed = lines(
            "global\n  unix-bind mode 600 prefix /p/\n  stats socket /s/a.sock\nfrontend f\n  bind /b/x.sock\n  bind unix@rel/y.sock\n",
        );
        assert_eq!(
            needs(&prefixed, &old),
            [
                dir(3, "stats socket directory", "/s"),
                dir(5, "Unix socket directory", "/p//b"),
                dir(6, "Unix socket directory", "/p/rel"),
            ]
        );
        assert_eq!(server_state_file(&old), None);
        assert_eq!(w("a b"), ["a", "b"]);
    }

    #[test]
    fn directories_hapgent_lb_may_not_look_at_are_not_refused() {
        use std::io::{Error, ErrorKind};
        let p = Path::new("/x/y");
        for (found, want) in [
            (Ok(true), None),
            (
                Ok(false),
                Some("line 7: the chroot directory /x/y is not a directory"),
            ),
            (
                Err(Error::from(ErrorKind::NotFound)),
                Some(
                    "line 7: the chroot directory /x/y cannot be used: entity not found; create it first",
                ),
            ),
            (Err(Error::from(ErrorKind::PermissionDenied)), None),
        ] {
            assert_eq!(
                dir_problem(7, "chroot directory", p, found).as_deref(),
                want
            );
        }
    }

    #[test]
    fn server_state_gaps() {
        let gap = |text: &str| server_state_gap(&lines(text)).map(|m| m[..7].to_string());
        for (text, want) in [
            (
                "defaults\n  load-server-state-from-file global\n",
                Some("line 2:"),
            ),
            (
                "global\n  server-state-file rel\ndefaults\n  load-server-state-from-file global\n",
                Some("line 4:"),
            ),
            (
                "global\n  server-state-file /s\ndefaults\n  load-server-state-from-file global\n",
                None,
            ),
            (
                "global\n  server-state-base /b\n  server-state-file rel\ndefaults\n  load-server-state-from-file global\n",
                None,
            ),
            (
                "global\n  server-state-file /s\nbackend b\n  load-server-state-from-file local\n",
                Some("line 4:"),
            ),
            ("defaults\n  load-server-state-from-file none\n", None),
            ("global\n  server-state-file rel\n", None),
            (
                ".if 0\n  load-server-state-from-file global\n.endif\n",
                None,
            ),
        ] {
            assert_eq!(gap(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn checks_on_this_host() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let problems = smol::block_on(check(&[
            Need::Dir {
                line: 1,
                what: "chroot directory".into(),
                path: "/nonexistent/dir".into(),
            },
            Need::Dir {
                line: 2,
                what: "chroot directory".into(),
                path: "/".into(),
            },
            Need::Group {
                line: 3,
                name: "no-such-group-hapgent".into(),
            },
            Need::Free {
                line: 4,
                addr,
                foreign: false,
            },
            // Not an address of this host (TEST-NET-1): refused unless
            // the bind is `transparent`.
            Need::Free {
                line: 5,
                addr: "192.0.2.1:9".parse().unwrap(),
                foreign: false,
            },
            Need::Free {
                line: 6,
                addr: "192.0.2.1:9".parse().unwrap(),
                foreign: true,
            },
        ]));
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems[0].starts_with("line 1: the chroot directory /nonexistent/dir cannot be used")
        );
        assert!(problems[1].contains("no-such-group-hapgent"));
        assert!(problems[2].contains("already in use"), "{problems:?}");
        assert!(
            problems[3].starts_with("line 5: bind 192.0.2.1:9:"),
            "{problems:?}"
        );
    }
}
