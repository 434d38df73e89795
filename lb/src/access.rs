//! Who may call the API, and who they are for the audit log.
//!
//! On the Unix socket, the kernel checks the socket file's mode (0660,
//! group `socket_group`), and the peer's credentials are checked again by
//! the rule both programs share (`hapgent_common::creds::allowed`: root,
//! our own user, or a member of the group). On TCP, a bearer token from
//! `token_file`, kept only as its SHA-256 and compared in constant time,
//! for every request but `GET /metrics`: read-only counters that name no
//! server, file or token, which Prometheus scrapes without a token (here
//! every token is a write token).
//! Refused tokens are logged, at most one line per `REFUSAL_LOG_EVERY`.
//!
//! This module decides and words refusals; reading requests and writing
//! answers is `serve`'s business.

use crate::config::Config;
use crate::exit::Error;
use crate::http::{self, Response};
use crate::routes::{self, Route};
use hapgent_common::creds;
use hapgent_common::files;
use hapgent_common::log::Limit;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Largest `token_file` read (a few thousand tokens).
const TOKEN_FILE_CAP: u64 = 1 << 20;

/// At most one "refused: bearer token" line per this long; the next line
/// says how many were not logged in between.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// A named bearer token, kept only as its SHA-256.
pub struct Token {
    pub name: String,
    digest: [u8; 32],
}

/// Reads `NAME:TOKEN` or `TOKEN` lines (blank and `#` lines skipped).
/// Spaces around the `:` are not part of the name or token: the presented
/// token is trimmed too, so `ci: s3cret` must mean `s3cret` to be usable.
pub fn parse_tokens(text: &str) -> Vec<Token> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, l)| {
            let split = l
                .split_once(':')
                .map(|(n, s)| (n.trim_end(), s.trim_start()));
            let (name, secret) = match split {
                Some((n, s)) if !n.is_empty() && !s.is_empty() => (n.to_string(), s),
                _ => (format!("token#{}", i + 1), l),
            };
            Token {
                name,
                digest: Sha256::digest(secret.as_bytes()).into(),
            }
        })
        .collect()
}

/// The credentials of an `Authorization: Bearer TOKEN` value, trimmed.
/// The scheme is case-insensitive and separated by spaces (RFC 7235):
/// `bearer x` and `BEARER  x` are `x`.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// The name of the token in an `Authorization: Bearer …` value. Compares
/// SHA-256 digests with every token, always all 32 bytes of each: the
/// time taken does not depend on how much of a token was right.
pub fn check_token(tokens: &[Token], authorization: Option<&str>) -> Option<String> {
    let presented = bearer(authorization?)?;
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found = None;
    for t in tokens {
        let diff = t
            .digest
            .iter()
            .zip(&digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 && found.is_none() {
            found = Some(t.name.clone());
        }
    }
    found
}

/// Why a TCP request was refused with 401, for the log (never the token).
pub fn refusal(authorization: Option<&str>) -> &'static str {
    match authorization {
        None => "no Authorization header",
        Some(a) if bearer(a).is_none() => "Authorization is not a Bearer token",
        Some(_) => "unknown bearer token",
    }
}

/// Reads and parses `token_file` (a regular file, size-capped).
fn load_tokens(path: &Path) -> Result<Vec<Token>, Error> {
    let bytes = files::read_regular(path, TOKEN_FILE_CAP)
        .map_err(|e| Error::Config(format!("token_file {} {e}", path.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Config(format!("token_file {} is not valid UTF-8", path.display())))?;
    let tokens = parse_tokens(&text);
    if tokens.is_empty() {
        return Err(Error::Config(format!(
            "token_file {} holds no token",
            path.display()
        )));
    }
    Ok(tokens)
}

/// Who is asking: known at accept on the Unix socket, from the token on TCP.
pub enum Caller {
    Peer(String),
    Tcp(SocketAddr),
}

/// Who may call: the socket's group, our user and the tokens.
pub struct Access {
    /// The socket's group (`socket_group`, or our own).
    pub group: u32,
    own_uid: u32,
    tokens: Vec<Token>,
    refusals: RefCell<Limit>,
}

impl Access {
    /// Resolves `socket_group` and reads `token_file`.
    pub fn resolve(config: &Config) -> Result<Access, Error> {
        let (own_uid, own_gid) = creds::own_ids();
        let group = if config.socket_group.is_empty() {
            own_gid
        } else {
            creds::group_id(&config.socket_group)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    Error::Config(format!(
                        "socket_group: no group named {:?}",
                        config.socket_group
                    ))
                })?
        };
        let tokens = match &config.token_file {
            None => Vec::new(),
            Some(p) => load_tokens(p)?,
        };
        Ok(Access {
            group,
            own_uid,
            tokens,
            refusals: RefCell::new(Limit::new(REFUSAL_LOG_EVERY)),
        })
    }

    /// The Unix-socket peer of `stream` as a caller, if it may use the API;
    /// if not, the 403 to send (logged), or nothing when its credentials
    /// cannot be read.
    pub fn peer(&self, stream: &impl AsFd) -> Result<Caller, Option<Response>> {
        match creds::peer(stream) {
            Ok(p) if creds::allowed(&p, self.own_uid, self.group) => {
                Ok(Caller::Peer(format!("uid {}", p.uid)))
            }
            Ok(p) => {
                hapgent_common::warn!(
                    "refused uid {} (pid {}): not in group {}",
                    p.uid,
                    p.pid,
                    self.group
                );
                Err(Some(Response::error(
                    403,
                    "not allowed: join the socket's group",
                    None,
                )))
            }
            Err(e) => {
                hapgent_common::warn!("cannot read peer credentials: {e}");
                Err(None)
            }
        }
    }

    /// Who the caller is, or the 401 for a TCP request without a valid
    /// token (logged, rate-limited).
    pub fn authorize(&self, head: &http::Head, caller: Caller) -> Result<String, Response> {
        let peer = match caller {
            Caller::Peer(who) => return Ok(who),
            Caller::Tcp(peer) => peer,
        };
        if routes::route(&head.method, &head.path) == Route::Metrics {
            return Ok(format!("anonymous {peer}"));
        }
        let authorization = head.header("authorization");
        if let Some(name) = check_token(&self.tokens, authorization) {
            return Ok(format!("token {name}"));
        }
        if let Some(more) = self.refusals.borrow_mut().check(Instant::now()) {
            hapgent_common::warn!(
                "refused {} {} from {peer} (401): {}{more}",
                head.method,
                head.path,
                refusal(authorization),
            );
        }
        Err(Response::error(
            401,
            "a valid bearer token is required (Authorization: Bearer TOKEN)",
            None,
        )
        .with("WWW-Authenticate", "Bearer".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lines_with_spaces_around_the_colon() {
        // Found by fuzzing (lb_tokens): `ops: with-space` stored the token
        // " with-space", which a trimmed bearer token never matches.
        // (file, presented, name)
        let cases = [
            ("ops: with-space", "Bearer with-space", Some("ops")),
            ("ops :with-space", "Bearer with-space", Some("ops")),
            ("ops \t:\t with-space", "Bearer with-space", Some("ops")),
            ("ops: with space", "Bearer with space", Some("ops")),
            ("ops: with-space", "Bearer  with-space", Some("ops")),
            ("ops:", "Bearer ops:", Some("token#1")),
        ];
        for (file, presented, want) in cases {
            let t = parse_tokens(file);
            assert_eq!(
                check_token(&t, Some(presented)).as_deref(),
                want,
                "{file:?}"
            );
        }
    }

    #[test]
    fn tokens() {
        let t = parse_tokens("# deploy bots\nci:s3cret\n\nplain-token\n:odd\n");
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["ci", "token#2", "token#3"]);
        for (header, want) in [
            (Some("Bearer s3cret"), Some("ci")),
            (Some("Bearer plain-token"), Some("token#2")),
            (Some("Bearer :odd"), Some("token#3")),
            (Some("Bearer s3cre"), None),
            (Some("Bearer ci:s3cret"), None),
            (Some("Basic s3cret"), None),
            (Some("Bearer "), None),
            (Some("bearer s3cret"), Some("ci")),
            (Some("BEARER  s3cret"), Some("ci")),
            (Some("BeArEr plain-token "), Some("token#2")),
            (Some("Bearers3cret"), None),
            (Some("Bearer\ts3cret"), None),
            (Some("Bear s3cret"), None),
            (None, None),
        ] {
            assert_eq!(check_token(&t, header).as_deref(), want, "{header:?}");
        }
    }

    #[test]
    fn refusals_are_named() {
        for (authorization, want) in [
            (None, "no Authorization header"),
            (Some("Basic eA=="), "Authorization is not a Bearer token"),
            (Some("Bearer"), "Authorization is not a Bearer token"),
            (Some("bearer nope"), "unknown bearer token"),
        ] {
            assert_eq!(refusal(authorization), want, "{authorization:?}");
        }
    }
}
