//! The middleware in front of every route: rate limit, basic authentication,
//! the whole-request timeout and the configured response headers.
//!
//! [`OPEN_PATHS`] (`/healthz`) need no credentials and are not rate limited: a
//! load balancer's health check carries no secret, says only "connected to the
//! broker or not", and must not see a scrape flood's 429 as the collector
//! being down. Everything else (`/metrics`, `/api/*`, unknown paths) needs
//! them when `basic_auth_users` is set.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::source::WebSource;

/// Paths open to anyone.
pub const OPEN_PATHS: [&str; 1] = ["/healthz"];

/// What the middleware holds.
#[derive(Debug)]
pub struct Guard {
    pub source: Arc<WebSource>,
    pub request_timeout: Duration,
    bucket: Mutex<Option<Bucket>>,
}

impl Guard {
    pub fn new(source: Arc<WebSource>, request_timeout: Duration) -> Self {
        Guard {
            source,
            request_timeout,
            bucket: Mutex::new(None),
        }
    }

    /// Takes a token for a request, with the limit in force now.
    fn allow(&self, limit: Option<(Duration, u32)>, now: Instant) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((interval, burst)) = limit else {
            *bucket = None;
            return true;
        };
        let b = match bucket.as_mut() {
            Some(b) if b.interval == interval && b.burst == burst => b,
            _ => bucket.insert(Bucket::new(interval, burst, now)),
        };
        b.take(now)
    }
}

/// A token bucket: `burst` tokens, one more every `interval`.
#[derive(Debug, Clone)]
pub struct Bucket {
    interval: Duration,
    burst: u32,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(interval: Duration, burst: u32, now: Instant) -> Self {
        Bucket {
            interval,
            burst,
            tokens: f64::from(burst),
            at: now,
        }
    }

    /// Whether a request may go now (and takes its token).
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        let refill = elapsed / self.interval.as_secs_f64().max(f64::MIN_POSITIVE);
        self.tokens = (self.tokens + refill).min(f64::from(self.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let web = guard.source.current();
    let stats = &guard.source.stats;
    let open = OPEN_PATHS.contains(&request.uri().path());
    let work = async {
        if !open {
            if !guard.allow(web.rate_limit, Instant::now()) {
                stats
                    .rate_limited
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return (StatusCode::TOO_MANY_REQUESTS, "too many requests\n").into_response();
            }
            if let Some(auth) = &web.auth
                && let Err(denied) = auth
                    .check(request.headers().get(header::AUTHORIZATION))
                    .await
            {
                stats.denied(denied);
                tracing::debug!(reason = denied.kind(), path = %request.uri().path(), "request refused");
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic")],
                    "unauthorized\n",
                )
                    .into_response();
            }
        }
        next.run(request).await
    };
    let mut response = match tokio::time::timeout(guard.request_timeout, work).await {
        Ok(response) => response,
        Err(_) => {
            stats
                .request_timeouts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response()
        }
    };
    let headers = response.headers_mut();
    for (name, value) in &web.headers {
        headers.insert(name.clone(), value.clone());
    }
    if web.auth.is_some() && !open {
        // Credentials were needed for this answer: no shared cache may keep it.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_one_per_interval() {
        let t0 = Instant::now();
        let mut b = Bucket::new(Duration::from_secs(1), 3, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(500)));
        assert!(b.take(t0 + Duration::from_millis(1000)));
        assert!(!b.take(t0 + Duration::from_millis(1100)));
        // Idle for long: the bucket refills to its burst, no more.
        let later = t0 + Duration::from_secs(100);
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
    }
}
