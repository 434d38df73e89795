//! Which handler a request goes to, and the ETag/If-Match rules of
//! `PUT /v1/config`. Pure functions: no sockets, no files.

use sha2::{Digest, Sha256};

/// A request's destination.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Backends,
    Backend(String),
    GetConfig,
    PutConfig,
    /// Which configuration the running workers loaded.
    LiveConfig,
    /// The counters, for Prometheus: the one route without a token.
    Metrics,
    /// The path exists but not with this method; `Allow` lists the methods.
    MethodNotAllowed(&'static str),
    NotFound,
}

/// Routes on method and path (a query string is ignored).
pub fn route(method: &str, target: &str) -> Route {
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/v1/backends") => Route::Backends,
        (_, "/v1/backends") => Route::MethodNotAllowed("GET"),
        ("GET", "/v1/config") => Route::GetConfig,
        ("PUT", "/v1/config") => Route::PutConfig,
        (_, "/v1/config") => Route::MethodNotAllowed("GET, PUT"),
        ("GET", "/v1/config/live") => Route::LiveConfig,
        (_, "/v1/config/live") => Route::MethodNotAllowed("GET"),
        ("GET", "/metrics") => Route::Metrics,
        (_, "/metrics") => Route::MethodNotAllowed("GET"),
        (m, p) => match p.strip_prefix("/v1/backends/") {
            Some(name) if !name.is_empty() && !name.contains('/') => {
                if m == "GET" {
                    Route::Backend(name.to_string())
                } else {
                    Route::MethodNotAllowed("GET")
                }
            }
            _ => Route::NotFound,
        },
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The strong ETag of a configuration: its SHA-256, quoted.
pub fn etag(bytes: &[u8]) -> String {
    format!("\"{}\"", sha256(bytes))
}

/// Why a PUT may not proceed: (status, message).
pub type Refusal = (u16, String);

/// Checks `If-Match` against the current file's ETag. Required (428
/// without it, so nobody overwrites a file they never read); must name the
/// current ETag exactly (412 otherwise). `*` is not accepted: a change must
/// be based on the content it replaces.
pub fn precondition(if_match: Option<&str>, current: &str) -> Result<(), Refusal> {
    let Some(value) = if_match else {
        return Err((
            428,
            format!(
                "If-Match is required: GET /v1/config and send its ETag back (current: {current})"
            ),
        ));
    };
    let matches = value
        .split(',')
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == current || format!("\"{v}\"") == current);
    if matches {
        Ok(())
    } else {
        Err((
            412,
            format!(
                "the configuration changed: If-Match {value} is not the current ETag {current}; GET /v1/config and retry"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        for (method, path, want) in [
            ("GET", "/v1/backends", Route::Backends),
            ("GET", "/v1/backends?x=1", Route::Backends),
            ("POST", "/v1/backends", Route::MethodNotAllowed("GET")),
            ("GET", "/v1/backends/web", Route::Backend("web".into())),
            ("DELETE", "/v1/backends/web", Route::MethodNotAllowed("GET")),
            ("GET", "/v1/backends/", Route::NotFound),
            ("GET", "/v1/backends/a/b", Route::NotFound),
            ("GET", "/v1/config", Route::GetConfig),
            ("PUT", "/v1/config", Route::PutConfig),
            ("POST", "/v1/config", Route::MethodNotAllowed("GET, PUT")),
            ("GET", "/v1/config/live", Route::LiveConfig),
            ("PUT", "/v1/config/live", Route::MethodNotAllowed("GET")),
            ("GET", "/metrics", Route::Metrics),
            ("GET", "/metrics?x=1", Route::Metrics),
            ("POST", "/metrics", Route::MethodNotAllowed("GET")),
            ("GET", "/metrics/x", Route::NotFound),
            ("GET", "/", Route::NotFound),
            ("POST", "/reloadHaproxy", Route::NotFound),
        ] {
            assert_eq!(route(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn etags() {
        assert_eq!(
            etag(b""),
            "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\""
        );
        assert_eq!(
            sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn if_match() {
        let cur = etag(b"x");
        let bare = sha256(b"x");
        let other = etag(b"y");
        for (header, want) in [
            (None, Err(428)),
            (Some(cur.as_str()), Ok(())),
            (Some(bare.as_str()), Ok(())),
            (Some(&*format!("W/{cur}")), Ok(())),
            (Some(&*format!("{other}, {cur}")), Ok(())),
            (Some(other.as_str()), Err(412)),
            (Some("*"), Err(412)),
            (Some(""), Err(412)),
        ] {
            assert_eq!(
                precondition(header, &cur).map_err(|(s, _)| s),
                want,
                "{header:?}"
            );
        }
    }
}
