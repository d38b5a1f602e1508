//! Counters for watching a running server (docs/deployment.md), rendered as Prometheus text on
//! `metrics_port`.
//!
//! Each shard writes only its own [`ShardMetrics`] (relaxed atomics on cache lines of their
//! own). The one exception is a shard's queue depth, which the queue between the API core and
//! the shard keeps (`bus::queue`); it sits on a line of its own so that traffic stays off the
//! shard's other counters. Close-code and status labels come from the error tables
//! ([`ErrorCode`], [`WsError`], [`STATUSES`]). A scrape only reads.

mod webhooks;

use crate::http::STATUSES;
use crate::protocol::ErrorCode;
use crate::ws::WsError;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
pub use webhooks::WebhookCounters;

/// Close codes counted by name: a normal close (1000, 1001), the WebSocket protocol errors,
/// and every Pusher code of the error table. Anything else is "other", and a connection that
/// went away without a close frame of ours is "none".
const CLOSE_CODES: [u16; 2 + WsError::ALL.len() + ErrorCode::ALL.len()] = close_codes();

const fn close_codes() -> [u16; 2 + WsError::ALL.len() + ErrorCode::ALL.len()] {
    let mut out = [1000, 1001, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut i = 0;
    while i < WsError::ALL.len() {
        out[2 + i] = WsError::ALL[i].close_code();
        i += 1;
    }
    let mut j = 0;
    while j < ErrorCode::ALL.len() {
        out[2 + i + j] = ErrorCode::ALL[j].code();
        j += 1;
    }
    out
}
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

/// Commands queued for a shard and not yet taken: raised by the API core, lowered by the
/// shard, and written only by `bus::queue`. Kept off the cache lines of single-writer
/// counters.
#[derive(Default)]
#[repr(align(128))]
pub struct QueueDepth(AtomicI64);

impl QueueDepth {
    pub(crate) fn raise(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn lower(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed).max(0)
    }
}

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
    /// Reports queued on the shard for the API core, not yet in the cross-core queue.
    pub reports_queued: AtomicI64,
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
    cluster: OnceLock<Arc<ClusterCounters>>,
}

/// What a cluster node counts about the bus and the other nodes (written by the API core and
/// its Redis link only).
#[derive(Default)]
pub struct ClusterCounters {
    /// 1 while the pub/sub link to Redis is up.
    pub connected: AtomicI64,
    /// Nodes that beat within `node_timeout_s`, this one included.
    pub live_nodes: AtomicI64,
    pub messages_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub messages_in: AtomicU64,
    pub bytes_in: AtomicU64,
    /// From a broadcast's acceptance on another node to its arrival here.
    pub latency: Histogram,
}

impl Metrics {
    pub fn new(shards: usize) -> Arc<Metrics> {
        Arc::new(Metrics {
            shards: (0..shards).map(|_| ShardMetrics::default()).collect(),
            webhooks: OnceLock::new(),
            cluster: OnceLock::new(),
        })
    }

    pub fn shard(&self, id: usize) -> &ShardMetrics {
        &self.shards[id]
    }

    /// The webhook senders' counters, once they have started.
    /// The cluster's counters (a node of a cluster only; `/metrics` shows them from then on).
    pub fn cluster(&self) -> Arc<ClusterCounters> {
        self.cluster.get_or_init(Default::default).clone()
    }

    pub fn set_webhooks(&self, counters: Arc<WebhookCounters>) {
        let _ = self.webhooks.set(counters);
    }

    /// The Prometheus text exposition of every figure.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        self.render_connections(&mut out);
        self.render_traffic(&mut out);
        self.render_labelled(&mut out);
        self.render_webhooks(&mut out);
        self.render_latency(&mut out);
        if let Some(c) = self.cluster.get() {
            render_cluster(&mut out, c);
        }
        out
    }

    fn sum(&self, f: &dyn Fn(&ShardMetrics) -> u64) -> u64 {
        self.shards.iter().map(f).sum()
    }

    fn render_connections(&self, out: &mut String) {
        family(out, "connections", "gauge", "Open WebSocket connections.");
        let open: i64 = self
            .shards
            .iter()
            .map(|s| s.connections.load(Ordering::Relaxed))
            .sum();
        let _ = writeln!(out, "ringcast_connections {}", open.max(0));
        family(
            out,
            "shard_connections",
            "gauge",
            "Open WebSocket connections per shard.",
        );
        for (i, s) in self.shards.iter().enumerate() {
            let n = s.connections.load(Ordering::Relaxed).max(0);
            let _ = writeln!(out, "ringcast_shard_connections{{shard=\"{i}\"}} {n}");
        }
    }

    fn render_traffic(&self, out: &mut String) {
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
            family(out, name, "counter", help);
            let _ = writeln!(out, "ringcast_{name} {}", self.sum(f));
        }
    }

    /// The counters by close code and by HTTP status, and the per-shard queue depth.
    fn render_labelled(&self, out: &mut String) {
        family(
            out,
            "disconnections_total",
            "counter",
            "Connections ended, by the close code the server sent (none: the client went away).",
        );
        let labels = CLOSE_CODES
            .iter()
            .map(|c| c.to_string())
            .chain(["other".to_string(), "none".to_string()]);
        for (i, code) in labels.enumerate() {
            let n = self.sum(&|s| get(&s.disconnections[i]));
            let _ = writeln!(out, "ringcast_disconnections_total{{code=\"{code}\"}} {n}");
        }
        family(
            out,
            "http_requests_total",
            "counter",
            "HTTP requests answered, by status.",
        );
        let labels = STATUSES
            .iter()
            .map(|c| c.to_string())
            .chain(["other".to_string()]);
        for (i, status) in labels.enumerate() {
            let n = self.sum(&|s| get(&s.http[i]));
            let _ = writeln!(
                out,
                "ringcast_http_requests_total{{status=\"{status}\"}} {n}"
            );
        }
        family(
            out,
            "shard_queue_depth",
            "gauge",
            "Commands queued from the API core to a shard, not yet taken.",
        );
        for (i, s) in self.shards.iter().enumerate() {
            let n = s.queue_depth.get();
            let _ = writeln!(out, "ringcast_shard_queue_depth{{shard=\"{i}\"}} {n}");
        }
        family(
            out,
            "shard_reports_queued",
            "gauge",
            "Reports a shard holds for the API core, not yet in the cross-core queue.",
        );
        for (i, s) in self.shards.iter().enumerate() {
            let n = s.reports_queued.load(Ordering::Relaxed);
            let _ = writeln!(out, "ringcast_shard_reports_queued{{shard=\"{i}\"}} {n}");
        }
    }

    fn render_webhooks(&self, out: &mut String) {
        let none = WebhookCounters::default();
        webhooks::render(out, self.webhooks.get().map_or(&none, |w| &**w));
    }

    fn render_latency(&self, out: &mut String) {
        render_histogram(
            out,
            "broadcast_latency_seconds",
            "From a publish accepted by the API core to its frames queued for every subscriber on a shard.",
            &|i| self.sum(&|s| get(&s.broadcast_latency.buckets[i])),
            self.sum(&|s| get(&s.broadcast_latency.sum_us)),
        );
    }
}

/// A histogram family: `bucket(i)` is the count in bucket `i` (the last is +Inf).
fn render_histogram(
    out: &mut String,
    name: &str,
    help: &str,
    bucket: &dyn Fn(usize) -> u64,
    sum_us: u64,
) {
    family(out, name, "histogram", help);
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BOUNDS_US.iter().enumerate() {
        cumulative += bucket(i);
        let le = *bound as f64 / 1e6;
        let _ = writeln!(out, "ringcast_{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    cumulative += bucket(LATENCY_BOUNDS_US.len());
    let _ = writeln!(out, "ringcast_{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "ringcast_{name}_sum {}", sum_us as f64 / 1e6);
    let _ = writeln!(out, "ringcast_{name}_count {cumulative}");
}

fn render_cluster(out: &mut String, c: &ClusterCounters) {
    let gauges = [
        (
            "cluster_connected",
            "1 while the link to Redis is up.",
            &c.connected,
        ),
        (
            "cluster_live_nodes",
            "Nodes of the cluster that beat in time.",
            &c.live_nodes,
        ),
    ];
    for (name, help, v) in gauges {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "ringcast_{name} {}", v.load(Ordering::Relaxed));
    }
    let counters = [
        (
            "bus_messages_sent_total",
            "Bus messages sent to other nodes.",
            &c.messages_out,
        ),
        (
            "bus_bytes_sent_total",
            "Bytes of bus messages sent.",
            &c.bytes_out,
        ),
        (
            "bus_messages_received_total",
            "Bus messages received from other nodes.",
            &c.messages_in,
        ),
        (
            "bus_bytes_received_total",
            "Bytes of bus messages received.",
            &c.bytes_in,
        ),
    ];
    for (name, help, v) in counters {
        family(out, name, "counter", help);
        let _ = writeln!(out, "ringcast_{name} {}", get(v));
    }
    render_histogram(
        out,
        "bus_latency_seconds",
        "From a broadcast accepted on another node to its arrival on this one.",
        &|i| get(&c.latency.buckets[i]),
        get(&c.latency.sum_us),
    );
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
