//! Prometheus metrics in the text exposition format, kept by hand: a few counters and one latency
//! histogram do not justify a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use tributary_ledger::store::StoreStats;

/// Upper bounds of the request latency buckets, in seconds.
const LATENCY_BUCKETS_SECONDS: [f64; 12] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency_buckets: [u64; LATENCY_BUCKETS_SECONDS.len()],
    latency_count: u64,
    latency_sum_seconds: f64,
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut inner = self.inner.lock().expect("metrics lock");
        *inner.requests.entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
        for (bucket, bound) in LATENCY_BUCKETS_SECONDS.iter().enumerate() {
            if seconds <= *bound {
                inner.latency_buckets[bucket] += 1;
            }
        }
        inner.latency_count += 1;
        inner.latency_sum_seconds += seconds;
    }

    pub fn render(&self, store: StoreStats) -> String {
        let inner = self.inner.lock().expect("metrics lock");
        let mut out = String::new();
        out.push_str("# HELP tributary_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE tributary_http_requests_total counter\n");
        for ((method, route, status), count) in &inner.requests {
            let _ = writeln!(
                out,
                "tributary_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP tributary_http_request_duration_seconds Time to answer an HTTP request.\n");
        out.push_str("# TYPE tributary_http_request_duration_seconds histogram\n");
        for (bucket, bound) in LATENCY_BUCKETS_SECONDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "tributary_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                inner.latency_buckets[bucket]
            );
        }
        let _ = writeln!(
            out,
            "tributary_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            inner.latency_count
        );
        let _ = writeln!(out, "tributary_http_request_duration_seconds_sum {}", inner.latency_sum_seconds);
        let _ = writeln!(out, "tributary_http_request_duration_seconds_count {}", inner.latency_count);
        for (name, help, value) in [
            ("tributary_ledger_batches_total", "Durable write batches committed.", store.batches),
            ("tributary_ledger_commands_total", "Commands applied in committed batches.", store.commands),
            (
                "tributary_ledger_commit_microseconds_total",
                "Time spent applying and committing batches.",
                store.commit_micros_total,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        out
    }
}
