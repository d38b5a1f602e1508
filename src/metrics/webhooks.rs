//! What the webhook dispatcher and senders count, and how `/metrics` shows it.

use super::{family, get, inc};
use crate::webhook_kind::Kind;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A figure of each webhook kind.
type KindValue<'a> = dyn Fn(Kind) -> i64 + 'a;

/// What the webhook dispatcher and sender threads count (one set for all endpoints).
#[derive(Default)]
pub struct WebhookCounters {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    /// Events dropped because their type's share of an endpoint's queue was full, by kind.
    pub dropped: [AtomicU64; Kind::ALL.len()],
    /// Batches given up (retries exhausted, too many waiting, or failing at shutdown).
    pub given_up: AtomicU64,
    /// `channel_occupied` / `channel_vacated` pairs cancelled out in a batch (two per pair).
    pub coalesced: AtomicU64,
    /// Events queued for all endpoints and not yet taken by their senders, by kind.
    pub queued: [AtomicI64; Kind::ALL.len()],
}

impl WebhookCounters {
    pub fn dropped(&self, kind: Kind) {
        inc(&self.dropped[kind.index()], 1);
    }
}

/// The webhook families of `/metrics`.
pub(super) fn render(out: &mut String, w: &WebhookCounters) {
    let figures = [
        (
            "webhook_deliveries_total",
            "Webhook requests answered with 2xx.",
            get(&w.delivered),
        ),
        (
            "webhook_failures_total",
            "Webhook attempts that failed (network error or non-2xx).",
            get(&w.failed),
        ),
        (
            "webhook_batches_given_up_total",
            "Webhook batches given up (retries exhausted, or still failing at shutdown).",
            get(&w.given_up),
        ),
        (
            "webhook_events_coalesced_total",
            "channel_occupied and channel_vacated events of one channel that cancelled out in a batch.",
            get(&w.coalesced),
        ),
    ];
    for (name, help, n) in figures {
        family(out, name, "counter", help);
        let _ = writeln!(out, "ringcast_{name} {n}");
    }
    let by_kind: [(&str, &str, &str, &KindValue); 2] = [
        (
            "webhook_events_queued",
            "gauge",
            "Webhook events queued for the endpoints' senders and not yet taken.",
            &|k| w.queued[k.index()].load(Ordering::Relaxed),
        ),
        (
            "webhook_events_dropped_total",
            "counter",
            "Webhook events dropped because their type's share of an endpoint's queue was full.",
            &|k| get(&w.dropped[k.index()]) as i64,
        ),
    ];
    for (name, kind_of_family, help, value) in by_kind {
        family(out, name, kind_of_family, help);
        for kind in Kind::ALL {
            let (n, label) = (value(kind), kind.name());
            let _ = writeln!(out, "ringcast_{name}{{kind=\"{label}\"}} {n}");
        }
    }
}
