//! The man pages: a program's page in section 1 and its configuration
//! file's in section 5, written in the man(7) macros.
//!
//! Texts from the tables use a little Markdown (`code`, **strong**); [`text`]
//! turns it into roff and escapes what roff would read as a request or an
//! escape, so a help text never needs to know it ends up in a man page.

use crate::Program;
use hapgent_common::settings::{Builtin, Kind, Setting};

/// `text` (a table's Markdown) as roff running text: `code` in bold with
/// real minus signs, **strong** in bold, `--flags` with minus signs,
/// backslashes escaped, non-ASCII characters as groff's `\[uXXXX]`, and a
/// line that would start with `.` or `'` guarded.
pub fn text(text: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    let mut chars = text.chars().peekable();
    let mut word_start = true;
    let mut flag_word = false;
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                out.push_str(if code { "\\fR" } else { "\\fB" });
                code = !code;
            }
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // Bold already, in a code span: leave it.
                if !code {
                    let closing = out
                        .rfind("\\fB")
                        .is_none_or(|b| out.rfind("\\fR").is_some_and(|r| r > b));
                    out.push_str(if closing { "\\fB" } else { "\\fR" });
                }
            }
            '\\' => out.push_str("\\e"),
            '-' if code || flag_word || (word_start && chars.peek() == Some(&'-')) => {
                flag_word = true;
                out.push_str("\\-");
            }
            c if c.is_ascii() => out.push(c),
            c => out.push_str(&format!("\\[u{:04X}]", c as u32)),
        }
        word_start = c.is_whitespace() || c == '(' || c == '`';
        if c.is_whitespace() {
            flag_word = false;
        }
    }
    guard_lines(&out)
}

/// Prefixes `\&` to a line that roff would take for a request.
fn guard_lines(roff: &str) -> String {
    roff.lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A sentence: `text` with its first letter in capitals and a full stop.
fn sentence(t: &str) -> String {
    let mut chars = t.chars();
    let capital: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    let end = if capital.ends_with(['.', '?', '!']) {
        ""
    } else {
        "."
    };
    text(&format!("{capital}{end}"))
}

/// Arguments as a synopsis shows them: flags and literal words in bold,
/// placeholders (`N`, `BACKEND/SERVER`) in italics, `[`, `]`, `|` and `...`
/// as they are.
pub fn args(args: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        let roff = word.replace('-', "\\-");
        let placeholder = !word.starts_with('-')
            && word.chars().any(|c| c.is_ascii_uppercase())
            && !word.chars().any(|c| c.is_ascii_lowercase());
        if placeholder {
            out.push_str(&format!("\\fI{roff}\\fR"));
        } else {
            out.push_str(&format!("\\fB{roff}\\fR"));
        }
        word.clear();
    };
    for c in args.chars() {
        if c.is_ascii_alphanumeric() || "_/-:".contains(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// `--flag ARG` as the head of a tagged paragraph.
fn flag(flag: &str, arg: &str) -> String {
    let flag = format!("\\fB{}\\fR", flag.replace('-', "\\-"));
    if arg.is_empty() {
        flag
    } else {
        format!("{flag} {}", args(arg))
    }
}

/// The `.TH` line (no date and no version: the page changes only when
/// what it says does), then no hyphenation and a ragged right margin, so
/// that paths and flags are never split.
fn title(name: &str, section: u8, manual: &str, program: &str) -> String {
    format!(
        ".TH {} {section} \"\" \"{program}\" \"{manual}\"\n.nh\n.ad l\n",
        name.to_ascii_uppercase().replace('-', "\\-")
    )
}

/// The comment that opens every page.
fn generated(program: &str) -> String {
    format!(
        ".\\\" Generated from {program}'s settings and command tables by docgen;\n\
         .\\\" do not edit: {}\n",
        crate::REGENERATE
    )
}

/// Paragraphs of running text.
fn paragraphs(out: &mut String, paras: &[&str]) {
    for (i, p) in paras.iter().enumerate() {
        if i > 0 {
            out.push_str(".PP\n");
        }
        out.push_str(&text(p));
        out.push('\n');
    }
}

/// A tagged paragraph: `.TP`, the tag, the body.
fn tagged(out: &mut String, tag: &str, body: &str) {
    out.push_str(&format!(".TP\n{tag}\n{body}\n"));
}

/// A setting's default in words.
fn default(s: &Setting) -> String {
    match s.default {
        Builtin::Value("") => "empty".to_string(),
        Builtin::Value(v) => format!("\\fB{}\\fR", text(v).replace('-', "\\-")),
        Builtin::Absent(t) | Builtin::Empty(t) => text(t),
        Builtin::Required => "none".to_string(),
    }
}

/// What the table says of a setting, after its meaning: default, range,
/// repetition, whether a reload changes it.
fn facts(s: &Setting) -> String {
    let mut out = match s.default {
        Builtin::Required => "Required.".to_string(),
        _ => format!("Default: {}.", default(s)),
    };
    if let Kind::Number { min, max, unit } = s.kind {
        out.push_str(&format!(" Range: {min} to {max}{}.", text(unit)));
    }
    if s.restart {
        out.push_str(" A reload keeps the running value: restart to change it.");
    }
    out
}

/// The section 1 page of a program.
pub fn command_page(p: &Program) -> String {
    let mut out = generated(p.name);
    out.push_str(&title(p.name, 1, "User Commands", p.name));
    out.push_str(&format!(
        ".SH NAME\n{} \\- {}\n",
        p.name.replace('-', "\\-"),
        text(p.summary)
    ));
    synopsis(&mut out, p);
    out.push_str(".SH DESCRIPTION\n");
    paragraphs(&mut out, p.description);
    commands(&mut out, p);
    if !p.verbs.is_empty() {
        ctl_verbs(&mut out, p);
    }
    options(&mut out, p);
    environment(&mut out, p);
    let signals = p.signals.iter().map(|(s, e)| (format!("\\fB{s}\\fR"), *e));
    described_section(&mut out, "SIGNALS", signals);
    let codes = p
        .exit_codes
        .iter()
        .map(|(c, m)| (format!("\\fB{c}\\fR"), *m));
    described_section(&mut out, "EXIT STATUS", codes);
    let files = p
        .files
        .iter()
        .map(|(path, what)| (format!("\\fI{}\\fR", text(path)), *what));
    described_section(&mut out, "FILES", files);
    see_also(&mut out, p.see_also);
    out
}

/// A command or verb with its arguments, as a synopsis shows them.
fn usage(name: &str, rest: &str) -> String {
    if rest.is_empty() {
        args(name)
    } else {
        format!("{} {}", args(name), args(rest))
    }
}

/// The SYNOPSIS section: one line per command.
fn synopsis(out: &mut String, p: &Program) {
    out.push_str(".SH SYNOPSIS\n");
    for (i, c) in p.commands.iter().enumerate() {
        if i > 0 {
            out.push_str(".br\n");
        }
        let name = if p.default_command == Some(c.name) {
            format!("[{}]", args(c.name))
        } else {
            args(c.name)
        };
        let rest = if c.args.is_empty() {
            String::new()
        } else {
            format!(" {}", args(c.args))
        };
        out.push_str(&format!(
            "\\fB{}\\fR {name}{rest} [\\fIOPTIONS\\fR]\n",
            p.name.replace('-', "\\-")
        ));
    }
}

/// The COMMANDS section: each command, and the options only it takes.
fn commands(out: &mut String, p: &Program) {
    out.push_str(".SH COMMANDS\n");
    for c in &p.commands {
        tagged(out, &usage(c.name, c.args), &sentence(c.help));
        if !c.options.is_empty() {
            out.push_str(".RS\n");
            for o in &c.options {
                tagged(out, &flag(o.flag, o.arg), &sentence(o.help));
            }
            out.push_str(".RE\n");
        }
    }
}

/// The CTL VERBS section: each verb, then the options every verb takes.
fn ctl_verbs(out: &mut String, p: &Program) {
    out.push_str(".SH CTL VERBS\n");
    out.push_str(&format!(
        "\\fB{} ctl\\fR \\fIVERB\\fR talks to the running agent through its control socket.\n",
        p.name
    ));
    for v in &p.verbs {
        tagged(out, &usage(v.name, v.args), &sentence(v.help));
    }
    out.push_str(".SS Options of every verb\n");
    for o in &p.verb_options {
        tagged(out, &flag(o.flag, o.arg), &sentence(o.help));
    }
}

/// The OPTIONS section: `--config`, every setting that has a flag, then
/// `--help` and `--version`.
fn options(out: &mut String, p: &Program) {
    out.push_str(".SH OPTIONS\n");
    out.push_str(&format!(
        "Each setting is also the variable \\fB{}\\fIKEY\\fR in the environment and \\fIkey\\fR in the configuration file; see {}.\n",
        p.env_prefix,
        config_page_name(p),
    ));
    tagged(
        out,
        &format!("\\fB\\-c\\fR, {}", flag("--config", "PATH")),
        &format!(
            "The configuration file (also \\fB{}\\fR). Default: \\fB{}\\fR, which may be absent; a file named here must exist.",
            p.config_env.replace('-', "\\-"),
            p.config_file.replace('-', "\\-")
        ),
    );
    for s in p.settings {
        let Some(f) = s.flag else { continue };
        let mut body = sentence(s.doc);
        if let Kind::List(_) = s.kind {
            body.push_str(" The flag may be repeated.");
        }
        body.push(' ');
        body.push_str(&facts(s));
        tagged(out, &flag(f, s.arg), &body);
    }
    tagged(
        out,
        "\\fB\\-h\\fR, \\fB\\-\\-help\\fR",
        "Print the usage and exit.",
    );
    tagged(
        out,
        "\\fB\\-V\\fR, \\fB\\-\\-version\\fR",
        "Print the version and exit.",
    );
}

/// The ENVIRONMENT section: the configuration file's variable, the
/// variable of every setting that has a flag, and the others the program
/// reads.
fn environment(out: &mut String, p: &Program) {
    out.push_str(".SH ENVIRONMENT\n");
    tagged(
        out,
        &format!("\\fB{}\\fR", p.config_env),
        "The configuration file, as \\fB\\-\\-config\\fR names it (which wins).",
    );
    for s in p.settings {
        let (Some(env), Some(f)) = (s.env, s.flag) else {
            continue;
        };
        tagged(
            out,
            &format!("\\fB{env}\\fR"),
            &format!(
                "Sets \\fB{}\\fR, like \\fB{}\\fR (which wins).",
                s.key,
                f.replace('-', "\\-")
            ),
        );
    }
    for (name, effect) in &p.other_env {
        tagged(out, &format!("\\fB{name}\\fR"), &sentence(effect));
    }
}

/// A section of tagged paragraphs whose bodies are sentences from a table
/// (signals, exit codes, files).
fn described_section<'a>(
    out: &mut String,
    heading: &str,
    items: impl Iterator<Item = (String, &'a str)>,
) {
    out.push_str(&format!(".SH {heading}\n"));
    for (tag, what) in items {
        tagged(out, &tag, &sentence(what));
    }
}

/// `name(5)` of a program's configuration file page.
fn config_page_name(p: &Program) -> String {
    format!("\\fB{}.toml\\fR(5)", p.name.replace('-', "\\-"))
}

/// The SEE ALSO section.
fn see_also(out: &mut String, pages: &[&str]) {
    out.push_str(".SH SEE ALSO\n");
    let refs: Vec<String> = pages
        .iter()
        .map(|page| {
            let (name, section) = page.split_once('(').expect("name(section)");
            format!("\\fB{}\\fR({section}", name.replace('-', "\\-"))
        })
        .collect();
    out.push_str(&refs.join(",\n"));
    out.push('\n');
}

/// What kind of TOML value a setting takes.
fn toml_type(s: &Setting) -> &'static str {
    match s.kind {
        Kind::Switch => "boolean",
        Kind::Number { .. } => "integer",
        Kind::Text(_) => "string",
        Kind::List(_) => "string or array of strings",
        Kind::Table { .. } => "table",
    }
}

/// The section 5 page of a program's configuration file.
pub fn config_page(p: &Program) -> String {
    let file = format!("{}.toml", p.name);
    let mut out = generated(p.name);
    out.push_str(&title(&file, 5, "File Formats", p.name));
    out.push_str(&format!(
        ".SH NAME\n{} \\- configuration file of {}\n",
        file.replace('-', "\\-"),
        p.name.replace('-', "\\-")
    ));
    out.push_str(&format!(
        ".SH SYNOPSIS\n\\fI{}\\fR\n",
        p.config_file.replace('-', "\\-")
    ));
    out.push_str(".SH DESCRIPTION\n");
    paragraphs(&mut out, p.config_description);

    out.push_str(".SH KEYS\n");
    for s in p.settings {
        key(&mut out, s, "");
    }
    for s in p.settings {
        if let Kind::Table { name, entry } = s.kind {
            out.push_str(&format!(".SS [{}.{name}]\n", s.key));
            out.push_str(&format!(
                "Each \\fB[{}.\\fR\\fI{name}\\fR\\fB]\\fR table takes these keys.\n",
                s.key
            ));
            for e in entry {
                key(&mut out, e, &format!("{}.{name}.", s.key));
            }
        }
    }
    see_also(&mut out, &[&format!("{}(1)", p.name)]);
    out
}

/// One key of the configuration file: name and type, meaning, facts, and
/// the flag and variable that also set it.
fn key(out: &mut String, s: &Setting, prefix: &str) {
    let head = format!("\\fB{prefix}{}\\fR (\\fI{}\\fR)", s.key, toml_type(s));
    let mut body = sentence(s.doc);
    if !matches!(s.kind, Kind::Table { .. }) {
        body.push(' ');
        body.push_str(&facts(s));
    }
    match (s.flag, s.env) {
        (Some(f), Some(e)) => body.push_str(&format!(
            " Also \\fB{}\\fR and \\fB{e}\\fR.",
            f.replace('-', "\\-")
        )),
        _ => body.push_str(" In the file only."),
    }
    tagged(out, &head, &body);
}
