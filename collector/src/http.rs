//! The HTTP side: `/metrics`, `/healthz`, `/api/v1/hosts`, `/api/v1/signals`;
//! anything else is 404. TLS, credentials, timeouts and the connection limit
//! around them are [`crate::web`]'s.

use std::sync::Arc;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::Shared;
use crate::metrics::{Exposition, Format};
use crate::web::{self, Limits, WebSource, stats::WebStatsCollector};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct App {
    pub shared: Arc<Shared>,
    pub exposition: Arc<Exposition>,
}

impl App {
    /// The handlers over `shared`, `/metrics` encoding `exposition`.
    pub fn new(shared: Arc<Shared>, exposition: Exposition) -> Self {
        App {
            shared,
            exposition: Arc::new(exposition),
        }
    }

    /// The handlers with the state's own metrics only (tests).
    pub fn with_state_metrics(shared: Arc<Shared>) -> Self {
        let exposition = Exposition::new(Arc::clone(&shared));
        App::new(shared, exposition)
    }
}

/// The routes, unguarded.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/signals", get(signals))
        .route("/api/v1/peers", get(peers))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(app)
}

/// Serves `app`'s routes behind the web configuration (TLS, credentials,
/// timeouts, connection limit) until `shutdown` completes. `app`'s registry
/// should carry [`WebStatsCollector`] over `web.stats` (see [`register_web`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    web: Arc<WebSource>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let routes = web::guarded(router(app), Arc::clone(&web), limits);
    web::serve(listener, routes, web, limits, shutdown).await
}

/// Puts the HTTP side's own counters on `/metrics`.
pub fn register_web(registry: &mut Registry, web: &WebSource) {
    registry.register_collector(Box::new(WebStatsCollector(Arc::clone(&web.stats))));
}

async fn metrics_handler(AxumState(app): AxumState<App>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let exposition = Arc::clone(&app.exposition);
    // Encoding a large state takes a while: keep it off the async workers.
    let rendered = tokio::task::spawn_blocking(move || exposition.render(format)).await;
    match rendered {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics encoding task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

async fn healthz(AxumState(app): AxumState<App>) -> Response {
    if app.shared.connected() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not connected to any broker\n",
        )
            .into_response()
    }
}

async fn hosts(AxumState(app): AxumState<App>) -> Response {
    let now = app.shared.clock.now_ms();
    let (states, names) = app.shared.path_view();
    let judge = crate::state::Judge {
        policy: app.shared.policy(),
        links: &states,
        names: &names,
    };
    let hosts = app.shared.read().host_infos(&judge, now);
    axum::Json(hosts).into_response()
}

async fn signals(AxumState(app): AxumState<App>) -> Response {
    let published = app.shared.signals();
    axum::Json(&published.active).into_response()
}

/// The peer collectors as this one sees them (empty without a topology).
async fn peers(AxumState(app): AxumState<App>) -> Response {
    let now = app.shared.clock.now_ms();
    let (states, _) = app.shared.path_view();
    let state = app.shared.read();
    let vantage = state.peers().vantage(
        &states,
        &state.config().rules,
        app.shared.started_at_ms,
        now,
    );
    drop(state);
    axum::Json(vantage.map(|v| v.peers).unwrap_or_default()).into_response()
}
