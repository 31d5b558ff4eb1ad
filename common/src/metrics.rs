//! Request counts and latency histograms by route and status, plus a few
//! named event counters, rendered in the Prometheus text format (0.0.4).
//!
//! Routes are the matched patterns (`/api/notes/{id}`), never raw paths, so
//! the label set stays bounded whatever clients send.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum_seconds: f64,
    buckets: [u64; BUCKETS.len()],
}

type SeriesKey = (&'static str, String, u16);

/// The registry one server instance keeps.
#[derive(Debug)]
pub struct Metrics {
    prefix: &'static str,
    requests: Mutex<BTreeMap<SeriesKey, Series>>,
    events: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// `prefix` names the program (`auth`, `resource`) in metric names.
    pub fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            requests: Mutex::new(BTreeMap::new()),
            events: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn observe(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut map = match self.requests.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let series = map.entry((method, route.to_owned(), status)).or_default();
        series.count += 1;
        series.sum_seconds += seconds;
        for (bucket, bound) in series.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
    }

    /// Counts a named event (`refresh_reuse_detected`, `login_failed`).
    pub fn event(&self, name: &'static str) {
        let mut map = match self.events.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        *map.entry(name).or_default() += 1;
    }

    /// How often `name` was recorded (for tests and the benchmark).
    pub fn event_count(&self, name: &str) -> u64 {
        let map = match self.events.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.get(name).copied().unwrap_or(0)
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        let prefix = self.prefix;
        let requests = match self.requests.lock() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let events = match self.events.lock() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP {prefix}_http_requests_total HTTP requests served, by route and status."
        );
        let _ = writeln!(out, "# TYPE {prefix}_http_requests_total counter");
        for ((method, route, status), s) in &requests {
            let _ = writeln!(
                out,
                "{prefix}_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP {prefix}_http_request_duration_seconds Time to answer HTTP requests."
        );
        let _ = writeln!(out, "# TYPE {prefix}_http_request_duration_seconds histogram");
        for ((method, route, status), s) in &requests {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            for (count, bound) in s.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "{prefix}_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "{prefix}_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "{prefix}_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "{prefix}_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        let _ = writeln!(out, "# HELP {prefix}_events_total Notable protocol events.");
        let _ = writeln!(out, "# TYPE {prefix}_events_total counter");
        for (name, count) in &events {
            let _ = writeln!(out, "{prefix}_events_total{{event=\"{name}\"}} {count}");
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Middleware (`middleware::from_fn(metrics::record)`) that observes every
/// request. Needs `web::Data<Metrics>` in the app.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let route = {
        use actix_web::HttpMessage as _;
        let found = req
            .extensions()
            .get::<crate::telemetry::MatchedRoute>()
            .map(|r| r.0.clone());
        found.unwrap_or_else(|| req.match_pattern().unwrap_or_else(|| "unmatched".to_owned()))
    };
    let method = method_label(req.method());
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let status = match &result {
            Ok(res) => res.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        metrics.observe(method, &route, status, started.elapsed());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = Metrics::new("auth");
        m.observe("GET", "/jwks", 200, Duration::from_millis(2));
        m.observe("GET", "/jwks", 200, Duration::from_millis(20));
        m.event("login_failed");
        let text = m.render();
        assert!(text.contains("auth_http_requests_total{method=\"GET\",route=\"/jwks\",status=\"200\"} 2"));
        assert!(text.contains("le=\"0.0025\"} 1"));
        assert!(text.contains("le=\"0.025\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(text.contains("auth_events_total{event=\"login_failed\"} 1"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
