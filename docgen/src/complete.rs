//! Shell completions for bash, zsh and fish: commands, ctl verbs, every
//! flag, and the values that can be offered (files, fixed words, and the
//! services of the configuration file).
//!
//! Services are read from the configuration file's `[services.NAME]`
//! headers with sed: the file the command line names (`-c`/`--config`),
//! else the one the environment names, else the default. That costs one
//! small file read per completion and works while the agent is down or
//! its control socket is out of reach; services written as inline tables
//! are not found (the configuration the packages ship uses headers).
//!
//! Each script works out the command and verb typed so far by skipping
//! flags and their values, the same way the program's parser reads them.

use crate::{Program, Values};
use hapgent_common::settings::Kind;

/// A flag as the completions see it.
#[derive(Clone, Debug)]
pub struct Flag {
    /// `--port` or `-c`.
    pub name: String,
    pub takes_value: bool,
    pub values: Values,
    /// One line, plain text.
    pub help: String,
}

/// Where a flag is offered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Anywhere.
    Global,
    /// After this command.
    Command(&'static str),
    /// After `ctl` (any verb).
    Verbs,
    /// After this ctl verb.
    Verb(&'static str),
}

/// Every flag of a program, with where it is offered.
pub fn flags(p: &Program) -> Vec<(Scope, Flag)> {
    let mut out = Vec::new();
    let config = format!("configuration file [default: {}]", p.config_file);
    for name in ["-c", "--config"] {
        out.push((
            Scope::Global,
            Flag {
                name: name.into(),
                takes_value: true,
                values: Values::Files,
                help: config.clone(),
            },
        ));
    }
    for s in p.settings {
        let Some(flag) = s.flag else { continue };
        let takes_value = !matches!(s.kind, Kind::Switch);
        let values = if s.arg == "PATH" {
            Values::Files
        } else {
            Values::Free
        };
        out.push((
            Scope::Global,
            Flag {
                name: flag.into(),
                takes_value,
                values,
                help: plain(s.help),
            },
        ));
    }
    for (name, help) in [
        ("-h", "print the usage"),
        ("--help", "print the usage"),
        ("-V", "print the version"),
        ("--version", "print the version"),
    ] {
        out.push((
            Scope::Global,
            Flag {
                name: name.into(),
                takes_value: false,
                values: Values::Free,
                help: help.into(),
            },
        ));
    }
    for c in &p.commands {
        for o in &c.options {
            out.push((Scope::Command(c.name), option(o)));
        }
    }
    for o in &p.verb_options {
        out.push((Scope::Verbs, option(o)));
    }
    for v in &p.verbs {
        for f in arg_flags(v.args) {
            // Listed for every verb already (`--json`).
            if !p.verb_options.iter().any(|o| o.flag == f.name) {
                out.push((Scope::Verb(v.name), f));
            }
        }
    }
    out
}

fn option(o: &crate::Opt) -> Flag {
    Flag {
        name: o.flag.into(),
        takes_value: !o.arg.is_empty(),
        values: o.values.clone(),
        help: plain(o.help),
    }
}

/// The flags in a verb's arguments (`--status S [--weight N|none]`): a
/// flag takes a value when a placeholder follows it; the lower-case
/// alternatives of that placeholder (`none`) are offered, and a state's
/// statuses for `--status`.
pub fn arg_flags(args: &'static str) -> Vec<Flag> {
    let tokens: Vec<&str> = args
        .split(|c: char| c.is_whitespace() || c == '[' || c == ']')
        .filter(|t| !t.is_empty())
        .collect();
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !t.starts_with("--") {
            continue;
        }
        let next = tokens.get(i + 1).filter(|n| !n.starts_with('-'));
        let values = if *t == "--status" {
            Values::Words(crate::statuses())
        } else {
            match next.map(|n| lower_alternatives(n)) {
                Some(words) if !words.is_empty() => Values::Words(words),
                _ => Values::Free,
            }
        };
        out.push(Flag {
            name: t.to_string(),
            takes_value: next.is_some(),
            values,
            help: String::new(),
        });
    }
    out
}

/// The literal words of `N|none` (`none`).
fn lower_alternatives(token: &str) -> Vec<&str> {
    token
        .split('|')
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect()
}

/// The words a verb's first argument may be (`weight N|none`: `none`).
pub fn verb_words(args: &str) -> Vec<&str> {
    match args.split_whitespace().next() {
        Some(first) if !first.starts_with(['-', '[']) => lower_alternatives(first),
        _ => Vec::new(),
    }
}

/// A table's Markdown as plain text (no backticks or stars).
fn plain(text: &str) -> String {
    text.replace(['`', '*'], "")
}

/// The script's opening comment.
fn header(p: &Program, shell: &str) -> String {
    format!(
        "# {shell} completion for {name}. Generated from {name}'s settings and command\n\
         # tables by docgen; do not edit: {}\n",
        crate::REGENERATE,
        name = p.name
    )
}

/// The sed program that prints the `[services.NAME]` names of a file.
const SERVICES_SED: &str =
    r#"s/^[[:space:]]*\[[[:space:]]*services\.("([^"]+)"|([A-Za-z0-9_-]+))[[:space:]]*\].*/\2\3/p"#;

/// A shell function name made from the program's name.
fn ident(p: &Program) -> String {
    format!("_{}", p.name.replace('-', "_"))
}

/// `a|b|c` for a case pattern; `None` when there are none.
fn pattern(names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| names.join("|"))
}

/// Flag names that take a value, in the program's order, once each.
fn value_flags(all: &[(Scope, Flag)], pick: impl Fn(&Flag) -> bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, f) in all {
        if f.takes_value && pick(f) && !out.contains(&f.name) {
            out.push(f.name.clone());
        }
    }
    out
}

/// Flag names offered in a scope.
fn names_in(all: &[(Scope, Flag)], scope: &Scope) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (s, f) in all {
        if s == scope && !out.contains(&f.name) {
            out.push(f.name.clone());
        }
    }
    out
}

/// For each set of fixed words, the flags that take them.
fn word_flags(all: &[(Scope, Flag)]) -> Vec<(Vec<&'static str>, Vec<String>)> {
    let mut out: Vec<(Vec<&'static str>, Vec<String>)> = Vec::new();
    for (_, f) in all {
        if let Values::Words(words) = &f.values {
            match out.iter_mut().find(|(w, _)| w == words) {
                Some((_, names)) if !names.contains(&f.name) => names.push(f.name.clone()),
                Some(_) => {}
                None => out.push((words.clone(), vec![f.name.clone()])),
            }
        }
    }
    out
}

/// The bash script.
pub fn bash(p: &Program) -> String {
    let all = flags(p);
    let f = ident(p);
    let mut s = header(p, "bash");
    let has_services = all.iter().any(|(_, fl)| fl.values == Values::Services);
    if has_services {
        s.push_str(&format!(
            "\n# The services of the configuration file $1: its [services.NAME] tables.\n\
             {f}_services() {{\n    [ -r \"$1\" ] || return 0\n    sed -n -E '{SERVICES_SED}' \"$1\"\n}}\n"
        ));
    }
    s.push_str(&format!("\n{f}() {{\n"));
    s.push_str("    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n");
    s.push_str(&format!(
        "    local config=${{{}:-{}}}\n",
        p.config_env, p.config_file
    ));
    s.push_str("    local command= verb= word i\n");
    s.push_str("    COMPREPLY=()\n");
    s.push_str(&bash_typed(p, &all));
    s.push_str(&bash_values(&all, &f, has_services));
    s.push_str(&bash_flags(p, &all));
    s.push_str(&bash_words(p));
    s.push_str("}\n");
    s.push_str(&format!("complete -F {f} {}\n", p.name));
    s
}

/// Bash: the loop that finds the command and verb typed so far (and the
/// configuration file named).
fn bash_typed(p: &Program, all: &[(Scope, Flag)]) -> String {
    let mut s = String::new();
    s.push_str("    # The command and verb typed so far: words that are neither flags nor\n    # a flag's value.\n");
    s.push_str("    for ((i = 1; i < COMP_CWORD; i++)); do\n        word=${COMP_WORDS[i]}\n        case $word in\n");
    s.push_str("            -c|--config) config=${COMP_WORDS[i+1]}; i=$((i + 1)) ;;\n");
    s.push_str("            --config=*) config=${word#--config=} ;;\n");
    let valued = value_flags(all, |fl| fl.name != "-c" && fl.name != "--config");
    if let Some(pat) = pattern(&valued) {
        s.push_str(&format!("            {pat}) i=$((i + 1)) ;;\n"));
    }
    s.push_str("            -*) ;;\n");
    s.push_str("            *)\n                if [ -z \"$command\" ]; then\n                    command=$word\n");
    if !p.verbs.is_empty() {
        s.push_str("                elif [ \"$command\" = ctl ] && [ -z \"$verb\" ]; then\n                    verb=$word\n");
    }
    s.push_str("                fi\n                ;;\n        esac\n    done\n");
    s
}

/// Bash: the values offered after a flag that takes one.
fn bash_values(all: &[(Scope, Flag)], f: &str, has_services: bool) -> String {
    let mut s = String::from("    case $prev in\n");
    let files = value_flags(all, |fl| fl.values == Values::Files);
    if let Some(pat) = pattern(&files) {
        s.push_str(&format!(
            "        {pat})\n            compopt -o filenames 2>/dev/null\n            local IFS=$'\\n'\n            COMPREPLY=($(compgen -f -- \"$cur\"))\n            return\n            ;;\n"
        ));
    }
    if has_services {
        let services = value_flags(all, |fl| fl.values == Values::Services);
        s.push_str(&format!(
            "        {})\n            COMPREPLY=($(compgen -W \"$({f}_services \"$config\")\" -- \"$cur\"))\n            return\n            ;;\n",
            services.join("|")
        ));
    }
    for (words, names) in word_flags(all) {
        s.push_str(&format!(
            "        {})\n            COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))\n            return\n            ;;\n",
            names.join("|"),
            words.join(" ")
        ));
    }
    let free = value_flags(all, |fl| fl.values == Values::Free);
    if let Some(pat) = pattern(&free) {
        s.push_str(&format!("        {pat}) return ;; # a value to type\n"));
    }
    s.push_str("    esac\n");
    s
}

/// Bash: the flags offered where a word starts with `-`: the global ones,
/// the command's, and the ctl verb's.
fn bash_flags(p: &Program, all: &[(Scope, Flag)]) -> String {
    let mut s = String::from("    if [[ $cur == -* ]]; then\n");
    s.push_str(&format!(
        "        local flags=\"{}\"\n",
        names_in(all, &Scope::Global).join(" ")
    ));
    s.push_str("        case $command in\n");
    for c in &p.commands {
        let mut names = names_in(all, &Scope::Command(c.name));
        if c.name == "ctl" {
            names.extend(names_in(all, &Scope::Verbs));
        }
        if !names.is_empty() {
            s.push_str(&format!(
                "            {}) flags+=\" {}\" ;;\n",
                c.name,
                names.join(" ")
            ));
        }
    }
    s.push_str("        esac\n");
    let verb_cases: Vec<String> = p
        .verbs
        .iter()
        .filter_map(|v| {
            let names = names_in(all, &Scope::Verb(v.name));
            (!names.is_empty()).then(|| format!("{}) flags+=\" {}\" ;;", v.name, names.join(" ")))
        })
        .collect();
    if !verb_cases.is_empty() {
        s.push_str("        if [ \"$command\" = ctl ]; then\n            case $verb in\n");
        for c in verb_cases {
            s.push_str(&format!("                {c}\n"));
        }
        s.push_str("            esac\n        fi\n");
    }
    s.push_str(
        "        COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n        return\n    fi\n",
    );
    s
}

/// Bash: the words offered elsewhere: commands, ctl verbs, and the words
/// a verb's argument may be.
fn bash_words(p: &Program) -> String {
    let commands: Vec<&str> = p.commands.iter().map(|c| c.name).collect();
    let mut s = format!(
        "    if [ -z \"$command\" ]; then\n        COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))\n",
        commands.join(" ")
    );
    if !p.verbs.is_empty() {
        let verbs: Vec<&str> = p.verbs.iter().map(|v| v.name).collect();
        s.push_str(&format!(
            "    elif [ \"$command\" = ctl ] && [ -z \"$verb\" ]; then\n        COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))\n",
            verbs.join(" ")
        ));
        for v in &p.verbs {
            let words = verb_words(v.args);
            if !words.is_empty() {
                s.push_str(&format!(
                    "    elif [ \"$command\" = ctl ] && [ \"$prev\" = {} ]; then\n        COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))\n",
                    v.name,
                    words.join(" ")
                ));
            }
        }
    }
    s.push_str("    fi\n");
    s
}

/// `text` in single quotes for zsh or fish (`'` as `'\''` for zsh,
/// `\'` for fish).
fn quote(text: &str, fish: bool) -> String {
    let escaped = if fish {
        text.replace('\\', "\\\\").replace('\'', "\\'")
    } else {
        text.replace('\'', "'\\''")
    };
    format!("'{escaped}'")
}

/// `name:description` for zsh's `_describe`.
fn described(name: &str, help: &str) -> String {
    quote(
        &format!("{}:{}", name.replace(':', "\\:"), plain(help)),
        false,
    )
}

/// The zsh script (a `#compdef` function file).
pub fn zsh(p: &Program) -> String {
    let all = flags(p);
    let f = ident(p);
    let mut s = format!("#compdef {}\n", p.name);
    s.push_str(&header(p, "zsh"));
    let has_services = all.iter().any(|(_, fl)| fl.values == Values::Services);
    if has_services {
        s.push_str(&format!(
            "\n# The services of the configuration file $1: its [services.NAME] tables.\n\
             {f}_services() {{\n    [[ -r $1 ]] || return 0\n    sed -n -E '{SERVICES_SED}' \"$1\"\n}}\n"
        ));
    }
    s.push_str(&format!("\n{f}() {{\n"));
    s.push_str(&format!(
        "    local config=${{{}:-{}}}\n",
        p.config_env, p.config_file
    ));
    s.push_str("    local command= verb= word i\n");
    s.push_str("    local cur=${words[CURRENT]} prev=${words[CURRENT-1]}\n");
    s.push_str(&zsh_typed(p, &all));
    s.push_str(&zsh_values(&all, &f, has_services));
    s.push_str(&zsh_flags(p, &all));
    s.push_str(&zsh_words(p));
    s.push_str("}\n\n");
    s.push_str(&format!(
        "if [[ $funcstack[1] == {f} ]]; then\n    {f} \"$@\"\nelse\n    compdef {f} {}\nfi\n",
        p.name
    ));
    s
}

/// Zsh: the loop that finds the command and verb typed so far (and the
/// configuration file named).
fn zsh_typed(p: &Program, all: &[(Scope, Flag)]) -> String {
    let mut s = String::new();
    s.push_str("    for ((i = 2; i < CURRENT; i++)); do\n        word=${words[i]}\n        case $word in\n");
    s.push_str("            (-c|--config) config=${words[i+1]}; (( i++ )) ;;\n");
    s.push_str("            (--config=*) config=${word#--config=} ;;\n");
    let valued = value_flags(all, |fl| fl.name != "-c" && fl.name != "--config");
    if let Some(pat) = pattern(&valued) {
        s.push_str(&format!("            ({pat}) (( i++ )) ;;\n"));
    }
    s.push_str("            (-*) ;;\n");
    s.push_str("            (*)\n                if [[ -z $command ]]; then\n                    command=$word\n");
    if !p.verbs.is_empty() {
        s.push_str("                elif [[ $command == ctl && -z $verb ]]; then\n                    verb=$word\n");
    }
    s.push_str("                fi\n                ;;\n        esac\n    done\n");
    s
}

/// Zsh: the values offered after a flag that takes one.
fn zsh_values(all: &[(Scope, Flag)], f: &str, has_services: bool) -> String {
    let mut s = String::from("    case $prev in\n");
    let files = value_flags(all, |fl| fl.values == Values::Files);
    if let Some(pat) = pattern(&files) {
        s.push_str(&format!("        ({pat}) _files; return ;;\n"));
    }
    if has_services {
        let services = value_flags(all, |fl| fl.values == Values::Services);
        s.push_str(&format!(
            "        ({}) compadd -- ${{(f)\"$({f}_services \"$config\")\"}}; return ;;\n",
            services.join("|")
        ));
    }
    for (words, names) in word_flags(all) {
        s.push_str(&format!(
            "        ({}) compadd -- {}; return ;;\n",
            names.join("|"),
            words.join(" ")
        ));
    }
    let free = value_flags(all, |fl| fl.values == Values::Free);
    if let Some(pat) = pattern(&free) {
        s.push_str(&format!("        ({pat}) _message 'a value'; return ;;\n"));
    }
    s.push_str("    esac\n");
    s
}

/// Zsh: a local array, in the block of an `if` (eight spaces in).
fn zsh_array(name: &str, items: Vec<String>) -> String {
    let mut out = format!("        local -a {name}=(\n");
    for i in items {
        out.push_str(&format!("            {i}\n"));
    }
    out.push_str("        )\n");
    out
}

/// Zsh: the flags of a scope as `_describe` items, once each.
fn described_flags(all: &[(Scope, Flag)], scope: &Scope) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    all.iter()
        .filter(|(s, fl)| {
            s == scope && !seen.contains(&fl.name.as_str()) && {
                seen.push(&fl.name);
                true
            }
        })
        .map(|(_, fl)| described(&fl.name, &fl.help))
        .collect()
}

/// Zsh: the flags offered where a word starts with `-`: the global ones,
/// the command's, and the ctl verb's.
fn zsh_flags(p: &Program, all: &[(Scope, Flag)]) -> String {
    let mut s = String::from("    if [[ $cur == -* ]]; then\n");
    s.push_str(&zsh_array("flags", described_flags(all, &Scope::Global)));
    s.push_str("        case $command in\n");
    for c in &p.commands {
        let mut items = described_flags(all, &Scope::Command(c.name));
        if c.name == "ctl" {
            items.extend(described_flags(all, &Scope::Verbs));
        }
        if !items.is_empty() {
            s.push_str(&format!(
                "            ({}) flags+=({}) ;;\n",
                c.name,
                items.join(" ")
            ));
        }
    }
    s.push_str("        esac\n");
    let verb_cases: Vec<String> = p
        .verbs
        .iter()
        .filter_map(|v| {
            let items = described_flags(all, &Scope::Verb(v.name));
            (!items.is_empty()).then(|| format!("({}) flags+=({}) ;;", v.name, items.join(" ")))
        })
        .collect();
    if !verb_cases.is_empty() {
        s.push_str("        if [[ $command == ctl ]]; then\n            case $verb in\n");
        for c in verb_cases {
            s.push_str(&format!("                {c}\n"));
        }
        s.push_str("            esac\n        fi\n");
    }
    s.push_str("        _describe -t options option flags\n        return\n    fi\n");
    s
}

/// Zsh: the words offered elsewhere: commands, ctl verbs, and the words a
/// verb's argument may be.
fn zsh_words(p: &Program) -> String {
    let commands: Vec<String> = p
        .commands
        .iter()
        .map(|c| described(c.name, c.help))
        .collect();
    let mut s = String::from("    if [[ -z $command ]]; then\n");
    s.push_str(&zsh_array("commands", commands));
    s.push_str("        _describe -t commands command commands\n");
    if !p.verbs.is_empty() {
        let verbs: Vec<String> = p.verbs.iter().map(|v| described(v.name, v.help)).collect();
        s.push_str("    elif [[ $command == ctl && -z $verb ]]; then\n");
        s.push_str(&zsh_array("verbs", verbs));
        s.push_str("        _describe -t verbs verb verbs\n");
        for v in &p.verbs {
            let words = verb_words(v.args);
            if !words.is_empty() {
                s.push_str(&format!(
                    "    elif [[ $command == ctl && $prev == {} ]]; then\n        compadd -- {}\n",
                    v.name,
                    words.join(" ")
                ));
            }
        }
    }
    s.push_str("    fi\n");
    s
}

/// The fish script.
pub fn fish(p: &Program) -> String {
    let all = flags(p);
    let f = ident(p);
    let mut s = header(p, "fish");
    if all.iter().any(|(_, fl)| fl.values == Values::Services) {
        s.push_str(&fish_services(p, &f));
    }
    s.push_str(&format!("\ncomplete -c {} -f\n", p.name));
    s.push_str(&fish_words(p));
    s.push_str("\n# Flags.\n");
    let mut done: Vec<(Scope, String)> = Vec::new();
    for (scope, fl) in &all {
        // -c and --config, -h and --help, -V and --version: one line each.
        if matches!(fl.name.as_str(), "-c" | "-h" | "-V")
            || done.contains(&(scope.clone(), fl.name.clone()))
        {
            continue;
        }
        done.push((scope.clone(), fl.name.clone()));
        s.push_str(&fish_flag(p.name, &f, scope, fl));
    }
    s
}

/// Fish: the function that lists the services of the configuration file
/// the command line (or the environment) names.
fn fish_services(p: &Program, f: &str) -> String {
    format!(
        "\n# The services of the configuration file: the one -c/--config names on\n\
         # the command line, else ${env}, else {file}.\n\
         function {f}_services\n\
         \x20   set -l config {file}\n\
         \x20   set -q {env}; and set config ${env}\n\
         \x20   set -l tokens (commandline -opc)\n\
         \x20   for i in (seq 2 (count $tokens))\n\
         \x20       if contains -- $tokens[(math $i - 1)] -c --config\n\
         \x20           set config $tokens[$i]\n\
         \x20       end\n\
         \x20   end\n\
         \x20   test -r \"$config\"; or return 0\n\
         \x20   sed -n -E '{SERVICES_SED}' $config\n\
         end\n",
        env = p.config_env,
        file = p.config_file,
    )
}

/// Fish: the commands, the ctl verbs, and the words a verb's argument may
/// be.
fn fish_words(p: &Program) -> String {
    let name = p.name;
    let commands: Vec<&str> = p.commands.iter().map(|c| c.name).collect();
    let verbs: Vec<&str> = p.verbs.iter().map(|v| v.name).collect();
    let mut s = String::from("\n# Commands.\n");
    for c in &p.commands {
        s.push_str(&format!(
            "complete -c {name} -n 'not __fish_seen_subcommand_from {}' -a {} -d {}\n",
            commands.join(" "),
            c.name,
            quote(&plain(c.help), true)
        ));
    }
    if !p.verbs.is_empty() {
        s.push_str("\n# hapgent ctl's verbs.\n");
        for v in &p.verbs {
            s.push_str(&format!(
                "complete -c {name} -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from {}' -a {} -d {}\n",
                verbs.join(" "),
                v.name,
                quote(&plain(v.help), true)
            ));
        }
        for v in &p.verbs {
            let words = verb_words(v.args);
            if !words.is_empty() {
                s.push_str(&format!(
                    "complete -c {name} -n '__fish_seen_subcommand_from ctl; and __fish_prev_arg_in {}' -a '{}'\n",
                    v.name,
                    words.join(" ")
                ));
            }
        }
    }
    s
}

/// Fish: the `complete` line of one flag (the long one carries its short
/// form).
fn fish_flag(name: &str, f: &str, scope: &Scope, fl: &Flag) -> String {
    let short = match fl.name.as_str() {
        "--config" => "-s c ",
        "--help" => "-s h ",
        "--version" => "-s V ",
        _ => "",
    };
    let condition = match scope {
        Scope::Global => String::new(),
        Scope::Command(c) => format!("-n '__fish_seen_subcommand_from {c}' "),
        Scope::Verbs => "-n '__fish_seen_subcommand_from ctl' ".to_string(),
        Scope::Verb(v) => {
            format!("-n '__fish_seen_subcommand_from ctl; and __fish_seen_subcommand_from {v}' ")
        }
    };
    let value = match (&fl.values, fl.takes_value) {
        (_, false) => String::new(),
        (Values::Files, true) => "-r -F ".to_string(),
        (Values::Free, true) => "-x ".to_string(),
        (Values::Words(w), true) => format!("-x -a '{}' ", w.join(" ")),
        (Values::Services, true) => format!("-x -a '({f}_services)' "),
    };
    let help = if fl.help.is_empty() {
        String::new()
    } else {
        format!(" -d {}", quote(&fl.help, true))
    };
    format!(
        "complete -c {name} {condition}{short}-l {}{}{help}\n",
        fl.name.trim_start_matches('-'),
        if value.is_empty() {
            String::new()
        } else {
            format!(" {}", value.trim_end())
        },
    )
}
