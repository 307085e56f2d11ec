//! Request counters and latency histogram, served in Prometheus text format at `/metrics`,
//! plus the middleware that records them and tags every response with its request id.
//! `/metrics` needs `KEYHOLD_METRICS_TOKEN` as a bearer token when it is set; unset, it is
//! open in development and off in production.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use tracing_actix_web::RequestId;

use crate::db;
use crate::page_cache::PageCache;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A counter by one label's value.
#[derive(Default)]
struct Counts(Mutex<BTreeMap<&'static str, u64>>);

impl Counts {
    fn add(&self, value: &'static str) {
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(value).or_default() += 1;
        }
    }

    /// Writes the counter `name` in Prometheus text format, a line per value of `label`.
    fn render(&self, out: &mut String, name: &str, help: &str, label: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        if let Ok(counts) = self.0.lock() {
            for (value, count) in counts.iter() {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
            }
        }
    }
}

/// Counters since start-up.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    logins: Counts,
    searches: Counts,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    fn observe(&self, method: &str, status: u16, seconds: f64) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry((method.to_string(), status)).or_default() += 1;
        }
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Counts a sign-in outcome (`success`, `failure`, `throttled`).
    pub fn count_login(&self, outcome: &'static str) {
        self.logins.add(outcome);
    }

    /// Counts a credentials search by what answered it: `memory` (the index, and rows searches
    /// showed lately), `index` (the index, rows read by id) or `database`.
    pub fn count_search(&self, answered_by: &'static str) {
        self.searches.add(answered_by);
    }

    pub fn render(&self, pool: &db::DbPool, pages: &PageCache) -> String {
        let mut out = String::new();
        out.push_str("# HELP keyhold_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE keyhold_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((method, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "keyhold_http_requests_total{{method=\"{method}\",status=\"{status}\"}} {count}"
                );
            }
        }
        out.push_str("# HELP keyhold_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE keyhold_http_request_duration_seconds histogram\n");
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "keyhold_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "keyhold_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "keyhold_http_request_duration_seconds_sum {}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "keyhold_http_request_duration_seconds_count {count}");
        self.logins.render(
            &mut out,
            "keyhold_logins_total",
            "Sign-in attempts by outcome.",
            "outcome",
        );
        self.searches.render(
            &mut out,
            "keyhold_searches_total",
            "Credentials searches by what answered.",
            "answered_by",
        );
        let pool_state = pool.state();
        out.push_str("# HELP keyhold_db_connections Database connections in the pool.\n");
        out.push_str("# TYPE keyhold_db_connections gauge\n");
        let _ = writeln!(
            out,
            "keyhold_db_connections{{state=\"idle\"}} {}",
            pool_state.idle_connections
        );
        let _ = writeln!(
            out,
            "keyhold_db_connections{{state=\"busy\"}} {}",
            pool_state.connections - pool_state.idle_connections
        );
        let (hits, misses) = pages.counts();
        out.push_str("# HELP keyhold_page_cache_loads_total Page loads, from memory or not.\n");
        out.push_str("# TYPE keyhold_page_cache_loads_total counter\n");
        let _ = writeln!(
            out,
            "keyhold_page_cache_loads_total{{from=\"memory\"}} {hits}"
        );
        let _ = writeln!(
            out,
            "keyhold_page_cache_loads_total{{from=\"database\"}} {misses}"
        );
        out
    }
}

/// Middleware: times each request, counts it, and adds `X-Request-Id` to the response.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let metrics = req
        .app_data::<web::Data<Metrics>>()
        .map(|metrics| metrics.clone().into_inner());
    let request_id = req.extensions().get::<RequestId>().map(ToString::to_string);
    let mut response = next.call(req).await?;
    if let Some(metrics) = metrics {
        metrics.observe(
            &method,
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    if let Some(value) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}
