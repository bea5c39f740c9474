//! The HTTP side: `/metrics`, `/healthz`, `/api/v1/hosts`, `/api/v1/signals`;
//! anything else is 404. TLS, credentials, timeouts and the connection limit
//! around them are [`crate::web`]'s.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body::Frame;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

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

/// How many encoded chunks (about a megabyte each) wait for the client at
/// most: the encoding waits (with the state's lock released) for a slow one.
const CHUNKS_AHEAD: usize = 4;

/// What the encoding hands the response body.
enum Chunk {
    Data(Bytes),
    /// Everything was sent: the body ends.
    End,
    /// The encoding failed midway: the body fails, so that the client sees a
    /// broken response instead of a short exposition it would take as whole.
    Failed,
}

/// `/metrics` is streamed: the encoding runs on a blocking thread and hands
/// chunks over as it goes, so that a scrape of a million series is sent while
/// it is encoded, and never held whole in memory.
async fn metrics_handler(AxumState(app): AxumState<App>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let exposition = Arc::clone(&app.exposition);
    let (tx, mut rx) = mpsc::channel(CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        let sent = exposition.render_to(format, &mut |chunk| {
            tx.blocking_send(Chunk::Data(Bytes::from(chunk))).is_ok()
        });
        let last = match sent {
            Ok(true) => Chunk::End,
            // The client went away.
            Ok(false) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode metrics");
                Chunk::Failed
            }
        };
        let _ = tx.blocking_send(last);
    });
    // Until the first chunk the status can still say that the encoding failed
    // (or its thread panicked: the channel closes without an end). An
    // exposition of one chunk goes as one body with its length; a larger one
    // is streamed (chunked transfer encoding).
    let content_type = [(header::CONTENT_TYPE, format.content_type())];
    let failed = || (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response();
    let first = match rx.recv().await {
        Some(Chunk::Data(first)) => first,
        Some(Chunk::End) => return (content_type, "").into_response(),
        Some(Chunk::Failed) | None => return failed(),
    };
    let second = match rx.recv().await {
        Some(Chunk::Data(second)) => second,
        Some(Chunk::End) => return (content_type, first).into_response(),
        Some(Chunk::Failed) | None => return failed(),
    };
    let body = Streamed {
        ahead: [Some(first), Some(second)],
        rx,
        ended: false,
    };
    (content_type, Body::new(body)).into_response()
}

/// The body of a streamed `/metrics`: the chunks as the encoding makes them.
struct Streamed {
    /// The chunks taken before the response was made, in order.
    ahead: [Option<Bytes>; 2],
    rx: mpsc::Receiver<Chunk>,
    ended: bool,
}

impl http_body::Body for Streamed {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(next) = this.ahead.iter_mut().find_map(Option::take) {
            return Poll::Ready(Some(Ok(Frame::data(next))));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        match std::task::ready!(this.rx.poll_recv(cx)) {
            Some(Chunk::Data(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Some(Chunk::End) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Some(Chunk::Failed) | None => {
                this.ended = true;
                Poll::Ready(Some(Err(std::io::Error::other(
                    "the metrics encoding failed midway",
                ))))
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shared;
    use crate::metrics::tests::one_family_of;

    /// The collector's routes on a free port of 127.0.0.1 (plain HTTP).
    async fn serving(shared: &Arc<Shared>) -> (String, tokio::sync::oneshot::Sender<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(
            listener,
            App::with_state_metrics(Arc::clone(shared)),
            Arc::new(WebSource::open()),
            Limits::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        (url, stop)
    }

    /// An exposition of several chunks arrives whole over HTTP, chunked, and
    /// is what the exposition renders in one piece; a small one comes with
    /// its length.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_scrape_is_streamed_in_chunks_and_arrives_whole() {
        let shared = one_family_of(400, 100);
        let whole = Exposition::new(Arc::clone(&shared))
            .render(Format::Prometheus)
            .unwrap();
        assert!(
            whole.len() > 3 * crate::metrics::FLUSH_AT,
            "{} bytes",
            whole.len()
        );
        let (url, _stop) = serving(&shared).await;
        let response = reqwest::get(format!("{url}/metrics")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get("transfer-encoding")
                .map(|v| v.to_str().unwrap()),
            Some("chunked")
        );
        let mut response = response;
        let (mut body, mut chunks) = (Vec::new(), 0);
        while let Some(chunk) = response.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
            chunks += 1;
        }
        assert!(chunks > 3, "{chunks} chunks");
        assert_eq!(String::from_utf8(body).unwrap(), whole);

        let small = one_family_of(2, 100);
        let (url, _stop) = serving(&small).await;
        let response = reqwest::get(format!("{url}/metrics")).await.unwrap();
        assert_eq!(response.headers().get("transfer-encoding"), None);
        let length = response.content_length();
        let text = response.text().await.unwrap();
        assert_eq!(length, Some(text.len() as u64));
        let whole = Exposition::new(Arc::clone(&small))
            .render(Format::Prometheus)
            .unwrap();
        assert_eq!(text, whole);
    }

    /// A client that stops reading in the middle of a large scrape holds up
    /// that scrape, never ingest: with its response stalled (the chunks
    /// ahead and the sockets' buffers full, the encoding waiting to hand on
    /// the next), the state's write lock is taken again and again; the rest
    /// then arrives whole. A client gone midway leaves the next scrape whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_holds_up_its_scrape_never_ingest() {
        // About 28 MB: more than the chunks ahead and loopback's buffers hold.
        let shared = one_family_of(2500, 100);
        let whole = Exposition::new(Arc::clone(&shared))
            .render(Format::Prometheus)
            .unwrap();
        let (url, _stop) = serving(&shared).await;
        let mut response = reqwest::get(format!("{url}/metrics")).await.unwrap();
        let mut body = response.chunk().await.unwrap().unwrap().to_vec();
        for i in 0..20 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let writer = Arc::clone(&shared);
            // Well under the server's write-stall limit (30 s), which would
            // end the stalled response and free a lock held across it.
            let took = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                tokio::task::spawn_blocking(move || drop(writer.write())),
            )
            .await;
            assert!(took.is_ok(), "ingest was held up by a stalled scrape ({i})");
        }
        while let Some(chunk) = response.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        assert_eq!(String::from_utf8(body).unwrap(), whole);

        let mut gone = reqwest::get(format!("{url}/metrics")).await.unwrap();
        assert!(gone.chunk().await.unwrap().unwrap().starts_with(b"# HELP "));
        drop(gone);
        let again = reqwest::get(format!("{url}/metrics")).await.unwrap();
        assert_eq!(again.text().await.unwrap(), whole);
    }
}
