//! The `exec` check: a program run without a shell, exit 0 passes.
//!
//! The program runs as the agent's user, with the agent's environment and
//! sandbox, in a process group of its own with stdin from /dev/null.
//! `hapgent_common::process` does the running: output to an unlinked
//! temporary file, of which the first 256 KiB are kept; at the timeout the
//! whole group gets SIGKILL and is reaped before this returns, so a hung
//! check leaves neither a process nor a zombie behind.

use super::check::Outcome;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

/// Most of the output's first line kept for the log.
const MAX_NOTE: usize = 200;

/// Runs `argv` for at most `timeout`: the outcome and the first line of
/// its output (for the log; empty if none).
pub async fn run(argv: &[String], timeout: Duration) -> (Outcome, String) {
    let Some((program, args)) = argv.split_first() else {
        return (Outcome::NotRun, "no program".into());
    };
    let mut command = Command::new(program);
    command.args(args);
    match hapgent_common::process::run(command, timeout).await {
        Err(e) => (Outcome::NotRun, e),
        Ok(finished) => {
            let outcome = match finished.status {
                None => Outcome::TimedOut,
                Some(s) => match (s.code(), s.signal()) {
                    (Some(code), _) => Outcome::Exit(code),
                    (None, Some(sig)) => Outcome::Signal(sig),
                    (None, None) => Outcome::NotRun,
                },
            };
            (outcome, first_line(&finished.output))
        }
    }
}

/// The first non-empty line, cut to [`MAX_NOTE`] bytes on a character
/// boundary.
fn first_line(output: &str) -> String {
    let line = output
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut end = line.len().min(MAX_NOTE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exit_codes_and_output() {
        let long = Duration::from_secs(30);
        let cases: &[(&[&str], Outcome, &str)] = &[
            (&["/bin/true"], Outcome::Exit(0), ""),
            (
                &["/bin/sh", "-c", "echo; echo '  db: lagging 30s  '; exit 2"],
                Outcome::Exit(2),
                "db: lagging 30s",
            ),
            (&["/bin/sh", "-c", "kill -TERM $$"], Outcome::Signal(15), ""),
        ];
        for (a, outcome, note) in cases {
            let got = smol::block_on(run(&argv(a), long));
            assert_eq!(got, (*outcome, note.to_string()), "{a:?}");
        }
        let (outcome, note) = smol::block_on(run(&argv(&["/nonexistent/check"]), long));
        assert_eq!(outcome, Outcome::NotRun);
        assert!(note.contains("/nonexistent/check"), "{note}");
        assert_eq!(first_line(&"é".repeat(150)).len(), 200);
    }
}
