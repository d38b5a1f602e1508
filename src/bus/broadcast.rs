//! What a broadcast carries: one event, encoded once, for one channel's subscribers.

use crate::app::AppIdx;
use crate::protocol::{SocketId, frames};
use std::time::Instant;

/// One event to deliver to a channel's local subscribers on a shard.
#[derive(Debug)]
pub struct Broadcast {
    pub app: AppIdx,
    pub channel: Box<str>,
    /// The complete JSON text of the event, encoded once.
    pub payload: Box<[u8]>,
    /// The publisher's own connection, which must not receive it.
    pub except: Option<SocketId>,
    /// A publish to a cache channel: every shard remembers it for later subscribers.
    pub cacheable: bool,
    /// When it was accepted, for the broadcast latency metric.
    pub accepted: Instant,
}

impl Broadcast {
    /// A channel event `{"event","channel","data"[,"user_id"]}`; `data_literal` is already a
    /// JSON value (normally a string literal relayed byte-for-byte).
    pub fn event(
        app: AppIdx,
        channel: &str,
        event: &str,
        data_literal: &str,
        user_id: Option<&str>,
    ) -> Broadcast {
        let payload = frames::channel_event(event, channel, data_literal, user_id);
        Broadcast {
            app,
            channel: channel.into(),
            payload: payload.into_bytes().into_boxed_slice(),
            except: None,
            cacheable: false,
            accepted: Instant::now(),
        }
    }

    /// A `pusher_internal:*` event whose `data` is the unencoded JSON `data_json`.
    pub fn internal(app: AppIdx, channel: &str, event: &str, data_json: &str) -> Broadcast {
        Self::event(app, channel, event, &frames::json_string(data_json), None)
    }

    /// Not for this connection (the publisher's own, or a joining member).
    pub fn except(mut self, socket: Option<SocketId>) -> Broadcast {
        self.except = socket;
        self
    }

    /// Remembered by every shard as the cache channel's last event.
    pub fn cacheable(mut self, cacheable: bool) -> Broadcast {
        self.cacheable = cacheable;
        self
    }
}

/// A client event relayed through the API core to every shard.
#[derive(Debug)]
pub struct ClientEvent {
    /// The event, not for its sender.
    pub broadcast: Broadcast,
    pub sender: SocketId,
    /// Filled by the shard only when an endpoint of the app wants `client_event` webhooks,
    /// so the API core never parses the frame again.
    pub report: Option<ClientEventReport>,
}

/// What a `client_event` webhook tells.
#[derive(Debug)]
pub struct ClientEventReport {
    pub event: Box<str>,
    /// The client's `data` as raw JSON.
    pub data: Box<str>,
    pub user_id: Option<Box<str>>,
}
