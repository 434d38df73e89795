//! Which backend and server names may appear in a runtime API command.
//!
//! HAProxy's CLI splits commands on `;` and ends them at a newline, so a
//! name taken from a user could smuggle a second command. Names are checked
//! against a conservative character set (HAProxy's own: letters, digits,
//! `-`, `_`, `.`, `:`) before any command is built; everything else is
//! refused rather than escaped.

/// Longest name accepted; HAProxy has no limit, but names this long are
/// mistakes.
const MAX_LEN: usize = 128;

/// Checks one proxy or server name; `kind` ("backend", "server") is used in
/// the message.
pub fn check(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{kind} name is empty"));
    }
    if name.len() > MAX_LEN {
        return Err(format!("{kind} name is longer than {MAX_LEN} characters"));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        Some(c) => Err(format!(
            "{kind} name {name:?} contains {c:?}; only letters, digits, '-', '_', '.' and ':' are allowed"
        )),
        None => Ok(()),
    }
}

/// `BACKEND/SERVER` as typed on the command line, validated.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Target {
    pub backend: String,
    pub server: String,
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, String> {
        let (backend, server) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not BACKEND/SERVER"))?;
        check("backend", backend)?;
        check("server", server)?;
        Ok(Target {
            backend: backend.into(),
            server: server.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (name, ok) in [
            ("web", true),
            ("web-1_a.b:c", true),
            ("A9", true),
            ("", false),
            ("web;shutdown sessions", false),
            ("web\nshow info", false),
            ("web one", false),
            ("web/x", false),
            ("wéb", false),
            ("a\0", false),
            (&"x".repeat(128), true),
            (&"x".repeat(129), false),
        ] {
            assert_eq!(check("backend", name).is_ok(), ok, "{name:?}");
        }
        assert_eq!(
            check("server", "a;b").unwrap_err(),
            "server name \"a;b\" contains ';'; only letters, digits, '-', '_', '.' and ':' are allowed"
        );
    }

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("web/web1"),
            Ok(Target {
                backend: "web".into(),
                server: "web1".into()
            })
        );
        for bad in ["web", "web/", "/web1", "web/web1/x", "w;b/x", "web/x\n"] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
    }
}
