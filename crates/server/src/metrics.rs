//! Prometheus metrics in the text exposition format, kept by hand: a few counters and one latency
//! histogram do not justify a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tributary_ledger::store::StoreStats;

/// Upper bounds of the request latency buckets, in seconds.
const LATENCY_BUCKETS_SECONDS: [f64; 12] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    epochs_closed: AtomicU64,
    epoch_latest: AtomicU64,
    roots_published: AtomicU64,
    roots_failed: AtomicU64,
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

    /// An epoch this process closed; a retried close that returned an earlier epoch counts once.
    pub fn epoch_closed(&self, epoch: u64) {
        if self.epoch_latest.fetch_max(epoch, Ordering::Relaxed) < epoch {
            self.epochs_closed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The outcome of publishing a root on chain.
    pub fn root_published(&self, ok: bool) {
        let counter = if ok { &self.roots_published } else { &self.roots_failed };
        counter.fetch_add(1, Ordering::Relaxed);
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
            (
                "tributary_epochs_closed_total",
                "Settlement epochs this process closed.",
                self.epochs_closed.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP tributary_epoch_latest The latest epoch this process closed.\n# TYPE tributary_epoch_latest gauge\ntributary_epoch_latest {}",
            self.epoch_latest.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP tributary_epoch_root_publications_total Epoch roots sent to the chain, by outcome.\n",
        );
        out.push_str("# TYPE tributary_epoch_root_publications_total counter\n");
        for (result, counter) in [("published", &self.roots_published), ("failed", &self.roots_failed)] {
            let _ = writeln!(
                out,
                "tributary_epoch_root_publications_total{{result=\"{result}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        if let Some(applied) = store.log_applied {
            let _ = writeln!(
                out,
                "# HELP tributary_log_applied_batch The last batch of the shared PostgreSQL log this node applied.\n# TYPE tributary_log_applied_batch gauge\ntributary_log_applied_batch {applied}"
            );
        }
        out
    }
}
