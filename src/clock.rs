//! Time as the server reads it: a coarse per-owner tick for hot paths, and wall-clock time
//! for what leaves the process (timestamps in answers, webhooks, request signatures).

use std::time::{SystemTime, UNIX_EPOCH};

/// Whole seconds since the owner started: a coarse clock, so no hot path reads the system
/// clock.
pub type Tick = u32;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch (0 if the clock is before it), as request signatures use.
pub fn unix_s() -> i64 {
    (unix_ms() / 1000) as i64
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
