//! A WebSocket session: one task per connection that reads, decodes and dispatches client
//! messages, and flushes the connection's outbox. Reads land in the shard's scratch buffer;
//! only an incomplete frame is copied into the connection's own (normally empty) buffer.

use super::Shard;
use super::hub::ConnKey;
use super::hub::PresenceSub;
use crate::app::App;
use crate::auth;
use crate::bus::{ApiCommand, Broadcast, PresenceJoin};
use crate::metrics::ShardMetrics;
use crate::protocol::{ChannelKind, ChannelName, ClientMessage, ErrorCode, SocketId, frames};
use crate::ws::{self, Decoder, Incoming, WsError};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use std::future::Future;
use std::net::Shutdown;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// `channel_data` of a presence subscription: `user_id` a string or a number, `user_info` kept
/// as the client wrote it.
#[derive(serde::Deserialize)]
struct ChannelData<'a> {
    #[serde(default)]
    user_id: serde_json::Value,
    #[serde(borrow)]
    user_info: Option<&'a serde_json::value::RawValue>,
}

/// Tells the API core a connection left a presence channel (joined or still pending).
fn leave_presence(shard: &Shard, app: crate::app::AppIdx, socket_id: SocketId, p: &PresenceSub) {
    shard.send_api_ordered(ApiCommand::PresenceLeave {
        app,
        channel: (*p.channel).into(),
        user_id: (*p.user_id).into(),
        socket_id,
    });
}

/// The one field of a client event taken from the original bytes.
#[derive(serde::Deserialize)]
struct RawClientEvent<'a> {
    #[serde(borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

/// Most users a connection may watch; beyond it, 4302 and the rest is ignored.
const MAX_WATCHLIST: usize = 100;

/// How long a closing connection may take to accept its last frames.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Reads and writes per turn before the task yields to the others on the shard.
const TURN_BUDGET: usize = 16;

/// The bytes that report `code` to a client and close its connection: the `pusher:error`
/// event (when the code has one) and the close frame.
pub fn closing_frames(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if code.sends_error_event() {
        out.extend(ws::frame::text(frames::error(code, message).as_bytes()));
    }
    out.extend(ws::frame::close(code.code(), message));
    out
}

/// Ends a connection whose close frame is out: half-close, then let the client close its
/// side (bounded in time), so the close frame is not lost to a TCP reset.
pub async fn finish(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.shutdown(Shutdown::Write).await?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut sink = vec![0u8; 1024];
    for _ in 0..64 {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

/// How a session ended.
enum End {
    /// Our close frame is written: finish the TCP connection politely.
    Closed,
    /// The peer vanished or the socket failed.
    Gone,
}

/// The session's protocol side: everything message handling needs.
struct Ctx<'a> {
    shard: &'a Rc<Shard>,
    app: &'a Arc<App>,
    key: ConnKey,
    socket_id: SocketId,
    /// A close frame is queued; nothing more is read.
    closing: bool,
    /// The code of the close frame we sent, for the disconnection metric.
    close_code: Option<u16>,
}

impl Ctx<'_> {
    fn send_text(&self, json: &str) {
        self.shard
            .hub
            .borrow_mut()
            .send(self.key, ws::frame::text(json.as_bytes()).into());
    }

    fn error(&self, code: ErrorCode, message: &str) {
        self.send_text(&frames::error(code, message));
    }

    /// Queues the closing frames, bypassing the outbound limit (a slow consumer's queue was
    /// already dropped to make room for them).
    fn close_with(&mut self, code: u16, frames: Vec<u8>) {
        self.close_code = Some(code);
        let mut hub = self.shard.hub.borrow_mut();
        if let Some(conn) = hub.conn_mut(self.key) {
            conn.outbox.push(frames.into());
        }
        self.closing = true;
    }

    fn on_message(&mut self, incoming: Incoming<'_>) -> ControlFlow<()> {
        match incoming {
            Incoming::Text(bytes) => self.on_text(bytes),
            Incoming::Binary => self.error(ErrorCode::Malformed, "binary frames are not supported"),
            Incoming::Ping(payload) => {
                self.shard
                    .hub
                    .borrow_mut()
                    .send(self.key, ws::frame::pong(payload).into());
            }
            Incoming::Pong => {}
            Incoming::Close(code) => {
                // Echo the client's code, as RFC 6455 suggests.
                let code = code.unwrap_or(1000);
                self.close_with(code, ws::frame::close(code, ""));
                return ControlFlow::Break(());
            }
        }
        if self.closing {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn on_text(&mut self, bytes: &mut [u8]) {
        ShardMetrics::add(&self.shard.stats().messages_in, 1);
        let mut original = self.shard.message_copy.borrow_mut();
        original.clear();
        original.extend_from_slice(bytes);
        let mut buffers = self.shard.json_buffers.borrow_mut();
        let message = match ClientMessage::parse(bytes, &mut buffers) {
            Ok(m) => m,
            Err(e) => return self.error(ErrorCode::Malformed, &e.to_string()),
        };
        match message {
            ClientMessage::Ping => self.send_text(frames::PONG),
            ClientMessage::Pong | ClientMessage::Other { .. } => {}
            ClientMessage::Subscribe {
                channel,
                auth,
                channel_data,
            } => self.subscribe(&channel, auth.as_deref(), channel_data.as_deref()),
            ClientMessage::Unsubscribe { channel } => self.unsubscribe(&channel),
            ClientMessage::Signin { auth, user_data } => self.signin(&auth, &user_data),
            ClientMessage::ClientEvent { event, channel } => {
                if let Err(reason) = self.client_event(&event, &channel, &original) {
                    self.error(ErrorCode::ClientEvent, &reason);
                }
            }
        }
    }

    fn subscribe(&mut self, channel: &str, auth: Option<&str>, channel_data: Option<&str>) {
        let max = self.app.config.max_channel_name_length;
        let name = match ChannelName::parse(channel, max) {
            Ok(n) => n,
            Err(e) => return self.error(ErrorCode::Channel, &format!("{e}: {channel}")),
        };
        match name.kind {
            ChannelKind::Public => {}
            ChannelKind::Private | ChannelKind::PrivateEncrypted => {
                let Some(token) = auth.filter(|a| !a.is_empty()) else {
                    return self.subscription_error(channel, "missing auth signature", 401);
                };
                let socket_id = self.socket_id.to_string();
                let (key, secret) = (self.app.key(), self.app.secret());
                if !auth::verify_channel_auth(key, secret, &socket_id, channel, None, token) {
                    return self.subscription_error(channel, "invalid signature", 401);
                }
            }
            ChannelKind::ServerToUser => {
                let own = self
                    .shard
                    .hub
                    .borrow()
                    .conn(self.key)
                    .and_then(|c| c.user_id.clone());
                if own.as_deref() != name.server_to_user_id() {
                    return self.subscription_error(
                        channel,
                        "only the signed-in user may subscribe",
                        403,
                    );
                }
            }
            ChannelKind::Presence => return self.presence_subscribe(channel, auth, channel_data),
        }
        let subscribed = self.shard.hub.borrow_mut().subscribe(self.key, channel);
        if subscribed.is_ok() {
            self.shard.count_subscription(self.app.idx, channel, 1);
            if name.needs_auth()
                && let Some(conn) = self.shard.hub.borrow_mut().conn_mut(self.key)
            {
                conn.authenticated = true;
            }
        }
        if subscribed.is_err() {
            return self.error(
                ErrorCode::Channel,
                &format!("Already subscribed to channel {channel}"),
            );
        }
        self.send_text(&frames::subscription_succeeded(channel, "{}"));
        if name.cache {
            self.shard.replay_cache(self.key, self.app.idx, channel);
        }
    }

    /// `pusher:signin` (SPEC §3, user authentication). A bad signature or user closes with 4009.
    fn signin(&mut self, auth: &str, user_data: &str) {
        let socket_id = self.socket_id.to_string();
        let (key, secret) = (self.app.key(), self.app.secret());
        if !auth::verify_user_auth(key, secret, &socket_id, user_data, auth) {
            let frames = closing_frames(ErrorCode::Unauthorized, "Invalid signature");
            return self.close_with(ErrorCode::Unauthorized.code(), frames);
        }
        let parsed = serde_json::from_str::<serde_json::Value>(user_data).unwrap_or_default();
        let id = parsed
            .get("id")
            .and_then(|id| id.as_str())
            .filter(|id| !id.is_empty());
        let Some(id) = id.map(Rc::<str>::from) else {
            let reason = "user_data needs a non-empty string id";
            let frames = closing_frames(ErrorCode::Unauthorized, reason);
            return self.close_with(ErrorCode::Unauthorized.code(), frames);
        };
        if let Some(conn) = self.shard.hub.borrow_mut().conn_mut(self.key) {
            conn.user_id = Some(id.clone());
            conn.authenticated = true;
        }
        self.send_text(&frames::signin_success(user_data));
        let mut watchlist: Vec<Box<str>> = parsed
            .get("watchlist")
            .and_then(|w| w.as_array())
            .map(|w| {
                w.iter()
                    .filter_map(|u| u.as_str().map(Box::<str>::from))
                    .collect()
            })
            .unwrap_or_default();
        if watchlist.len() > MAX_WATCHLIST {
            watchlist.truncate(MAX_WATCHLIST);
            self.error(
                ErrorCode::Watchlist,
                &format!("Watchlist is limited to {MAX_WATCHLIST} users"),
            );
        }
        self.shard.send_api_ordered(ApiCommand::UserOnline {
            shard: self.shard.id,
            conn: self.key,
            socket_id: self.socket_id,
            app: self.app.idx,
            user_id: (*id).into(),
            watchlist,
        });
    }

    /// Checks a client event against every rule of SPEC §3 and hands it to the API core, which
    /// relays it to every shard; the sender is excluded. `Err` is the 4301 message.
    fn client_event(&self, event: &str, channel: &str, original: &[u8]) -> Result<(), String> {
        let limits = &self.app.config;
        if !limits.enable_client_messages {
            return Err("Client events are not enabled for this app".into());
        }
        let name = ChannelName::parse(channel, limits.max_channel_name_length)
            .map_err(|e| e.to_string())?;
        match name.kind {
            ChannelKind::Private | ChannelKind::Presence => {}
            ChannelKind::PrivateEncrypted => {
                return Err("Client events are not allowed on encrypted channels".into());
            }
            _ => {
                return Err(
                    "Client events are only allowed on private and presence channels".into(),
                );
            }
        }
        if event.len() > limits.max_event_name_length {
            return Err(format!(
                "Event name is longer than {} characters",
                limits.max_event_name_length
            ));
        }
        let raw = serde_json::from_slice::<RawClientEvent>(original)
            .map_err(|_| "Invalid client event".to_string())?;
        let data = raw.data.map_or("{}", |d| d.get());
        if data.len() > limits.max_event_payload_kb * 1024 {
            return Err(format!(
                "Event data is larger than {} KB",
                limits.max_event_payload_kb
            ));
        }
        let user_id;
        {
            let mut hub = self.shard.hub.borrow_mut();
            if !hub.is_subscribed(self.key, channel) {
                return Err(format!("Not subscribed to channel {channel}"));
            }
            let now = self.shard.now();
            let conn = hub.conn_mut(self.key).ok_or("connection is gone")?;
            let (second, count) = conn.client_events;
            let count = if second == now { count } else { 0 };
            if count >= limits.max_client_events_per_second {
                return Err(format!(
                    "Over {} client events per second",
                    limits.max_client_events_per_second
                ));
            }
            conn.client_events = (now, count + 1);
            // On presence channels the relayed event names its sender.
            user_id = conn
                .presence
                .iter()
                .find(|p| &*p.channel == channel)
                .map(|p| p.user_id.clone());
        }
        let payload = frames::channel_event(event, channel, data, user_id.as_deref())
            .into_bytes()
            .into_boxed_slice();
        let relayed = self.shard.try_send_api(ApiCommand::ClientEvent(Broadcast {
            app: self.app.idx,
            channel: channel.into(),
            payload,
            except: Some(self.socket_id),
            cacheable: false,
            accepted: std::time::Instant::now(),
        }));
        if relayed {
            Ok(())
        } else {
            Err("Server busy, client event dropped".into())
        }
    }

    /// A presence subscription: checked here, admitted by the API core, which owns membership;
    /// `subscription_succeeded` follows its answer (`Shard::presence_reply`).
    fn presence_subscribe(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) {
        let Some(data) = channel_data else {
            return self.subscription_error(channel, "presence channels need channel_data", 400);
        };
        let Some(token) = auth.filter(|a| !a.is_empty()) else {
            return self.subscription_error(channel, "missing auth signature", 401);
        };
        let socket_id = self.socket_id.to_string();
        if !auth::verify_channel_auth(
            self.app.key(),
            self.app.secret(),
            &socket_id,
            channel,
            Some(data),
            token,
        ) {
            return self.subscription_error(channel, "invalid signature", 401);
        }
        let Ok(parsed) = serde_json::from_str::<ChannelData>(data) else {
            return self.subscription_error(channel, "channel_data is not a JSON object", 400);
        };
        let user_id = match parsed.user_id {
            serde_json::Value::String(s) if !s.is_empty() => s,
            serde_json::Value::Number(n) => n.to_string(),
            _ => return self.subscription_error(channel, "channel_data needs a user_id", 400),
        };
        let user_info = parsed.user_info.map_or("null", |r| r.get());
        let max = self.app.config.max_presence_member_size_kb;
        if user_info.len() > max * 1024 {
            return self.subscription_error(
                channel,
                &format!("user_info is larger than {max} KB"),
                403,
            );
        }
        {
            let mut hub = self.shard.hub.borrow_mut();
            let already = hub.is_subscribed(self.key, channel);
            let Some(conn) = hub.conn_mut(self.key) else {
                return;
            };
            if already || conn.presence.iter().any(|p| &*p.channel == channel) {
                drop(hub);
                return self.error(
                    ErrorCode::Channel,
                    &format!("Already subscribed to channel {channel}"),
                );
            }
            conn.presence.push(PresenceSub {
                channel: channel.into(),
                user_id: user_id.as_str().into(),
                confirmed: false,
            });
        }
        self.shard
            .send_api_ordered(ApiCommand::PresenceJoin(PresenceJoin {
                shard: self.shard.id,
                conn: self.key,
                socket_id: self.socket_id,
                app: self.app.idx,
                channel: channel.into(),
                user_id: user_id.into(),
                user_info: user_info.into(),
            }));
    }

    /// `pusher:unsubscribe`: leaves the channel index and, for presence, the membership.
    fn unsubscribe(&mut self, channel: &str) {
        let (indexed, presence) = {
            let mut hub = self.shard.hub.borrow_mut();
            let indexed = hub.unsubscribe(self.key, channel).is_ok();
            let presence = hub.conn_mut(self.key).and_then(|c| {
                let pos = c.presence.iter().position(|p| &*p.channel == channel)?;
                Some(c.presence.swap_remove(pos))
            });
            (indexed, presence)
        };
        if indexed {
            self.shard.count_subscription(self.app.idx, channel, -1);
        }
        match presence {
            Some(p) => leave_presence(self.shard, self.app.idx, self.socket_id, &p),
            None if !indexed => self.error(
                ErrorCode::Channel,
                &format!("Not subscribed to channel {channel}"),
            ),
            None => {}
        }
    }

    fn subscription_error(&self, channel: &str, error: &str, status: u16) {
        self.send_text(&frames::subscription_error(channel, error, status));
    }
}

/// The session's I/O side.
struct Session<'a> {
    ctx: Ctx<'a>,
    decoder: Decoder,
    /// Bytes of an incomplete frame; empty (and unallocated) between frames.
    partial: Vec<u8>,
    close_timer: Option<Timer>,
}

impl Session<'_> {
    /// Feeds `buf` to the decoder; returns how many bytes were consumed.
    fn decode(&mut self, buf: &mut [u8]) -> usize {
        let ctx = &mut self.ctx;
        match self.decoder.decode(buf, |m| ctx.on_message(m)) {
            Ok(used) => used,
            Err(e) => {
                self.fail(e);
                buf.len()
            }
        }
    }

    fn fail(&mut self, e: WsError) {
        if !self.ctx.closing {
            self.ctx
                .close_with(e.close_code(), ws::frame::close(e.close_code(), e.reason()));
        }
    }

    /// Reads what the socket has and processes every complete frame in it.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut TcpStream,
    ) -> Poll<std::io::Result<usize>> {
        let shard = self.ctx.shard.clone();
        let mut scratch = shard.read_scratch.borrow_mut();
        let n = match Pin::new(&mut *stream).poll_read(cx, &mut scratch[..]) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        ShardMetrics::add(&shard.stats().bytes_in, n as u64);
        shard.hub.borrow_mut().touch(self.ctx.key, shard.now());
        if self.partial.is_empty() {
            let used = self.decode(&mut scratch[..n]);
            if used < n && !self.ctx.closing {
                self.partial.extend_from_slice(&scratch[used..n]);
            }
        } else {
            self.partial.extend_from_slice(&scratch[..n]);
            drop(scratch);
            let mut buf = std::mem::take(&mut self.partial);
            let used = self.decode(&mut buf);
            buf.drain(..used);
            if !buf.is_empty() && !self.ctx.closing {
                self.partial = buf;
            }
        }
        Poll::Ready(Ok(n))
    }

    /// Writes the outbox, several frames per write. `Ready(Ok(wrote))` once it is empty.
    fn poll_flush(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut TcpStream,
    ) -> Poll<std::io::Result<bool>> {
        let shard = self.ctx.shard;
        let key = self.ctx.key;
        let mut wrote = false;
        loop {
            let mut wbuf = shard.write_scratch.borrow_mut();
            wbuf.clear();
            let single = {
                let hub = shard.hub.borrow();
                let Some(conn) = hub.conn(key) else {
                    return Poll::Ready(Ok(wrote));
                };
                if conn.outbox.is_empty() {
                    return Poll::Ready(Ok(wrote));
                }
                let single = conn.outbox.single();
                if single.is_none() {
                    conn.outbox.fill(&mut wbuf, super::WRITE_CHUNK_BYTES);
                }
                single
            };
            let bytes: &[u8] = match &single {
                Some((frame, offset)) => &frame[*offset..],
                None => &wbuf,
            };
            match Pin::new(&mut *stream).poll_write(cx, bytes) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    ShardMetrics::add(&shard.stats().bytes_out, n as u64);
                    if let Some(conn) = shard.hub.borrow_mut().conn_mut(key) {
                        conn.outbox.consume(n);
                    }
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_turn(&mut self, cx: &mut Context<'_>, stream: &mut TcpStream) -> Poll<End> {
        for _ in 0..TURN_BUDGET {
            let mut progress = false;
            if !self.ctx.closing {
                match self.poll_read(cx, stream) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(End::Gone),
                    Poll::Ready(Ok(_)) => progress = true,
                    Poll::Pending => {}
                }
            }
            if !self.ctx.closing {
                let requested = self
                    .ctx
                    .shard
                    .hub
                    .borrow_mut()
                    .conn_mut(self.ctx.key)
                    .and_then(|c| c.close);
                if let Some(code) = requested {
                    self.ctx
                        .close_with(code.code(), closing_frames(code, close_message(code)));
                }
            }
            match self.poll_flush(cx, stream) {
                Poll::Ready(Ok(wrote)) => {
                    if self.ctx.closing {
                        return Poll::Ready(End::Closed);
                    }
                    progress |= wrote;
                }
                Poll::Ready(Err(_)) => return Poll::Ready(End::Gone),
                Poll::Pending => {
                    if self.ctx.closing {
                        // A client that stopped reading must not hold the connection forever.
                        let timer = self
                            .close_timer
                            .get_or_insert_with(|| Timer::new(CLOSE_FLUSH_TIMEOUT));
                        if Pin::new(timer).poll(cx).is_ready() {
                            return Poll::Ready(End::Gone);
                        }
                    }
                }
            }
            if !progress {
                let mut hub = self.ctx.shard.hub.borrow_mut();
                if let Some(conn) = hub.conn_mut(self.ctx.key)
                    && !conn.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
                {
                    conn.waker = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
        }
        // Out of budget: let the shard's other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn close_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::OverCapacity => "Connection too slow: outbound buffer full",
        ErrorCode::PongTimeout => "Pong reply not received",
        ErrorCode::Reconnect => "Server is shutting down",
        ErrorCode::Unauthorized => "Connection terminated",
        _ => "Connection closed",
    }
}

/// The session task: serves an upgraded connection until it closes, then releases its place
/// in the app's connection quota. `leftover` holds bytes the client sent right after its
/// handshake.
pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream, app: Arc<App>, leftover: Vec<u8>) {
    if let Err(e) = run(&shard, &mut stream, &app, leftover).await {
        log::debug!("shard {}: session ended: {e}", shard.id);
    }
    app.release_connection();
}

async fn run(
    shard: &Rc<Shard>,
    stream: &mut TcpStream,
    app: &Arc<App>,
    leftover: Vec<u8>,
) -> std::io::Result<()> {
    let socket_id = shard.next_socket_id();
    let key = shard.hub.borrow_mut().add(socket_id, app.idx, shard.now());
    let established = frames::connection_established(socket_id, shard.config.activity_timeout);
    let ctx = Ctx {
        shard,
        app,
        key,
        socket_id,
        closing: false,
        close_code: None,
    };
    shard.stats().connected();
    let mut session = Session {
        ctx,
        decoder: Decoder::new(shard.config.max_message_kb * 1024),
        partial: Vec::new(),
        close_timer: None,
    };
    session.ctx.send_text(&established);
    if !leftover.is_empty() {
        let mut buf = leftover;
        let used = session.decode(&mut buf);
        buf.drain(..used);
        if !buf.is_empty() {
            session.partial = buf;
        }
    }
    let end = futures_lite::future::poll_fn(|cx| session.poll_turn(cx, stream)).await;
    let gone = shard.hub.borrow_mut().remove(key);
    for ch in gone.iter().flat_map(|c| c.channels.iter()) {
        shard.count_subscription(app.idx, ch, -1);
    }
    for p in gone.iter().flat_map(|c| c.presence.iter()) {
        leave_presence(shard, app.idx, socket_id, p);
    }
    if let Some(user_id) = gone.as_ref().and_then(|c| c.user_id.as_deref()) {
        shard.send_api_ordered(ApiCommand::UserOffline {
            app: app.idx,
            user_id: user_id.into(),
            socket_id,
        });
    }
    // A close we queued counts even if the client vanished before reading it (4100, 4201 …).
    shard.stats().disconnected(session.ctx.close_code);
    match end {
        End::Closed => finish(stream).await,
        End::Gone => Ok(()),
    }
}
