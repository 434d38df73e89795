//! HAProxy's view of its servers, parsed from the runtime API's `show stat`
//! (CSV: status, sessions, queue, check and agent results) and `show
//! servers state` (space-separated: administrative and operational state as
//! numbers, user and initial weight), joined by backend and server name.
//!
//! Pure text to records: this module does not talk to sockets. Answers are
//! taken one line at a time (`StateReader`, then `StatReader`, as
//! `runtime::backends` reads them off the socket), and only the columns
//! used are kept, so memory follows the number of servers, not the size
//! of the answers (of one backend's servers, with `StateReader::only`);
//! `parse` does the same for whole answers. Columns are
//! found by their header names, so the extra columns newer HAProxy versions
//! add do not matter; a missing column is an error naming it.

use serde::Serialize;
use std::borrow::Cow;
use std::collections::HashMap;

/// The administrative state: what an operator (or agent) asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Admin {
    Ready,
    Drain,
    Maint,
}

/// The operational state: what the checks found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Down,
    Starting,
    Up,
    Stopping,
}

impl Admin {
    pub fn parse(text: &str) -> Option<Admin> {
        match text {
            "ready" => Some(Admin::Ready),
            "drain" => Some(Admin::Drain),
            "maint" => Some(Admin::Maint),
            _ => None,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Admin::Ready => "ready",
            Admin::Drain => "drain",
            Admin::Maint => "maint",
        }
    }

    /// From `srv_admin_state`, a bit set (HAProxy's `SRV_ADMF_*`): any
    /// maintenance bit (forced, inherited, from the config, resolution,
    /// hostname) wins over the drain bits (forced, inherited).
    fn from_bits(bits: u32) -> Admin {
        const MAINT: u32 = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
        const DRAIN: u32 = 0x08 | 0x10;
        if bits & MAINT != 0 {
            Admin::Maint
        } else if bits & DRAIN != 0 {
            Admin::Drain
        } else {
            Admin::Ready
        }
    }
}

impl Op {
    pub fn parse(text: &str) -> Option<Op> {
        match text {
            "up" => Some(Op::Up),
            "down" => Some(Op::Down),
            "starting" => Some(Op::Starting),
            "stopping" => Some(Op::Stopping),
            _ => None,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Op::Down => "down",
            Op::Starting => "starting",
            Op::Up => "up",
            Op::Stopping => "stopping",
        }
    }

    /// From `srv_op_state` (HAProxy's `SRV_ST_*`: 0 stopped, 1 starting,
    /// 2 running, 3 stopping).
    fn from_number(n: u32) -> Option<Op> {
        match n {
            0 => Some(Op::Down),
            1 => Some(Op::Starting),
            2 => Some(Op::Up),
            3 => Some(Op::Stopping),
            _ => None,
        }
    }
}

/// One server as HAProxy sees it: the columns of both answers that
/// `status`, `wait` and the HTTP API use, and nothing else.
///
/// The fields are declared in alphabetical order, the order of the JSON
/// objects `status --json` and `GET /v1/backends` have always printed
/// (`serde_json::Value` sorts keys): serialized directly, without a
/// `Value` in between, the output is the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Server {
    pub address: String,
    pub admin: Admin,
    /// What the agent last said (`agent_desc`), e.g. hapgent's description.
    pub agent_desc: String,
    pub agent_status: String,
    pub backend: String,
    pub check_desc: String,
    pub check_status: String,
    /// The weight from the configuration.
    pub initial_weight: u32,
    pub op: Op,
    /// Requests queued for this server now.
    pub queue: u64,
    pub server: String,
    /// Sessions established now.
    pub sessions: u64,
    /// `show stat`'s summary word: UP, DOWN, DRAIN, MAINT, "UP 1/3"...
    pub status: String,
    /// The current (user-set or agent-set) weight.
    pub weight: u32,
}

/// One backend with its summary status and servers (fields in
/// alphabetical order, as for `Server`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Backend {
    pub name: String,
    pub servers: Vec<Server>,
    pub status: String,
}

/// One line of an answer as read from the socket, with its `\n` if it has
/// one, as text: without its line ending (`\n` or `\r\n`, as
/// `str::lines` has it) and with invalid UTF-8 replaced. The runtime
/// client and the fuzz target both cut answers into lines with this.
pub fn answer_line(raw: &[u8]) -> Cow<'_, str> {
    let raw = match raw.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => raw,
    };
    // `from_utf8` is the faster check of the usual, valid, line.
    match std::str::from_utf8(raw) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(raw),
    }
}

/// The fields of one CSV line, borrowed from it unless they hold a quote:
/// HAProxy quotes fields containing `,` or `"` (with `""` for a quote) in
/// its free-text columns.
struct CsvFields<'a> {
    rest: Option<&'a str>,
}

impl<'a> CsvFields<'a> {
    fn new(line: &'a str) -> Self {
        CsvFields { rest: Some(line) }
    }
}

impl<'a> Iterator for CsvFields<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        let line = self.rest?;
        // Bytes, not chars: both are ASCII, and a char search decodes
        // every character of the row.
        match line.bytes().position(|b| b == b',' || b == b'"') {
            None => {
                self.rest = None;
                return Some(Cow::Borrowed(line));
            }
            Some(i) if line.as_bytes()[i] == b',' => {
                self.rest = Some(&line[i + 1..]);
                return Some(Cow::Borrowed(&line[..i]));
            }
            Some(_) => {}
        }
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = line.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek().map(|&(_, c)| c) == Some('"') => {
                    chars.next();
                    field.push('"');
                }
                ('"', _) => quoted = !quoted,
                (',', false) => {
                    self.rest = Some(&line[i + 1..]);
                    return Some(Cow::Owned(field));
                }
                (c, _) => field.push(c),
            }
        }
        self.rest = None;
        Some(Cow::Owned(field))
    }
}

/// Where the columns a parser reads are in an answer's header: `slots[i]`
/// is the index in the parser's list of wanted columns of the header's
/// `i`-th column, if it is one of them.
struct Columns {
    slots: Vec<Option<usize>>,
}

impl Columns {
    /// From the header's column names; every wanted column must be there
    /// (the last one of a name counts, if a header repeats it).
    fn find<'a>(
        answer: &str,
        names: impl Iterator<Item = Cow<'a, str>>,
        wanted: &[&str],
    ) -> Result<Columns, String> {
        let mut at = vec![None; wanted.len()];
        let mut count = 0;
        for (i, name) in names.enumerate() {
            if let Some(j) = wanted.iter().position(|w| *w == name) {
                at[j] = Some(i);
            }
            count = i + 1;
        }
        let mut slots = vec![None; count];
        for (j, i) in at.into_iter().enumerate() {
            let i = i.ok_or_else(|| format!("{answer}: column {:?} is missing", wanted[j]))?;
            slots[i] = Some(j);
        }
        // Columns after the last wanted one are never looked at.
        while slots.last() == Some(&None) {
            slots.pop();
        }
        Ok(Columns { slots })
    }

    /// The wanted cells of one row, in the order of the wanted columns; a
    /// row cut short has empty cells.
    fn cells<'a, const N: usize>(
        &self,
        fields: impl Iterator<Item = Cow<'a, str>>,
    ) -> [Cow<'a, str>; N] {
        let mut cells = std::array::from_fn(|_| Cow::Borrowed(""));
        for (slot, field) in self.slots.iter().zip(fields) {
            if let Some(j) = slot {
                cells[*j] = field;
            }
        }
        cells
    }
}

/// A number cell: empty reads as 0 (HAProxy leaves counters empty where
/// they do not apply).
fn number<T: std::str::FromStr + Default>(column: &str, text: &str) -> Result<T, String> {
    if text.is_empty() {
        return Ok(T::default());
    }
    text.parse()
        .map_err(|_| format!("column {column:?} holds {text:?}, not a number"))
}

/// The columns of `show servers state` read, in this order.
const STATE_COLUMNS: [&str; 6] = [
    "be_name",
    "srv_name",
    "srv_op_state",
    "srv_admin_state",
    "srv_uweight",
    "srv_iweight",
];

/// What `show servers state` says of one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    admin: Admin,
    op: Op,
    weight: u32,
    initial_weight: u32,
}

/// Every server's state, by backend, then server name; with the backend
/// the reading is restricted to, if it is.
#[derive(Debug, Default)]
pub struct States {
    servers: HashMap<String, HashMap<String, State>>,
    only: Option<String>,
}

impl States {
    fn get(&self, backend: &str, server: &str) -> Option<&State> {
        self.servers.get(backend)?.get(server)
    }

    /// Whether rows of `backend` are kept.
    fn wanted(&self, backend: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == backend)
    }
}

/// Reads `show servers state` one line at a time: a format version line
/// (`1`), a `# name name …` header, then one space-separated row per
/// server. Keeps only what `States` holds.
#[derive(Default)]
pub struct StateReader {
    version_seen: bool,
    columns: Option<Columns>,
    states: States,
}

impl StateReader {
    /// A reader that keeps the rows of one backend only, and the
    /// `StatReader` given its `States` too: `status --backend` and `GET
    /// /v1/backends/NAME` hold that backend's servers, not every one.
    pub fn only(backend: &str) -> StateReader {
        StateReader {
            states: States {
                only: Some(backend.to_string()),
                ..States::default()
            },
            ..StateReader::default()
        }
    }

    /// Takes the next line of the answer (without its line ending).
    pub fn line(&mut self, line: &str) -> Result<(), String> {
        if line.trim().is_empty() {
            return Ok(());
        }
        if !self.version_seen {
            if line.trim() != "1" {
                return Err(format!(
                    "`show servers state` answered {:?}, not format version 1",
                    line.trim()
                ));
            }
            self.version_seen = true;
            return Ok(());
        }
        let Some(columns) = &self.columns else {
            let header = line
                .strip_prefix("# ")
                .ok_or("`show servers state` has no column header")?;
            let names = header.split_whitespace().map(Cow::Borrowed);
            self.columns = Some(Columns::find(
                "`show servers state`",
                names,
                &STATE_COLUMNS,
            )?);
            return Ok(());
        };
        let [backend, server, op, admin, weight, initial] =
            columns.cells(line.split_whitespace().map(Cow::Borrowed));
        // A row cut short (an answer cut off) names no server; kept, it
        // would pair with any `show stat` row that lacks the same columns.
        if backend.is_empty() || server.is_empty() || !self.states.wanted(&backend) {
            return Ok(());
        }
        let op_number: u32 = number(STATE_COLUMNS[2], &op)?;
        let state = State {
            op: Op::from_number(op_number)
                .ok_or_else(|| format!("srv_op_state {op_number} is unknown"))?,
            admin: Admin::from_bits(number(STATE_COLUMNS[3], &admin)?),
            weight: number(STATE_COLUMNS[4], &weight)?,
            initial_weight: number(STATE_COLUMNS[5], &initial)?,
        };
        let servers = match self.states.servers.get_mut(backend.as_ref()) {
            Some(servers) => servers,
            None => self.states.servers.entry(backend.into_owned()).or_default(),
        };
        servers.insert(server.into_owned(), state);
        Ok(())
    }

    /// The states read; an error if the answer ended before its header.
    pub fn finish(self) -> Result<States, String> {
        match (self.version_seen, self.columns) {
            (false, _) => Err("`show servers state` answered \"\", not format version 1".into()),
            (true, None) => Err("`show servers state` has no column header".into()),
            (true, Some(_)) => Ok(self.states),
        }
    }
}

/// The columns of `show stat` read, in this order.
const STAT_COLUMNS: [&str; 10] = [
    "pxname",
    "svname",
    "status",
    "scur",
    "qcur",
    "check_status",
    "check_desc",
    "agent_status",
    "agent_desc",
    "addr",
];

/// Reads `show stat` one line at a time (a `# name,name,…` header, then
/// CSV rows) and joins each server row with its state into a `Server`.
/// Backends come in the order `show stat` lists them. A server missing from
/// either answer (a reload between the two commands) is left out rather
/// than guessed.
pub struct StatReader {
    states: States,
    columns: Option<Columns>,
    backends: Vec<Backend>,
    /// Index in `backends` by name.
    index: HashMap<String, usize>,
}

impl StatReader {
    /// A reader that joins rows with `states`, read first.
    pub fn new(states: States) -> StatReader {
        StatReader {
            states,
            columns: None,
            backends: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Takes the next line of the answer (without its line ending).
    pub fn line(&mut self, line: &str) -> Result<(), String> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let Some(columns) = &self.columns else {
            let header = line
                .strip_prefix("# ")
                .ok_or_else(|| format!("`show stat` answered {line:?}, not a CSV header"))?;
            self.columns = Some(Columns::find(
                "`show stat`",
                CsvFields::new(header),
                &STAT_COLUMNS,
            )?);
            return Ok(());
        };
        let [
            proxy,
            name,
            status,
            scur,
            qcur,
            check_status,
            check_desc,
            agent_status,
            agent_desc,
            addr,
        ] = columns.cells(CsvFields::new(line));
        if name == "FRONTEND" || !self.states.wanted(&proxy) {
            return Ok(());
        }
        let i = match self.index.get(proxy.as_ref()) {
            Some(&i) => i,
            None => {
                // Sized from `show servers state`: no regrowth (and with
                // musl, no remapping) as its rows come in.
                let servers = self
                    .states
                    .servers
                    .get(proxy.as_ref())
                    .map_or(0, HashMap::len);
                self.backends.push(Backend {
                    name: proxy.to_string(),
                    servers: Vec::with_capacity(servers),
                    status: String::new(),
                });
                self.index
                    .insert(proxy.to_string(), self.backends.len() - 1);
                self.backends.len() - 1
            }
        };
        let backend = &mut self.backends[i];
        if name == "BACKEND" {
            backend.status = status.into_owned();
            return Ok(());
        }
        let Some(state) = self.states.get(&proxy, &name) else {
            return Ok(());
        };
        backend.servers.push(Server {
            address: addr.into_owned(),
            admin: state.admin,
            agent_desc: agent_desc.into_owned(),
            agent_status: agent_status.into_owned(),
            backend: proxy.into_owned(),
            check_desc: check_desc.into_owned(),
            check_status: check_status.into_owned(),
            initial_weight: state.initial_weight,
            op: state.op,
            queue: number(STAT_COLUMNS[4], &qcur)?,
            server: name.into_owned(),
            sessions: number(STAT_COLUMNS[3], &scur)?,
            status: status.into_owned(),
            weight: state.weight,
        });
        Ok(())
    }

    /// The backends read; an error if the answer had no header.
    pub fn finish(self) -> Result<Vec<Backend>, String> {
        match self.columns {
            None => Err("`show stat` answered \"\", not a CSV header".into()),
            Some(_) => Ok(self.backends),
        }
    }
}

/// Joins whole `show stat` and `show servers state` answers into backends,
/// as `runtime::backends` does while reading them (tests, fuzzing).
pub fn parse(stat: &str, state: &str) -> Result<Vec<Backend>, String> {
    parse_with(StateReader::default(), stat, state)
}

/// As `parse`, keeping only `backend` (as `runtime::backend` reads).
pub fn parse_only(stat: &str, state: &str, backend: &str) -> Result<Vec<Backend>, String> {
    parse_with(StateReader::only(backend), stat, state)
}

fn parse_with(mut states: StateReader, stat: &str, state: &str) -> Result<Vec<Backend>, String> {
    for line in state.lines() {
        states.line(line)?;
    }
    let mut servers = StatReader::new(states.finish()?);
    for line in stat.lines() {
        servers.line(line)?;
    }
    servers.finish()
}

/// The `Pid` line of `show info`: which process answered, so a reload can
/// be seen as a change of process.
pub fn info_pid(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The backend (and `listen`) section names a configuration defines, to
/// check after a reload that HAProxy now serves exactly these.
pub fn config_backends(config: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in config.lines() {
        let mut words = line.split_whitespace();
        if let (Some("backend" | "listen"), Some(name)) = (words.next(), words.next()) {
            names.push(name.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captures per HAProxy version (lb/tests/data/capture.sh): show stat,
    /// show servers state and show info, with the worker PID they show.
    struct Capture {
        version: &'static str,
        stat: &'static str,
        state: &'static str,
        info: &'static str,
        worker: u32,
    }

    macro_rules! capture {
        ($v:literal, $worker:expr) => {
            Capture {
                version: $v,
                stat: include_str!(concat!("../tests/data/haproxy-", $v, "/show-stat.txt")),
                state: include_str!(concat!(
                    "../tests/data/haproxy-",
                    $v,
                    "/show-servers-state.txt"
                )),
                info: include_str!(concat!("../tests/data/haproxy-", $v, "/show-info.txt")),
                worker: $worker,
            }
        };
    }

    fn captures() -> [Capture; 2] {
        [capture!("2.6", 21375), capture!("3.0", 11255)]
    }

    const STAT_26: &str = include_str!("../tests/data/haproxy-2.6/show-stat.txt");
    const STATE_26: &str = include_str!("../tests/data/haproxy-2.6/show-servers-state.txt");

    fn find<'a>(backends: &'a [Backend], b: &str, s: &str) -> &'a Server {
        backends
            .iter()
            .find(|x| x.name == b)
            .and_then(|x| x.servers.iter().find(|x| x.server == s))
            .unwrap_or_else(|| panic!("{b}/{s} missing"))
    }

    /// (backend, server, status, admin, op, weight, initial weight,
    /// sessions, agent status, agent description).
    type ServerRow = (
        &'static str,
        &'static str,
        &'static str,
        Admin,
        Op,
        u32,
        u32,
        u64,
        &'static str,
        &'static str,
    );
    /// The servers every capture shows.
    const SERVERS: &[ServerRow] = &[
        (
            "web",
            "web1",
            "DRAIN",
            Admin::Drain,
            Op::Up,
            100,
            100,
            0,
            "",
            "",
        ),
        (
            "web",
            "web2",
            "no check",
            Admin::Ready,
            Op::Up,
            50,
            100,
            1,
            "L7OK",
            "Layer7 check passed",
        ),
        (
            "web",
            "web3",
            "DOWN",
            Admin::Ready,
            Op::Down,
            1,
            1,
            0,
            "",
            "",
        ),
        (
            "api",
            "api1",
            "MAINT",
            Admin::Maint,
            Op::Down,
            1,
            1,
            0,
            "",
            "",
        ),
    ];

    #[test]
    fn servers_from_each_version() {
        for c in captures() {
            servers(&c);
        }
    }

    fn servers(c: &Capture) {
        let backends = parse(c.stat, c.state).unwrap_or_else(|e| panic!("{}: {e}", c.version));
        let names: Vec<(&str, &str, usize)> = backends
            .iter()
            .map(|b| (b.name.as_str(), b.status.as_str(), b.servers.len()))
            .collect();
        assert_eq!(
            names,
            [("web", "UP", 3), ("api", "DOWN", 1)],
            "{}",
            c.version
        );
        for &(b, s, status, admin, op, weight, initial, sessions, agent, desc) in SERVERS {
            let got = find(&backends, b, s);
            assert_eq!(
                (
                    got.status.as_str(),
                    got.admin,
                    got.op,
                    got.weight,
                    got.initial_weight,
                    got.sessions,
                    got.agent_status.as_str(),
                    got.agent_desc.as_str()
                ),
                (status, admin, op, weight, initial, sessions, agent, desc),
                "{} {b}/{s}",
                c.version
            );
        }
    }

    #[test]
    fn one_backend_read_is_the_whole_read_filtered() {
        for c in captures() {
            let whole = parse(c.stat, c.state).unwrap();
            for name in ["web", "api", "nope", ""] {
                let mut want = whole.clone();
                want.retain(|b| b.name == name);
                let got = parse_only(c.stat, c.state, name).unwrap();
                assert_eq!(got, want, "{} {name:?}", c.version);
            }
        }
        // Other backends' rows are skipped unread: their numbers are not
        // parsed, their servers not kept.
        let stat = concat!(
            "# pxname,svname,status,scur,qcur,check_status,check_desc,agent_status,agent_desc,addr\n",
            "web,web1,UP,1,0,,,,,\n",
            "big,b1,UP,x,0,,,,,\n",
        );
        let state = concat!(
            "1\n# be_name srv_name srv_op_state srv_admin_state srv_uweight srv_iweight\n",
            "web web1 2 0 1 1\n",
            "big b1 9 0 1 1\n",
        );
        assert!(parse(stat, state).is_err());
        let web = parse_only(stat, state, "web").unwrap();
        assert_eq!(web.len(), 1);
        assert_eq!(web[0].servers.len(), 1);
    }

    #[test]
    fn csv_quotes() {
        for (line, want) in [
            ("a,b,,c", vec!["a", "b", "", "c"]),
            ("a,\"b,c\",d", vec!["a", "b,c", "d"]),
            ("\"say \"\"hi\"\"\",x", vec!["say \"hi\"", "x"]),
            ("", vec![""]),
        ] {
            assert_eq!(CsvFields::new(line).collect::<Vec<_>>(), want, "{line}");
        }
    }

    #[test]
    fn answer_lines() {
        for (raw, want) in [
            (&b"a,b\n"[..], "a,b"),
            (b"a,b\r\n", "a,b"),
            (b"a,b", "a,b"),
            (b"a,b\r", "a,b\r"),
            (b"\n", ""),
            (b"x\xffy\n", "x\u{fffd}y"),
        ] {
            assert_eq!(answer_line(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn read_line_by_line_as_parsed_whole() {
        // As runtime::backends reads the answers: cut at each `\n` by the
        // socket reader, then given to the readers one line at a time.
        for c in captures() {
            let mut states = StateReader::default();
            for raw in c.state.as_bytes().split_inclusive(|b| *b == b'\n') {
                states.line(&answer_line(raw)).unwrap();
            }
            let mut servers = StatReader::new(states.finish().unwrap());
            for raw in c.stat.as_bytes().split_inclusive(|b| *b == b'\n') {
                servers.line(&answer_line(raw)).unwrap();
            }
            assert_eq!(
                servers.finish().unwrap(),
                parse(c.stat, c.state).unwrap(),
                "{}",
                c.version
            );
        }
    }

    #[test]
    fn headers_name_the_missing_column() {
        let state = "1\n# be_name srv_name srv_op_state srv_admin_state srv_uweight srv_iweight\n";
        for (stat, state, want) in [
            (
                "# pxname,svname,status\n",
                state,
                "`show stat`: column \"scur\" is missing",
            ),
            (
                "",
                "1\n# be_name srv_name\n",
                "`show servers state`: column \"srv_op_state\" is missing",
            ),
            ("", state, "`show stat` answered \"\", not a CSV header"),
            (
                "Unknown command.\n",
                state,
                "`show stat` answered \"Unknown command.\", not a CSV header",
            ),
            (
                "",
                "",
                "`show servers state` answered \"\", not format version 1",
            ),
        ] {
            assert_eq!(parse(stat, state).unwrap_err(), want, "{stat:?} {state:?}");
        }
    }

    #[test]
    fn admin_bits() {
        for (bits, want) in [
            (0, Admin::Ready),
            (0x08, Admin::Drain),
            (0x10, Admin::Drain),
            (0x01, Admin::Maint),
            (0x05, Admin::Maint),
            (0x09, Admin::Maint),
            (0x20, Admin::Maint),
        ] {
            assert_eq!(Admin::from_bits(bits), want, "{bits:#x}");
        }
    }

    #[test]
    fn bad_outputs_are_errors_not_panics() {
        for (stat, state) in [
            ("", "1\n# be_name\n"),
            ("Unknown command.\n", STATE_26),
            (STAT_26, "Permission denied\n"),
            (STAT_26, "1\n"),
            ("# pxname,svname\nweb,web1\n", STATE_26),
            (STAT_26, "1\n# be_name srv_name srv_op_state\nweb web1 9\n"),
        ] {
            assert!(parse(stat, state).is_err(), "{stat:?} {state:?}");
        }
    }

    #[test]
    fn rows_cut_short_name_no_server() {
        // Found by fuzzing (lb_runtime): a `show servers state` row without
        // its name columns was keyed ("", "") and matched a `show stat`
        // row without them, listing a server with no names.
        let header =
            "# pxname,svname,status,scur,qcur,check_status,check_desc,agent_status,agent_desc,addr";
        let state = "1\n# be_id be_name srv_id srv_name srv_op_state srv_admin_state srv_uweight srv_iweight\n";
        // (stat rows, state rows, servers listed)
        let cases = [
            (",,UP\n", "3\n", 0),
            ("web,,UP\n", "3 web\n", 0),
            ("web,web1,UP\n", "3 web 1 web1 2 0 100 100\n", 1),
            (
                "web,web1,UP\nweb,,UP\n",
                "3 web 1 web1 2 0 100 100\n3 web\n",
                1,
            ),
        ];
        for (stat_rows, state_rows, want) in cases {
            let stat = format!("{header}\n{stat_rows}");
            let state = format!("{state}{state_rows}");
            let backends = parse(&stat, &state).unwrap();
            let listed: usize = backends.iter().map(|b| b.servers.len()).sum();
            assert_eq!(listed, want, "{stat_rows:?} {state_rows:?}");
        }
    }

    #[test]
    fn info_pids() {
        for c in captures() {
            assert_eq!(info_pid(c.info), Some(c.worker), "{}", c.version);
        }
        assert_eq!(info_pid("nothing"), None);
    }

    #[test]
    fn backends_of_a_config() {
        let cfg = "global\n  daemon\nfrontend fe\n  default_backend web\nbackend web\n  server a 1.2.3.4:80\nlisten stats\n  bind :1\n   backend   api  # comment\n";
        assert_eq!(config_backends(cfg), ["web", "stats", "api"]);
    }
}
