//! The committed man pages and completions are what the tables make; every
//! setting, command and verb is in them; the pages render without a
//! warning; and bash completes what an operator types.

use hapgent_common::settings::Kind;
use hapgent_docgen::{Program, REGENERATE, complete, hapgent, hapgent_lb, outputs};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn programs() -> [Program; 2] {
    [hapgent(), hapgent_lb()]
}

fn generated(path: &str) -> String {
    outputs()
        .into_iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("docgen makes no {path}"))
        .1
}

/// `--flag` as it is written in a page.
fn roff(text: &str) -> String {
    text.replace('-', "\\-")
}

#[test]
fn committed_files_are_what_the_tables_make() {
    let stale: Vec<String> = outputs()
        .into_iter()
        .filter(|(path, content)| {
            std::fs::read_to_string(root().join(path)).ok().as_ref() != Some(content)
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        stale.is_empty(),
        "{} differ from what the settings and command tables make; regenerate them with `{REGENERATE}` and commit the result",
        stale.join(", ")
    );
}

#[test]
fn every_setting_is_in_both_pages() {
    for p in programs() {
        let page = generated(&format!("man/{}.1", p.name));
        let config = generated(&format!("man/{}.toml.5", p.name));
        for s in p.settings {
            if let Some(flag) = s.flag {
                let tag = format!(".TP\n\\fB{}\\fR", roff(flag));
                assert!(page.contains(&tag), "{}(1) lacks {flag}", p.name);
            }
            if let Some(env) = s.env {
                let tag = format!(".TP\n\\fB{env}\\fR\n");
                assert!(page.contains(&tag), "{}(1) lacks {env}", p.name);
            }
            let tag = format!(".TP\n\\fB{}\\fR (", s.key);
            assert!(config.contains(&tag), "{}.toml(5) lacks {}", p.name, s.key);
            if let Kind::Number { min, max, .. } = s.kind {
                let range = format!("Range: {min} to {max}");
                assert!(
                    config.contains(&range),
                    "{}.toml(5): {} {range}",
                    p.name,
                    s.key
                );
            }
            if let Kind::Table { name, entry } = s.kind {
                for e in entry {
                    let tag = format!(".TP\n\\fB{}.{name}.{}\\fR (", s.key, e.key);
                    assert!(config.contains(&tag), "{}.toml(5) lacks {tag}", p.name);
                }
            }
        }
    }
}

#[test]
fn every_command_verb_and_exit_code_is_in_the_page() {
    for p in programs() {
        let page = generated(&format!("man/{}.1", p.name));
        for c in &p.commands {
            let tag = format!(".TP\n\\fB{}\\fR", roff(c.name));
            assert!(
                page.contains(&tag),
                "{}(1) lacks the command {}",
                p.name,
                c.name
            );
        }
        let verbs = page.split_once(".SH CTL VERBS\n").map_or("", |(_, v)| v);
        for v in &p.verbs {
            let tag = format!(".TP\n\\fB{}\\fR", roff(v.name));
            assert!(
                verbs.contains(&tag),
                "{}(1) lacks the verb {}",
                p.name,
                v.name
            );
        }
        let exits = page.split_once(".SH EXIT STATUS\n").expect("EXIT STATUS").1;
        for (code, _) in &p.exit_codes {
            assert!(
                exits.contains(&format!(".TP\n\\fB{code}\\fR\n")),
                "{}(1) lacks exit {code}",
                p.name
            );
        }
    }
    assert!(!hapgent().verbs.is_empty());
}

/// What docgen lists is what the programs accept: each command and verb is
/// in the program's usage text, and every flag the usage text names is
/// one docgen completes.
#[test]
fn commands_verbs_and_flags_match_the_usage_text() {
    for (p, usage) in [
        (hapgent(), hapgent::usage_text()),
        (hapgent_lb(), hapgent_lb::usage_text()),
    ] {
        let commands = usage.split_once("Commands:").expect("a Commands: part").1;
        for c in &p.commands {
            assert!(
                commands.contains(&format!("\n  {} ", c.name)),
                "{}'s usage lacks {}",
                p.name,
                c.name
            );
        }
        for v in &p.verbs {
            assert!(
                commands
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .any(|w| w == v.name),
                "{}'s usage lacks the verb {}",
                p.name,
                v.name
            );
        }
        let known: Vec<String> = complete::flags(&p)
            .into_iter()
            .map(|(_, f)| f.name)
            .collect();
        for word in usage.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            if word.starts_with("--") && word.len() > 2 {
                assert!(
                    known.iter().any(|k| k == word),
                    "{}'s usage names {word}, which docgen does not know",
                    p.name
                );
            }
        }
    }
}

#[test]
fn every_flag_command_and_verb_is_completed() {
    for p in programs() {
        let flags = complete::flags(&p);
        for shell in ["bash", "fish"] {
            let script = generated(&format!("completions/{}.{shell}", p.name));
            let zsh = generated(&format!("completions/_{}", p.name));
            for (_, f) in &flags {
                let long = f.name.trim_start_matches('-');
                let fish_form = format!("-l {long}");
                let found = match shell {
                    "fish" if f.name.starts_with("--") => script.contains(&fish_form),
                    "fish" => script.contains(&format!("-s {long}")),
                    _ => script.contains(&f.name),
                };
                assert!(found, "{}.{shell} lacks {}", p.name, f.name);
                assert!(
                    zsh.contains(&format!("'{}:", f.name)),
                    "_{} lacks {}",
                    p.name,
                    f.name
                );
            }
            for name in p
                .commands
                .iter()
                .map(|c| c.name)
                .chain(p.verbs.iter().map(|v| v.name))
            {
                assert!(script.contains(name), "{}.{shell} lacks {name}", p.name);
                assert!(
                    zsh.contains(&format!("'{name}:")),
                    "_{} lacks {name}",
                    p.name
                );
            }
        }
    }
}

/// groff's and man's warnings for a page (what lintian runs), empty when
/// it renders cleanly.
fn render_warnings(page: &Path) -> String {
    let mut out = String::new();
    for (program, args) in [
        ("groff", vec!["-ww", "-z", "-man", "-Tutf8"]),
        (
            "man",
            vec!["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"],
        ),
    ] {
        let run = Command::new(program)
            .args(&args)
            .arg(page)
            .env("LC_ALL", "C.UTF-8")
            .env("MANROFFSEQ", "")
            .env("MANWIDTH", "80")
            .output()
            .unwrap_or_else(|e| panic!("{program} (apt-get install groff-base man-db): {e}"));
        assert!(
            run.status.success(),
            "{program} {}: {:?}",
            page.display(),
            run.status
        );
        out.push_str(&String::from_utf8_lossy(&run.stderr));
    }
    out
}

#[test]
fn pages_render_without_warnings() {
    for (path, _) in outputs().iter().filter(|(p, _)| p.starts_with("man/")) {
        let warnings = render_warnings(&root().join(path));
        assert!(warnings.is_empty(), "{path}:\n{warnings}");
    }
    // The check sees a broken page.
    let dir = tempdir("render");
    let broken = dir.join("broken.1");
    std::fs::write(
        &broken,
        ".TH BROKEN 1\n.SH NAME\nbroken \\- a page\n.SH X\n\\fBunclosed \\q\n.BOGUS\n",
    )
    .unwrap();
    assert!(!render_warnings(&broken).is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

/// No character a page cannot carry: everything non-ASCII is escaped.
#[test]
fn pages_are_ascii() {
    for (path, content) in outputs() {
        assert!(content.is_ascii(), "{path} has a non-ASCII character");
    }
}

/// A fresh directory under the target directory.
fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("docgen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the program's bash completion offers for `line` (the cursor at
/// its end; a trailing space starts a new word), in a clean `bash --norc`
/// with `env` set; and what `complete -p` says.
fn bash_complete(
    program: &str,
    line: &str,
    dir: &Path,
    env: &[(&str, &str)],
) -> (String, Vec<String>) {
    let mut words: Vec<String> = line.split_whitespace().map(String::from).collect();
    if line.ends_with(' ') {
        words.push(String::new());
    }
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source '{}'\ncomplete -p {program}\nCOMP_WORDS=({})\nCOMP_CWORD={}\n{} {program}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        root().join(format!("completions/{program}.bash")).display(),
        quoted.join(" "),
        words.len() - 1,
        complete_function(program),
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let spec = lines.next().unwrap_or_default().to_string();
    let mut offered: Vec<String> = lines.filter(|l| !l.is_empty()).map(String::from).collect();
    offered.sort();
    (spec, offered)
}

fn complete_function(program: &str) -> String {
    format!("_{}", program.replace('-', "_"))
}

/// A command line, its environment, and what completion offers.
type BashCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn bash_completes_commands_verbs_flags_and_services() {
    let dir = tempdir("bash");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        "port = 9777\n\n[services.web]\nstate_file = \"/w.json\"\n\n  [ services.\"api:v2\" ] # quoted\nstate_file = \"/a.json\"\n[servicesx]\n",
    )
    .unwrap();
    std::fs::write(dir.join("state.json"), "{}").unwrap();
    std::fs::write(dir.join("stats.txt"), "").unwrap();
    let config = config.to_str().unwrap();
    let (spec, _) = bash_complete("hapgent", "hapgent ", &dir, &[]);
    assert_eq!(spec, "complete -F _hapgent hapgent");
    let cases: &[BashCase] = &[
        ("hapgent ", &[], &["check-config", "ctl", "reply", "run"]),
        ("hapgent --port 80 c", &[], &["check-config", "ctl"]),
        ("hapgent ctl dr", &[], &["drain"]),
        ("hapgent ctl --json pro", &[], &["probers"]),
        ("hapgent --po", &[], &["--port"]),
        ("hapgent reply --j", &[], &["--json"]),
        ("hapgent --j", &[], &[]),
        ("hapgent ctl set --status D", &[], &["DOWN", "DRAIN"]),
        (
            "hapgent ctl set --w",
            &[],
            &["--wait-seen", "--weight", "--write-timeout"],
        ),
        (
            "hapgent ctl drain --w",
            &[],
            &["--wait-seen", "--write-timeout"],
        ),
        ("hapgent ctl weight ", &[], &["none"]),
        ("hapgent --state-file st", &[], &["state.json", "stats.txt"]),
        ("hapgent --port ", &[], &[]),
        (
            &*format!("hapgent -c {config} ctl drain --service "),
            &[],
            &["api:v2", "web"],
        ),
        (
            "hapgent ctl up --service w",
            &[("HAPGENT_CONFIG", config)],
            &["web"],
        ),
        (
            "hapgent ctl up --service ",
            &[("HAPGENT_CONFIG", "/nonexistent.toml")],
            &[],
        ),
    ];
    for (line, env, want) in cases {
        let (_, got) = bash_complete("hapgent", line, &dir, env);
        assert_eq!(got, *want, "{line:?}");
    }
    let (spec, _) = bash_complete("hapgent-lb", "hapgent-lb ", &dir, &[]);
    assert_eq!(spec, "complete -F _hapgent_lb hapgent-lb");
    let cases: &[(&str, &[&str])] = &[
        ("hapgent-lb ", &["check-config", "serve", "status", "wait"]),
        (
            "hapgent-lb wait web/a --admin ",
            &["drain", "maint", "ready"],
        ),
        ("hapgent-lb wait web/a --op s", &["starting", "stopping"]),
        ("hapgent-lb status --b", &["--backend", "--body-timeout"]),
        (
            "hapgent-lb --haproxy-config st",
            &["state.json", "stats.txt"],
        ),
    ];
    for (line, want) in cases {
        let (_, got) = bash_complete("hapgent-lb", line, &dir, &[]);
        assert_eq!(got, *want, "{line:?}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// What the program's fish completion offers for `line` (`complete -C`),
/// names only, sorted.
fn fish_complete(program: &str, line: &str) -> Vec<String> {
    let script = format!(
        "source '{}'; complete -C '{line}'",
        root().join(format!("completions/{program}.fish")).display()
    );
    let out = Command::new("fish")
        .args(["--no-config", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("fish runs (apt-get install fish)");
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn fish_completes_commands_verbs_flags_and_services() {
    let dir = tempdir("fish");
    let config = dir.join("agent.toml");
    std::fs::write(&config, "[services.web]\nstate_file = \"/w.json\"\n[services.\"api:v2\"]\nstate_file = \"/a.json\"\n").unwrap();
    let config = config.to_str().unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "hapgent",
            "hapgent ",
            &["check-config", "ctl", "reply", "run"],
        ),
        ("hapgent", "hapgent ctl dr", &["drain"]),
        ("hapgent", "hapgent --po", &["--port"]),
        ("hapgent", "hapgent ctl set --status D", &["DOWN", "DRAIN"]),
        ("hapgent", "hapgent ctl weight ", &["none"]),
        (
            "hapgent",
            &format!("hapgent -c {config} ctl up --service "),
            &["api:v2", "web"],
        ),
        (
            "hapgent-lb",
            "hapgent-lb ",
            &["check-config", "serve", "status", "wait"],
        ),
        (
            "hapgent-lb",
            "hapgent-lb wait a/b --op s",
            &["starting", "stopping"],
        ),
    ];
    for (program, line, want) in cases {
        assert_eq!(fish_complete(program, line), *want, "{line:?}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// What the program's zsh completion function passes to the completion
/// system for `line`, with `_describe`, `compadd`, `_files` and `_message`
/// replaced by stand-ins that print their candidates (the prefix is
/// matched by the completion system, so every candidate is printed).
fn zsh_complete(program: &str, line: &str) -> Vec<String> {
    let script = format!(
        r#"_describe() {{ local name=${{@[-1]}}; print -l -- ${{${{(P)name}}%%:*}}; }}
compadd() {{ [[ $1 == -- ]] && shift; print -l -- "$@"; }}
_files() {{ print -- '(files)'; }}
_message() {{ print -- '(a value)'; }}
compdef() {{ }}
source '{}'
words=(${{(z)LINE}})
[[ $LINE == *' ' ]] && words+=('')
CURRENT=${{#words}}
{}
"#,
        root().join(format!("completions/_{program}")).display(),
        complete_function(program),
    );
    let out = Command::new("zsh")
        .args(["-f", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LINE", line)
        .output()
        .expect("zsh runs (apt-get install zsh)");
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    names
}

#[test]
fn zsh_offers_commands_verbs_values_and_services() {
    let dir = tempdir("zsh");
    let config = dir.join("agent.toml");
    std::fs::write(&config, "[services.web]\nstate_file = \"/w.json\"\n").unwrap();
    let config = config.to_str().unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "hapgent",
            "hapgent ",
            &["check-config", "ctl", "reply", "run"],
        ),
        (
            "hapgent",
            "hapgent --port 80 ctl ",
            &[
                "description",
                "down",
                "drain",
                "maint",
                "maxconn",
                "metrics",
                "probers",
                "ready",
                "set",
                "status",
                "up",
                "wait-seen",
                "weight",
            ],
        ),
        (
            "hapgent",
            "hapgent ctl set --status ",
            &["DOWN", "DRAIN", "FAIL", "MAINT", "READY", "STOPPED", "UP"],
        ),
        ("hapgent", "hapgent ctl weight ", &["none"]),
        ("hapgent", "hapgent --state-file x", &["(files)"]),
        ("hapgent", "hapgent --port ", &["(a value)"]),
        (
            "hapgent",
            &format!("hapgent -c {config} ctl up --service "),
            &["web"],
        ),
        (
            "hapgent-lb",
            "hapgent-lb wait a/b --admin ",
            &["drain", "maint", "ready"],
        ),
    ];
    for (program, line, want) in cases {
        assert_eq!(zsh_complete(program, line), *want, "{line:?}");
    }
    let flags = zsh_complete("hapgent", "hapgent reply --");
    assert!(
        flags.contains(&"--json".to_string()) && flags.contains(&"--port".to_string()),
        "{flags:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
