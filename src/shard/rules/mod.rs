//! The client protocol on a shard, without I/O: plain functions that take the shard's state
//! ([`ShardState`]), the app and a parsed client message, and return what to do
//! ([`Effects`]: frames for the connection, reports for the API core, a client event to relay,
//! a close). The session task (`shard::session`) reads sockets and carries effects out; the
//! unit tests here drive every rule of docs/protocol.md without a socket or an executor.
//!
//! One file per client message: [`subscribe`] (and unsubscribe), [`presence_join`] (the presence
//! join state machine), [`signin`], [`client_event`]; [`on_disconnect`] says what a departure
//! reports.

mod admit;
pub mod client_event;
pub mod join;
pub mod presence_join;
pub mod signin;
pub mod subscribe;
#[cfg(test)]
mod tests;

use super::conn::Conn;
use super::hub::ConnKey;
use super::outbox::Frame;
use super::state::ShardState;
use crate::app::App;
use crate::bus::{ApiCommand, ClientEvent};
use crate::protocol::errors::SubscriptionRefusal;
use crate::protocol::{ClientMessage, ErrorCode, SocketId, frames};

/// A frame for the connection, as its rule produced it.
#[derive(Debug)]
pub enum Outgoing {
    Json(String),
    Static(&'static str),
    /// Already a complete WebSocket frame (a cache channel's last event).
    Frame(Frame),
}

/// A close the rules decided: the code (with its entry in the error table) and the reason.
#[derive(Debug, PartialEq, Eq)]
pub struct Close {
    pub code: ErrorCode,
    pub reason: String,
}

/// What handling one message (or answer, or departure) asks the I/O side to do.
#[derive(Debug, Default)]
pub struct Effects {
    /// Frames for the connection, in order.
    pub frames: Vec<Outgoing>,
    /// Reports for the API core that must arrive, in order (membership, counts, sign-ins).
    pub reports: Vec<ApiCommand>,
    /// A client event to relay: best effort, refused with 4301 when the API core's queue is
    /// full.
    pub relay: Option<ClientEvent>,
    pub close: Option<Close>,
}

impl Effects {
    fn json(&mut self, text: String) {
        self.frames.push(Outgoing::Json(text));
    }

    /// `pusher:error` with a code that keeps the connection open.
    fn error(&mut self, code: ErrorCode, message: &str) {
        self.json(code.event(message));
    }

    fn refuse(&mut self, channel: &str, refusal: SubscriptionRefusal) {
        self.json(refusal.frame(channel));
    }

    fn close(&mut self, code: ErrorCode, reason: &str) {
        self.close = Some(Close {
            code,
            reason: reason.into(),
        });
    }

    fn report(&mut self, cmd: ApiCommand) {
        self.reports.push(cmd);
    }
}

/// The connection a message came from, with what its rules need.
pub struct Turn<'a> {
    pub state: &'a mut ShardState,
    pub app: &'a App,
    pub key: ConnKey,
    pub socket: SocketId,
    pub effects: Effects,
}

impl Turn<'_> {
    fn conn(&mut self) -> Option<&mut Conn> {
        self.state.hub.conn_mut(self.key)
    }
}

/// Handles one client message. `raw` is the message's text as it arrived (client events relay
/// their `data` from it byte-for-byte).
pub fn on_message(
    state: &mut ShardState,
    app: &App,
    key: ConnKey,
    message: ClientMessage<'_>,
    raw: &[u8],
) -> Effects {
    let Some(socket) = state.hub.conn(key).map(Conn::socket_id) else {
        return Effects::default();
    };
    let mut t = Turn {
        state,
        app,
        key,
        socket,
        effects: Effects::default(),
    };
    match message {
        ClientMessage::Ping => t.effects.frames.push(Outgoing::Static(frames::PONG)),
        ClientMessage::Pong | ClientMessage::Other { .. } => {}
        ClientMessage::Subscribe {
            channel,
            auth,
            channel_data,
        } => subscribe::subscribe(&mut t, &channel, auth.as_deref(), channel_data.as_deref()),
        ClientMessage::Unsubscribe { channel } => subscribe::unsubscribe(&mut t, &channel),
        ClientMessage::Signin { auth, user_data } => signin::signin(&mut t, &auth, &user_data),
        ClientMessage::ClientEvent { event, channel } => {
            if let Err(reason) = client_event::check(&mut t, &event, &channel, raw) {
                t.effects.error(ErrorCode::ClientEvent, &reason);
            }
        }
    }
    t.effects
}

/// What a departed connection reports: its subscriptions end, it leaves its presence
/// channels (joined or pending), and its user may go offline.
pub fn on_disconnect(conn: &Conn) -> Effects {
    let mut effects = Effects::default();
    let (app, socket) = (conn.app(), conn.socket_id());
    for ch in conn.channels() {
        effects.report(ApiCommand::Subscriptions {
            app,
            channel: (**ch).into(),
            delta: -1,
            socket,
        });
    }
    for (channel, user_id) in conn.joins().presence() {
        effects.report(join::leave_report(app, channel, user_id, socket));
    }
    if let Some(user_id) = conn.user_id() {
        effects.report(ApiCommand::UserOffline {
            app,
            user_id: (**user_id).into(),
            socket,
        });
    }
    effects
}
