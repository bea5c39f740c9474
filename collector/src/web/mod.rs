//! The HTTP side's transport and access control, as every Prometheus exporter
//! has them: `--web.config.file` in the exporter toolkit's format (TLS with the
//! five client certificate policies, `basic_auth_users` with bcrypt hashes,
//! security headers, a rate limit), request timeouts and a connection limit.
//! The routes themselves are `http.rs`'s.
//!
//! # Layout
//!
//! - [`config`]: the YAML file, checked, and everything it names read ([`Web`]).
//! - [`tls`]: `tls_server_config` to a rustls server configuration.
//! - [`auth`]: basic authentication with its cache of successful checks.
//! - [`source`]: the configuration in force, reloaded when a file changes.
//! - [`guard`]: the middleware: rate limit, credentials, request timeout, headers.
//! - [`server`]: the accept loop: connection limit, TLS, hyper, timeouts.
//! - [`stats`]: its counters on `/metrics`.

pub mod auth;
pub mod config;
pub mod guard;
pub mod server;
pub mod source;
pub mod stats;
pub mod tls;

use std::sync::Arc;

use axum::Router;

pub use config::{Web, WebConfigError};
pub use server::{Limits, serve};
pub use source::WebSource;

/// `router` behind the guard: credentials, rate limit, request timeout and
/// headers for every route but the open ones.
pub fn guarded(router: Router, source: Arc<WebSource>, limits: Limits) -> Router {
    let guard = Arc::new(guard::Guard::new(source, limits.request_timeout));
    router.layer(axum::middleware::from_fn_with_state(guard, guard::guard))
}
