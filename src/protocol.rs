//! The agent-check reply: what HAProxy reads from hapgent.
//!
//! HAProxy keeps two separate axes per server, the operational state
//! (up/down) and the administrative state (ready/drain/maint), and keeps any
//! value the agent does not send. So every reply states the whole picture:
//! `up ready` rather than `up` (which would leave a server drained forever
//! after a DRAIN), and a weight, so that removing `weight` from the state
//! file restores the configured weight instead of keeping the last
//! percentage. The one exception is a repeat of a drained server's reply
//! (`render_repeat`), where the weight only makes HAProxy log. The README
//! ("Replies") says how HAProxy parses the words.
//!
//! Everything here is pure. This module does not read files or sockets.

use crate::state::{State, Status};
use std::fmt::Write;

pub use crate::state::MAX_DESCRIPTION;

/// Whether `name` may name a service: what `agent-send` carries.
pub fn valid_service_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

/// HAProxy's administrative state, least to most restrictive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Admin {
    Ready,
    Drain,
    Maint,
}

impl Admin {
    pub fn word(self) -> &'static str {
        match self {
            Admin::Ready => "ready",
            Admin::Drain => "drain",
            Admin::Maint => "maint",
        }
    }
}

/// What the dynamic inputs change in a reply. The default changes nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overlay {
    /// From the flag files: at least this restrictive (see `flag_admin`).
    pub admin: Option<Admin>,
    /// From CPU load: the weight to send instead of the state's.
    pub weight: Option<u32>,
}

/// The admin state the flag files ask for: the maint file wins over the
/// drain file; neither asks for nothing.
pub fn flag_admin(maint_file: bool, drain_file: bool) -> Option<Admin> {
    match (maint_file, drain_file) {
        (true, _) => Some(Admin::Maint),
        (false, true) => Some(Admin::Drain),
        (false, false) => None,
    }
}

/// Longest `agent-send` payload read: a service name and a newline, with
/// room to spare. Anything longer is not a service name.
pub const MAX_PAYLOAD: usize = 128;

/// What a probe's `agent-send` payload asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Nothing (no `agent-send`, or an empty line): the default service.
    None,
    /// A service name.
    Name(&'a str),
    /// Something that cannot be a service name: binary, too long, bad
    /// characters. Answered like an unknown service.
    Invalid,
}

/// Parses the first line of what a prober sent (`complete`: the prober
/// half-closed, so what came is all it sends). `None` while more may still
/// come. A deadline is not an end: what the server makes of a line cut
/// short is `server::decide`'s. Pure: the table in the tests is the
/// specification.
pub fn parse_payload(bytes: &[u8], complete: bool) -> Option<Payload<'_>> {
    let line_end = bytes.iter().position(|&b| b == b'\n');
    let line = match line_end {
        Some(end) => &bytes[..end],
        None if bytes.len() >= MAX_PAYLOAD => return Some(Payload::Invalid),
        None if complete => bytes,
        None => return None,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Some(Payload::None);
    }
    match std::str::from_utf8(line) {
        Ok(name) if valid_service_name(name) => Some(Payload::Name(name)),
        _ => Some(Payload::Invalid),
    }
}

/// The overlay for `state` from what the dynamic inputs say now: the flag
/// files' admin state, and the CPU idle share (parts per million) scaling
/// the state's weight, floored at `min_weight` (see `cpu::scale`). The one
/// place where the inputs combine, for the agent and one-shot mode alike.
pub fn overlay(
    state: &State,
    flag_admin: Option<Admin>,
    idle_ppm: Option<u32>,
    min_weight: u32,
) -> Overlay {
    Overlay {
        admin: flag_admin,
        weight: idle_ppm.map(|idle| crate::cpu::scale(base_weight(state), idle, min_weight)),
    }
}

/// The state's weight in percent; no weight means 100%, the weight
/// configured in haproxy.cfg.
pub fn base_weight(state: &State) -> u32 {
    state.weight.map_or(100, u32::from)
}

/// The weight a reply carries.
pub fn weight(state: &State, overlay: Overlay) -> u32 {
    overlay.weight.unwrap_or_else(|| base_weight(state))
}

/// The operational word and administrative state for a status. DOWN, FAIL
/// and STOPPED leave the admin state unsaid, MAINT the operational one.
fn axes(status: Status) -> (Option<&'static str>, Option<Admin>) {
    match status {
        Status::Up | Status::Ready => (Some("up"), Some(Admin::Ready)),
        Status::Drain => (Some("up"), Some(Admin::Drain)),
        Status::Maint => (None, Some(Admin::Maint)),
        Status::Down => (Some("down"), None),
        Status::Fail => (Some("fail"), None),
        Status::Stopped => (Some("stopped"), None),
    }
}

/// The admin state a reply for `state` carries, with the flag files'
/// `flag`: never less restrictive than either; `None` when left unsaid.
pub fn admin_of(state: &State, flag: Option<Admin>) -> Option<Admin> {
    match (axes(state.status).1, flag) {
        (Some(a), Some(f)) => Some(a.max(f)),
        (a, f) => a.or(f),
    }
}

/// Renders the complete reply line for `state`, newline included.
pub fn render(state: &State) -> String {
    render_with(state, Overlay::default())
}

/// Renders the reply for `state` as changed by the dynamic inputs. A flag
/// file only ever makes the admin state more restrictive: a drain file on a
/// server in MAINT leaves it in MAINT.
pub fn render_with(state: &State, overlay: Overlay) -> String {
    render_words(state, overlay, true)
}

/// The reply to repeat to a prober that was already served
/// `render_with(state, overlay)`, when it must differ: every word HAProxy
/// acts on silently when nothing changes, and none that it logs every
/// time. `None`: repeat the full reply.
///
/// HAProxy forgets nothing between probes, so a repeated word only
/// restates what it already applied; but HAProxy 2.6 re-evaluates the
/// server's state whenever it is sent a weight (`server_recalc_eweight`)
/// and, while the server is drained, logs "remains in forced drain mode"
/// each time. So while the reply drains, a repeat leaves the weight out.
/// A drained server gets no new sessions whatever its weight, and the
/// reply that ends the drain is a change, sent whole, weight included.
/// Repeating `ready`, `drain`, `maint`, `up`, `down`, a `maxconn` or a
/// description logs nothing (HAProxy 2.6 and 3.0).
pub fn render_repeat(state: &State, overlay: Overlay) -> Option<String> {
    (admin_of(state, overlay.admin) == Some(Admin::Drain))
        .then(|| render_words(state, overlay, false))
}

/// The reply line, with or without its weight.
fn render_words(state: &State, overlay: Overlay, with_weight: bool) -> String {
    let (op, _) = axes(state.status);
    let admin = admin_of(state, overlay.admin);
    let mut line = String::with_capacity(64);
    for word in op.into_iter().chain(admin.map(Admin::word)) {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if with_weight {
        let _ = write!(line, " {}%", weight(state, overlay));
    }
    if let Some(m) = state.maxconn {
        let _ = write!(line, " maxconn:{m}");
    }
    if let Some(d) = state.description.as_deref() {
        let d = sanitize(d);
        if !d.is_empty() {
            line.push_str(" # ");
            line.push_str(&d);
        }
    }
    line.push('\n');
    line
}

/// Makes free text safe for the reply: one line of printable ASCII, runs of
/// ASCII whitespace and control characters collapsed to one space, every
/// other character (non-ASCII line and paragraph separators, NEL and
/// no-break spaces included) replaced by `?`, trimmed, and cut to
/// `MAX_DESCRIPTION` bytes. A CR or LF would end the reply early; HAProxy
/// would read the rest as garbage.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DESCRIPTION));
    let mut space = false;
    for c in text.chars() {
        if c.is_ascii_whitespace() || c.is_ascii_control() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(if c.is_ascii_graphic() { c } else { '?' });
    }
    out.truncate(MAX_DESCRIPTION);
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_weight_maxconn_description() {
        // Each column is written out literally; the full reply for every
        // combination must be exactly their concatenation.
        let statuses = [
            (Status::Up, "up ready"),
            (Status::Ready, "up ready"),
            (Status::Drain, "up drain"),
            (Status::Maint, "maint"),
            (Status::Down, "down"),
            (Status::Fail, "fail"),
            (Status::Stopped, "stopped"),
        ];
        let weights = [
            (None, " 100%"),
            (Some(0), " 0%"),
            (Some(1), " 1%"),
            (Some(50), " 50%"),
            (Some(100), " 100%"),
            (Some(255), " 255%"),
        ];
        let maxconns = [
            (None, ""),
            (Some(0), " maxconn:0"),
            (Some(300), " maxconn:300"),
            (Some(65535), " maxconn:65535"),
        ];
        let long = "x".repeat(100);
        let cut = "x".repeat(MAX_DESCRIPTION);
        let descriptions: [(Option<&str>, String); 7] = [
            (None, String::new()),
            (Some(""), String::new()),
            (Some("  \r\n "), String::new()),
            (Some("deploying v2"), " # deploying v2".into()),
            (Some("a\r\nb\tc"), " # a b c".into()),
            (Some("caf\u{e9} #1"), " # caf? #1".into()),
            (Some(&long), format!(" # {cut}")),
        ];
        let mut count = 0;
        for (status, s) in statuses {
            for (weight, w) in weights {
                for (maxconn, m) in maxconns {
                    for (description, d) in &descriptions {
                        let state = State {
                            status,
                            weight,
                            maxconn,
                            description: description.map(String::from),
                        };
                        let want = format!("{s}{w}{m}{d}\n");
                        assert_eq!(render(&state), want, "{state:?}");
                        count += 1;
                    }
                }
            }
        }
        assert_eq!(count, 7 * 6 * 4 * 7);
    }

    #[test]
    fn overlay_combines_flag_files_and_cpu() {
        use Admin::*;
        let with_weight = |w: Option<u8>| State {
            weight: w,
            ..State::with_status(Status::Up)
        };
        // (state weight, flag admin, idle ppm, min weight, overlay admin, overlay weight, sent weight)
        let cases = [
            (None, None, None, 1, None, None, 100),
            (Some(50), None, None, 1, None, None, 50),
            (None, Some(Drain), None, 1, Some(Drain), None, 100),
            (None, None, Some(750_000), 1, None, Some(75), 75),
            (Some(50), None, Some(500_000), 1, None, Some(25), 25),
            (
                Some(50),
                Some(Maint),
                Some(0),
                10,
                Some(Maint),
                Some(10),
                10,
            ),
            (Some(0), None, Some(1_000_000), 1, None, Some(0), 0),
        ];
        for (w, flag, idle, min, admin, weight_overlay, sent) in cases {
            let state = with_weight(w);
            let o = overlay(&state, flag, idle, min);
            assert_eq!(o.admin, admin, "{w:?} {flag:?} {idle:?}");
            assert_eq!(o.weight, weight_overlay, "{w:?} {flag:?} {idle:?}");
            assert_eq!(weight(&state, o), sent, "{w:?} {flag:?} {idle:?}");
        }
    }

    #[test]
    fn payloads() {
        use Payload::*;
        let long = "a".repeat(200);
        let name64 = format!("{}\n", "n".repeat(64));
        let name65 = format!("{}\n", "n".repeat(65));
        // (bytes, complete, result)
        let cases: &[(&[u8], bool, Option<Payload>)] = &[
            (b"", false, Option::None),
            (b"", true, Some(Payload::None)),
            (b"\n", false, Some(Payload::None)),
            (b"\r\n", false, Some(Payload::None)),
            (b"api\n", false, Some(Name("api"))),
            (b"api\r\n", false, Some(Name("api"))),
            (b"api", false, Option::None),
            (b"api", true, Some(Name("api"))),
            (b"api\nweb\n", false, Some(Name("api"))),
            (b"v2.api:8080_x-y\n", false, Some(Name("v2.api:8080_x-y"))),
            (name64.as_bytes(), false, Some(Name(&name64[..64]))),
            (name65.as_bytes(), false, Some(Invalid)),
            (long.as_bytes(), false, Some(Invalid)),
            (b"a\0pi\n", false, Some(Invalid)),
            (b"\xff\xfe\n", false, Some(Invalid)),
            (b"api web\n", false, Some(Invalid)),
            (b"api/1\n", false, Some(Invalid)),
            (b"caf\xc3\xa9\n", false, Some(Invalid)),
        ];
        for (bytes, complete, want) in cases {
            assert_eq!(
                parse_payload(bytes, *complete),
                *want,
                "{:?} {complete}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn flag_file_precedence() {
        use Admin::*;
        assert_eq!(flag_admin(false, false), None);
        assert_eq!(flag_admin(false, true), Some(Drain));
        assert_eq!(flag_admin(true, false), Some(Maint));
        assert_eq!(flag_admin(true, true), Some(Maint));
    }

    #[test]
    fn overlays_change_admin_word_and_weight() {
        use Admin::*;
        // (status, flag admin, cpu weight, reply)
        let cases = [
            (Status::Up, None, None, "up ready 100%\n"),
            (Status::Up, Some(Drain), None, "up drain 100%\n"),
            (Status::Up, Some(Maint), None, "up maint 100%\n"),
            (Status::Ready, Some(Drain), Some(37), "up drain 37%\n"),
            (Status::Drain, None, Some(1), "up drain 1%\n"),
            (Status::Drain, Some(Drain), None, "up drain 100%\n"),
            (Status::Drain, Some(Maint), None, "up maint 100%\n"),
            // Never less restrictive than the state.
            (Status::Maint, Some(Drain), None, "maint 100%\n"),
            (Status::Maint, Some(Maint), None, "maint 100%\n"),
            (Status::Down, None, Some(50), "down 50%\n"),
            (Status::Down, Some(Drain), None, "down drain 100%\n"),
            (Status::Fail, Some(Maint), None, "fail maint 100%\n"),
            (Status::Stopped, Some(Drain), Some(0), "stopped drain 0%\n"),
        ];
        for (status, admin, weight, want) in cases {
            let state = State::with_status(status);
            let got = render_with(&state, Overlay { admin, weight });
            assert_eq!(got, want, "{status:?} {admin:?} {weight:?}");
        }
    }

    #[test]
    fn repeats_leave_out_only_what_haproxy_logs_every_time() {
        use Admin::*;
        let state = |status, weight, maxconn| State {
            status,
            weight,
            maxconn,
            description: Some("why".into()),
        };
        // (state, flag admin, cpu weight, repeat; None: the full reply)
        let cases = [
            (state(Status::Up, None, None), None, None, None),
            (state(Status::Ready, Some(50), Some(3)), None, None, None),
            (state(Status::Maint, Some(50), None), None, None, None),
            (state(Status::Down, Some(50), None), None, None, None),
            (state(Status::Up, None, None), Some(Maint), None, None),
            (
                state(Status::Drain, Some(40), None),
                Some(Maint),
                None,
                None,
            ),
            (
                state(Status::Drain, Some(50), Some(30)),
                None,
                None,
                Some("up drain maxconn:30 # why\n"),
            ),
            (
                state(Status::Drain, None, None),
                None,
                Some(70),
                Some("up drain # why\n"),
            ),
            (
                state(Status::Up, Some(50), None),
                Some(Drain),
                None,
                Some("up drain # why\n"),
            ),
            (
                state(Status::Fail, Some(50), None),
                Some(Drain),
                None,
                Some("fail drain # why\n"),
            ),
        ];
        for (state, admin, weight, want) in cases {
            let overlay = Overlay { admin, weight };
            let repeat = render_repeat(&state, overlay);
            assert_eq!(repeat.as_deref(), want, "{state:?} {overlay:?}");
            // A repeat is the full reply less its weight, nothing else.
            if let Some(repeat) = repeat {
                let full = render_with(&state, overlay);
                let w = format!(" {}%", self::weight(&state, overlay));
                assert_eq!(full.replacen(&w, "", 1), repeat);
            }
        }
    }

    #[test]
    fn replies_stay_short_and_single_line() {
        let state = State {
            status: Status::Stopped,
            weight: Some(255),
            maxconn: Some(65535),
            description: Some("\u{1F600}\n".repeat(200)),
        };
        let line = render(&state);
        assert!(line.len() < 128, "{} bytes", line.len());
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        assert!(line.is_ascii());
    }

    #[test]
    fn sanitize_cases() {
        for (input, want) in [
            ("ok", "ok"),
            ("  padded  ", "padded"),
            ("two\n\nlines", "two lines"),
            ("nul\0byte", "nul byte"),
            ("tab\there", "tab here"),
            ("\u{7f}del", "del"),
            ("ünï", "?n?"),
            // Non-ASCII separators and spaces are marked, not dropped.
            ("a\u{2028}b", "a?b"),
            ("a\u{2029}b", "a?b"),
            ("a\u{85}b", "a?b"),
            ("a\u{a0}b", "a?b"),
            ("\u{2028}edge\u{85}", "?edge?"),
            ("\x0b\x0cvt ff\x1b", "vt ff"),
        ] {
            assert_eq!(sanitize(input), want, "{input:?}");
        }
        // Cutting at the limit never leaves a trailing space.
        let s = format!("{} y", "x".repeat(MAX_DESCRIPTION - 1));
        assert_eq!(sanitize(&s), "x".repeat(MAX_DESCRIPTION - 1));
    }
}
