//! Idempotent publishing (docs/http-api.md): within an app's `idempotency_ttl_s`, a publish whose key
//! was already accepted returns the first answer and delivers nothing again; a repeat that
//! arrives while the first is still being delivered waits for it.
//!
//! The Sockudo SDKs send a key with every publish, so this sits on the publish path: one hash
//! lookup and one insert per key, expired keys evicted in arrival order, and a cap on the
//! number of keys (`server.idempotency_max_keys`) so a flood of fresh keys cannot grow memory
//! without limit. The cap is shared fairly ([`crate::fair_share`]): past it the app holding
//! the most keys forgets its own oldest, so one app's flood never turns another's retries into
//! duplicates.

use crate::app::AppIdx;
use crate::fair_share::{Cap, Usage};
use crate::http::{ApiError, ApiResponse};
use ahash::AHashMap;
use glommio::sync::Semaphore;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub const MAX_KEY_LEN: usize = 128;

type Key = (AppIdx, Box<str>);

enum Slot {
    /// The first request with this key is being delivered; repeats wait for the semaphore to
    /// close.
    InFlight(Rc<Semaphore>),
    /// Accepted: repeats get this answer until `expires`.
    Done(Rc<ApiResponse>, Instant),
}

struct Slots {
    slots: AHashMap<Key, Slot>,
    /// Each app's keys in the order they were accepted, for eviction.
    order: AHashMap<AppIdx, VecDeque<(Instant, Box<str>)>>,
    /// Entries of `order`, per app.
    usage: Usage,
    cap: Cap,
}

/// The keys of recent idempotent publishes.
pub struct Idempotency {
    state: RefCell<Slots>,
}

/// What a key means for a request about to publish.
pub enum Claim<'a> {
    /// First use: publish, then settle the guard with the answer.
    Fresh(Guard<'a>),
    /// Seen within the window: answer this, deliver nothing.
    Repeat(Rc<ApiResponse>),
}

/// The key a publish carries: the body's wins over the header's (docs/http-api.md).
pub fn key<'a>(
    body: Option<&'a str>,
    header: Option<&'a str>,
) -> Result<Option<&'a str>, ApiError> {
    match body.or(header) {
        Some(k) if k.is_empty() || k.chars().count() > MAX_KEY_LEN => Err(ApiError::BadRequest(
            format!("idempotency_key must be 1 to {MAX_KEY_LEN} characters"),
        )),
        k => Ok(k),
    }
}

impl Slots {
    /// Forgets `app`'s expired keys, then the oldest keys of whichever app holds the most
    /// while over the cap.
    fn evict(&mut self, app: AppIdx, now: Instant) {
        while self
            .order
            .get(&app)
            .and_then(|q| q.front())
            .is_some_and(|(e, _)| *e <= now)
        {
            self.forget_oldest(app);
        }
        while let Some(heaviest) = self.usage.over(self.cap) {
            self.forget_oldest(heaviest);
        }
    }

    /// Forgets every expired key of every app.
    fn purge(&mut self, now: Instant) {
        let apps: Vec<AppIdx> = self.order.keys().copied().collect();
        for app in apps {
            self.evict(app, now);
        }
    }

    fn forget_oldest(&mut self, app: AppIdx) {
        let Some(queue) = self.order.get_mut(&app) else {
            return;
        };
        let Some((expires, key)) = queue.pop_front() else {
            return;
        };
        if queue.is_empty() {
            self.order.remove(&app);
        }
        self.usage.remove(app, 0);
        let key = (app, key);
        // A key accepted again after its window has a newer entry further back.
        if matches!(self.slots.get(&key), Some(Slot::Done(_, e)) if *e == expires) {
            self.slots.remove(&key);
        }
    }
}

impl Idempotency {
    /// Remembers at most `max_keys` keys over all apps.
    pub fn new(max_keys: usize) -> Idempotency {
        Idempotency {
            state: RefCell::new(Slots {
                slots: AHashMap::new(),
                order: AHashMap::new(),
                usage: Usage::default(),
                cap: Cap {
                    entries: max_keys,
                    bytes: usize::MAX,
                },
            }),
        }
    }

    /// Forgets every expired key (a periodic sweep; each claim evicts its app's anyway).
    pub fn purge(&self) {
        self.state.borrow_mut().purge(Instant::now());
    }

    /// Looks `key` up for `app`, waiting while an earlier request with it is in flight. An
    /// accepted answer is remembered for `ttl`.
    pub async fn claim(&self, app: AppIdx, key: &str, ttl: Duration) -> Claim<'_> {
        let key: Key = (app, key.into());
        loop {
            let wait = {
                let mut state = self.state.borrow_mut();
                let now = Instant::now();
                state.evict(app, now);
                match state.slots.get(&key) {
                    Some(Slot::Done(answer, expires)) if *expires > now => {
                        return Claim::Repeat(answer.clone());
                    }
                    Some(Slot::InFlight(done)) => done.clone(),
                    _ => {
                        let slot = Slot::InFlight(Rc::new(Semaphore::new(0)));
                        state.slots.insert(key.clone(), slot);
                        return Claim::Fresh(Guard {
                            keys: self,
                            key: Some(key),
                            ttl,
                        });
                    }
                }
            };
            // Closed when the first request settles; then look again.
            let _ = wait.acquire(1).await;
        }
    }

    fn release(&self, key: Key) {
        if let Some(Slot::InFlight(done)) = self.state.borrow_mut().slots.remove(&key) {
            done.close();
        }
    }
}

/// A key held by the request delivering it. Settled with the answer; dropped unsettled (the
/// request failed or was abandoned) the key is released, so a retry can publish.
pub struct Guard<'a> {
    keys: &'a Idempotency,
    key: Option<Key>,
    ttl: Duration,
}

impl Guard<'_> {
    /// Remembers `answer` for the app's window, if it is a success; wakes waiting repeats.
    pub fn settle(mut self, answer: &ApiResponse) {
        let Some(key) = self.key.take() else { return };
        if !(200..300).contains(&answer.status) {
            self.keys.release(key);
            return;
        }
        let expires = Instant::now() + self.ttl;
        let mut state = self.keys.state.borrow_mut();
        let previous = state
            .slots
            .insert(key.clone(), Slot::Done(Rc::new(answer.clone()), expires));
        state
            .order
            .entry(key.0)
            .or_default()
            .push_back((expires, key.1));
        state.usage.add(key.0, 0);
        state.evict(key.0, Instant::now());
        if let Some(Slot::InFlight(done)) = previous {
            done.close();
        }
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.keys.release(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_key_wins_and_lengths_are_checked() {
        assert_eq!(key(Some("b"), Some("h")), Ok(Some("b")));
        assert_eq!(key(None, Some("h")), Ok(Some("h")));
        assert_eq!(key(None, None), Ok(None));
        assert!(key(Some(""), None).is_err());
        assert!(key(Some(&"x".repeat(129)), None).is_err());
        assert!(key(Some(&"é".repeat(128)), None).is_ok());
    }
}
