//! The HTTP side: `/metrics`, `/healthz`, `/api/v1/hosts`, `/api/v1/signals`;
//! anything else is 404. TLS, credentials, timeouts and the connection limit
//! around them are [`crate::web`]'s.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::Shared;
use crate::metrics::{self, Format};
use crate::web::{self, Limits, WebSource, stats::WebStatsCollector};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct App {
    pub shared: Arc<Shared>,
    pub registry: Arc<Registry>,
}

impl App {
    pub fn new(shared: Arc<Shared>) -> Self {
        App::with_web(shared, &WebSource::open())
    }

    /// With the HTTP side's own counters on `/metrics`.
    pub fn with_web(shared: Arc<Shared>, web: &WebSource) -> Self {
        let mut registry = metrics::registry(Arc::clone(&shared));
        registry.register_collector(Box::new(WebStatsCollector(Arc::clone(&web.stats))));
        App {
            shared,
            registry: Arc::new(registry),
        }
    }
}

/// The routes, unguarded.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/signals", get(signals))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(app)
}

/// Serves the routes behind the web configuration (TLS, credentials, timeouts,
/// connection limit) until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    web: Arc<WebSource>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let app = web::guarded(
        router(App::with_web(shared, &web)),
        Arc::clone(&web),
        limits,
    );
    web::serve(listener, app, web, limits, shutdown).await
}

async fn metrics_handler(AxumState(app): AxumState<App>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let registry = Arc::clone(&app.registry);
    // Encoding a large state takes a while: keep it off the async workers.
    let rendered = tokio::task::spawn_blocking(move || metrics::render(&registry, format)).await;
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
    if app.shared.connected.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not connected to the broker\n",
        )
            .into_response()
    }
}

async fn hosts(AxumState(app): AxumState<App>) -> Response {
    let now = app.shared.clock.now_ms();
    let hosts = app.shared.read().host_infos(now);
    axum::Json(hosts).into_response()
}

async fn signals(AxumState(app): AxumState<App>) -> Response {
    let published = app.shared.signals();
    axum::Json(&published.active).into_response()
}
