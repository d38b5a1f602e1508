//! One webhook endpoint's sender: a thread of its own, so a slow or dead endpoint holds up
//! nothing but itself. It batches events (at most [`BATCH_WINDOW`] and [`BATCH_MAX`] events per
//! request), signs each request, and retries failures with exponential backoff. A channel's
//! `channel_occupied` and `channel_vacated` that meet in one batch cancel out: the endpoint
//! would learn nothing from the pair.

use super::queue::{QueueRx, Queued};
use crate::auth;
use crate::logging::redacted_url;
pub use crate::metrics::WebhookCounters as Counters;
use crate::webhook_kind::Kind;
use crossbeam_channel::RecvTimeoutError;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
pub const BATCH_MAX: usize = 100;
/// The first retry waits this long; every further one twice as long as the one before.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// A batch still failing this long after its first attempt is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(300);
/// Failed batches waiting for a retry; past it the oldest is given up.
pub const MAX_RETRYING: usize = 1000;
/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to deliver.
pub struct Target {
    pub url: String,
    pub app_key: String,
    /// Read for every batch: a reload may change it.
    pub app_secret: crate::app::CurrentSecret,
    pub headers: Vec<(String, String)>,
    /// Set when a reload removed the endpoint: what is still queued, batched or waiting for a
    /// retry is dropped.
    pub discard: Arc<std::sync::atomic::AtomicBool>,
}

/// A batch that failed and waits for its next attempt.
struct Retrying {
    events: String,
    first_attempt: Instant,
    next_attempt: Instant,
    delay: Duration,
}

enum Outcome {
    Delivered,
    /// Network error, 5xx or 429: worth another attempt.
    Retry(String),
    /// Any other answer: retrying would not change it.
    Refused(u16),
}

pub fn spawn(
    target: Target,
    events: QueueRx,
    counters: Arc<Counters>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(move || Sender::new(target, counters).run(events))
}

struct Sender {
    target: Target,
    agent: ureq::Agent,
    counters: Arc<Counters>,
    retrying: Vec<Retrying>,
}

impl Sender {
    fn new(target: Target, counters: Arc<Counters>) -> Sender {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        Sender {
            target,
            agent,
            counters,
            retrying: Vec::new(),
        }
    }

    fn run(mut self, events: QueueRx) {
        let mut batch: Vec<Queued> = Vec::new();
        let mut batch_due = Instant::now();
        loop {
            if self.target.discard.load(Ordering::Relaxed) {
                return self.discard(&batch, &events);
            }
            let mut wake = self.retrying.iter().map(|r| r.next_attempt).min();
            if !batch.is_empty() {
                wake = Some(wake.map_or(batch_due, |w| w.min(batch_due)));
            }
            match events.recv_until(wake) {
                Ok(event) => {
                    if batch.is_empty() {
                        batch_due = Instant::now() + BATCH_WINDOW;
                    }
                    self.add(&mut batch, event);
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The endpoint was removed (its queue is dropped with the flag set) or the
                // server shuts down.
                Err(RecvTimeoutError::Disconnected)
                    if self.target.discard.load(Ordering::Relaxed) =>
                {
                    return self.discard(&batch, &events);
                }
                Err(RecvTimeoutError::Disconnected) => return self.finish(batch),
            }
            if batch.len() >= BATCH_MAX || (!batch.is_empty() && Instant::now() >= batch_due) {
                let events = joined(&batch);
                batch.clear();
                if !self.attempt_once(&events) {
                    self.schedule_retry(events, Instant::now(), FIRST_RETRY);
                }
            }
            self.retry_due();
        }
    }

    /// A reload removed the endpoint: what is batched, queued or waiting for a retry is
    /// dropped, and said so.
    fn discard(&self, batch: &[Queued], events: &QueueRx) {
        let dropped = batch.len() + self.retrying.len() + events.discard_all();
        log::info!(
            "webhook {}: removed by a reload; dropped {dropped} queued events and batches",
            redacted_url(&self.target.url)
        );
    }

    /// Adds `event` to the batch, or cancels it against the batch's `channel_occupied` of the
    /// same channel.
    fn add(&self, batch: &mut Vec<Queued>, event: Queued) {
        if event.kind == Kind::ChannelVacated
            && let Some(i) = batch
                .iter()
                .position(|q| q.kind == Kind::ChannelOccupied && q.channel == event.channel)
        {
            batch.remove(i);
            self.counters.coalesced.fetch_add(2, Ordering::Relaxed);
            return;
        }
        batch.push(event);
    }

    /// Shutting down: one last attempt for what is batched and for every batch waiting for a
    /// retry, oldest first.
    fn finish(mut self, batch: Vec<Queued>) {
        let mut last: Vec<String> = std::mem::take(&mut self.retrying)
            .into_iter()
            .map(|r| r.events)
            .collect();
        if !batch.is_empty() {
            last.push(joined(&batch));
        }
        for events in last {
            if !self.attempt_once(&events) {
                self.counters.given_up.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One attempt; `true` when the batch needs no retry.
    fn attempt_once(&self, events: &str) -> bool {
        match self.post(events) {
            Outcome::Delivered => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                true
            }
            Outcome::Refused(status) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "webhook {} refused a batch with {status}",
                    redacted_url(&self.target.url)
                );
                true
            }
            Outcome::Retry(why) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                log::debug!(
                    "webhook {} failed ({why}); will retry",
                    redacted_url(&self.target.url)
                );
                false
            }
        }
    }

    fn schedule_retry(&mut self, events: String, first_attempt: Instant, delay: Duration) {
        let next_attempt = Instant::now() + delay;
        if next_attempt > first_attempt + GIVE_UP_AFTER {
            self.counters.given_up.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "webhook {}: giving up a batch after {:?} of retries",
                redacted_url(&self.target.url),
                GIVE_UP_AFTER
            );
            return;
        }
        if self.retrying.len() >= MAX_RETRYING {
            self.retrying.remove(0);
            self.counters.given_up.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "webhook {}: too many failed batches; dropped the oldest",
                redacted_url(&self.target.url)
            );
        }
        self.retrying.push(Retrying {
            events,
            first_attempt,
            next_attempt,
            delay,
        });
    }

    fn retry_due(&mut self) {
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retrying)
            .into_iter()
            .partition(|r| r.next_attempt <= now);
        self.retrying = waiting;
        for r in due {
            if !self.attempt_once(&r.events) {
                self.schedule_retry(r.events, r.first_attempt, r.delay * 2);
            }
        }
    }

    fn post(&self, events: &str) -> Outcome {
        // Signed afresh on every attempt: receivers reject stale `time_ms`.
        let body = format!(
            r#"{{"time_ms":{},"events":[{events}]}}"#,
            crate::clock::unix_ms()
        );
        let signature = auth::sign(&self.target.app_secret.get(), body.as_bytes());
        let mut request = self
            .agent
            .post(&self.target.url)
            .header("Content-Type", "application/json")
            .header("X-Pusher-Key", &self.target.app_key)
            .header("X-Pusher-Signature", &signature);
        for (k, v) in &self.target.headers {
            request = request.header(k, v);
        }
        match request.send(body.as_bytes()) {
            Ok(r) if r.status().is_success() => Outcome::Delivered,
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                Outcome::Retry(format!("status {}", r.status()))
            }
            Ok(r) => Outcome::Refused(r.status().as_u16()),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

/// A batch's events as the inside of the body's `events` array.
fn joined(batch: &[Queued]) -> String {
    let mut out = String::with_capacity(batch.iter().map(|q| q.json.len() + 1).sum());
    for (i, q) in batch.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&q.json);
    }
    out
}
