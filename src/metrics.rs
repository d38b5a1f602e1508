//! Counters for watching a running server (SPEC §6), rendered as Prometheus text on
//! `metrics_port`.
//!
//! Each shard writes only its own [`ShardMetrics`] (relaxed atomics on cache lines of their
//! own). The one exception is a shard's queue depth, which the API core raises as it queues a
//! command and the shard lowers as it takes one; it sits on a line of its own so that traffic
//! stays off the shard's other counters. A scrape only reads.

use crate::webhooks::sender::Counters as WebhookCounters;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Close codes counted by name; anything else is "other", and a connection that went away
/// without a close frame of ours is "none".
const CLOSE_CODES: [u16; 14] = [
    1000, 1001, 1002, 1007, 1009, 4001, 4003, 4004, 4007, 4009, 4100, 4200, 4201, 4000,
];
/// HTTP statuses counted by name; anything else is "other".
const STATUSES: [u16; 11] = [200, 400, 401, 403, 404, 405, 411, 413, 500, 503, 101];
/// Upper bounds of the broadcast latency buckets, in microseconds.
const LATENCY_BOUNDS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000,
];

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A fixed-bucket latency histogram.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        let us = d.as_micros() as u64;
        let i = LATENCY_BOUNDS_US.partition_point(|b| *b < us);
        inc(&self.buckets[i], 1);
        inc(&self.sum_us, us);
    }
}

/// A counter written from two cores, kept off the cache lines of single-writer counters.
#[derive(Default)]
#[repr(align(128))]
pub struct QueueDepth(pub AtomicI64);

/// One shard's figures, on cache lines of their own (shards write them concurrently).
#[derive(Default)]
#[repr(align(128))]
pub struct ShardMetrics {
    pub connections: AtomicI64,
    pub new_connections: AtomicU64,
    disconnections: [AtomicU64; CLOSE_CODES.len() + 2],
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    http: [AtomicU64; STATUSES.len() + 1],
    /// Commands the API core has queued for this shard and the shard has not taken yet.
    pub queue_depth: QueueDepth,
    /// From a publish's acceptance by the API core to its frames queued for every local
    /// subscriber (they leave with each socket's next write).
    pub broadcast_latency: Histogram,
}

impl ShardMetrics {
    pub fn connected(&self) {
        inc(&self.new_connections, 1);
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection ended; `code` is the close code we sent, if we sent one.
    pub fn disconnected(&self, code: Option<u16>) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
        let i = match code {
            None => CLOSE_CODES.len() + 1,
            Some(c) => CLOSE_CODES
                .iter()
                .position(|k| *k == c)
                .unwrap_or(CLOSE_CODES.len()),
        };
        inc(&self.disconnections[i], 1);
    }

    pub fn http_answered(&self, status: u16) {
        let i = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len());
        inc(&self.http[i], 1);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        inc(counter, n);
    }
}

/// Everything `/metrics` shows.
pub struct Metrics {
    pub shards: Vec<ShardMetrics>,
    webhooks: OnceLock<Arc<WebhookCounters>>,
}

impl Metrics {
    pub fn new(shards: usize) -> Arc<Metrics> {
        Arc::new(Metrics {
            shards: (0..shards).map(|_| ShardMetrics::default()).collect(),
            webhooks: OnceLock::new(),
        })
    }

    pub fn shard(&self, id: usize) -> &ShardMetrics {
        &self.shards[id]
    }

    /// The webhook senders' counters, once they have started.
    pub fn set_webhooks(&self, counters: Arc<WebhookCounters>) {
        let _ = self.webhooks.set(counters);
    }

    /// The Prometheus text exposition of every figure.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let sum = |f: &dyn Fn(&ShardMetrics) -> u64| self.shards.iter().map(f).sum::<u64>();
        let gauge_sum = |f: &dyn Fn(&ShardMetrics) -> i64| self.shards.iter().map(f).sum::<i64>();

        family(
            &mut out,
            "connections",
            "gauge",
            "Open WebSocket connections.",
        );
        let _ = writeln!(
            out,
            "ringcast_connections {}",
            gauge_sum(&|s| s.connections.load(Ordering::Relaxed)).max(0)
        );
        family(
            &mut out,
            "shard_connections",
            "gauge",
            "Open WebSocket connections per shard.",
        );
        for (i, s) in self.shards.iter().enumerate() {
            let n = s.connections.load(Ordering::Relaxed).max(0);
            let _ = writeln!(out, "ringcast_shard_connections{{shard=\"{i}\"}} {n}");
        }
        let counters: [(&str, &str, &ShardFigure); 5] = [
            (
                "new_connections_total",
                "WebSocket connections accepted.",
                &|s| get(&s.new_connections),
            ),
            (
                "messages_received_total",
                "WebSocket messages received from clients.",
                &|s| get(&s.messages_in),
            ),
            (
                "messages_sent_total",
                "Frames queued for clients (one per subscriber per event).",
                &|s| get(&s.messages_out),
            ),
            (
                "bytes_received_total",
                "Bytes read from WebSocket clients.",
                &|s| get(&s.bytes_in),
            ),
            (
                "bytes_sent_total",
                "Bytes written to WebSocket clients.",
                &|s| get(&s.bytes_out),
            ),
        ];
        for (name, help, f) in counters {
            family(&mut out, name, "counter", help);
            let _ = writeln!(out, "ringcast_{name} {}", sum(f));
        }
        family(
            &mut out,
            "disconnections_total",
            "counter",
            "Connections ended, by the close code the server sent (none: the client went away).",
        );
        let labels = CLOSE_CODES
            .iter()
            .map(|c| c.to_string())
            .chain(["other".to_string(), "none".to_string()]);
        for (i, code) in labels.enumerate() {
            let n = sum(&|s| get(&s.disconnections[i]));
            let _ = writeln!(out, "ringcast_disconnections_total{{code=\"{code}\"}} {n}");
        }
        family(
            &mut out,
            "http_requests_total",
            "counter",
            "HTTP requests answered, by status.",
        );
        let labels = STATUSES
            .iter()
            .map(|c| c.to_string())
            .chain(["other".to_string()]);
        for (i, status) in labels.enumerate() {
            let n = sum(&|s| get(&s.http[i]));
            let _ = writeln!(
                out,
                "ringcast_http_requests_total{{status=\"{status}\"}} {n}"
            );
        }
        family(
            &mut out,
            "shard_queue_depth",
            "gauge",
            "Commands queued from the API core to a shard, not yet taken.",
        );
        for (i, s) in self.shards.iter().enumerate() {
            let n = s.queue_depth.0.load(Ordering::Relaxed).max(0);
            let _ = writeln!(out, "ringcast_shard_queue_depth{{shard=\"{i}\"}} {n}");
        }
        let (delivered, failed, dropped) = self.webhooks.get().map_or((0, 0, 0), |w| {
            (get(&w.delivered), get(&w.failed), get(&w.dropped))
        });
        family(
            &mut out,
            "webhook_deliveries_total",
            "counter",
            "Webhook requests answered with 2xx.",
        );
        let _ = writeln!(out, "ringcast_webhook_deliveries_total {delivered}");
        family(
            &mut out,
            "webhook_failures_total",
            "counter",
            "Webhook attempts that failed (network error or non-2xx).",
        );
        let _ = writeln!(out, "ringcast_webhook_failures_total {failed}");
        family(
            &mut out,
            "webhook_dropped_total",
            "counter",
            "Webhook events or batches given up (queue full, retries exhausted).",
        );
        let _ = writeln!(out, "ringcast_webhook_dropped_total {dropped}");

        family(
            &mut out,
            "broadcast_latency_seconds",
            "histogram",
            "From a publish accepted by the API core to its frames queued for every subscriber on a shard.",
        );
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BOUNDS_US.iter().enumerate() {
            cumulative += sum(&|s| get(&s.broadcast_latency.buckets[i]));
            let le = *bound as f64 / 1e6;
            let _ = writeln!(
                out,
                "ringcast_broadcast_latency_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += sum(&|s| get(&s.broadcast_latency.buckets[LATENCY_BOUNDS_US.len()]));
        let _ = writeln!(
            out,
            "ringcast_broadcast_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let sum_s = sum(&|s| get(&s.broadcast_latency.sum_us)) as f64 / 1e6;
        let _ = writeln!(out, "ringcast_broadcast_latency_seconds_sum {sum_s}");
        let _ = writeln!(out, "ringcast_broadcast_latency_seconds_count {cumulative}");
        out
    }
}

/// Reads one figure of a shard.
type ShardFigure = dyn Fn(&ShardMetrics) -> u64;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP ringcast_{name} {help}");
    let _ = writeln!(out, "# TYPE ringcast_{name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sums_labels_and_cumulative_buckets() {
        let m = Metrics::new(2);
        m.shard(0).connected();
        m.shard(1).connected();
        m.shard(1).connected();
        m.shard(1).disconnected(Some(4100));
        m.shard(0).disconnected(None);
        m.shard(0).http_answered(200);
        m.shard(1).http_answered(418);
        m.shard(0)
            .broadcast_latency
            .record(Duration::from_micros(50));
        m.shard(1)
            .broadcast_latency
            .record(Duration::from_millis(3));
        let text = m.render();
        for line in [
            "ringcast_connections 1",
            "ringcast_shard_connections{shard=\"1\"} 1",
            "ringcast_new_connections_total 3",
            "ringcast_disconnections_total{code=\"4100\"} 1",
            "ringcast_disconnections_total{code=\"none\"} 1",
            "ringcast_http_requests_total{status=\"200\"} 1",
            "ringcast_http_requests_total{status=\"other\"} 1",
            "ringcast_broadcast_latency_seconds_bucket{le=\"0.0001\"} 1",
            "ringcast_broadcast_latency_seconds_bucket{le=\"0.005\"} 2",
            "ringcast_broadcast_latency_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }
}
