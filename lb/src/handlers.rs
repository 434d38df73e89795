//! What each API route answers, once `serve` has read the request's head
//! and `access` has said who the caller is.
//!
//! `respond` reads the body the route may have (bounded by `max_body` and
//! `body_timeout`) and dispatches on `routes::route`; each handler builds
//! its `Response` from `runtime` (HAProxy's view), `change` (reading and
//! replacing haproxy.cfg) and `status` (the JSON `status --json` prints).
//!
//! A change in progress is recorded in the [`Api`] while it runs, so that
//! a stop cutting it off knows what `shutdown` must undo; once a stop
//! began, new changes are refused.

use crate::config::Config;
use crate::http::{self, Response};
use crate::routes::{self, Route};
use crate::{change, metrics, runtime, shutdown, status};
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// What the handlers share: the configuration and the change in progress.
pub struct Api {
    pub config: Config,
    /// Set once a stop began: changes not yet started are refused.
    stopping: Cell<bool>,
    /// The change being applied, if any; left set when a stop cuts it off.
    change: RefCell<Option<shutdown::Change>>,
}

impl Api {
    pub fn new(config: Config) -> Api {
        Api {
            config,
            stopping: Cell::new(false),
            change: RefCell::new(None),
        }
    }

    /// From now on, changes are refused (503).
    pub fn stop(&self) {
        self.stopping.set(true);
    }

    /// Whether a change is being applied.
    pub fn changing(&self) -> bool {
        self.change.borrow().is_some()
    }

    /// The change a stop cut off, if any, for `shutdown::recover`.
    pub fn cut_off(&self) -> Option<shutdown::Change> {
        self.change.borrow_mut().take()
    }
}

/// Answers one authorized request from `who`, reading its body from
/// `stream`.
pub async fn respond<S>(api: &Api, stream: &mut S, head: &http::Head, who: &str) -> Response
where
    S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
{
    let c = &api.config;
    let length = match http::body_length(head, c.max_body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let route = routes::route(&head.method, &head.path);
    if route == Route::PutConfig && length == 0 {
        return Response::error(400, "the body must be a complete haproxy.cfg", None);
    }
    let body =
        match http::read_body(stream, head, length, Duration::from_millis(c.body_timeout)).await {
            Ok(b) => b,
            Err(e) => {
                return e
                    .response()
                    .unwrap_or_else(|| Response::error(400, "no body", None));
            }
        };
    match route {
        Route::Backends => backends(c).await,
        Route::Backend(name) => backend(c, &name).await,
        Route::GetConfig => get_config(c),
        Route::PutConfig => put_config(api, head, who, &body).await,
        Route::LiveConfig => change::live(c).await,
        Route::Metrics => metrics::response(),
        Route::MethodNotAllowed(allow) => Response::error(
            405,
            &format!("{} is not allowed here; use {allow}", head.method),
            None,
        )
        .with("Allow", allow.into()),
        Route::NotFound => Response::error(
            404,
            &format!(
                "no such resource {}; see /v1/backends and /v1/config",
                head.path
            ),
            None,
        ),
    }
}

/// `GET /v1/backends`: every backend, as `status --json` prints them.
async fn backends(c: &Config) -> Response {
    match runtime::backends(&c.haproxy_socket).await {
        Ok(b) => status_json(status::json(&b)),
        Err(e) => Response::error(502, &e, None),
    }
}

/// `GET /v1/backends/NAME`: one backend.
async fn backend(c: &Config, name: &str) -> Response {
    if let Err(e) = crate::names::check("backend", name) {
        return Response::error(400, &e, None);
    }
    match runtime::backend(&c.haproxy_socket, name).await {
        Ok(Some(b)) => status_json(status::backend_json(&b)),
        Ok(None) => Response::error(404, &format!("HAProxy has no backend {name:?}"), None),
        Err(e) => Response::error(502, &e, None),
    }
}

/// `GET /v1/config`: haproxy.cfg as it is on disk, with its ETag.
fn get_config(c: &Config) -> Response {
    match change::read_config(&c.haproxy_config) {
        Ok(bytes) => Response {
            status: 200,
            headers: vec![
                ("Content-Type", "text/plain; charset=utf-8".into()),
                ("ETag", routes::etag(&bytes)),
            ],
            body: bytes,
        },
        Err(e) => Response::error(500, &format!("cannot read {e}"), None),
    }
}

/// A 200 whose body is JSON rendered by `status` (what `status --json`
/// prints, line end included).
fn status_json(rendered: Result<String, serde_json::Error>) -> Response {
    match rendered {
        Ok(text) => {
            let mut body = text.into_bytes();
            body.push(b'\n');
            Response {
                status: 200,
                headers: vec![("Content-Type", "application/json".into())],
                body,
            }
        }
        Err(e) => Response::error(
            500,
            &format!("cannot render the backends as JSON: {e}"),
            None,
        ),
    }
}

/// `PUT /v1/config`: applies a change unless a stop began; records it
/// while it runs, so that a stop cutting it off knows what to undo.
async fn put_config(api: &Api, head: &http::Head, who: &str, body: &[u8]) -> Response {
    if api.stopping.get() {
        metrics::answered(503);
        return Response::error(
            503,
            "hapgent-lb is stopping; nothing was changed, retry when it is back",
            None,
        );
    }
    let if_match = head.header("if-match");
    // Only the first of concurrent PUTs in this process can hold the lock
    // (`change::put` answers the others 409): record that one.
    let mine = api.change.borrow().is_none();
    if mine {
        *api.change.borrow_mut() = Some(shutdown::Change {
            who: who.to_string(),
            if_match: if_match.map(String::from),
            new_sha: routes::sha256(body),
        });
    }
    let response = change::put(&api.config, who, if_match, body).await;
    metrics::answered(response.status);
    // Not in a drop guard on purpose: a change cut off by the stop leaves
    // its record for `shutdown::recover`.
    if mine {
        api.change.borrow_mut().take();
    }
    response
}
