//! Idempotent publishing (SPEC §4.2): within an app's `idempotency_ttl_s`, a publish whose key
//! was already accepted returns the first answer and delivers nothing again; a repeat that
//! arrives while the first is still being delivered waits for it.
//!
//! The Sockudo SDKs send a key with every publish, so this sits on the publish path: one hash
//! lookup and one insert per key, expired keys evicted in arrival order, and a hard cap on the
//! number of keys so a flood of fresh keys cannot grow memory without limit.

use crate::app::AppIdx;
use crate::http::{ApiError, ApiResponse};
use ahash::AHashMap;
use glommio::sync::Semaphore;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Most keys remembered at once, over all apps; past it the oldest is forgotten early.
pub const MAX_KEYS: usize = 2_000_000;
pub const MAX_KEY_LEN: usize = 128;

type Key = (AppIdx, Box<str>);

enum Slot {
    /// The first request with this key is being delivered; repeats wait for the semaphore to
    /// close.
    InFlight(Rc<Semaphore>),
    /// Accepted: repeats get this answer until `expires`.
    Done(Rc<ApiResponse>, Instant),
}

#[derive(Default)]
struct Slots {
    slots: AHashMap<Key, Slot>,
    /// Keys in the order they were accepted, for eviction.
    order: VecDeque<(Instant, Key)>,
}

/// The keys of recent idempotent publishes.
#[derive(Default)]
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

/// The key a publish carries: the body's wins over the header's (SPEC §4.2).
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
    /// Forgets expired keys, and the oldest ones while over [`MAX_KEYS`].
    fn evict(&mut self, now: Instant) {
        while let Some((expires, _)) = self.order.front() {
            if *expires > now && self.order.len() <= MAX_KEYS {
                break;
            }
            let Some((expires, key)) = self.order.pop_front() else {
                break;
            };
            // A key accepted again after its window has a newer entry further back.
            if matches!(self.slots.get(&key), Some(Slot::Done(_, e)) if *e == expires) {
                self.slots.remove(&key);
            }
        }
    }
}

impl Idempotency {
    /// Looks `key` up for `app`, waiting while an earlier request with it is in flight. An
    /// accepted answer is remembered for `ttl`.
    pub async fn claim(&self, app: AppIdx, key: &str, ttl: Duration) -> Claim<'_> {
        let key: Key = (app, key.into());
        loop {
            let wait = {
                let mut state = self.state.borrow_mut();
                let now = Instant::now();
                state.evict(now);
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
        state.order.push_back((expires, key));
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
